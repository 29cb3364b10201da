import os
import subprocess
import sys
import textwrap

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def run_on_two_host_devices(code: str) -> None:
    """Run ``code`` in a fresh interpreter with two forced CPU devices; it must print "ok"."""
    code = ('import os\nos.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"\n'
            + textwrap.dedent(code))
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
