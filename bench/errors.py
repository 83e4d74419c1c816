"""The bench's exception hierarchy.  The CLI maps ``exit_code`` to the process exit code.

Exit codes (DESIGN.md section 4): 2 = usage / config / input error, 1 = runtime / hardware.
"""
from __future__ import annotations


class BenchError(Exception):
    """Base of every error the bench reports as a one-line message."""

    exit_code = 1


class ConfigError(BenchError):
    """Station file or configuration value is wrong (names file, field, value, limit)."""

    exit_code = 2


class UsageError(BenchError):
    """Command-line usage or argument value is wrong."""

    exit_code = 2


class DataFormatError(BenchError):
    """An input file (events, labels, weights, model) is malformed; names file and offset."""

    exit_code = 2


class RunStoreError(BenchError):
    """A run file cannot be created, written or read."""

    exit_code = 1


class MeasurementError(BenchError):
    """A procedure could not complete its measurement (runtime)."""

    exit_code = 1


class RunPathError(RunStoreError):
    """An output path cannot be written, or an input run file does not exist (usage)."""

    exit_code = 2
