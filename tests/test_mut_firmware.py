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
