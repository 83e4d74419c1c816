"""Virtual-firmware details the mutation run found unchecked (issue 18): an error reply carries
its reason as the payload (what the driver shows a person), and a board's chip id is its
0x5E prefix with the die seed in the low 32 bits.  Values by hand from the frames below."""
from __future__ import annotations

import numpy as np

from firmware_iface import messages as msg
from firmware_iface.records import RECORDS
from firmware_iface.spec import Opcode, Status
from sim_backend.board import make_board
from tests.fw_client import RawClient


def test_a_bad_pulse_kind_is_refused_with_its_reason_in_the_reply():
    p = np.zeros(1, dtype=RECORDS["PULSE"])
    p["kind"], p["v_bl_mv"], p["width_ns"] = 3, 1000, 100      # neither SET (1) nor RESET (2)
    status, payload, _ = RawClient().send(Opcode.PULSE, msg.encode_pulses(p))
    assert status == Status.OUT_OF_RANGE
    assert payload == b"pulse kind must be SET (1) or RESET (2)"


def test_chip_id_is_the_prefix_and_the_die_seed():
    for seed, expect in ((1, 0x5E0000000001), (0x1234ABCD, 0x5E001234ABCD), (0x1_0000_0007, 0x5E0000000007)):
        client = RawClient(make_board(seed, 0, "ideal"))
        status, payload, _ = client.send(Opcode.GET_INFO)
        assert status == Status.OK
        assert msg.decode_info(payload).chip_id == expect


def test_bulk_transfer_refusals_name_the_transfer_and_what_is_missing():
    """STAGE/COMMIT/FETCH (protocol v2 bulk mode): a COMMIT of a transfer never staged, one with
    7 of its 10 bytes missing, and a FETCH of a result never kept are NOT_READY with reasons."""
    from firmware_iface.bulk import encode_commit, encode_fetch, encode_stage

    c = RawClient()
    run = int(Opcode.RUN)
    status, payload, _ = c.send(Opcode.COMMIT, encode_commit(5, run, 4))
    assert status == Status.NOT_READY
    assert payload == f"transfer 0x5 was not staged as 4 bytes of 0x{run:02x}".encode()
    assert c.send(Opcode.STAGE, encode_stage(7, run, 10, 0, b"abc"))[0] == Status.OK
    status, payload, _ = c.send(Opcode.COMMIT, encode_commit(7, run, 10))
    assert (status, payload) == (Status.NOT_READY, b"transfer 0x7: 7 bytes not staged")
    status, payload, _ = c.send(Opcode.FETCH, encode_fetch(9, 0, 4))
    assert (status, payload) == (Status.NOT_READY, b"no kept result of transfer 0x9")


def test_hello_with_a_payload_and_unknown_queries_are_refused_with_reasons():
    c = RawClient()
    status, payload, _ = c.send(Opcode.HELLO, b"x", seq=0)
    assert (status, payload) == (Status.BAD_PAYLOAD, b"HELLO payload must be empty, got 1 bytes")
    status, payload, _ = c.send(Opcode.SIM_QUERY, b"nope")
    assert (status, payload) == (Status.UNSUPPORTED, b"unknown simulator query 'nope'")


def test_a_query_the_board_registered_is_answered():
    """make_board registers 'energy_j' (per-rail energy of the world) on top of the defaults."""
    import json

    status, payload, _ = RawClient().send(Opcode.SIM_QUERY, b"energy_j")
    assert status == Status.OK
    assert isinstance(json.loads(payload), dict)


def test_the_last_sample_slot_exists_and_the_one_after_does_not():
    """65,536 slots (0..65535): RUN of slot 65535 is in range (only empty: NOT_READY); a RUN
    reaching slot 65536 is OUT_OF_RANGE."""
    c = RawClient()
    status, payload, _ = c.send(Opcode.RUN, msg.encode_run(65535, 1))
    assert (status, payload) == (Status.NOT_READY, b"no input stored in slot 65535")
    status, _, _ = c.send(Opcode.RUN, msg.encode_run(65535, 2))
    assert status == Status.OUT_OF_RANGE


def test_a_write_verify_schedule_beyond_the_board_maxima_is_refused_with_its_reason():
    """Kills VirtualFirmware._write_verify_71 (the refusal without its reason): a WRITE_VERIFY
    whose pulse width (2 ms) exceeds the board's 1 ms maximum is OUT_OF_RANGE and the reply
    says why; no cell is touched."""
    from firmware_iface.write_verify import PulseSchedule

    c = RawClient()
    before = c.send(Opcode.SIM_QUERY, b"conductances")
    status, payload, _ = c.send(Opcode.WRITE_VERIFY, msg.encode_write_verify(
        PulseSchedule(width_s=2e-3), np.array([0]), np.array([0]), np.array([40e-6])))
    assert (status, payload) == (Status.OUT_OF_RANGE, b"schedule voltage, width or read voltage beyond the board maxima")
    after = c.send(Opcode.SIM_QUERY, b"conductances")
    assert before[0] == after[0] == Status.OK and before[1] == after[1]



# --- issue 18, firmware re-run on merged main: refusals carry their reasons (docs/protocol.md) ---

def test_a_response_frame_and_session_zero_are_refused_with_reasons():
    """Kills VirtualFirmware.handle mutants _11 (the response-frame reason altered) and _51
    (a HELLO opening the reserved session 0 refused without its reason)."""
    from firmware_iface.framing import FLAG_RESPONSE, Frame, FrameDecoder, encode_frame

    fw = make_board(1, 0, "ideal")
    out = fw.feed(encode_frame(Frame(int(Opcode.GET_INFO), 5, b"", flags=FLAG_RESPONSE, session=0x77)))
    (reply,) = FrameDecoder().feed(out)
    assert (reply.status, reply.payload) == (Status.BAD_PAYLOAD, b"a response frame sent to the board")
    c = RawClient()
    c.session = 0                       # a HELLO opening session 0
    status, payload, _ = c.send(Opcode.HELLO, b"", seq=0)
    assert (status, payload) == (Status.OUT_OF_RANGE, b"session id 0 is reserved")


def test_get_limits_and_reset_with_a_payload_are_refused_naming_the_command():
    """Kills VirtualFirmware._get_limits mutant _2 (the command's name dropped from the
    reason) and _reset mutant _1 (RESET's payload not checked at all)."""
    c = RawClient()
    status, payload, _ = c.send(Opcode.GET_LIMITS, b"x")
    assert (status, payload) == (Status.BAD_PAYLOAD, b"GET_LIMITS payload must be empty, got 1 bytes")
    status, payload, _ = c.send(Opcode.RESET, b"ab")
    assert (status, payload) == (Status.BAD_PAYLOAD, b"RESET payload must be empty, got 2 bytes")


def test_an_upload_past_the_last_slot_names_the_slots():
    """Kills VirtualFirmware._upload mutant _39 (the last slot misnamed): 2 samples at slot
    65535 of 65,536 (docs/protocol.md, UPLOAD_SPIKES) occupy slots 65535..65536."""
    from firmware_iface.spikes import encode_upload

    spikes = np.zeros((2, 4, 128), dtype=bool)
    spikes[:, 0, 0] = True
    status, payload, _ = RawClient().send(Opcode.UPLOAD_SPIKES, encode_upload(spikes, slot=65535))
    assert (status, payload) == (Status.NO_MEMORY, b"slots 65535..65536 beyond 65536")
