"""AEDAT 3.1 reader and writer (the DVS128 Gesture release format).

File layout (iniVation AEDAT 3.1, libcaer ``events/common.h`` and ``events/polarity.h``):

* A text header: lines starting with ``#``, the first ``#!AER-DAT3.1``, the last
  ``#!END-HEADER`` (lines end in ``\\r\\n``).
* Then event packets back to back, each a 28-byte little-endian header::

      int16 eventType, int16 eventSource, int32 eventSize, int32 eventTSOffset,
      int32 eventTSOverflow, int32 eventCapacity, int32 eventNumber, int32 eventValid

  followed by ``eventCapacity * eventSize`` bytes of events (in files written by libcaer
  ``eventCapacity == eventNumber``; the first ``eventNumber`` events are read).
* Polarity events (``eventType == 1``, ``eventSize == 8``): ``uint32 data`` then
  ``int32 timestamp`` (at ``eventTSOffset``). ``data`` bit 0 = valid mark, bit 1 = polarity,
  bits 2..16 = y, bits 17..31 = x (libcaer masks 15 bits; for in-range DVS128 addresses this
  equals the ``& 0x1FFF`` of the dataset's reference loader). Invalid events (valid bit 0)
  are dropped.
* Timestamps are 31-bit microseconds; the full timestamp is
  ``(eventTSOverflow << 31) | timestamp``.
* Every other event type (special events incl. timestamp wraps, frames, IMU...) is skipped.

Events are returned as a numpy structured array of :data:`EVENT_DTYPE` with ``t`` in
microseconds of dataset time (int64).
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from bench.errors import DataFormatError

EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("p", "u1"), ("t", "<i8")])

#: (width, height) of the DVS128 sensor
DVS128_SENSOR = (128, 128)

PACKET_HEADER = struct.Struct("<hhiiiiii")
PACKET_HEADER_SIZE = PACKET_HEADER.size  # 28
SPECIAL_EVENT = 0
POLARITY_EVENT = 1
POLARITY_EVENT_SIZE = 8
TS_OVERFLOW_SHIFT = 31
TS_MASK = (1 << TS_OVERFLOW_SHIFT) - 1
_ADDR_MASK = 0x7FFF
_X_SHIFT = 17
_Y_SHIFT = 2
_P_SHIFT = 1
_SPECIAL_TIMESTAMP_WRAP = 0
_MAX_HEADER_BYTES = 1 << 20
_END_HEADER = b"#!END-HEADER"
_MAGIC = b"#!AER-DAT3"


def empty_events(n: int = 0) -> np.ndarray:
    return np.zeros(n, dtype=EVENT_DTYPE)


# --------------------------------------------------------------------------- header


def parse_header(buf: bytes | memoryview, path: str | os.PathLike = "<bytes>") -> tuple[list[str], int]:
    """Parse the text header; return (lines without line ends, byte offset of the first packet)."""
    mv = memoryview(buf)
    if bytes(mv[: len(_MAGIC)]) != _MAGIC:
        head = bytes(mv[:16])
        raise DataFormatError(
            f"{path}: corrupted header at byte 0: expected '#!AER-DAT3.1', found {head!r}"
        )
    lines: list[str] = []
    off = 0
    n = len(mv)
    limit = min(n, _MAX_HEADER_BYTES)
    raw = bytes(mv[:limit])
    while True:
        if off >= limit:
            raise DataFormatError(
                f"{path}: corrupted header: no '#!END-HEADER' line within the first {limit} bytes"
            )
        if raw[off : off + 1] != b"#":
            raise DataFormatError(
                f"{path}: corrupted header at byte {off}: header line does not start with '#' "
                f"(found {raw[off:off + 16]!r}) before '#!END-HEADER'"
            )
        nl = raw.find(b"\n", off)
        if nl < 0:
            raise DataFormatError(
                f"{path}: corrupted header at byte {off}: unterminated header line, "
                "no '#!END-HEADER'"
            )
        line = raw[off:nl].rstrip(b"\r")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            raise DataFormatError(f"{path}: corrupted header at byte {off}: line is not text") from None
        lines.append(text)
        off = nl + 1
        if line == _END_HEADER:
            break
    version = lines[0][2:].strip()
    if version not in ("AER-DAT3.1", "AER-DAT3.0"):
        raise DataFormatError(f"{path}: corrupted header at byte 0: unsupported format version {version!r}")
    return lines, off


def read_header(path: str | os.PathLike) -> list[str]:
    """The header lines of an AEDAT 3.1 file (reads at most 1 MiB)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(_MAX_HEADER_BYTES)
    except FileNotFoundError:
        raise DataFormatError(f"{path}: event file not found") from None
    return parse_header(head, path)[0]


