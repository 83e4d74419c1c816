"""Host-driven and board-side write-verify run one normative algorithm (docs/protocol.md,
"Write-verify") and give bit-identical per-cell results on the ideal chip."""
from __future__ import annotations

import math

import numpy as np
import pytest

import sim_backend  # noqa: F401  (registers pesim://)
from bench import programming as P
from drivers.pechip import PEChip
from firmware_iface.write_verify import PulseSchedule

SCHEDULE = PulseSchedule(tolerance_s=2.5e-6)
TOL_NS = 2500


def nano_siemens(x: float) -> int:
    """The spec's rule, written independently: floor(x * 1e9 + 0.5) in double precision."""
    return int(math.floor(float(x) * 1e9 + 0.5))


def _level_map(seed: int = 21) -> np.ndarray:
    """A random 128x24 map of the chip's conductance levels (S)."""
    with PEChip("pesim://?seed=9&fidelity=ideal") as chip:
        levels = np.asarray(chip.info().levels_s)
    return levels[np.random.default_rng(seed).integers(0, levels.size, (128, 24))]


def _edge_map(first: np.ndarray, readback: np.ndarray, seed: int = 5):
    """Second-pass targets: 96 cells moved so that their present conductance sits exactly on
    (or 1 nS beyond) an edge of their tolerance window; the others keep their targets."""
    rng = np.random.default_rng(seed)
    targets = first.copy()
    on = np.flatnonzero(readback.ravel() > 10e-6)
    cells = rng.choice(on, 96, replace=False)
    offsets = np.array([TOL_NS, -TOL_NS, TOL_NS + 1, -(TOL_NS + 1)] * 24)
    for i, off in zip(cells, offsets):
        r, c = divmod(int(i), 24)
        t_ns = nano_siemens(readback[r, c]) + int(off)
        targets[r, c] = t_ns / 1e9
        assert nano_siemens(targets[r, c]) == t_ns
    return targets, cells, offsets


def _program(mode: str, first: np.ndarray):
    """Program the level map, then the edge map; results of both passes and final conductances."""
    with PEChip("pesim://?seed=9&fidelity=ideal") as chip:
        res1 = P.program_array(chip, first, SCHEDULE, mode=mode, probe=False)
        readback = chip.read_array(SCHEDULE.v_read_v, SCHEDULE.read_averages)
        second, cells, offsets = _edge_map(first, readback)
        res2 = P.program_array(chip, second, SCHEDULE, mode=mode, probe=False)
        final = np.asarray(chip.sim_query("conductances"))
    return (res1, res2), final, (cells, offsets)


def _same(a, b) -> None:
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.cols, b.cols)
    assert np.array_equal(a.pulses, b.pulses)
    for flag in ("success", "stuck", "confirm_failed"):
        assert np.array_equal(getattr(a, flag), getattr(b, flag)), flag
    assert np.array_equal(a.g_s.view(np.uint64), b.g_s.view(np.uint64))  # bit for bit


def test_host_and_board_write_verify_are_bit_identical():
    first = _level_map()
    host, g_host, (cells, offsets) = _program("host", first)
    board, g_board, edges = _program("board", first)
    assert np.array_equal(cells, edges[0])
    for h, b in zip(host, board):
        _same(h, b)
    assert np.array_equal(g_host, g_board)
    assert host[0].pulses.sum() > 3072  # the map really was programmed
    # the window is inclusive: exactly on an edge needs no pulse, 1 nS beyond it does
    second = host[1]
    order = {(int(r), int(c)): k for k, (r, c) in enumerate(zip(second.rows, second.cols))}
    for i, off in zip(cells, offsets):
        k = order[divmod(int(i), 24)]
        if abs(off) == TOL_NS:
            assert second.pulses[k] == 0 and second.success[k], (i, off)
        else:
            assert second.pulses[k] >= 1, (i, off)


def test_targets_cross_the_wire_as_integer_nano_siemens():
    import struct

    from firmware_iface import messages as msg

    t = 12.3456785e-6  # 12345.6785 nS -> 12346 nS
    payload = msg.encode_write_verify(SCHEDULE, np.array([1]), np.array([2]), np.array([t]))
    n = len(SCHEDULE.to_bytes())
    assert payload[n:] == struct.pack("<I", 1) + struct.pack("<BBHI", 1, 2, 0, nano_siemens(t))
    assert nano_siemens(t) == 12346


@pytest.mark.parametrize("tol_s, ns", [(2.5e-6, 2500), (1e-6, 1000), (3.3333e-6, 3333)])
def test_tolerance_crosses_the_wire_as_integer_nano_siemens(tol_s, ns):
    import struct

    b = PulseSchedule(tolerance_s=tol_s).to_bytes()
    assert struct.unpack_from("<I", b, 24)[0] == ns == nano_siemens(tol_s)
