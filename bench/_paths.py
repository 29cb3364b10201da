"""Paths in benchmark result files: relative to the repository, never this machine's."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def portable(value):
    """An absolute path (str or Path) made relative to the repository; anything else as is."""
    if isinstance(value, (str, Path)) and os.path.isabs(value):
        return os.path.relpath(value, ROOT)
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    return value


def settings(args) -> dict:
    """``vars(args)`` with every path argument relative to the repository."""
    return portable(dict(vars(args)))
