"""Protocol v2 sessions, echoes, retries and BUSY (docs/protocol.md "Sessions and retries").

Board rules are checked with frames built by an independent encoder (tests/wire_ref.py);
driver rules by tampering with the bytes between a real driver and the virtual firmware.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import time

import pytest

from drivers.errors import ChipTimeout, ProtocolError
from drivers.pechip import PEChip
from firmware_iface.spec import REGISTER_BY_NAME, Opcode, Status
from sim_backend.board import make_board
from sim_backend.firmware import VirtualFirmware
from tests.boards import tcp_board
from tests.wire_ref import crc_of, read_frames, reference_frame, v1_frame

SESSION = 0x5EED0001
V_READ, THRESHOLD = REGISTER_BY_NAME["V_READ"], REGISTER_BY_NAME["THRESHOLD"]
# register defaults from the register table of docs/protocol.md: V_READ 200000 uV, THRESHOLD 1000 milli
V_READ_DEFAULT_CODE, THRESHOLD_DEFAULT_CODE = 200_000, 1_000


def reg_payload(reg_id: int, code: int = 0) -> bytes:
    return struct.pack("<HHI", reg_id, 0, code)


def pulse_payload(row: int, col: int, v_bl_mv: int = 2000) -> bytes:
    return struct.pack("<I", 1) + bytes([1, row, col, 0]) + struct.pack("<HHHHI", v_bl_mv, 1800, 0, 0, 1000)


def one(fw: VirtualFirmware, wire: bytes) -> dict:
    (reply,) = read_frames(fw.feed(wire))
    return reply


@pytest.fixture
def fw() -> VirtualFirmware:
    return make_board(3, 0, "ideal")


def hello(fw: VirtualFirmware, session: int = SESSION, seq: int = 0) -> dict:
    return one(fw, reference_frame(Opcode.HELLO, seq, session=session))


# --- board rules ---------------------------------------------------------------------------
def test_hello_opens_a_session_and_every_reply_echoes_its_request(fw):
    req = reference_frame(Opcode.HELLO, 0, session=SESSION)
    r = one(fw, req)
    assert (r["status"], r["opcode"], r["seq"], r["session"], r["flags"]) == (0, 0x40, 0, SESSION, 1)
    assert r["echo"] == crc_of(req)
    proto, _, _, _, session = struct.unpack_from("<BBBBI", r["payload"])
    assert proto == 2 and session == SESSION
    req = reference_frame(Opcode.REG_READ, 1, reg_payload(THRESHOLD.id), session=SESSION)
    r = one(fw, req)
    assert (r["status"], r["opcode"], r["seq"], r["session"], r["echo"]) == (0, 0x03, 1, SESSION, crc_of(req))
    assert struct.unpack("<HHI", r["payload"]) == (THRESHOLD.id, 0, THRESHOLD_DEFAULT_CODE)


def test_without_a_session_nothing_is_executed(fw):
    g0 = fw.chip.conductances()[5, 6]
    r = one(fw, reference_frame(Opcode.PULSE, 1, pulse_payload(5, 6), session=SESSION))
    assert r["status"] == Status.NO_SESSION and fw.chip.conductances()[5, 6] == g0
    hello(fw)
    r = one(fw, reference_frame(Opcode.PULSE, 1, pulse_payload(5, 6), session=SESSION + 1))  # not current
    assert r["status"] == Status.NO_SESSION and fw.chip.conductances()[5, 6] == g0
    r = one(fw, reference_frame(Opcode.HELLO, 0, session=0))  # session 0 is reserved
    assert r["status"] == Status.OUT_OF_RANGE


def test_a_retry_is_answered_from_the_cache_and_not_executed_again(fw):
    hello(fw)
    req = reference_frame(Opcode.PULSE, 1, pulse_payload(5, 6), session=SESSION)
    first = fw.feed(req)
    g1 = fw.chip.conductances()[5, 6]
    again = fw.feed(req)
    assert again == first and fw.chip.conductances()[5, 6] == g1
    # the same pulse under a new seq is a new command: it does act
    assert one(fw, reference_frame(Opcode.PULSE, 2, pulse_payload(5, 6), session=SESSION))["status"] == 0
    assert fw.chip.conductances()[5, 6] > g1


def test_reused_seq_with_other_content_is_refused_not_answered_from_the_cache(fw):
    hello(fw)
    one(fw, reference_frame(Opcode.REG_READ, 1, reg_payload(V_READ.id), session=SESSION))
    r = one(fw, reference_frame(Opcode.REG_READ, 1, reg_payload(THRESHOLD.id), session=SESSION))
    assert r["status"] == Status.SEQ_REUSED and r["opcode"] == 0x03
    g0 = fw.chip.conductances()[1, 1]
    r = one(fw, reference_frame(Opcode.PULSE, 1, pulse_payload(1, 1), session=SESSION))
    assert r["status"] == Status.SEQ_REUSED and fw.chip.conductances()[1, 1] == g0


def test_a_late_duplicate_with_an_older_seq_is_not_executed(fw):
    hello(fw)
    old = reference_frame(Opcode.PULSE, 1, pulse_payload(2, 2), session=SESSION)
    fw.feed(old)
    one(fw, reference_frame(Opcode.REG_READ, 2, reg_payload(V_READ.id), session=SESSION))
    g = fw.chip.conductances()[2, 2]
    r = one(fw, old)  # arrives again after seq 2: reordered / duplicated on the link
    assert r["status"] == Status.STALE_SEQ and fw.chip.conductances()[2, 2] == g
    # serial-number order wraps: 0 comes after 65535
    hello(fw, seq=0xFFFE)
    assert one(fw, reference_frame(Opcode.PING, 0xFFFF, b"a", session=SESSION))["status"] == 0
    assert one(fw, reference_frame(Opcode.PING, 0, b"b", session=SESSION))["status"] == 0


def test_status_is_exempt_from_the_seq_rules(fw):
    hello(fw)
    one(fw, reference_frame(Opcode.PING, 5, b"x", session=SESSION))
    for seq in (3, 3, 5):
        assert one(fw, reference_frame(Opcode.STATUS, seq, session=SESSION))["status"] == 0
    assert one(fw, reference_frame(Opcode.PING, 5, b"x", session=SESSION))["payload"] == b"x"  # cache intact


def test_new_hello_clears_the_reply_cache(fw):
    hello(fw)
    one(fw, reference_frame(Opcode.REG_READ, 1, reg_payload(V_READ.id), session=SESSION))
    hello(fw, session=SESSION + 7)
    r = one(fw, reference_frame(Opcode.REG_READ, 1, reg_payload(THRESHOLD.id), session=SESSION + 7))
    assert r["status"] == 0 and struct.unpack("<HHI", r["payload"])[2] == THRESHOLD_DEFAULT_CODE


def test_bad_frame_and_bad_version_replies(fw):
    hello(fw)
    r = one(fw, b"\x07garbage\x00")
    assert (r["status"], r["opcode"], r["seq"], r["session"], r["echo"]) == (Status.BAD_FRAME, 0, 0, 0, 0)
    r = one(fw, v1_frame(0x01, 1, b"ping"))
    assert r["status"] == Status.BAD_VERSION and r["payload"] == bytes([2])


# --- driver rules ----------------------------------------------------------------------------
def _tamper(chip: PEChip, rewrite) -> list:
    """Route the board's replies through ``rewrite(request_frames, reply_bytes) -> bytes``."""
    fw = chip._port.firmware
    feed, seen = fw.feed, []

    def tampered(data: bytes) -> bytes:
        reqs = read_frames(data)
        seen.extend(reqs)
        return rewrite(reqs, feed(data))

    fw.feed = tampered
    return seen


