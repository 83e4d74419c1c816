"""Mapping decisions that protect the layer on the chip, checked on hand-built cases:
stuck devices keep their stuck target when a pair is routed around them, and a scale the
G_UNIT register cannot hold is clipped *and* the weights are re-mapped to the clipped scale."""
from __future__ import annotations

import numpy as np
import pytest

import sim_backend  # noqa: F401  (registers pesim://)
from bench import mapping as M
from bench.hybrid import HybridRunner
from bench.network.model import Dense, InputConfig, Network
from drivers.pechip import PEChip

US = 1e-6
# default levels: 0, 10, 20, ... 150 uS -> level index = conductance / 10 uS


@pytest.mark.parametrize("weight, stuck_col, stuck_s, want_levels", [
    # +1.0 at 50 uS/unit = +50 uS; G+ stuck at 80 uS -> G- = 30 uS (level 3); G+ stays at level 8
    (1.0, 0, 80 * US, (8, 3)),
    # -1.0 = -50 uS; G- stuck at 120 uS -> G+ = 70 uS (level 7); G- stays at level 12
    (-1.0, 1, 120 * US, (7, 12)),
    # +1.0; G+ stuck between levels at 83 uS -> G- = 33 uS, nearest level 30 uS (3); G+ at 80 uS (8)
    (1.0, 0, 83 * US, (8, 3)),
    # +0.6 = +30 uS; G- stuck-on at 40 uS -> G+ = 70 uS (7); G- stays at level 4
    (0.6, 1, 40 * US, (7, 4)),
])
def test_route_around_keeps_the_stuck_device_at_its_stuck_target(weight, stuck_col, stuck_s, want_levels):
    """Protects route_around: the stuck device's target is its stuck level, never the level
    the search would like it to have (that write could not succeed and hides the fault)."""
    w = np.zeros((3, 2))
    w[1, 0] = weight
    bad = np.full((128, 24), np.nan)
    bad[1, stuck_col] = stuck_s
    m = M.map_weights(w, clamp=3.0, scale_s=50 * US, bad_cells_s=bad)
    assert tuple(m.target_levels[1, 0:2]) == want_levels
    assert m.rerouted_pairs == 1 and m.uncorrectable_pairs == 0
    # every other cell is untouched by the rerouting: zero weight -> level 0
    others = m.target_levels.copy()
    others[1, 0:2] = 0
    assert not others.any()


def test_route_around_on_a_level_map_keeps_stuck_targets():
    lev = np.zeros((128, 24), np.int64)
    lev[5, 6], lev[5, 7] = 9, 2          # pair (5, 3): +70 uS
    bad = np.full((128, 24), np.nan)
    bad[5, 7] = 50 * US                  # G- stuck at 50 uS -> G+ = 120 uS (12)
    m = M.route_around(M.map_levels(lev), bad)
    assert tuple(m.target_levels[5, 6:8]) == (12, 5)


def test_a_scale_beyond_the_g_unit_register_is_clipped_and_the_weights_re_mapped():
    """Protects the re-mapping after G_UNIT clipping: weights of at most 0.52 want ~290 uS
    per unit; G_UNIT holds at most 150 uS, so the layer must be mapped at 150 uS per unit."""
    w = np.array([[0.4, -0.2, 0.52, 0.0],        # neuron 0 (n_out, n_in)
                  [0.0, 0.12, 0.0, -0.33]])      # neuron 1
    net = Network([Dense(w, clamp=3.0)], chip_layer=0,           # 4 inputs: 1 x 2 pixels x 2 polarities
                  input=InputConfig(sensor_width=2, sensor_height=1, padding=0, pool=1))
    assert M.map_weights(w.T, clamp=3.0).scale_s > 200 * US      # the unclipped optimum
    # at 150 uS / unit: 0.4 -> 60 uS, 0.2 -> 30, 0.52 -> 78 ~ 80, 0.12 -> 18 ~ 20, 0.33 -> 49.5 ~ 50
    want = np.zeros((128, 24))
    want[0, 0] = 60 * US
    want[1, 1], want[1, 2] = 30 * US, 20 * US
    want[2, 0] = 80 * US
    want[3, 3] = 50 * US
    with PEChip("pesim://?seed=5&fidelity=ideal") as chip:
        runner = HybridRunner(net, chip)
        st = runner.prepare()[0]
        in_force = chip.read_register("G_UNIT")
    assert in_force == pytest.approx(150 * US)
    assert st.g_unit_s == pytest.approx(150 * US)
    assert st.registers["G_UNIT"]["in_force"] == pytest.approx(150 * US)
    np.testing.assert_allclose(st.targets_s, want, atol=1e-12)
    assert "G_UNIT" in st.mapping["scale_note"]
    # what the chip now computes is the layer's weights to within half a level (5 uS / 150 uS)
    assert np.abs(st.weights_realised - w).max() < 5 * US / (150 * US) + 0.02
