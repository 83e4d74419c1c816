"""CRC-32 (IEEE 802.3 / zlib: reflected, polynomial 0xEDB88320, init and xorout 0xFFFFFFFF) of
the link's frames and raw blocks, from the fastest implementation installed.

``zlib_ng`` (the `zlib-ng` package: zlib-ng's folded carry-less-multiply CRC, ~50 GB/s on an
x86-64 core with PCLMULQDQ) when it imports, else the standard library's ``zlib`` (the system
zlib: ~1 GB/s on this project's machines, i.e. a millisecond of CPU per MB moved, as much as
the raw copy over loopback TCP).  Both compute the same function; which one is in use is
reported by ``snnbench --version --json`` (``crc32``).  No I/O.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable

crc32: Callable[..., int]
"""crc32(data, value=0) -> the CRC-32 of ``data`` continuing from ``value`` (zlib's contract)."""
IMPLEMENTATION: str
"""Which implementation :func:`crc32` is: "zlib-ng" or "zlib" (the fallback)."""

try:
    from zlib_ng import zlib_ng as _zlib_ng
except ImportError:  # pragma: no cover - depends on what is installed
    crc32 = zlib.crc32
    IMPLEMENTATION = "zlib"
else:
    crc32 = _zlib_ng.crc32
    IMPLEMENTATION = "zlib-ng"