def test_driver_discards_a_reply_whose_echo_does_not_match():
    with PEChip("pesim://?seed=2&fidelity=ideal") as chip:
        def forge(reqs, out):  # a well-formed reply to the same seq/opcode/session, wrong echo
            r = reqs[0]
            fake = reference_frame(r["opcode"], r["seq"], reg_payload(THRESHOLD.id, 4321), flags=1,
                                   session=r["session"], echo=0x12345678)
            return fake + out
        _tamper(chip, forge)
        assert chip.read_register("THRESHOLD") == pytest.approx(THRESHOLD_DEFAULT_CODE * 1e-3)
        assert chip.stats.rejected == 1 and chip.stats.retries == 0


def test_driver_retries_when_only_a_wrong_echo_arrives_and_the_board_acts_once():
    with PEChip("pesim://?seed=2&fidelity=ideal") as chip:
        g0 = chip.read_cells([4], [4])[0]
        state = {"n": 0}

        def forge_first(reqs, out):
            state["n"] += 1
            if state["n"] > 1:
                return out
            r = reqs[0]  # the real reply is lost; a stray reply with another echo arrives
            return reference_frame(r["opcode"], r["seq"], struct.pack("<IIQ", 1, 0, 1000), flags=1,
                                   session=r["session"], echo=crc_of(out) ^ 1)
        seen = _tamper(chip, forge_first)
        chip.timeout_s = 0.2
        chip.pulse(1, 4, 4, 2.0, 1.8, 0.0, 1e-6)
        assert chip.stats.rejected == 1 and chip.stats.retries == 1
        assert [f["seq"] for f in seen] == [seen[0]["seq"]] * 2  # the identical frame, resent
        fw = chip._port.firmware
        assert fw.duplicates == 1
    with PEChip("pesim://?seed=2&fidelity=ideal") as once:  # the same pulse applied once
        once.pulse(1, 4, 4, 2.0, 1.8, 0.0, 1e-6)
        assert chip_g(once) == chip_g_value(fw)


def chip_g(chip: PEChip) -> float:
    return float(chip.read_cells([4], [4])[0])


def chip_g_value(fw: VirtualFirmware) -> float:
    return float(fw.chip.conductances()[4, 4].astype("float32"))


