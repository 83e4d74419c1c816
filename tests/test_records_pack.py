"""records.pack's struct path (link4) against numpy's structured records, field by field.

numpy is the second implementation here: the record layouts are numpy dtypes (firmware_iface/
spec.py RECORDS, the same tables docs/protocol.md is generated from), and a record filled field
by field in a numpy array is what ``pack`` produced before it had a struct path."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_iface.records import pack
from firmware_iface.spec import RECORDS

INTEGER_RECORDS = sorted(n for n, dt in RECORDS.items()
                         if all(dt.fields[f][0].kind in "ui" and not dt.fields[f][0].shape for f in dt.names))


def _range(t: np.dtype) -> tuple[int, int]:
    bits = 8 * t.itemsize
    return (0, 2**bits - 1) if t.kind == "u" else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_pack_gives_numpys_bytes_for_every_integer_record(data):
    """kills records.pack's struct path packing fields out of order, dropping one, or not
    zero-filling those not given: any subset of fields, any in-range values, the same bytes as
    numpy's record."""
    name = data.draw(st.sampled_from(INTEGER_RECORDS), label="record")
    dt = RECORDS[name]
    names = data.draw(st.lists(st.sampled_from(dt.names), unique=True), label="fields given")
    fields = {f: data.draw(st.integers(*_range(dt.fields[f][0])), label=f) for f in names}
    ref = np.zeros(1, dtype=dt)
    for f, v in fields.items():
        ref[f] = v
    assert pack(name, **fields) == ref.tobytes()


def test_pack_keeps_numpys_errors():
    """a value out of range, or a field the record does not have, fails as numpy fails."""
    assert len(INTEGER_RECORDS) >= 10 and "STATUS" in INTEGER_RECORDS and "COMMIT" in INTEGER_RECORDS
    with pytest.raises(OverflowError):
        pack("COUNT", count=-1)
    with pytest.raises(OverflowError):
        pack("COUNT", count=2**32)
    with pytest.raises(ValueError, match="no field of name"):
        pack("COUNT", counts=1)