# --------------------------------------------------------------------------- reader


def read_aedat(
    path: str | os.PathLike,
    *,
    sensor: tuple[int, int] | None = DVS128_SENSOR,
) -> np.ndarray:
    """Read all valid polarity events of an AEDAT 3.1 file.

    ``sensor`` is (width, height); an event outside it is an error naming the file and the
    byte offset of that event (``None`` disables the check). A packet that runs past the end
    of the file (truncated recording) is an error naming the file and the packet's offset.
    """
    path = Path(path)
    try:
        buf = path.read_bytes()
    except FileNotFoundError:
        raise DataFormatError(f"{path}: event file not found") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path}: is a directory, not an AEDAT file") from None
    return decode_aedat(buf, path=path, sensor=sensor)


def decode_aedat(
    buf: bytes,
    *,
    path: str | os.PathLike = "<bytes>",
    sensor: tuple[int, int] | None = DVS128_SENSOR,
) -> np.ndarray:
    """Decode the bytes of an AEDAT 3.1 file (see :func:`read_aedat`)."""
    _, off = parse_header(buf, path)
    n = len(buf)
    base = off
    # Pass 1: walk the packet headers (a lean loop; the checks are vectorised after it).
    heads = _walk_packets(buf, off, path)
    if not len(heads):
        return empty_events()
    etype, esize, tsoff, tsovf, num = heads[:, 1], heads[:, 3], heads[:, 4], heads[:, 5], heads[:, 7]
    pol = (etype == POLARITY_EVENT) & (num > 0)
    short = pol & (esize < POLARITY_EVENT_SIZE)
    if short.any():
        k = int(np.flatnonzero(short)[0])
        raise DataFormatError(
            f"{path}: corrupted packet header at byte {int(heads[k, 0])}: polarity eventSize={int(esize[k])} < 8"
        )
    starts_np = heads[pol, 0] + PACKET_HEADER_SIZE
    counts_np = num[pol]
    ovf_np = tsovf[pol]
    if not len(starts_np):
        return empty_events()
    starts = starts_np.tolist()
    counts = counts_np.tolist()
    layouts = list(zip(esize[pol].tolist(), tsoff[pol].tolist()))
    aligned = not np.any(esize & 3)  # every packet start at a multiple of 4 bytes from the first
    # Pass 2: gather the event words, validate with whole-array reductions, decode in place.
    if aligned and bool(np.all(esize[pol] == POLARITY_EVENT_SIZE)) and bool(np.all(tsoff[pol] == 4)):
        # All packets sit on a 4-byte grid from the first one: one uint32 view of the file,
        # the event words of every polarity packet gathered with one copy (none for one packet).
        words = np.frombuffer(buf, dtype="<u4", offset=base, count=(n - base) // 4)
        pair = _gather_pairs(words, (starts_np - base) // 4, counts_np)
        data = pair[:, 0]
        ts = pair[:, 1]
    else:
        data_parts, ts_parts = [], []
        for s, c, (esz, tso) in zip(starts, counts, layouts):
            dt = np.dtype({"names": ["d", "ts"], "formats": ["<u4", "<u4"], "offsets": [0, tso],
                           "itemsize": esz})
            a = np.frombuffer(buf, dtype=dt, count=c, offset=s)
            data_parts.append(a["d"])
            ts_parts.append(a["ts"])
        data = np.concatenate(data_parts)
        ts = np.concatenate(ts_parts)
    # Validation by reductions (one pass each, no temporaries): a negative 32-bit timestamp
    # sets bit 31 of the OR of all timestamps; every event is valid iff bit 0 survives the AND
    # of all data words; every address fits the sensor if the OR of all x (y) bits does.
    if int(np.bitwise_or.reduce(ts)) & 0x80000000:
        bad = int(np.flatnonzero(ts.view("<i4") < 0)[0])
        raise DataFormatError(
            f"{path}: corrupted event at byte {_event_offset(bad, starts, counts_np, layouts)}: "
            f"negative 32-bit timestamp {int(ts.view('<i4')[bad])}"
        )
    all_valid = bool(int(np.bitwise_and.reduce(data)) & 1)
    valid = None if all_valid else (data & 1).astype(bool)
    if sensor is not None:
        w, h = sensor
        d_or = int(np.bitwise_or.reduce(data))
        if (d_or >> _X_SHIFT) & _ADDR_MASK >= w or (d_or >> _Y_SHIFT) & _ADDR_MASK >= h:
            x = (data >> _X_SHIFT) & _ADDR_MASK
            y = (data >> _Y_SHIFT) & _ADDR_MASK
            out_of_range = (x >= w) | (y >= h)
            if valid is not None:
                out_of_range &= valid
            if out_of_range.any():
                bad = int(np.flatnonzero(out_of_range)[0])
                raise DataFormatError(
                    f"{path}: wrong sensor size: event at byte "
                    f"{_event_offset(bad, starts, counts_np, layouts)} has x={int(x[bad])} y={int(y[bad])}, "
                    f"outside the {w}x{h} sensor"
                )
    # Timestamps: the 31-bit stamps, then the overflow epoch OR-ed in per run of packets.
    t = ts.astype(np.int64)
    if ovf_np.any():
        # runs of consecutive packets with the same overflow epoch (few: one per 2^31 us)
        change = np.flatnonzero(np.diff(ovf_np)) + 1
        run_first = np.concatenate([[0], change])
        run_end = np.concatenate([change, [len(ovf_np)]])
        ev_end = np.cumsum(counts_np)
        ev_start = ev_end - counts_np
        for a, b in zip(run_first.tolist(), run_end.tolist()):
            o = int(ovf_np[a])
            if o:
                t[int(ev_start[a]) : int(ev_end[b - 1])] |= o << TS_OVERFLOW_SHIFT
    if not all_valid:
        data = data[valid]
        t = t[valid]
    ev = np.empty(len(data), dtype=EVENT_DTYPE)
    tmp = np.empty(len(data), dtype=np.uint32)
    ev["t"] = t
    np.right_shift(data, _X_SHIFT, out=tmp)
    np.bitwise_and(tmp, _ADDR_MASK, out=tmp)
    ev["x"] = tmp
    np.right_shift(data, _Y_SHIFT, out=tmp)
    np.bitwise_and(tmp, _ADDR_MASK, out=tmp)
    ev["y"] = tmp
    np.right_shift(data, _P_SHIFT, out=tmp)
    np.bitwise_and(tmp, 1, out=tmp)
    ev["p"] = tmp
    return ev


def _gather_pairs(words: np.ndarray, first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The (data, timestamp) word pairs of packets whose events start at word ``first[k]``
    and number ``counts[k]``, as one (n, 2) uint32 array: a view for one packet, else one
    copy (slice copies for large packets, a boolean compress for many small ones)."""
    if len(first) == 1:
        return words[int(first[0]) : int(first[0]) + 2 * int(counts[0])].reshape(-1, 2)
    total = int(counts.sum())
    if total >= 1024 * len(first):  # large packets: copy slice by slice into one array
        out = np.empty(2 * total, dtype=np.uint32)
        pos = 0
        for f, c in zip(first.tolist(), counts.tolist()):
            out[pos : pos + 2 * c] = words[f : f + 2 * c]
            pos += 2 * c
        return out.reshape(-1, 2)
    # many small packets: keep-mask over the words spanned (runs of header / event words
    # built by np.repeat), one compress
    lo = int(first[0])
    body = 2 * counts
    gaps = np.empty(len(first), dtype=np.int64)
    gaps[0] = 0
    gaps[1:] = first[1:] - (first[:-1] + body[:-1])
    lengths = np.empty(2 * len(first), dtype=np.int64)
    lengths[0::2] = gaps
    lengths[1::2] = body
    flags = np.zeros(2 * len(first), dtype=bool)
    flags[1::2] = True
    keep = np.repeat(flags, lengths)
    return words[lo : lo + len(keep)][keep].reshape(-1, 2)


def _walk_packets(buf: bytes, off: int, path: str | os.PathLike) -> np.ndarray:
    """Every packet header from byte ``off`` on, as an int64 array of rows
    (offset, eventType, eventSource, eventSize, eventTSOffset, eventTSOverflow, eventCapacity,
    eventNumber, eventValid).  A header or body running past the end of the file, or a
    corrupted header field, is a DataFormatError naming the file and the packet's offset
    (the first bad packet in file order)."""
    n = len(buf)
    unpack = PACKET_HEADER.unpack_from
    offsets: list[int] = []
    fields: list[tuple[int, ...]] = []
    add_off, add_fields = offsets.append, fields.append
    hs = PACKET_HEADER_SIZE
    error = None
    while off < n:
        if off + hs > n:
            error = (f"{path}: truncated packet header at byte {off}: {n - off} of "
                     f"{hs} bytes present (file ends at byte {n})")
            break
        h = unpack(buf, off)
        esize, cap = h[2], h[5]
        if esize <= 0 or cap < 0:
            add_off(off)
            add_fields(h)
            break  # reported below as a corrupted header
        end = off + hs + cap * esize
        add_off(off)
        add_fields(h)
        if end > n:
            error = (f"{path}: truncated packet at byte {off} (eventType={h[0]}, {cap} events of "
                     f"{esize} bytes): needs {end - off - hs} body bytes, only {n - off - hs} present "
                     f"(file ends at byte {n})")
            break
        off = end
    heads = np.empty((len(offsets), 9), dtype=np.int64)
    if len(offsets):
        heads[:, 0] = offsets
        heads[:, 1:] = fields
    etype, esize, tsoff, tsovf, cap, num = (heads[:, k] for k in (1, 3, 4, 5, 6, 7))
    bad = (esize <= 0) | (cap < 0) | (num < 0) | (num > cap) | (tsovf < 0) | (tsoff < 0) | (tsoff > esize - 4)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: corrupted packet header at byte {int(heads[k, 0])}: eventType={int(etype[k])} "
            f"eventSize={int(esize[k])} eventTSOffset={int(tsoff[k])} eventTSOverflow={int(tsovf[k])} "
            f"eventCapacity={int(cap[k])} eventNumber={int(num[k])}"
        )
    if error is not None:
        raise DataFormatError(error)
    return heads


def _event_offset(index: int, starts: list[int], counts: np.ndarray, layouts: list[tuple[int, int]]) -> int:
    cum = np.cumsum(counts)
    k = int(np.searchsorted(cum, index, side="right"))
    first = int(cum[k - 1]) if k else 0
    return starts[k] + (index - first) * layouts[k][0]


# --------------------------------------------------------------------------- writer


def default_header(source: str = "DVS128", extra: list[str] | None = None) -> list[str]:
    lines = [
        "#!AER-DAT3.1",
        "#Format: RAW",
        f"#Source 0: {source}",
        "#Start-Time: 1970-01-01 00:00:00 (TZ+0000)",
    ]
    for e in extra or []:
        lines.append(e if e.startswith("#") else "#" + e)
    lines.append("#!END-HEADER")
    return lines


EVENT_FIELDS: tuple[str, ...] = ("x", "y", "p", "t")


def _fields_by_name(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The x, y, p, t columns of a structured event array, taken by field NAME (any order,
    any integer dtypes, extra fields ignored), checked: x, y in 0..32767, p in {0, 1},
    t >= 0 integer microseconds.  Raises ValueError naming the field and value."""
    names = events.dtype.names
    if names is None:
        raise ValueError(
            f"events must be a structured array with fields {', '.join(EVENT_FIELDS)} "
            f"(got a plain {events.dtype} array of shape {events.shape})"
        )
    missing = [f for f in EVENT_FIELDS if f not in names]
    if missing:
        raise ValueError(
            f"events lack field(s) {', '.join(missing)}: need {', '.join(EVENT_FIELDS)}, "
            f"got {', '.join(names)}"
        )
    if events.ndim != 1:
        raise ValueError(f"events must be one-dimensional, got shape {events.shape}")
    cols = []
    for f in EVENT_FIELDS:
        c = events[f]
        if c.dtype.kind == "b":
            c = c.astype(np.int64)
        elif c.dtype.kind not in "iu":
            raise ValueError(f"event field {f!r} must be integer, got dtype {c.dtype}")
        cols.append(c)
    x, y, p, t = cols
    if len(events):
        for name, c, hi in (("x", x, _ADDR_MASK), ("y", y, _ADDR_MASK), ("p", p, 1)):
            lo_v, hi_v = int(c.min()), int(c.max())
            if lo_v < 0 or hi_v > hi:
                bad = lo_v if lo_v < 0 else hi_v
                raise ValueError(f"event field {name!r} value {bad} outside 0..{hi}")
        t_min, t_max = int(t.min()), int(t.max())
        if t_min < 0:
            raise ValueError(f"event field 't' value {t_min} < 0 (timestamps are microseconds >= 0)")
        if (t_max >> TS_OVERFLOW_SHIFT) > 0x7FFFFFFF:
            raise ValueError(f"event field 't' value {t_max} us too large for AEDAT 3.1 (62-bit timestamps)")
    return x, y, p, t.astype(np.int64, copy=False)


def encode_aedat(
    events: np.ndarray,
    *,
    source: str = "DVS128",
    packet_events: int = 8192,
    header_extra: list[str] | None = None,
    source_id: int = 0,
) -> bytes:
    """Encode polarity events as AEDAT 3.1 bytes.

    ``events``: a structured array with integer fields ``x``, ``y``, ``p`` (0 = OFF, 1 = ON)
    and ``t`` (microseconds, >= 0), matched by NAME: any field order (e.g. tonic's
    ``(t, x, y, p)``) and any integer dtypes; extra fields are ignored.  A missing field or a
    value out of range is a ValueError naming it.

    Events are written in time order: unsorted input is sorted by ``t`` (stable, so events
    with equal timestamps keep their input order) — decision 0021.  Reading the file back gives
    the same multiset of events, sorted.

    Polarity packets (type 1, 8-byte events, timestamp offset 4) of at most ``packet_events``
    events, each with the ``eventTSOverflow`` of its events (``t >> 31``); each time the
    overflow counter advances a special-event packet (type 0) with one TIMESTAMP_WRAP event is
    inserted before the first polarity packet of the new epoch, as libcaer does — so a file
    has exactly one wrap packet per 2^31 us boundary crossed.
    """
    events = np.asarray(events)
    if packet_events <= 0:
        raise ValueError("packet_events must be > 0")
    x, y, p, t = _fields_by_name(events)
    if len(t) > 1 and not bool(np.all(t[1:] >= t[:-1])):
        order = np.argsort(t, kind="stable")
        x, y, p, t = x[order], y[order], p[order], t[order]
    raw = np.empty(len(t), dtype=[("d", "<u4"), ("ts", "<i4")])
    raw["d"] = (
        (x.astype(np.uint32) << _X_SHIFT)
        | (y.astype(np.uint32) << _Y_SHIFT)
        | (p.astype(np.uint32) << _P_SHIFT)
        | np.uint32(1)
    )
    raw["ts"] = (t & TS_MASK).astype(np.int32)
    ovf = t >> TS_OVERFLOW_SHIFT
    header = "\r\n".join(default_header(source, header_extra)) + "\r\n"
    chunks: list[bytes] = [header.encode("ascii")]
    # Split into runs of equal overflow (t is sorted, so ovf never steps back), then packets.
    if len(t):
        change = np.flatnonzero(np.diff(ovf)) + 1
        bounds = np.concatenate([[0], change, [len(t)]])
    else:
        bounds = np.array([0])
    prev_ovf = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        a, b = int(a), int(b)
        o = int(ovf[a])
        if o != prev_ovf:
            wrap = np.array([(np.uint32(_SPECIAL_TIMESTAMP_WRAP << 1 | 1), 0)], dtype=raw.dtype)
            chunks.append(PACKET_HEADER.pack(SPECIAL_EVENT, source_id, 8, 4, o, 1, 1, 1))
            chunks.append(wrap.tobytes())
            prev_ovf = o
        for s in range(a, b, packet_events):
            e = min(b, s + packet_events)
            n = e - s
            chunks.append(PACKET_HEADER.pack(POLARITY_EVENT, source_id, POLARITY_EVENT_SIZE, 4, o, n, n, n))
            chunks.append(raw[s:e].tobytes())
    return b"".join(chunks)


def write_aedat(
    path: str | os.PathLike,
    events: np.ndarray,
    *,
    source: str = "DVS128",
    packet_events: int = 8192,
    header_extra: list[str] | None = None,
) -> Path:
    """Write events as an AEDAT 3.1 file (see :func:`encode_aedat`). Returns the path."""
    path = Path(path)
    path.write_bytes(encode_aedat(events, source=source, packet_events=packet_events,
                                  header_extra=header_extra))
    return path
