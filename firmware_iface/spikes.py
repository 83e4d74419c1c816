"""Spike-train payload encodings: dense bitmap and sparse AER (address-event), and the
output-spike readout encoding.  No I/O; vectorised with numpy.

Upload payload (UPLOAD_SPIKES) = UPLOAD record, then per sample a SAMPLE record followed by
its data:
- dense: ``steps x rows`` bits, row-major by step, least-significant bit first
  (``numpy.packbits(bitorder="little")``), padded to whole bytes;
- AER: u32 words ``step << 8 | row`` sorted by step then row.
``choose="auto"`` picks, per sample, whichever is smaller (ties: dense).
"""
from __future__ import annotations

import struct

import numpy as np

from firmware_iface.records import PayloadError, pack, record_struct, unpack
from firmware_iface.spec import RECORDS, Encoding

_SAMPLE = RECORDS["SAMPLE"]
_UPLOAD = record_struct("UPLOAD")
_SAMPLE_HEAD = struct.Struct("<B3xI")
"""The SAMPLE record (encoding, 3 pad bytes, nbytes) as a struct: checked against its dtype below."""
if (_SAMPLE_HEAD.size, _SAMPLE.fields["encoding"][1], _SAMPLE.fields["nbytes"][1]) != (_SAMPLE.itemsize, 0, 4):
    raise ImportError("SAMPLE record layout changed: update spikes._SAMPLE_HEAD")
MAX_ROWS_AER = 256


def dense_nbytes(steps: int, rows: int) -> int:
    return (steps * rows + 7) // 8


