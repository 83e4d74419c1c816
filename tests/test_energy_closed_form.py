"""Energy per rail in closed form, at non-default register values, against hand-derived numbers.

The model (sim_backend/physics/energy.py, docs/chip_model.md) says: while the neurons are
enabled for ``t = n (steps dt + latency)`` every component draws its static power; on top:

* crossbar charge ``Q = V_spike * t_on * sum over input spikes of the row's conductance sum``
  (t_on = one 100 ns step) costs ``tia_j_per_c * Q`` (TIA) and ``array_j_per_c * Q`` (array);
* every output spike costs ``soma_j_per_spike`` (soma);
* every input spike costs ``wl_j_per_event`` (word line) and ``bl_j_per_event (V_spike / 0.2 V)^2``
  on the bit line - a line capacitance charged to V_spike: C V^2, calibrated at 0.2 V;
* every step re-biases the 24 source lines: ``sl_j_per_col_step`` each;
* every input and output spike crosses the I/O: ``io_j_per_event``;
* rails: VDDA = tia + soma + array + other, VDDD = wl + bl + sl + controller, VDDIO = io,
  plus each rail's leakage current x rail voltage x duration.

A read of ``k`` cells with ``a`` averages lasts ``k a t_read`` (1 µs each) and costs the read
current ``V_read^2 G t_read a`` (array), one of the 12 TIAs' static power, the word-line and
bit-line drivers' static power plus ``wl_j_per_event`` and ``bl_j_per_event (V_read / 0.2 V)^2`` per
read.  The numbers below are worked out from these sentences with the calibrated constants
(the model's parameters), not by calling the model.
"""
from __future__ import annotations

import numpy as np
import pytest

from drivers.pechip import PEChip
from sim_backend.physics.energy import CAL

ST = dict(CAL.p_static_w)
LEAK_A = {"VDDA": 2e-6, "VDDD": 3e-6, "VDDIO": 1e-6}
RAIL_V = {"VDDA": 1.8, "VDDD": 1.8, "VDDIO": 3.3}
US = 1e-6


@pytest.fixture
def ideal_chip():
    with PEChip("pesim://?seed=1&fidelity=ideal") as chip:
        g = np.zeros((128, 24))
        g[0, 0], g[0, 1] = 100 * US, 20 * US        # row 0: 120 uS in total
        g[1, 0], g[1, 3] = 60 * US, 30 * US         # row 1:  90 uS in total
        vchip = chip._port.firmware.chip
        vchip.set_conductances(g)
        assert np.array_equal(vchip.conductances(), g)   # ideal chip: what was set is what reads
        yield chip


def _rails(chip) -> dict:
    return chip.sim_query("energy_j")


def _delta(before: dict, after: dict) -> dict:
    return {r: after[r] - before[r] for r in before}


@pytest.mark.parametrize("v_spike, dt", [(0.35, 250e-9), (0.1, 40e-9)])
def test_inference_energy_per_rail_in_closed_form(ideal_chip, v_spike, dt):
    """Protects the quadratic bit-line energy in V_SPIKE, the charge linear in V_SPIKE, the
    time-step dependence of the static energy, the output spikes in the I/O energy and the
    leakage of every rail."""
    chip = ideal_chip
    chip.write_register("V_SPIKE", v_spike)
    chip.write_register("TIME_STEP", dt)
    chip.write_register("N_STEPS", 20)
    spikes = np.zeros((1, 20, 128), bool)
    spikes[0, :10, 0] = True     # row 0: 10 spikes
    spikes[0, 5, 1] = True       # row 1: 1 spike
    before = _rails(chip)
    out = chip.infer(spikes)
    got = _delta(before, _rails(chip))

    n_out = int(out.sum())
    assert n_out > 0                                   # neuron 0 fires: weight 1.6 per spike
    n_in, steps = 11, 20
    t = 1 * (steps * dt + 14.31e-6)
    q = v_spike * 100e-9 * (10 * 120 * US + 1 * 90 * US)
    vdda = ((ST["tia"] + ST["soma"] + ST["array"] + ST["other"]) * t
            + (CAL.tia_j_per_c + CAL.array_j_per_c) * q + CAL.soma_j_per_spike * n_out)
    vddd = ((ST["wl"] + ST["bl"] + ST["sl"] + ST["controller"]) * t + CAL.wl_j_per_event * n_in
            + CAL.bl_j_per_event * n_in * (v_spike / 0.2) ** 2 + CAL.sl_j_per_col_step * steps * 24)
    vddio = ST["io"] * t + CAL.io_j_per_event * (n_in + n_out)
    want = {"VDDA": vdda, "VDDD": vddd, "VDDIO": vddio}
    for r in want:
        want[r] += LEAK_A[r] * RAIL_V[r] * t
    for r in want:
        assert got[r] == pytest.approx(want[r], rel=1e-9), r


def test_bit_line_energy_grows_with_the_square_of_v_spike(ideal_chip):
    """Dynamic VDDD energy of the same spikes at 0.4 V and 0.1 V: word line and source lines
    cancel, the bit line scales 16x."""
    chip = ideal_chip
    chip.write_register("N_STEPS", 10)
    spikes = np.zeros((1, 10, 128), bool)
    spikes[0, :, 2] = True                              # row 2 has no conductance: no output
    e = {}
    for v in (0.4, 0.1):
        chip.write_register("V_SPIKE", v)
        before = _rails(chip)
        chip.infer(spikes)
        e[v] = _delta(before, _rails(chip))["VDDD"]
    assert e[0.4] - e[0.1] == pytest.approx(CAL.bl_j_per_event * 10 * ((0.4 / 0.2) ** 2 - (0.1 / 0.2) ** 2), rel=1e-9)


@pytest.mark.parametrize("v_read, averages", [(0.3, 4), (0.12, 1)])
def test_read_energy_per_rail_in_closed_form(ideal_chip, v_read, averages):
    chip = ideal_chip
    rows, cols = np.array([0, 1]), np.array([0, 3])    # 100 uS and 30 uS
    before = _rails(chip)
    g = chip.read_cells(rows, cols, v_read_v=v_read, averages=averages)
    got = _delta(before, _rails(chip))
    assert g == pytest.approx([100 * US, 30 * US], rel=1e-6)
    k = 2
    dur = k * averages * 1e-6
    want = {
        "VDDA": v_read ** 2 * 130 * US * 1e-6 * averages + ST["tia"] / 12 * dur,
        "VDDD": ST["wl"] * dur + CAL.wl_j_per_event * k * averages
        + ST["bl"] * dur + CAL.bl_j_per_event * k * averages * (v_read / 0.2) ** 2,
        "VDDIO": 0.0,
    }
    for r in want:
        want[r] += LEAK_A[r] * RAIL_V[r] * dur
        assert got[r] == pytest.approx(want[r], rel=1e-9), r
