"""One results folder per command: what was asked, how it went, what came out.

Every command writes into its ``--out`` folder

- ``config.json``: the command and every setting it ran with,
- ``checkpoint.npz``: the run's state (:mod:`deepbn.run`), for resuming,
- ``history.json``: one record per chunk, epoch or iteration,
- ``summary.json``: the numbers the command prints,

plus its own outputs. Every file is written atomically (a temporary file
renamed into place), and the JSON is strict: NaN and infinities become
``null``, numpy scalars plain numbers. A folder is locked while a command uses
it (``flock`` on ``.deepbn.lock``, released by the system when the process ends,
even when it is killed), so a second command writing into the same folder at
the same time is refused instead of mixing two runs' files.

Example:
    >>> folder = ResultsFolder("runs/d1", "discover")           # doctest: +SKIP
    >>> folder.write_config({"steps": 1000})                      # doctest: +SKIP
    >>> folder.write_summary({"eshd": 3.2})                       # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from deepbn.atomic import atomic_write
from deepbn.errors import UsageError


def jsonable(value: Any) -> Any:
    """A copy of ``value`` that strict JSON can hold (NaN/inf -> None, numpy -> Python)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Write strict JSON atomically."""
    with atomic_write(path) as f:
        json.dump(jsonable(value), f, indent=1, allow_nan=False)


_LOCKS: dict[Path, int] = {}  # folders this process holds: path -> open lock file


def _lock(folder: Path) -> None:
    key = folder.resolve()
    if key in _LOCKS:
        return
    fd = os.open(key / ".deepbn.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UsageError(f"{folder}: in use by another running deepbn command (pid {holder}); "
                         "wait for it to finish or choose another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _LOCKS[key] = fd


def release_locks() -> None:
    """Give up every folder this process holds (the CLI does so when a command ends)."""
    while _LOCKS:
        _, fd = _LOCKS.popitem()
        os.close(fd)  # closing the file releases its flock


class ResultsFolder:
    """A command's output folder: created (or reused) up front, written atomically."""

    CONFIG, CHECKPOINT, HISTORY, SUMMARY = ("config.json", "checkpoint.npz", "history.json",
                                            "summary.json")

    def __init__(self, path: str | os.PathLike, command: str):
        self.path = Path(path)
        self.command = command
        self._config = None  # held back while a checkpoint may still be refused
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path}: exists and is not a folder; choose another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"{self.path}: cannot create the output folder ({e.strerror})"
                             ) from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise UsageError(f"{self.path}: the output folder is not writable; "
                             "choose another --out")
        _lock(self.path)

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    def write_config(self, settings: dict) -> None:
        """Write config.json now for a fresh folder; for one holding a checkpoint, only
        with the summary (the run may still refuse that checkpoint as another run's)."""
        from deepbn import __version__

        self._config = {"command": self.command, "deepbn_version": __version__, **settings}
        if not self.checkpoint.exists():
            write_json(self.path / self.CONFIG, self._config)
            self._config = None

    def write_history(self, records: list) -> None:
        write_json(self.path / self.HISTORY, records)

    def write_summary(self, summary: dict) -> dict:
        """Write summary.json; returns the summary as written (strict JSON values)."""
        clean = jsonable(summary)
        if self._config is not None:
            write_json(self.path / self.CONFIG, self._config)
            self._config = None
        write_json(self.path / self.SUMMARY, clean)
        return clean

    def write_json(self, name: str, value: Any) -> None:
        write_json(self.path / name, value)
