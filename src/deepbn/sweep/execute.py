"""Running a sweep's runs: each one the ``deepbn`` executable in a subprocess.

A run's steps run one after another in the run's folder's command lines; the
run records how it went in ``RUN_DIR/sweep_run.json`` (its settings, its command
lines, ``status`` done / failed / partial, the exit code and the last error
line) and the steps' output in ``RUN_DIR/sweep.log``. A run is finished when
that record says done for the same command lines: a sweep run again skips it.
Anything else runs again; the commands resume from their checkpoints, and steps
already done are skipped.

Two executors: :func:`run_local` (threads, each waiting on one subprocess, at
most ``jobs`` at once) and :func:`run_ray` (one Ray task per run with the spec's
CPUs and GPUs, on an existing cluster or a local Ray). On Ctrl-C or SIGTERM both
send SIGTERM to the running commands, which handle it as Ctrl-C (checkpoint and
exit; SIGTERM because a command started in the background ignores SIGINT), wait
for them, and raise ``KeyboardInterrupt``: their runs resume when the sweep is run
again.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from deepbn.errors import UsageError
from deepbn.results import write_json
from deepbn.sweep.spec import Run, SweepSpec

RECORD = "sweep_run.json"
LOG = "sweep.log"
RUNS = "runs"
INTERRUPTED_CODES = (130, 143, -signal.SIGINT, -signal.SIGTERM)


@dataclass(frozen=True)
class Outcome:
    """How one run went: ``status`` is done, failed, interrupted or skipped."""

    name: str
    status: str
    exit_code: int | None = None
    error: str = ""
    seconds: float = 0.0


def run_folder(out: str | Path, run: Run) -> Path:
    """The folder of ``run`` inside the sweep's folder ``out``."""
    return Path(out) / RUNS / run.name


def read_record(folder: Path) -> dict | None:
    """The run's ``sweep_run.json``, or None if there is none (or it is unreadable)."""
    try:
        with open(folder / RECORD) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _same_steps(record: dict, run: Run, count: int) -> bool:
    steps = record.get("steps")
    return (isinstance(steps, list) and len(steps) >= count
            and [list(s) for s in run.steps[:count]] == steps[:count])


def finished(run: Run, folder: Path) -> bool:
    """Whether ``folder`` holds this run, done, with the same command lines."""
    record = read_record(folder)
    return (record is not None and record.get("status") == "done"
            and len(record.get("steps", ())) == len(run.steps)
            and _same_steps(record, run, len(run.steps)))


def deepbn_program() -> list[str]:
    """The ``deepbn`` executable of this Python environment."""
    beside = Path(sys.executable).with_name("deepbn")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("deepbn")
    return [found] if found else [sys.executable, "-m", "deepbn.cli.app"]


