"""Integrations with other frameworks: the last stage of the pipeline, the front doors that live
inside someone else's generation loop.

* :mod:`structgen.integrations.hf`: a ``transformers`` ``LogitsProcessor`` for
  ``model.generate`` and the ``"structured-generation"`` pipeline task.

Nothing is imported here, so ``import structgen.integrations`` stays light; import the
submodule you need (importing :mod:`structgen.integrations.hf` registers the pipeline task).
"""
