"""``snnbench conformance``: the virtual firmware passes over every transport; deliberately
broken firmware variants each fail the check that names their fault, and nothing crashes."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from bench import conformance as C
from drivers.limits import ChipLimits
from firmware_iface.framing import FLAG_RESPONSE, Frame, encode_frame
from firmware_iface.spec import Opcode, Status
from firmware_iface.write_verify import WriteVerifyJob
from sim_backend.board import make_board
from sim_backend.firmware import LONG_JOBS, VirtualFirmware
from tests.boards import tcp_board

LIMITS = ChipLimits()
SANDBOX = C.Sandbox.for_limits(LIMITS, range(120, 128))


def run_suite(url: str, only: list[str] | None = None) -> dict[str, C.Outcome]:
    return {o.check.id: o for o in C.run(C.select(only), lambda: C.Context(url, LIMITS, SANDBOX))}


# skipped for a stated reason: the board's maxima lie above the station limits (never sent)
ALWAYS_SKIPPED = {"op.pulse/4"}
NEEDS_BUSY = {"busy/2", "busy/3"}
NEEDS_NOISE_FREE_CHIP = {"op.run/2", "write-verify/1", "write-verify/2"}


def assert_all_pass(outcomes: dict[str, C.Outcome], may_skip: set[str] = ALWAYS_SKIPPED) -> None:
    bad = {k: (o.outcome, o.message, o.expected, o.actual) for k, o in outcomes.items()
           if o.outcome != "pass" and not (o.outcome == "skip" and k in may_skip)}
    assert not bad


# --- the virtual firmware passes ---------------------------------------------------------------
def test_suite_covers_every_opcode_and_section():
    sections = {c.section for c in C.CHECKS}
    for op in Opcode:
        assert f"op.{op.name.lower()}" in sections or op in (Opcode.STATUS,), op
    assert {"framing", "link", "session", "busy", "write-verify", "status-record"} <= sections
    ids = [c.id for c in C.CHECKS]
    assert len(ids) == len(set(ids)) and all(c.requirement for c in C.CHECKS)


def test_virtual_firmware_passes_in_process():
    out = run_suite("pesim://?seed=9&fidelity=ideal&ack_ms=0")
    assert_all_pass(out, ALWAYS_SKIPPED | NEEDS_BUSY)  # whether a job outlives ack_ms=0 is a race here
    for cid in ("write-verify/1", "write-verify/2", "session/4", "op.run/2"):
        assert out[cid].outcome == "pass", cid  # exercised, not skipped


def test_virtual_firmware_passes_with_busy_acknowledgements():
    """A board whose chip reads take 0.3 ms: jobs outlive the 0 ms acknowledge time, so every
    long job goes through BUSY, STATUS polling and the cached final reply."""
    fw = make_board(9, 0, "ideal")
    fw.ack_s = 0.0
    read = fw.chip.read

    def slow_read(*a, **kw):
        time.sleep(3e-4)
        return read(*a, **kw)
    fw.chip.read = slow_read
    with tcp_board(fw) as url:
        out = run_suite(url)
    assert_all_pass(out)
    for cid in ("busy/2", "busy/3", "write-verify/1", "write-verify/2", "session/4", "session/12"):
        assert out[cid].outcome == "pass", cid


class SlowWriteVerify(VirtualFirmware):
    """A conforming board whose WRITE_VERIFY takes JOB_S longer (acknowledged BUSY meanwhile)."""

    JOB_S = 0.5

    def _write_verify(self, p):
        time.sleep(self.JOB_S)
        return super()._write_verify(p)


def test_busy_checks_wait_the_spec_deadline_by_default():
    """Kills Context.deadline_scale's default lowered below the spec's deadlines (or RawLink /
    busy.py scaling a default context): a board whose 192-cell WRITE_VERIFY takes 0.5 s, well
    inside the spec's deadline for it (192 x (40 + 2) x (1 us + 4 x 2 us) + 1 s = 1.07 s,
    docs/protocol.md [busy]), passes [busy] with the context the CLI builds (no deadline_scale)."""
    fw = variant(SlowWriteVerify)
    fw.ack_s = 0.0
    with tcp_board(fw) as url:
        out = run_suite(url, ["busy"])
    assert_all_pass(out)
    assert out["busy/2"].outcome == "pass" and out["busy/2"].duration_s > SlowWriteVerify.JOB_S


def test_virtual_firmware_passes_in_process_typical_chip():
    assert_all_pass(run_suite("pesim://?seed=3&fidelity=typical"), ALWAYS_SKIPPED | NEEDS_BUSY | NEEDS_NOISE_FREE_CHIP)


@pytest.mark.parametrize("pty", [False, True], ids=["socket", "pty"])
def test_cli_passes_over_real_transports(pty, tmp_path):
    cmd = [sys.executable, "-m", "bench", "sim", "serve", "--fidelity", "ideal", "--no-instruments", "--ack-ms", "0"]
    p = subprocess.Popen(cmd + (["--pty"] if pty else []), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = json.loads(p.stdout.readline())["chip"]
        junit = tmp_path / "conformance.xml"
        r = subprocess.run([sys.executable, "-m", "bench", "conformance", "--chip", url, "--yes", "--json",
                            "--junit", str(junit)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr
        d = json.loads(r.stdout)
        assert d["exit_code"] == 0 and d["counts"]["fail"] == d["counts"]["error"] == 0
        skipped = {c["id"] for c in d["checks"] if c["outcome"] == "skip"}
        # busy/2 and busy/3 need the job still running when their second request arrives: a race
        # the board may win (each skips with that reason, it does not pass falsely)
        assert skipped <= ALWAYS_SKIPPED | {"busy/2", "busy/3"}, skipped
        assert d["board"]["protocol_version"] == 2
        assert sum(s["checks"] for s in d["sections"].values()) == len(C.CHECKS)
        suites = ET.parse(junit).getroot()
        assert int(suites.get("tests")) == len(C.CHECKS) and int(suites.get("failures")) == 0
    finally:
        p.terminate()
        p.wait(timeout=10)


# --- CLI behaviour ------------------------------------------------------------------------------
def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", "conformance", *args], capture_output=True, text=True,
                          timeout=120, input=stdin)


def test_cli_list_only_and_refusals():
    r = _cli("--list", "--json")
    d = json.loads(r.stdout)
    assert r.returncode == 0 and len(d["checks"]) == len(C.CHECKS)
    r = _cli("--list", "--only", "op.pulse", "--json")
    assert {c["section"] for c in json.loads(r.stdout)["checks"]} == {"op.pulse"}
    r = _cli("--list", "--only", "op", "--json")
    assert {c["section"] for c in json.loads(r.stdout)["checks"]} == {s for s in C.SECTIONS if s.startswith("op.")}
    r = _cli("--only", "nonsense", "--chip", "pesim://?seed=1", "--yes")
    assert r.returncode == 2 and "no such section" in r.stderr and r.stderr.count("\n") == 1
    # without --yes and no terminal: refuses before touching the board
    r = _cli("--chip", "pesim://?seed=1", stdin="")
    assert r.returncode == 2 and "--yes" in r.stderr and r.stdout == ""
    assert "rows 120..127" in r.stderr  # says what it would touch
    r = _cli("--chip", "pesim://?seed=1", "--yes", "--rows", "130:140")
    assert r.returncode == 2 and "--rows" in r.stderr


def test_cli_exit_1_and_expected_vs_actual_on_failure():
    with tcp_board(variant(NoEcho)) as url:
        r = _cli("--chip", url, "--yes", "--only", "framing", "--timeout-s", "0.2")
    assert r.returncode == 1, r.stderr
    assert "framing/1  FAIL" in r.stdout and "expected:" in r.stdout and "actual:" in r.stdout


# --- broken firmware variants -----------------------------------------------------------------------
def variant(cls: type[VirtualFirmware]) -> VirtualFirmware:
    """An ideal-chip board whose firmware is ``cls`` (handlers re-bound to its overrides)."""
    fw = make_board(9, 0, "ideal")
    fw.__class__ = cls
    fw._handlers = {op: getattr(fw, h.__name__) for op, h in fw._handlers.items()}
    return fw


class SeqOnlyCache(VirtualFirmware):
    """The unsafe v1 rule: a repeated seq is answered from the cache whatever the frame; HELLO
    neither clears the cache nor takes part in it."""

    def handle(self, frame):
        if frame.opcode == Opcode.HELLO and frame.session:
            self.session = frame.session
            return self._run_handler(frame)
        if frame.opcode != Opcode.STATUS and self._cache is not None and self._cache.seq == frame.seq:
            self.duplicates += 1
            return self._cache.reply
        return super().handle(frame)


class NoEcho(VirtualFirmware):
    """Replies do not echo the request's CRC."""

    def _reply(self, req, status, payload=b""):
        return encode_frame(Frame(req.opcode, req.seq, payload, flags=FLAG_RESPONSE, status=status,
                                  session=req.session, echo=0))


