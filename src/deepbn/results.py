"""One results folder per command: what was asked, how it went, what came out.

Every command writes into its ``--out`` folder

- ``config.json``: the command and every setting it ran with,
- ``checkpoint.npz``: the run's state (:mod:`deepbn.run`), for resuming,
- ``history.json``: one record per chunk, epoch or iteration,
- ``summary.json``: the numbers the command prints (a number that could not be
  computed is ``null``, and ``null_reasons`` says why),

plus its own outputs. Every file is written atomically (a temporary file
renamed into place), and the JSON is strict: NaN and infinities become
``null``, numpy scalars plain numbers. A folder is locked while a command uses
it (``flock`` on ``.deepbn.lock``, released by the system when the process ends,
even when it is killed), so a second command writing into the same folder at
the same time is refused instead of mixing two runs' files. A command that fails
or is stopped before its first checkpoint leaves no trace: it removes the
``config.json`` it wrote and the folder it created, so that running it again
with corrected settings is a fresh start, not "a run with other settings".

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


def explain_nulls(record: dict, reasons: dict[str, str] | None = None) -> dict:
    """``record`` plus ``null_reasons``: why each number that strict JSON writes as ``null``
    is missing (``reasons`` for the known cases; a non-finite value is named as such)."""
    why = {k: f"not a finite number: {v}" for k, v in record.items()
           if isinstance(v, (float, np.floating)) and not math.isfinite(v)}
    why.update({k: r for k, r in (reasons or {}).items() if record.get(k) is None})
    return {**record, "null_reasons": why} if why else dict(record)


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Write strict JSON atomically."""
    with atomic_write(path) as f:
        json.dump(jsonable(value), f, indent=1, allow_nan=False)


_LOCKS: dict[Path, int] = {}  # folders this process holds: path -> open lock file
_UNFINISHED: list[ResultsFolder] = []  # folders this process opened, in order


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


def release_locks(failed: bool = False) -> None:
    """Give up every folder this process holds (the CLI does so when a command ends).

    ``failed``: the command stopped with an error or a signal; folders it opened that
    hold no checkpoint and no summary yet are returned to how they were before it ran.
    """
    while _UNFINISHED:
        folder = _UNFINISHED.pop()
        if failed:
            folder._undo()
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
        self._created = not self.path.exists()
        self._wrote_config = False
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
        self._before = {p.name for p in self.path.iterdir()}
        _lock(self.path)
        _UNFINISHED.append(self)

    def _undo(self) -> None:
        """Remove what this command wrote if it got no further than its settings."""
        new = {p.name for p in self.path.iterdir()} - self._before
        if new - {self.CONFIG, ".deepbn.lock"}:  # a checkpoint or outputs: keep everything
            return
        if self._wrote_config:
            (self.path / self.CONFIG).unlink(missing_ok=True)
        if ".deepbn.lock" in new:
            (self.path / ".deepbn.lock").unlink(missing_ok=True)
        if self._created:
            try:
                self.path.rmdir()
            except OSError:
                pass  # something else appeared meanwhile: keep the folder

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
            self._wrote_config = True

    def write_history(self, records: list) -> None:
        write_json(self.path / self.HISTORY, records)

    def write_summary(self, summary: dict, reasons: dict[str, str] | None = None) -> dict:
        """Write summary.json; returns the summary as written (strict JSON values).

        A number that is missing is ``null``, and ``null_reasons`` says why: ``reasons``
        for those the command knows (e.g. an AUROC without true edges), and for every
        non-finite value the value itself (``"not a finite number: nan"``).
        """
        clean = jsonable(explain_nulls(summary, reasons))
        if self._config is not None:
            write_json(self.path / self.CONFIG, self._config)
            self._config = None
        write_json(self.path / self.SUMMARY, clean)
        return clean

    def write_json(self, name: str, value: Any) -> None:
        write_json(self.path / name, value)
