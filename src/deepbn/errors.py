"""User-facing errors.

Every mistake a user can make (a bad file, an unknown node, a malformed table)
raises a subclass of :class:`DeepBNError` whose message names the file, the
column or node, and what to do. The CLI prints that message as one line and
exits with status 2.
"""

from __future__ import annotations


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
