#!/usr/bin/env bash
# Gadget (PyPI sumu 0.1.2, an MCMC structure-learning baseline) in its own venv, never a
# deepbn dependency. sumu 0.1.2 ships only an sdist whose Cython-generated _*.cpp files
# are stale for today's Python, so they are deleted and regenerated with cython<3
# (numpy<2) in a build without isolation. Usage: bash bench/setup_gadget.sh [VENV]
# (default bench/.venv-gadget).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${1:-"$here/.venv-gadget"}
python3 -m venv "$venv"
"$venv/bin/pip" install -q "cython<3" "numpy<2" scipy setuptools wheel psutil
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/pip" download -q --no-deps --no-build-isolation -d "$tmp" "sumu==0.1.2"
tar -xzf "$tmp"/sumu-0.1.2.tar.gz -C "$tmp"
find "$tmp/sumu-0.1.2" -name '_*.cpp' -delete
"$venv/bin/pip" install -q --no-build-isolation "$tmp/sumu-0.1.2"
