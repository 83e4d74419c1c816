"""Link faults in every direction: the link model faults commands and replies independently,
and the driver survives stalls, duplicates, reordering and board resets with results
identical to a clean link, rejecting late replies to earlier requests by their sequence number.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from drivers.errors import ChipTimeout
from drivers.pechip import PEChip
from sim_backend.board import make_board
from sim_backend.link import TO_BOARD, TO_HOST, LinkModel
from sim_backend.server import serve_tcp
from tests.test_link_faults import mixed_commands


# --- the link model alone ------------------------------------------------------------------
def _chunks(tag: bytes, n: int) -> list[bytes]:
    return [tag + i.to_bytes(2, "big") for i in range(n)]


@pytest.mark.parametrize("fault", ["stall", "reorder"])
def test_a_held_back_command_is_never_delivered_to_the_host(fault):
    """Protects the per-direction held-back buffer (the shared-buffer bug sent a stalled
    command back to the host and a stalled reply to the board)."""
    link = LinkModel(**{fault: 0.3}, seed=4)
    cmds, replies = _chunks(b"C", 400), _chunks(b"R", 400)
    to_board, to_host = b"", b""
    for c, r in zip(cmds, replies):
        to_board += link.corrupt(c, TO_BOARD)
        to_host += link.corrupt(r, TO_HOST)
    held = {d: link.held(d) for d in (TO_BOARD, TO_HOST)}
    assert link.stats["stalled" if fault == "stall" else "reordered"] > 100
    # every byte arrives in its own direction, nothing lost, nothing invented
    assert sorted(_split(to_board + held[TO_BOARD])) == cmds
    assert sorted(_split(to_host + held[TO_HOST])) == replies
    if fault == "stall":     # late, but in order
        assert _split(to_board + held[TO_BOARD]) == cmds
    else:                    # overtaken: some chunk arrives after a later one
        assert _split(to_host + held[TO_HOST]) != replies


def _split(stream: bytes) -> list[bytes]:
    return [stream[i:i + 3] for i in range(0, len(stream), 3)]


def test_each_direction_has_its_own_random_stream():
    """Faults on replies do not depend on how much traffic went the other way."""
    alone = LinkModel(drop=0.2, dup=0.1, stall=0.1, reorder=0.1, ber=1e-3, seed=9)
    mixed = LinkModel(drop=0.2, dup=0.1, stall=0.1, reorder=0.1, ber=1e-3, seed=9)
    replies = _chunks(b"R", 300)
    want = [alone.corrupt(r, TO_HOST) for r in replies]
    got = []
    for i, r in enumerate(replies):
        for _ in range(i % 3):
            mixed.corrupt(b"command", TO_BOARD)
        got.append(mixed.corrupt(r, TO_HOST))
    assert got == want


def test_link_direction_must_be_named():
    with pytest.raises(ValueError, match="direction"):
        LinkModel(drop=0.1).corrupt(b"x", "sideways")


@pytest.mark.parametrize("query", ["reorder=1", "reorder=-0.1"])
def test_reorder_probability_is_checked(query):
    with pytest.raises(ValueError, match="reorder"):
        LinkModel.from_query(query)


# --- the driver on a faulty link -------------------------------------------------------------
def _faulty_equals_clean(n: int, faults: str) -> None:
    with PEChip("pesim://?seed=5&fidelity=typical", retries=10) as clean:
        want = mixed_commands(clean, n)
        want_g = clean.read_array()
        executed_clean = clean._port.firmware.executed
    with PEChip(f"pesim://?seed=5&fidelity=typical&{faults}&link_seed=3", retries=10) as faulty:
        got = mixed_commands(faulty, n)
        got_g = faulty.read_array()
        fw, stats, link = faulty._port.firmware, faulty.stats, faulty._port.link.stats
    assert got == want
    assert np.array_equal(got_g, want_g)
    assert link["stalled"] > n * 0.02 and link["duplicated"] > n * 0.005
    assert stats.retries >= link["stalled"] * 0.5       # late replies came after a resend
    assert fw.executed == executed_clean                 # nothing executed twice
    assert fw.duplicates > 0


def test_1000_commands_with_stalls_and_duplicates_match_a_clean_link():
    """Protects the link fix: with stall > 0 the shared buffer made the board answer
    BAD_PAYLOAD after a few dozen commands."""
    _faulty_equals_clean(1_000, "stall=0.05&dup=0.02")


def test_10000_commands_with_stalls_and_duplicates_match_a_clean_link():
    _faulty_equals_clean(10_000, "stall=0.05&dup=0.02")


def test_commands_with_every_fault_at_once_match_a_clean_link():
    _faulty_equals_clean(2_000, "stall=0.05&dup=0.02&reorder=0.03&drop=0.005&ber=1e-5")


def _read_only(chip: PEChip, n: int) -> list:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        k = rng.integers(0, 3)
        if k == 0:
            out.append(chip.ping(bytes(rng.integers(0, 256, 8, dtype=np.uint8))))
        elif k == 1:
            out.append(chip.read_register(["THRESHOLD", "N_STEPS", "V_READ"][rng.integers(0, 3)]))
        else:
            out.append(float(chip.read_cells([int(rng.integers(0, 128))], [int(rng.integers(0, 24))])[0]))
    return out


def test_board_resets_among_other_faults_leave_read_only_results_unchanged():
    """A reset board comes back at its defaults; reads of an ideal chip are unaffected."""
    with PEChip("pesim://?seed=2&fidelity=ideal", retries=10) as clean:
        want = _read_only(clean, 1_000)
    url = "pesim://?seed=2&fidelity=ideal&board_reset=0.02&stall=0.05&dup=0.02&reorder=0.02&link_seed=8"
    with PEChip(url, retries=10) as faulty:
        got = _read_only(faulty, 1_000)
        link = faulty._port.link.stats
    assert link["board_resets"] > 5 and link["stalled"] > 20
    assert got == want


# --- late and duplicated replies, scripted exactly, over a real socket ------------------------
class _ScriptedPump:
    """The virtual board behind TCP, with a script of reply faults per command number.

    ``late``: the reply is withheld and delivered in front of the next command's reply.
    ``echo_previous``: the previous command's reply is delivered again in front of this one.
    """

    def __init__(self, late: set[int] = frozenset(), echo_previous: set[int] = frozenset()) -> None:
        self.fw = make_board(3, 0, "ideal")
        self.late, self.echo_previous = late, echo_previous
        self.n = 0
        self._withheld = b""
        self._previous = b""

    def exchange(self, data: bytes) -> bytes:
        reply = self.fw.feed(data)
        if not reply:
            return b""
        self.n += 1
        out = self._withheld + (self._previous if self.n in self.echo_previous else b"")
        self._withheld = b""
        self._previous = reply
        if self.n in self.late:
            self._withheld = reply
            return out
        return out + reply


@pytest.fixture
def scripted_board():
    stop = threading.Event()
    started = []

    def start(**script) -> str:
        url, thread = serve_tcp(_ScriptedPump(**script), "127.0.0.1", 0, stop)
        started.append(thread)
        return url

    yield start
    stop.set()
    for t in started:
        t.join(5)


def test_driver_rejects_a_duplicated_reply_to_an_earlier_request_by_sequence_number(scripted_board):
    """Protects the sequence-number check in the driver's reply wait: the duplicate of the
    previous REG_READ reply (same opcode, other register) arrives first and must be skipped."""
    url = scripted_board(echo_previous={4})
    with PEChip(url, timeout_s=1.0, retries=0) as chip:   # command 1 is the session's HELLO
        chip.write_register("THRESHOLD", 1.25)                 # command 2
        assert chip.read_register("THRESHOLD") == pytest.approx(1.25, abs=1e-3)   # 3
        assert chip.read_register("N_STEPS") == 300            # 4: THRESHOLD's reply comes first


def test_driver_rejects_a_late_reply_to_an_earlier_request_by_sequence_number(scripted_board):
    """The reply to a request the driver gave up on arrives during the next request."""
    url = scripted_board(late={3})
    with PEChip(url, timeout_s=0.3, retries=0) as chip:   # command 1 is the session's HELLO
        chip.write_register("THRESHOLD", 0.75)                 # 2
        with pytest.raises(ChipTimeout):
            chip.read_register("THRESHOLD")                    # 3: its reply is late
        assert chip.read_register("N_STEPS") == 300            # 4: late THRESHOLD reply first
        assert chip.read_register("THRESHOLD") == pytest.approx(0.75, abs=1e-3)


def test_a_late_reply_after_a_resend_is_accepted_once(scripted_board):
    """Stalled reply, resend, then both copies arrive: one result, executed once."""
    url = scripted_board(late={3})
    with PEChip(url, timeout_s=0.3, retries=2) as chip:   # command 1 is the session's HELLO
        chip.write_register("THRESHOLD", 0.5)
        assert chip.read_register("THRESHOLD") == pytest.approx(0.5, abs=1e-3)
        assert chip.stats.retries == 1
        assert chip.read_register("N_STEPS") == 300


# --- timing and configuration of the link model -------------------------------------------------
def test_link_timing_is_uart_8n1_plus_latency():
    """10 bits per byte on the wire: 300 bytes at 3 Mbaud take 1 ms; a round trip adds latency."""
    link = LinkModel(baud=3e6, latency_s=2e-3)
    assert link.transfer_s(300) == pytest.approx(1e-3)
    assert link.round_trip_s(100, 200) == pytest.approx(3e-3)
    assert LinkModel(baud=115_200).transfer_s(1) == pytest.approx(10 / 115_200)


def test_link_from_url_query():
    link = LinkModel.from_query("baud=921600&latency_ms=0.5&drop=0.01&ber=1e-6&dup=0.02&stall=0.03"
                                "&reorder=0.04&board_reset=0.05&link_seed=12", seed=3)
    assert (link.baud, link.latency_s, link.seed) == (921_600, pytest.approx(5e-4), 12)
    assert (link.drop, link.ber, link.dup, link.stall, link.reorder, link.board_reset) == \
        (0.01, 1e-6, 0.02, 0.03, 0.04, 0.05)
    assert link.faulty
    plain = LinkModel.from_query("latency_s=0.25", seed=3)
    assert (plain.latency_s, plain.seed, plain.baud) == (0.25, 3, 3e6)
    assert not plain.faulty
    assert plain.corrupt(b"abc", TO_HOST) == b"abc" and plain.corrupt(b"", TO_BOARD) == b""


@pytest.mark.parametrize("kw", [{"baud": 0}, {"baud": -1}, {"latency_s": -1e-3}, {"drop": 1.0},
                                {"ber": -0.1}, {"dup": 1.5}, {"stall": 1}, {"board_reset": 2}])
def test_link_parameters_are_checked(kw):
    with pytest.raises(ValueError, match="link"):
        LinkModel(**kw)


def test_faults_are_counted_and_seeded():
    def run(seed):
        link = LinkModel(ber=1e-3, drop=0.1, dup=0.1, stall=0.1, reorder=0.1, board_reset=0.1, seed=seed)
        out = [link.corrupt(bytes(range(64)), d) for _ in range(300) for d in (TO_BOARD, TO_HOST)]
        resets = [link.want_board_reset() for _ in range(300)]
        return out, resets, dict(link.stats)

    a, b, c = run(1), run(1), run(2)
    assert a == b and a[0] != c[0]
    stats = a[2]
    for k in ("bit_errors", "dropped", "duplicated", "stalled", "reordered", "board_resets"):
        assert stats[k] > 10, k
    assert stats["board_resets"] == sum(a[1])
    # 600 chunks of 64 bytes: drops are 10 % of them, bit errors 1e-3 of the bits that were not dropped
    assert 30 < stats["dropped"] < 90
    assert 0.5e-3 < stats["bit_errors"] / (8 * 64 * (600 - stats["dropped"])) < 1.5e-3
