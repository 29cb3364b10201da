import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One compilation cache for the session (never the user's ~/.cache/deepbn), shared by the
# xdist workers (they inherit the controller's environment) and by every deepbn process a
# test starts: many tests compile the same programs (the run layer builds a fresh closure
# per call, so only the persistent cache, keyed by the program's text, sees that they are
# the same). The controller (or a run without workers) makes it and removes it at the end.
# The test processes keep only programs that took 0.5 s or more to compile (a command keeps
# them all): the tests compile thousands of small ones, and writing each costs more than
# it saves; an in-process CLI call must not lower that for the rest of the worker's tests.
if "PYTEST_XDIST_WORKER" not in os.environ:
    os.environ["DEEPBN_CACHE"] = tempfile.mkdtemp(prefix="deepbn-tests-")
    _SESSION_CACHE = os.environ["DEEPBN_CACHE"]
else:
    _SESSION_CACHE = None

import deepbn.cli.app  # noqa: E402
from deepbn.cli.common import enable_compilation_cache  # noqa: E402

enable_compilation_cache()
if "jax" in sys.modules:
    import jax

    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
else:
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
deepbn.cli.app.enable_compilation_cache = lambda: None

# The files that take longest on 2 cores, slowest first (measured with `pytest --durations=60`
# on a shared 2-core machine, 2026-11-26; re-measure when a file grows). pytest-xdist hands
# out whole files (--dist loadfile) in collection order (--no-loadscope-reorder): starting
# the long files first lets both workers finish together instead of one worker starting a
# 4-minute file when the other is nearly done. Every other file keeps its usual order.
SLOW_FIRST = ["test_interrupt_cli.py", "test_bad_inputs_cli.py", "test_csmc.py", "test_run.py",
              "test_learned_network.py", "test_siren.py", "test_dibs.py", "test_resume_cli.py",
              "test_vae_cli.py", "test_train.py"]


def pytest_sessionfinish(session, exitstatus):
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: others in order


def run_on_two_host_devices(code: str) -> None:
    """Run ``code`` in a fresh interpreter with two forced CPU devices; it must print "ok"."""
    code = ('import os\nos.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"\n'
            + textwrap.dedent(code))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def interrupt_after(n: int):
    """A progress callback that raises KeyboardInterrupt (as Ctrl-C would) once ``n`` steps
    are done; whatever else a caller passes it is ignored."""
    def progress(done, *_):
        if done >= n:
            raise KeyboardInterrupt
    return progress
