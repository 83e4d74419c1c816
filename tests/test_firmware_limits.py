"""Issue 16, item 2: a firmware no frame can hurt; a host that trusts no size it did not ask for.

Each oversize / out-of-range request of the issue gets its refusal (OUT_OF_RANGE, NO_MEMORY
for sample memory) within the acknowledge time, before any work: the frames are the issue's
own (a few bytes claiming 2**32-1 samples, 65,535 steps, 65,535 pulses, a WAIT past 2**64 ns).
Limits come from GET_LIMITS, i.e. what the board advertises.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from firmware_iface import messages as msg
from firmware_iface.bulk import decode_limits, encode_fetch, encode_stage
from firmware_iface.records import pack
from firmware_iface.spec import Opcode, Status
from firmware_iface.spec_text import ACK_S
from firmware_iface.write_verify import PulseSchedule
from tests.fw_client import RawClient

U32 = 2**32 - 1


@pytest.fixture
def client():
    return RawClient()


@pytest.fixture
def limits(client):
    st, payload, _ = client.send(Opcode.GET_LIMITS)
    assert st == Status.OK
    return decode_limits(payload)


def _upload_header(n: int, steps: int, rows: int = 128, slot: int = 0) -> bytes:
    return pack("UPLOAD", slot=slot, n=n, steps=steps, rows=rows)


def _wv(schedule: PulseSchedule, n: int) -> bytes:
    rows, cols = np.divmod(np.arange(n) % 3072, 24)
    return msg.encode_write_verify(schedule, rows, cols, np.full(n, 50e-6))


def _pulses(n: int) -> np.ndarray:
    z = np.zeros(n)
    return msg.pulse_records(np.ones(n, np.uint8), z.astype(int), z.astype(int), z + 1.0, z + 1.0, z, z + 1e-6)


def _cases(lim):
    aer = pack("SAMPLE", encoding=1, nbytes=0)
    return {
        # the list
        "RUN n=2**32-1": (Opcode.RUN, msg.encode_run(0, U32), Status.OUT_OF_RANGE),
        "READ_OUTPUT n=2**32-1": (Opcode.READ_OUTPUT, msg.encode_run(0, U32), Status.OUT_OF_RANGE),
        "UPLOAD 65535 steps in 812 bytes": (Opcode.UPLOAD_SPIKES,
                                            (_upload_header(1, 65535) + aer).ljust(812, b"\0")[:812],
                                            Status.OUT_OF_RANGE),
        "WRITE_VERIFY max_pulses 65535": (Opcode.WRITE_VERIFY, _wv(PulseSchedule(max_pulses=65535), 4),
                                          Status.OUT_OF_RANGE),
        "WAIT past 2**64 ns": (Opcode.WAIT, msg.encode_wait(2**64 - 1), Status.OUT_OF_RANGE),
        # every other advertised limit
        "UPLOAD steps above max_steps": (Opcode.UPLOAD_SPIKES, _upload_header(1, lim.max_steps + 1) + aer,
                                         Status.OUT_OF_RANGE),
        "UPLOAD slots beyond sample_slots": (Opcode.UPLOAD_SPIKES,
                                             _upload_header(2, 10, slot=lim.sample_slots - 1) + aer * 2,
                                             Status.NO_MEMORY),
        "UPLOAD beyond sample memory": (Opcode.UPLOAD_SPIKES,
                                        _upload_header(lim.sample_memory_bits // (4096 * 128) + 1, 4096)
                                        + aer * (lim.sample_memory_bits // (4096 * 128) + 1), Status.NO_MEMORY),
        "UPLOAD n beyond its payload": (Opcode.UPLOAD_SPIKES, _upload_header(60_000, 1), Status.BAD_PAYLOAD),
        "RUN slot beyond sample_slots": (Opcode.RUN, msg.encode_run(lim.sample_slots, 1), Status.OUT_OF_RANGE),
        "WRITE_VERIFY max_pulses above the board's": (Opcode.WRITE_VERIFY,
                                                      _wv(PulseSchedule(max_pulses=lim.max_pulses + 1), 4),
                                                      Status.OUT_OF_RANGE),
        "WRITE_VERIFY cells above max_wv_cells": (Opcode.WRITE_VERIFY, _wv(PulseSchedule(), lim.max_wv_cells + 1),
                                                  Status.OUT_OF_RANGE),
        "PULSE records above max_pulse_records": (
            Opcode.PULSE, msg.encode_pulses(_pulses(lim.max_pulse_records + 1)), Status.OUT_OF_RANGE),
        "READ_CELLS cells above max_read_cells": (
            Opcode.READ_CELLS, msg.encode_read(msg.ReadRequest(0, 200_000, 1, 0, np.zeros(lim.max_read_cells + 1, int),
                                                               np.zeros(lim.max_read_cells + 1, int))),
            Status.OUT_OF_RANGE),
        "READ_CELLS averages 0": (Opcode.READ_CELLS, msg.encode_read(msg.ReadRequest(2, 200_000, 0)),
                                  Status.OUT_OF_RANGE),
        "WAIT above max_wait_ns": (Opcode.WAIT, msg.encode_wait(lim.max_wait_ns + 1), Status.OUT_OF_RANGE),
        "STAGE total above max_payload": (Opcode.STAGE, encode_stage(7, Opcode.PULSE, lim.max_payload + 1, 0, b"x"),
                                          Status.OUT_OF_RANGE),
        "STAGE piece above max_chunk": (Opcode.STAGE, encode_stage(7, Opcode.PULSE, 1 << 20, 0,
                                                                   b"x" * (lim.max_chunk + 1)), Status.OUT_OF_RANGE),
        "STAGE piece beyond total": (Opcode.STAGE, encode_stage(7, Opcode.PULSE, 10, 8, b"xyz"), Status.OUT_OF_RANGE),
        "STAGE of STAGE": (Opcode.STAGE, encode_stage(7, Opcode.STAGE, 10, 0, b"x"), Status.OUT_OF_RANGE),
        "FETCH above max_chunk": (Opcode.FETCH, encode_fetch(7, 0, lim.max_chunk + 1), Status.NOT_READY),
    }


CASE_NAMES = list(_cases(RawClient().fw.limits()).keys())


@pytest.mark.parametrize("name", CASE_NAMES)
def test_oversize_request_refused_before_any_work(client, limits, name):
    opcode, payload, want = _cases(limits)[name]
    fw = client.fw
    clock0, pulses0 = fw.chip.clock_s, fw.chip.array.pulse_count.sum()
    tracemalloc.start()
    try:
        status, reply, seconds = client.send(opcode, payload)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == want, f"{name}: {Status(status).name} {reply[:120]!r}"
    assert seconds < ACK_S, f"{name}: refused only after {seconds:.2f} s"
    assert peak < 4 * len(payload) + (1 << 20), f"{name}: {peak} bytes allocated for a refusal"
    assert fw.chip.clock_s == clock0 and fw.chip.array.pulse_count.sum() == pulses0, "work was done"


def test_limits_are_advertised_and_consistent_with_info(client, limits):
    st, payload, _ = client.send(Opcode.GET_INFO)
    info = msg.decode_info(payload)
    assert limits.max_steps == info.max_steps and limits.sample_slots == info.sample_slots
    assert limits.max_payload == info.max_payload and 0 < limits.max_chunk < limits.max_payload
    assert limits.max_chip_ns < 2**64 and limits.memory_bytes > 0


def test_wait_cannot_overflow_the_clock_and_reset_clears_everything(client, limits):
    """Chained maximal WAITs stop at the chip-clock ceiling; STATUS keeps working; RESET clears
    sample memory, results, staging and the error state."""
    fw = client.fw
    fw.chip.clock_s = (limits.max_chip_ns - limits.max_wait_ns // 2) * 1e-9  # near the ceiling
    assert client.send(Opcode.WAIT, msg.encode_wait(limits.max_wait_ns))[0] == Status.OUT_OF_RANGE
    st, payload, _ = client.send(Opcode.STATUS)
    assert st == Status.OK and msg.decode_status(payload)["last_error"] == Status.OUT_OF_RANGE
    # leave state behind: a stored sample, a result, a half-staged transfer
    rng = np.random.default_rng(0)
    from firmware_iface.spikes import encode_upload
    assert client.send(Opcode.UPLOAD_SPIKES, encode_upload(rng.random((2, 20, 128)) < 0.1))[0] == Status.OK
    assert client.send(Opcode.RUN, msg.encode_run(0, 2))[0] == Status.OK
    assert client.send(Opcode.STAGE, encode_stage(9, Opcode.PULSE, 100, 0, b"x" * 10))[0] == Status.OK
    assert client.send(Opcode.RESET)[0] == Status.OK
    st, payload, _ = client.send(Opcode.STATUS)
    s = msg.decode_status(payload)
    assert st == Status.OK and s["samples_stored"] == 0 and s["outputs_ready"] == 0 and s["last_error"] == 0
    assert fw.memory_bits == 0 and fw._staging is None and fw._kept is None


def test_host_decoders_bound_allocations_and_raise_protocol_error():
    """A 12-byte reply claiming 2**32-1 samples: ProtocolError from the driver, no MemoryError."""
    from drivers.errors import ProtocolError
    from drivers.pechip import PEChip
    from firmware_iface.records import PayloadError
    from firmware_iface.spikes import decode_output

    lying = pack("OUTPUT", n=U32, neurons=0, steps=4096, events=0)
    tracemalloc.start()
    try:
        with pytest.raises(PayloadError):
            decode_output(lying)
        with pytest.raises(PayloadError):
            decode_output(pack("OUTPUT", n=3, neurons=12, steps=300, events=0) + b"\0" * 72, n_expected=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    with PEChip("pesim://?seed=1&fidelity=ideal") as chip:
        chip.call = lambda *a, **k: lying  # a board that answers READ_OUTPUT with the lie
        with pytest.raises(ProtocolError, match="READ_OUTPUT reply malformed"):
            chip.read_outputs(2)


def test_station_cannot_allow_more_pulses_than_the_board(client, limits):
    from drivers.errors import LimitError
    from drivers.limits import ChipLimits
    from drivers.pechip import PEChip

    with PEChip("pesim://?seed=1&fidelity=ideal", limits=ChipLimits(max_pulses_per_cell=10_000)) as chip:
        with pytest.raises(LimitError, match="board's max_pulses"):
            chip.check_schedule(PulseSchedule(max_pulses=limits.max_pulses + 1))
        before = chip.stats.round_trips
        with pytest.raises(LimitError):
            chip.write_verify([0], [0], [50e-6], PulseSchedule(max_pulses=limits.max_pulses + 1))
        assert chip.stats.round_trips == before  # nothing was sent
