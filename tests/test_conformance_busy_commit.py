"""The [op.bulk_put] burst check against a board that acknowledges every COMMIT BUSY (docs
[busy]: COMMIT is a long job; with a 0 ms acknowledge time a loaded machine answered BUSY
before the COMMIT's thread ran, and the check failed -- seen in `make test` at load 7)."""
from __future__ import annotations

import time

from firmware_iface.spec import Opcode
from sim_backend.board import make_board
from tests.test_conformance import run_suite, tcp_board


def test_burst_commit_check_follows_a_busy_commit():
    """kills bench.conformance.bulkmode._settled (a BUSY COMMIT taken as the final answer): each
    COMMIT takes 2 ms and the acknowledge time is 0, so every COMMIT is answered BUSY first."""
    fw = make_board(9, 0, "ideal")
    fw.ack_s = 0.0
    commit = fw._handlers[Opcode.COMMIT]

    def slow_commit(*request):
        time.sleep(0.002)
        return commit(*request)

    fw._handlers[Opcode.COMMIT] = slow_commit
    with tcp_board(fw) as url:
        out = run_suite(url)
    outcome = out["op.bulk_put/2"]
    assert outcome.outcome == "pass", (outcome.message, outcome.expected, outcome.actual)
