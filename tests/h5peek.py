"""Peek at an HDF5 file another process is still writing.

A file being written by another process is not SWMR-safe to read: between two of the
writer's flushes h5py can see a superblock whose end-of-address is behind an object's
address and raise any of OSError, KeyError, RuntimeError ("addr overflow") or ValueError.
A test polling such a file only wants "how far has it got": every one of those errors
means "not yet", so the poll tries again (seen in a fresh-clone CI run, 2026-12-02:
RuntimeError "Can't get deprecated info for object (addr overflow ...)").
"""
from __future__ import annotations

from pathlib import Path

import h5py

#: What h5py raises on a file caught between two of its writer's flushes.
TORN_READ_ERRORS = (OSError, KeyError, RuntimeError, ValueError)


def rows(path: str | Path, dataset: str) -> int:
    """Length of `dataset`'s first axis in the file at `path`; 0 while it does not exist
    or cannot be read yet."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f[dataset].shape[0]) if dataset in f else 0
    except TORN_READ_ERRORS:
        return 0
