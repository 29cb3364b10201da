#!/usr/bin/env bash
# dibs-lib in its own venv (it needs an older JAX than deepbn); jupyter, a declared
# dependency it does not use, is left out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$here/.venv-dibslib"
"$here/.venv-dibslib/bin/pip" install -q "jax==0.4.30" "jaxlib==0.4.30" "numpy<2" igraph tqdm \
    scikit-learn matplotlib imageio scipy
"$here/.venv-dibslib/bin/pip" install -q --no-deps dibs-lib==1.3.3
