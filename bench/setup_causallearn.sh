#!/usr/bin/env bash
# causal-learn (GES for bench/sachs.py) in its own venv: a benchmark baseline, never a
# deepbn dependency.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$here/.venv-causallearn"
"$here/.venv-causallearn/bin/pip" install -q "causal-learn==0.1.4.8"
