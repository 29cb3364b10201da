"""User-facing errors.

Every mistake a user can make (a bad file, an unknown node, a malformed table)
raises a subclass of :class:`DeepBNError` whose message names the file, the
column or node, and what to do. The CLI prints that message as one line and
exits with status 2.
"""

from __future__ import annotations

import math


class DeepBNError(Exception):
    """Base class for errors caused by user input."""


class NetworkFileError(DeepBNError):
    """A Bayesian-network file that cannot be read or is inconsistent."""


class CycleError(DeepBNError):
    """A graph that should be acyclic has a directed cycle."""


class DataError(DeepBNError):
    """A data table that cannot be read or does not match what it is used with."""


class UsageError(DeepBNError):
    """An option or argument value that cannot be used."""


class MissingExtra(DeepBNError, ImportError):
    """A feature needs an optional extra that is not installed (the message says how to get it)."""


class KnowledgeError(DeepBNError):
    """Prior knowledge about a graph (required, forbidden edges, tiers, edge priors) that
    contradicts itself or cannot hold in any DAG."""


def require_count(what: str, value: int, minimum: int = 1) -> None:
    """:class:`UsageError` "``what`` must be at least ``minimum``, got ``value``"."""
    if value < minimum:
        raise UsageError(f"{what} must be at least {minimum}, got {value}")


def require_positive(what: str, value: float) -> None:
    """:class:`UsageError` unless ``value`` is a positive finite number."""
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{what} must be a positive number, got {value}")


def require_choice(what: str, value: str, allowed) -> None:
    """:class:`UsageError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise UsageError(f"{what} must be one of {', '.join(allowed)}, got '{value}'")
