"""Decoding: language models behind one small protocol, samplers, and the decode loop."""