class NoEchoOnPing(NoEcho):
    """Only PING replies lack the echo (HELLO and RESET are bound, so a check gets that far)."""

    def _reply(self, req, status, payload=b""):
        if req.opcode != Opcode.PING:
            return VirtualFirmware._reply(self, req, status, payload)
        return super()._reply(req, status, payload)


def test_reply_without_echo_fails_the_binding_check_on_the_echo():
    """Kills framing/1 ("every reply ... echoes the request's CRC-32") no longer comparing the echo.
    The no-echo variant cannot: its HELLO already goes unanswered, so framing/1 fails in the
    link's own reply matching before its comparison runs.  Here only PING's reply lacks the
    echo; framing/1 must fail with the reply differing from the request in the echo alone."""
    with tcp_board(variant(NoEchoOnPing)) as url:
        o = run_suite(url, ["framing/1"])["framing/1"]
    assert o.outcome == "fail", (o.outcome, o.message)
    want, got = o.expected, o.actual   # (opcode, seq, session, flags bit 0, echo, payload)
    assert [i for i in range(len(want)) if want[i] != got[i]] == [4] and got[4] == 0, (want, got)


class _ExclusiveJob(WriteVerifyJob):
    def _init(self, targets_ns, schedule):
        super()._init(targets_ns, schedule)
        self._w["tolerance_ns"] -= 1  # |err| < tol instead of <= tol


