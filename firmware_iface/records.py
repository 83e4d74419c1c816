"""Pack and unpack the fixed records of ``firmware_iface.spec`` (no I/O)."""
from __future__ import annotations

import functools
import struct
from typing import Any

import numpy as np

from firmware_iface.spec import RECORDS


class PayloadError(ValueError):
    """A payload does not have the layout its opcode requires."""


def pack(name: str, **fields: Any) -> bytes:
    """One record as bytes; fields not given are zero.

    Integer records given Python ints in range go through ``struct`` (the same bytes; a few
    hundred ns, where numpy's record path costs tens of microseconds with cold caches -- once
    per frame on the link, docs/BENCHMARKS.md link4); anything else through numpy, which also
    makes every error what it always was."""
    fast = _int_struct(name)
    if fast is not None and all(type(v) is int for v in fields.values()) and fields.keys() <= fast[1]:
        try:
            return fast[0].pack(*[fields.get(f, 0) for f in RECORDS[name].names])
        except struct.error:  # out of range: numpy's error (or its conversion), as ever
            pass
    rec = np.zeros(1, dtype=RECORDS[name])
    for k, v in fields.items():
        rec[k] = v
    return rec.tobytes()


def unpack(name: str, payload: bytes | memoryview, offset: int = 0) -> tuple[np.void, int]:
    """Read one record at ``offset``; returns it and the offset after it."""
    dt = RECORDS[name]
    if len(payload) - offset < dt.itemsize:
        raise PayloadError(f"{name} record needs {dt.itemsize} bytes at offset {offset}, "
                           f"payload has {len(payload) - offset}")
    return np.frombuffer(payload, dtype=dt, count=1, offset=offset)[0], offset + dt.itemsize


def pack_array(name: str, arr: np.ndarray) -> bytes:
    """An array of records (already of or convertible to the record dtype) as bytes."""
    return np.ascontiguousarray(arr, dtype=RECORDS[name]).tobytes()


def unpack_array(name: str, payload: bytes | memoryview, count: int, offset: int = 0) -> tuple[np.ndarray, int]:
    dt = RECORDS[name]
    need = dt.itemsize * count
    if count < 0 or len(payload) - offset < need:
        raise PayloadError(f"{count} {name} records need {need} bytes at offset {offset}, "
                           f"payload has {len(payload) - offset}")
    return np.frombuffer(payload, dtype=dt, count=count, offset=offset), offset + need


def records(name: str, n: int) -> np.ndarray:
    """A zeroed array of ``n`` records to fill field by field."""
    return np.zeros(n, dtype=RECORDS[name])


def expect_end(payload: bytes | memoryview, offset: int, what: str) -> None:
    if offset != len(payload):
        raise PayloadError(f"{what}: {len(payload) - offset} unexpected trailing bytes")


_CODES = {("u", 1): "B", ("u", 2): "H", ("u", 4): "I", ("u", 8): "Q", ("i", 1): "b", ("i", 2): "h",
          ("i", 4): "i", ("i", 8): "q", ("f", 4): "f", ("f", 8): "d"}


@functools.cache
def record_struct(name: str) -> struct.Struct:
    """The ``struct`` form of a record whose fields are all scalars, derived from its dtype in
    ``RECORDS`` (same layout; pad fields included): for records on the per-piece hot path,
    where numpy's per-field access costs tens of microseconds."""
    dt = RECORDS[name]
    s = struct.Struct("<" + "".join(_CODES[(dt.fields[f][0].kind, dt.fields[f][0].itemsize)] for f in dt.names))
    if s.size != dt.itemsize:
        raise ValueError(f"record {name} is not packed scalars")
    return s


@functools.cache
def _int_struct(name: str) -> tuple[struct.Struct, frozenset[str]] | None:
    """(struct, field names) of a record of integer scalars only; None for any other record."""
    dt = RECORDS[name]
    if any(dt.fields[f][0].kind not in "ui" or dt.fields[f][0].shape for f in dt.names):
        return None
    return record_struct(name), frozenset(dt.names)


def unpack_exact(name: str, payload: bytes | memoryview) -> tuple:
    """All fields of a payload that is exactly one ``name`` record, in dtype order."""
    s = record_struct(name)
    if len(payload) != s.size:
        raise PayloadError(f"{name} record is {s.size} bytes, payload has {len(payload)}")
    return s.unpack(payload)
