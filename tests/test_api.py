"""The flat public API: every name resolves, ``import deepbn`` stays cheap, README lists it."""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import deepbn
from deepbn import run

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_flat_public_api_resolves_every_name():
    for name in deepbn.__all__:
        assert getattr(deepbn, name) is not None, name
    for name, where in deepbn._LAZY.items():
        module, _, attribute = where.partition(":")
        value = getattr(deepbn, name)
        if getattr(value, "__name__", None) != module:  # a module itself (``run``)
            assert value is getattr(importlib.import_module(module), attribute or name), name
    assert deepbn.load_network.__module__ == "deepbn.examples"
    assert deepbn.run.run is run.run and deepbn.learn_structure.__name__ == "learn_structure"
    assert deepbn.fit.__module__ == "deepbn.inference.mcmc_em"
    with pytest.raises(AttributeError):
        deepbn.no_such_thing  # noqa: B018


def test_import_deepbn_loads_no_heavy_package():
    heavy = sorted({where.partition(":")[0] for where in deepbn._LAZY.values()}
                   | {"jax", "equinox", "optax", "blackjax", "pandas", "matplotlib", "sklearn",
                      "xarray", "arviz_base",
                      "deepbn.cli",
                      "deepbn.structure", "deepbn.inference", "deepbn.graph_vae", "deepbn.siren"})
    code = ("import sys, deepbn\n"
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == []


def test_readme_library_section_lists_every_public_name_once():
    text = README.read_text()
    section = text[text.index("\n## Library\n"):]
    section = section[: section.index("```")]  # the table, before the first example
    listed = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert sorted(listed) == sorted(deepbn.__all__)
    assert len(listed) == len(set(listed))
