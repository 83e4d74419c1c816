"""Issue 17 item 4 (link3): the board's sample memory stores an UPLOAD_SPIKES per upload with
vectorised bookkeeping (sim_backend.firmware._SampleMemory) instead of one dict entry per
sample.  Checked against a second model written the plain way -- a dict slot -> (bits,
steps), the firmware's old bookkeeping -- over random sequences of uploads that replace each
other's slots in part, and against the spec's rules (docs/protocol.md UPLOAD_SPIKES: slots are
replaced, the memory counts steps x rows bits per stored sample, RUN needs every slot stored,
STATUS.samples_stored counts the slots holding one)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_iface import messages as msg
from firmware_iface.spec import Opcode, Status
from firmware_iface.spikes import encode_upload
from sim_backend import firmware as fwmod
from sim_backend.board import make_board

ROWS = 128


def _upload(fw, slot: int, spikes: np.ndarray) -> Status:
    status, _ = fw._invoke(Opcode.UPLOAD_SPIKES, encode_upload(spikes, slot=slot))
    return status


uploads = st.lists(st.tuples(st.integers(0, 24), st.integers(0, 6), st.integers(1, 4), st.integers(0, 2**32 - 1)),
                   min_size=1, max_size=8)


@settings(max_examples=40, deadline=None)
@given(uploads)
def test_sample_memory_matches_a_per_slot_dict(plan):
    """kills _SampleMemory.store mutants: a replaced slot keeping its old sample, the row index
    of a sample in its upload (np.arange), the count of slots stored, an upload's bitmaps kept
    (or dropped) while slots still hold them (the live count), and the replaced-bits
    arithmetic of memory_bits (steps() over the range)."""
    fw = make_board(5, 0, "ideal")
    model: dict[int, tuple[bytes, int, int]] = {}  # slot -> (packed bits, steps, upload number)
    for k, (slot, n, steps, seed) in enumerate(plan):
        sp = np.random.default_rng(seed).random((n, steps, ROWS)) < 0.3
        assert _upload(fw, slot, sp) == Status.OK
        for i in range(n):
            model[slot + i] = (np.packbits(sp[i].ravel(), bitorder="little").tobytes(), steps, k)
        assert len(fw.inputs) == len(model)
        assert fw.memory_bits == sum(s for _, s, _ in model.values()) * ROWS
        for s in range(0, 32):
            assert (s in fw.inputs) == (s in model)
            if s in model:
                bits, steps_s = fw.inputs[s]
                assert (np.asarray(bits).tobytes(), steps_s) == model[s][:2]
        assert len(fw.inputs._uploads) == len({u for _, _, u in model.values()})  # released when unused
    state = msg.decode_status(fw._invoke(Opcode.STATUS, b"")[1])
    assert state["samples_stored"] == len(model)


def test_run_names_the_first_empty_slot_and_reads_replaced_samples():
    """kills _SampleMemory.missing (first empty slot of a RUN's range; an off-by-one lets a RUN
    over a hole through) and a RUN reading a replaced sample's old bits: the samples the RUN
    gets are the ones most recently uploaded to each slot (hand-built: one spike per sample,
    at a row that names the upload)."""
    fw = make_board(5, 0, "ideal")
    a = np.zeros((4, 2, ROWS), bool)
    a[:, 0, 10] = True   # upload A: row 10
    b = np.zeros((2, 2, ROWS), bool)
    b[:, 0, 20] = True   # upload B: row 20, over slots 2..3 of A's 0..3
    assert _upload(fw, 0, a) == Status.OK and _upload(fw, 2, b) == Status.OK
    assert [int(np.flatnonzero(fw._input(s)[0])[0]) for s in range(4)] == [10, 10, 20, 20]
    assert fw.inputs.missing(0, 4) is None and fw.inputs.missing(3, 2) == 4 and fw.inputs.missing(5, 0) is None
    # slot numbers as numpy integers (as a dict keyed by int accepted them) and out of range
    assert np.int64(3) in fw.inputs and np.int32(4) not in fw.inputs and -1 not in fw.inputs
    assert 70000 not in fw.inputs and "3" not in fw.inputs
    assert fw.inputs[np.int64(2)][1] == 2
    status, payload = fw._invoke(Opcode.RUN, msg.encode_run(1, 5))
    assert status == Status.NOT_READY and b"slot 4" in payload
    assert fw._invoke(Opcode.RUN, msg.encode_run(0, 4))[0] == Status.OK


def test_upload_replacing_slots_frees_their_bits_in_the_memory_limit(monkeypatch):
    """kills the replaced-bits term of the NO_MEMORY check (docs/protocol.md UPLOAD_SPIKES:
    replacing slots frees what they held): with room for exactly 6 samples of 3 steps, 4 more
    over 2 stored ones fit in 6 (2 replaced), 4 more over 0 of them do not."""
    monkeypatch.setattr(fwmod, "SAMPLE_MEMORY_BITS", 6 * 3 * ROWS)
    fw = make_board(5, 0, "ideal")
    sp = np.ones((4, 3, ROWS), bool)
    assert _upload(fw, 0, sp) == Status.OK                    # slots 0..3: 4 samples
    assert _upload(fw, 2, sp) == Status.OK                    # slots 2..5: 6 samples in all
    assert fw.memory_bits == 6 * 3 * ROWS and len(fw.inputs) == 6
    assert _upload(fw, 10, sp[:1]) == Status.NO_MEMORY        # a 7th sample does not fit
    assert fw.memory_bits == 6 * 3 * ROWS and 10 not in fw.inputs