def test_driver_discards_a_late_reply_to_an_earlier_request():
    with PEChip("pesim://?seed=2&fidelity=ideal") as chip:
        old = {}

        def replay(reqs, out):
            r = reqs[0]
            if r["opcode"] == Opcode.REG_READ and "reply" not in old:
                old["reply"] = out  # V_READ's reply, to be replayed late
                return out
            return old.get("reply", b"") + out if r["opcode"] == Opcode.REG_READ else out
        _tamper(chip, replay)
        assert chip.read_register("V_READ") == pytest.approx(0.2)
        assert chip.read_register("THRESHOLD") == pytest.approx(1.0)
        assert chip.stats.rejected == 1


def test_a_v1_board_is_refused_with_a_clear_message(monkeypatch):
    import sim_backend.firmware as F

    def v1_board(self, data):  # a v1 board cannot parse a v2 frame: BAD_FRAME, v1 format
        return v1_frame(0, 0, flags=1, status=1)
    monkeypatch.setattr(F.VirtualFirmware, "feed", v1_board)
    with pytest.raises(ProtocolError, match=r"speaks protocol version 1; this host speaks version 2"):
        PEChip("pesim://?seed=2")


def test_board_reboot_reopens_the_session():
    with PEChip("pesim://?seed=2&fidelity=ideal") as chip:
        chip.write_register("THRESHOLD", 1.5)
        chip._port.firmware.reboot()
        assert chip.read_register("THRESHOLD") == pytest.approx(1.0)
        assert chip.stats.sessions == 2


def test_busy_is_followed_by_status_polls_until_the_job_is_done():
    with PEChip("pesim://?seed=2&fidelity=ideal") as chip:
        fw = chip._port.firmware
        fw.ack_s = 0.0
        release = threading.Event()
        advance = fw.chip.advance

        def slow_advance(seconds):
            release.wait(5)
            advance(seconds)
        fw.chip.advance = slow_advance
        threading.Timer(0.3, release.set).start()
        t0 = time.monotonic()
        assert chip.wait(2.0) == pytest.approx(2.0)
        assert time.monotonic() - t0 >= 0.29
        assert fw.status_served >= 2 and fw.executed == chip.stats.commands - fw.status_served
        assert chip.sim_query("clock_s") == pytest.approx(2.0)


def test_busy_never_cleared_ends_at_the_commands_deadline():
    class StuckBusy(VirtualFirmware):
        def _execute(self, frame):
            if frame.opcode in (Opcode.WAIT,):
                return self._reply(frame, Status.BUSY, b"running")
            return super()._execute(frame)

        def _status(self, p):
            return super()._status(p)[:0] + bytes([1]) + super()._status(p)[1:]
    with PEChip("pesim://?seed=2&fidelity=ideal", timeout_s=0.5) as chip:
        chip._port.firmware.__class__ = StuckBusy
        t0 = time.monotonic()
        with pytest.raises(ChipTimeout, match="BUSY"):
            chip.transact(Opcode.WAIT, struct.pack("<Q", 1000), timeout_s=0.8)
        assert 0.7 < time.monotonic() - t0 < 3.0


# --- two hosts in a row ------------------------------------------------------------------------
def test_two_host_processes_in_a_row_never_get_each_others_cached_replies():
    p = subprocess.Popen([sys.executable, "-m", "bench", "sim", "serve", "--fidelity", "ideal",
                          "--no-instruments"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = json.loads(p.stdout.readline())["chip"]
        got = []
        for name in ("V_READ", "THRESHOLD", "V_READ"):
            out = subprocess.run([sys.executable, "-m", "bench", "chip", "reg", name, "--chip", url, "--json"],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            got.append(json.loads(out.stdout)["value"])
        assert got == pytest.approx([0.2, 1.0, 0.2])
    finally:
        p.terminate()
        p.wait(timeout=10)


class SeqOnlyCache(VirtualFirmware):
    """The unsafe v1 rule: answer any request repeating the last seq from the cache; HELLO
    neither clears it nor takes part in it."""

    def handle(self, frame):
        if frame.opcode == Opcode.HELLO:
            self.session = frame.session
            return self._run_handler(frame)
        if getattr(self, "_v1", None) and self._v1[0] == frame.seq:
            return self._v1[1]
        reply = self._run_handler(frame)
        self._v1 = (frame.seq, reply)
        return reply


def test_a_board_with_a_seq_only_cache_cannot_hand_the_driver_another_hosts_reply():
    fw = make_board(3, 0, "ideal")
    fw.__class__ = SeqOnlyCache
    with tcp_board(fw) as url:
        with PEChip(url) as a:
            assert a.read_register("V_READ") == pytest.approx(0.2)
        with PEChip(url, timeout_s=0.2, retries=2) as b:
            with pytest.raises(ProtocolError):  # B's seq 1 gets A's cached reply: refused, never 0.2
                b.read_register("THRESHOLD")
            assert b.stats.rejected >= 1