class ExclusiveWindow(VirtualFirmware):
    """Write-verify with an exclusive tolerance window."""

    job_class = _ExclusiveJob


class BusyForever(VirtualFirmware):
    """Acknowledges long jobs with BUSY and never finishes them."""

    def _execute(self, frame):
        if frame.opcode in LONG_JOBS:
            self._stuck = True
            return self._reply(frame, Status.BUSY, b"running")
        return super()._execute(frame)

    def handle(self, frame):
        if getattr(self, "_stuck", False) and frame.opcode in LONG_JOBS:
            return self._reply(frame, Status.BUSY, b"running")
        return super().handle(frame)

    def _status(self, p):
        out = bytearray(super()._status(p))
        out[0] = 1 if getattr(self, "_stuck", False) else 0
        return bytes(out)



class PulseTwiceOnRetry(VirtualFirmware):
    """A retried PULSE is applied again (the reply still comes from the cache)."""

    def handle(self, frame):
        c = self._cache
        if (frame.opcode == Opcode.PULSE and c is not None and c.seq == frame.seq and c.same(frame)
                and frame.session == self.session):
            with self.lock:
                self._pulse(frame.payload)
        return super().handle(frame)


class WrongCrcOnLongFrames(VirtualFirmware):
    """Replies longer than 1 KiB carry a wrong CRC-32 (e.g. a CRC engine with a 10-bit counter)."""

    def _reply(self, req, status, payload=b""):
        out = super()._reply(req, status, payload)
        if len(payload) > 1024:
            from cobs import cobs

            body = bytearray(cobs.decode(out[:-1]))
            body[-1] ^= 0x01
            out = cobs.encode(bytes(body)) + b"\x00"
        return out


VARIANTS = {
    "seq-only-cache": (SeqOnlyCache, "session/9"),
    "no-echo": (NoEcho, "framing/1"),
    "exclusive-window": (ExclusiveWindow, "write-verify/2"),
    "busy-never-cleared": (BusyForever, "busy/2"),
    "pulse-twice-on-retry": (PulseTwiceOnRetry, "session/4"),
    "wrong-crc-long-frames": (WrongCrcOnLongFrames, "framing/9"),
}


# Why the named check fails, where the variant's fault allows only one reason.
FAILS_BECAUSE = {"busy-never-cleared": "still BUSY at the job's deadline",
                 "no-echo": "no reply echoing the request",
                 "wrong-crc-long-frames": "reply frame(s) failed the CRC/COBS/length checks"}
# A board that never ends a job makes every job-waiting check (~20) wait out its deadline: at the
# spec's deadlines (duration + 1 s of slack, RUN 2 s) that is ~25 s of idling, at 1/20 of them ~1.5 s.
# wrong-crc-long-frames loses the long replies of busy/2 and busy/3 (1.6 s each); its named check
# waits for no job.  Variants whose named check waits for a job keep the spec's deadlines.
DEADLINE_SCALE = {"busy-never-cleared": 0.05, "wrong-crc-long-frames": 0.05}
# Reply deadline of short commands (Context.timeout_s): no-echo's 76 checks each wait it out once
# (nothing ever echoes); its named check fails on that whatever the deadline.
TIMEOUT_S = {"no-echo": 0.04}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_broken_variant_fails_its_named_check(name):
    """Each broken firmware variant fails the check that names its fault, and no check crashes.
    busy-never-cleared kills the [busy] check "a BUSY job ends within its deadline" passing, or
    skipping, a board that stays BUSY (and any check erroring instead of failing on it); it runs
    at DEADLINE_SCALE, the check's own deadline shortened (Context.deadline_scale; boards are
    checked at the spec's deadlines, 1.0).  FAILS_BECAUSE pins the reason where only one is right
    (a named check failing on a time-out instead would hide a broken check)."""
    cls, named = VARIANTS[name]
    scale, timeout_s = DEADLINE_SCALE.get(name, 1.0), TIMEOUT_S.get(name, 0.1)
    with tcp_board(variant(cls)) as url:
        ctx = lambda: C.Context(url, LIMITS, SANDBOX, timeout_s=timeout_s, deadline_scale=scale)  # noqa: E731
        out = {o.check.id: o for o in C.run(C.CHECKS, ctx)}
    assert out[named].outcome == "fail", (named, out[named].outcome, out[named].message)
    assert FAILS_BECAUSE.get(name, "") in out[named].message, out[named].message
    crashed = {k: o.message for k, o in out.items() if o.outcome == "error"}
    assert not crashed
