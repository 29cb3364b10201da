#!/usr/bin/env bash
# The PyTorch references (bench/vae_mnist.py; bench/grf_vs_maf.py with zuko) in their
# own venv: exactly torch 2.13.0
# (the CPU build; an unpinned torch pulls gigabytes of CUDA packages).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$here/.venv-torch"
"$here/.venv-torch/bin/pip" install -q "torch==2.13.0" numpy "zuko==1.6.0"