def _last_error(log: Path, offset: int) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            lines = [s.strip() for s in f.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [s for s in lines if s]
    errors = [s for s in lines if s.startswith("error:")]
    line = errors[-1] if errors else (lines[-1] if len(lines) > 1 else "")
    return line[:300]


class Processes:
    """The subprocesses running now, so that an interrupt reaches each of them once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self.stopping = False

    def add(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._running.add(proc)
            if self.stopping:  # started while the sweep was being stopped
                proc.send_signal(signal.SIGTERM)

    def discard(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(proc)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Start no more steps; send ``sig`` to every running one."""
        with self._lock:
            self.stopping = True
            for proc in self._running:
                if proc.poll() is None:
                    proc.send_signal(sig)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _wait(proc: subprocess.Popen) -> int:
    # in steps, so that an interrupt raised from another thread (Ray's cancel) is seen:
    # a plain wait blocks in waitpid until the command ends
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass


def execute_run(run: Run, folder: Path, cwd: Path, env: dict[str, str] | None = None,
                program: Sequence[str] | None = None,
                processes: Processes | None = None) -> Outcome:
    """Run ``run``'s steps in ``folder`` (created), one after another; record the outcome.

    ``env`` is added to this process's environment; ``program`` is the executable
    (default :func:`deepbn_program`). An interrupted step (exit 130 or 143 after the
    sweep was stopped, or a ``KeyboardInterrupt`` here, which is passed on to the step)
    leaves the record as it was, so the run resumes.
    """
    program = list(program or deepbn_program())
    env = {**os.environ, **(env or {})}
    folder.mkdir(parents=True, exist_ok=True)
    record = read_record(folder) or {}
    done = record.get("steps_done", 0) if record.get("status") in ("partial", "failed") else 0
    done = done if isinstance(done, int) and _same_steps(record, run, done) else 0
    base = {"name": run.name, "settings": run.settings, "seed": run.seed,
            "steps": [list(s) for s in run.steps]}
    start = time.perf_counter()
    with open(folder / LOG, "ab") as log:
        for k, argv in enumerate(run.argv(folder.resolve())):
            if k < done:
                continue
            if processes is not None and processes.stopping:
                return Outcome(run.name, "interrupted", seconds=time.perf_counter() - start)
            offset = os.fstat(log.fileno()).st_size  # where this step's output starts
            log.write(f"$ deepbn {shlex.join(argv)}\n".encode())
            log.flush()
            # a session of its own: a Ctrl-C at the terminal reaches only the sweep, which
            # passes it on once (a second signal could cut a checkpoint being written)
            proc = subprocess.Popen(program + argv, cwd=cwd, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            if processes is not None:
                processes.add(proc)
            try:
                code = _wait(proc)
            except KeyboardInterrupt:  # a Ray task being cancelled
                proc.send_signal(signal.SIGTERM)
                proc.wait()
                raise
            finally:
                if processes is not None:
                    processes.discard(proc)
            seconds = time.perf_counter() - start
            if code != 0:
                if code in INTERRUPTED_CODES and (processes is None or processes.stopping):
                    return Outcome(run.name, "interrupted", code, seconds=seconds)
                error = (_last_error(folder / LOG, offset) if code > 0 else
                         f"killed by signal {_signal_name(-code)}")
                write_json(folder / RECORD, {**base, "status": "failed", "steps_done": k,
                                             "exit_code": code, "error": error,
                                             "seconds": seconds})
                return Outcome(run.name, "failed", code, error, seconds)
            write_json(folder / RECORD, {**base, "status": "partial", "steps_done": k + 1})
    seconds = time.perf_counter() - start
    write_json(folder / RECORD, {**base, "status": "done", "steps_done": len(run.steps),
                                 "exit_code": 0, "error": "", "seconds": seconds})
    return Outcome(run.name, "done", 0, "", seconds)


OnEnd = Callable[[Outcome], None]


def run_local(runs: Sequence[Run], out: Path, spec: SweepSpec, jobs: int = 1,
              on_end: OnEnd | None = None, program: Sequence[str] | None = None
              ) -> list[Outcome]:
    """Run ``runs`` here, at most ``jobs`` at once; ``on_end`` hears of each as it ends."""
    processes = Processes()
    outcomes = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = {pool.submit(execute_run, run, run_folder(out, run), spec.folder, spec.env,
                               program, processes) for run in runs}
        try:
            while pending:
                ended, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in ended:
                    outcomes.append(future.result())
                    if on_end is not None:
                        on_end(outcomes[-1])
        except BaseException:
            _stop_local(processes, pending)
            raise
    return outcomes


def _stop_local(processes: Processes, pending) -> None:
    for future in pending:
        future.cancel()
    processes.stop(signal.SIGTERM)
    try:
        wait(pending)
    except KeyboardInterrupt:  # a second Ctrl-C: do not wait for checkpoints
        processes.stop(signal.SIGKILL)
        wait(pending)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'deepbn[ray]' "
                         "(or pip install ray)") from None
    return ray


def _ray_task(run: Run, folder: str, cwd: str, env: dict[str, str],
              program: Sequence[str] | None) -> Outcome:
    # on the worker: its own deepbn, its own environment (CUDA_VISIBLE_DEVICES set by Ray)
    return execute_run(run, Path(folder), Path(cwd), env, program)


def _check_capacity(ray, spec: SweepSpec) -> None:
    total = ray.cluster_resources()
    for key, need, ray_key in (("cpus", spec.cpus, "CPU"), ("gpus", spec.gpus, "GPU")):
        if need > total.get(ray_key, 0.0):
            raise UsageError(f"{spec.path}: resources.{key}: each run asks for {need:g} but the "
                             f"Ray cluster has {total.get(ray_key, 0.0):g} in all")


def run_ray(runs: Sequence[Run], out: Path, spec: SweepSpec, jobs: int | None = None,
            address: str | None = None, on_end: OnEnd | None = None,
            program: Sequence[str] | None = None) -> list[Outcome]:
    """Run ``runs`` as Ray tasks with the spec's CPUs and GPUs each.

    With ``address``, on that cluster (its nodes must see the spec's folder and
    ``out`` at the same paths, and have deepbn installed); otherwise on a local
    Ray started here with ``jobs`` × the CPUs of a run (default: every CPU), shut
    down at the end. At most ``jobs`` runs are in flight at once. ``program``: as in
    :func:`execute_run`, found on the worker by default.
    """
    ray = _import_ray()
    import logging
    import warnings

    started = not ray.is_initialized()
    if started:
        options = {"include_dashboard": False, "logging_level": logging.ERROR,
                   "log_to_driver": False}
        if not address:
            options["num_cpus"] = math.ceil(jobs * spec.cpus) if jobs else None
        with warnings.catch_warnings():
            # Ray starts its processes by fork + exec, which JAX (imported by the CLI) warns of
            warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
            ray.init(address=address, **options)
    try:
        _check_capacity(ray, spec)
        task = ray.remote(num_cpus=spec.cpus, num_gpus=spec.gpus, max_retries=0)(_ray_task)
        waiting = list(runs)
        in_flight: dict = {}
        outcomes = []
        try:
            while waiting or in_flight:
                while waiting and (jobs is None or len(in_flight) < jobs):
                    run = waiting.pop(0)
                    ref = task.remote(run, str(run_folder(out, run).resolve()),
                                      str(spec.folder), spec.env or {}, program)
                    in_flight[ref] = run
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                run = in_flight.pop(ready[0])
                try:
                    outcomes.append(ray.get(ready[0]))
                except ray.exceptions.RayError as e:  # the worker died, or was lost
                    first = str(e).strip().splitlines() or [type(e).__name__]
                    outcomes.append(Outcome(run.name, "failed", None, first[0][:300]))
                if on_end is not None:
                    on_end(outcomes[-1])
        except BaseException:
            _stop_ray(ray, list(in_flight))
            raise
        return outcomes
    finally:
        if started:
            ray.shutdown()


def _stop_ray(ray, refs: list) -> None:
    if not refs:
        return
    for ref in refs:
        ray.cancel(ref)  # a KeyboardInterrupt in the task, which passes it to its step
    try:
        ray.wait(refs, num_returns=len(refs), timeout=300)
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref, force=True)
