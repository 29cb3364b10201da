import os
import subprocess
import sys
import textwrap

os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The files that take longest on 2 cores, slowest first (measured with `pytest --durations=40`
# on a shared 2-core machine, 2026-11; re-measure when a file grows). pytest-xdist hands out
# whole files (--dist loadfile) in collection order (--no-loadscope-reorder): starting the
# long files first lets both workers finish together instead of one worker starting a
# 4-minute file when the other is nearly done. Every other file keeps its usual order.
SLOW_FIRST = ["test_interrupt_cli.py", "test_bad_inputs_cli.py", "test_csmc.py", "test_dibs.py",
              "test_run.py", "test_vae_cli.py", "test_learned_network.py", "test_bn.py",
              "test_resume_cli.py", "test_dibs_runs.py"]


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