def encode_upload(spikes: np.ndarray, slot: int = 0, choose: str = "auto") -> bytes:
    """Encode spike trains ``spikes`` (n, steps, rows) bool for UPLOAD_SPIKES."""
    spikes = np.asarray(spikes)
    if spikes.ndim != 3:
        raise ValueError(f"spikes must have shape (n, steps, rows), got {spikes.shape}")
    n, steps, rows = spikes.shape
    if rows > MAX_ROWS_AER or steps > 0xFFFF:
        raise ValueError(f"spike trains of {steps} steps x {rows} rows exceed the encoding limits")
    flat = spikes.reshape(n, steps * rows).astype(bool, copy=False)
    dn = dense_nbytes(steps, rows)
    packed = np.packbits(flat, axis=1, bitorder="little")
    if hasattr(np, "bitwise_count"):  # numpy >= 2: count the packed bits, 8x less memory traffic
        counts = np.bitwise_count(packed).sum(axis=1, dtype=np.int64)
    else:  # pragma: no cover - numpy 1.x
        counts = np.count_nonzero(flat, axis=1)
    if choose == "auto":
        use_aer = counts * 4 < dn
    elif choose in ("dense", "aer"):
        use_aer = np.full(n, choose == "aer")
    else:
        raise ValueError(f"unknown encoding choice {choose!r} (auto, dense, aer)")
    head = pack("UPLOAD", slot=slot, n=n, steps=steps, rows=rows)
    if not use_aer.any():  # all dense (the common case at gesture spike rates): one vectorised pass
        rec = np.zeros(n, dtype=[("sample", _SAMPLE), ("data", "u1", (dn,))])
        rec["sample"]["encoding"] = Encoding.DENSE
        rec["sample"]["nbytes"] = dn
        rec["data"] = packed
        return head + rec.tobytes()
    parts = [head]
    dense_idx = np.flatnonzero(~use_aer)
    dense_bits = packed[dense_idx]
    aer_words = {}
    aer_idx = np.flatnonzero(use_aer)
    if aer_idx.size:
        s_i, pos = np.nonzero(flat[aer_idx])
        words = ((pos // rows).astype(np.uint32) << 8) | (pos % rows).astype(np.uint32)
        splits = np.searchsorted(s_i, np.arange(1, aer_idx.size))
        for k, w in zip(aer_idx, np.split(words, splits)):
            aer_words[int(k)] = w
    d = 0
    hdr = np.zeros(1, dtype=_SAMPLE)
    for i in range(n):
        if use_aer[i]:
            data = aer_words[i].astype("<u4").tobytes()
            hdr["encoding"] = Encoding.AER
        else:
            data = dense_bits[d].tobytes()
            d += 1
            hdr["encoding"] = Encoding.DENSE
        hdr["nbytes"] = len(data)
        parts.append(hdr.tobytes())
        parts.append(data)
    return b"".join(parts)


DECODE_MAX_BITS = 1 << 30
"""Largest upload :func:`decode_upload` expands (n x steps x rows bits) unless told otherwise."""


def decode_upload_packed(payload: bytes, max_bits: int = DECODE_MAX_BITS
                         ) -> tuple[int, np.ndarray, int, int, np.ndarray]:
    """An upload as packed bitmaps: (slot, bitmaps (n, dense_nbytes) uint8 with every sample
    in the dense layout -- ``numpy.packbits(bitorder="little")`` of its (steps, rows) bits, pad
    bits 0 --, steps, rows, encodings (n,)).  Dense samples are never expanded to one byte per
    bit; when all are dense and have no pad bits the bitmaps are a read-only view of
    ``payload`` (which must then outlive them).

    The header's sizes are checked before anything is allocated: every sample needs at least
    its SAMPLE record in the payload, and n x steps x rows must not exceed ``max_bits``."""
    if len(payload) < _UPLOAD.size:
        unpack("UPLOAD", payload)  # raises the record's PayloadError
    slot, n, steps, rows = _UPLOAD.unpack_from(payload)
    off = _UPLOAD.size
    if rows == 0 or steps == 0 or rows > MAX_ROWS_AER:
        raise PayloadError(f"upload of {steps} steps x {rows} rows is not valid")
    if n * _SAMPLE.itemsize > len(payload) - off:
        raise PayloadError(f"{n} samples announced, the payload holds at most {(len(payload) - off) // _SAMPLE.itemsize}")
    if n * steps * rows > max_bits:
        raise PayloadError(f"upload of {n} x {steps} x {rows} bits exceeds {max_bits}")
    nbits = steps * rows
    dn = dense_nbytes(steps, rows)
    pad_mask = np.uint8((1 << (nbits % 8)) - 1) if nbits % 8 else np.uint8(0xFF)
    stride = _SAMPLE_HEAD.size + dn
    if n and len(payload) - off == n * stride:  # maybe all dense: headers compared as bytes
        # One strided gather of the n sample headers and one memcmp against n copies of the
        # dense header (pad bytes 0) -- a handful of C calls: this runs on the board once per
        # upload, right after receiving it, where numpy's per-call cost (ufuncs, structured
        # dtypes: tens of us each with cold caches) was most of the time.  A header that
        # differs (pad bytes set, AER) takes the per-sample path below, which decides alike.
        heads = np.ndarray((n,), np.dtype("V8"), payload, off, (stride,))
        if heads.tobytes() == _SAMPLE_HEAD.pack(Encoding.DENSE, dn) * n:
            packed = np.ndarray((n, dn), np.uint8, payload, off + _SAMPLE_HEAD.size, (stride, 1))
            if nbits % 8:  # a view of the payload: no copy when there are no pad bits
                packed = np.array(packed)
                packed[:, -1] &= pad_mask
            return slot, packed, steps, rows, np.zeros(n, np.uint8)
    packed = np.zeros((n, dn), dtype=np.uint8)
    encs = np.zeros(n, dtype=np.uint8)
    mv = memoryview(payload)
    for i in range(n):
        hdr, off = unpack("SAMPLE", mv, off)
        nb = int(hdr["nbytes"])
        if off + nb > len(payload):
            raise PayloadError(f"sample {i}: {nb} data bytes announced, {len(payload) - off} left")
        enc = int(hdr["encoding"])
        encs[i] = enc
        if enc == Encoding.DENSE:
            if nb != dn:
                raise PayloadError(f"sample {i}: dense bitmap of {nb} bytes, expected {dn}")
            packed[i] = np.frombuffer(mv, dtype=np.uint8, count=nb, offset=off)
            packed[i, -1] &= pad_mask
        elif enc == Encoding.AER:
            if nb % 4:
                raise PayloadError(f"sample {i}: AER data of {nb} bytes is not a multiple of 4")
            w = np.frombuffer(mv, dtype="<u4", count=nb // 4, offset=off)
            step, row = w >> 8, w & 0xFF
            if w.size and (step.max() >= steps or row.max() >= rows):
                raise PayloadError(f"sample {i}: AER event outside {steps} steps x {rows} rows")
            bits = np.zeros(nbits, dtype=bool)
            bits[step * rows + row] = True
            packed[i] = np.packbits(bits, bitorder="little")
        else:
            raise PayloadError(f"sample {i}: unknown encoding {enc}")
        off += nb
    if off != len(payload):
        raise PayloadError(f"{len(payload) - off} unexpected trailing bytes after {n} samples")
    return slot, packed, steps, rows, encs


def decode_upload(payload: bytes, max_bits: int = DECODE_MAX_BITS) -> tuple[int, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_upload`: (slot, spikes (n, steps, rows) bool, encodings (n,)).

    Same checks as :func:`decode_upload_packed` (sizes before any allocation)."""
    slot, packed, steps, rows, encs = decode_upload_packed(payload, max_bits)
    bits = np.unpackbits(packed, axis=1, bitorder="little", count=steps * rows)
    return slot, bits.view(bool).reshape(len(packed), steps, rows), encs


def encode_output(spikes: np.ndarray) -> bytes:
    """Output readout payload for spikes (n, steps, neurons) bool."""
    spikes = np.asarray(spikes, dtype=bool)
    n, steps, neurons = spikes.shape
    counts = spikes.sum(axis=1).astype("<u2")
    s_i, t_i, k_i = np.nonzero(spikes)
    words = (t_i.astype(np.uint32) << 8) | k_i.astype(np.uint32)
    return (pack("OUTPUT", n=n, neurons=neurons, steps=steps, events=words.size)
            + counts.tobytes() + words.astype("<u4").tobytes())


OUTPUT_MAX_STEPS = 4096
"""Most steps per sample an output readout may claim (INFO.max_steps of protocol 2)."""


def decode_output(payload: bytes, n_expected: int | None = None, max_steps: int = OUTPUT_MAX_STEPS,
                  max_neurons: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_output`: (counts (n, neurons), spikes (n, steps, neurons)).

    Sizes are checked before anything is allocated: ``n`` must be what was asked for
    (``n_expected``), ``steps`` <= ``max_steps``, ``neurons`` <= ``max_neurons`` and the payload
    exactly as long as the header says."""
    hdr, off = unpack("OUTPUT", payload)
    n, neurons, steps, events = (int(hdr[k]) for k in ("n", "neurons", "steps", "events"))
    if n_expected is not None and n != n_expected:
        raise PayloadError(f"output of {n} samples, {n_expected} were asked for")
    if steps > max_steps or neurons > max_neurons or (n and not neurons):
        raise PayloadError(f"output of {steps} steps x {neurons} neurons is outside {max_steps} x 1..{max_neurons}")
    if n_expected is None and 2 * n * neurons > len(payload):
        raise PayloadError(f"output claims {n} samples in {len(payload)} bytes")
    need = off + 2 * n * neurons + 4 * events
    if len(payload) != need:
        raise PayloadError(f"output payload of {len(payload)} bytes, expected {need}")
    counts = np.frombuffer(payload, dtype="<u2", count=n * neurons, offset=off).reshape(n, neurons)
    off += 2 * n * neurons
    words = np.frombuffer(payload, dtype="<u4", count=events, offset=off)
    step, neuron = words >> 8, words & 0xFF
    sample = np.repeat(np.arange(n), counts.sum(axis=1).astype(np.int64))
    if sample.size != events:
        raise PayloadError(f"output counts sum to {sample.size}, header says {events} events")
    spikes = np.zeros((n, steps, neurons), dtype=bool)
    if events:
        if step.max() >= steps or neuron.max() >= neurons:
            raise PayloadError("output event outside steps x neurons")
        spikes[sample, step, neuron] = True
    return counts.astype(np.int64), spikes
