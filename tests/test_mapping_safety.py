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
    assert st.programming["cells"] == 128 * 24 and st.programming["success"] >= 128 * 24 - 2
    described = runner.describe()["chip_layers"]["0"]
    assert described["programming"]["cells"] == 3072 and described["g_unit_s"] == pytest.approx(150 * US)


def test_hybrid_outputs_are_boolean_spikes():
    """HybridResult.outputs / software_outputs are documented as bool spike arrays."""
    w = np.random.default_rng(4).normal(0.0, 1.0, (3, 4))
    net = Network([Dense(w, clamp=3.0)], chip_layer=0,
                  input=InputConfig(sensor_width=2, sensor_height=1, padding=0, pool=1))
    x = np.random.default_rng(5).random((2, 300, 4)) < 0.3
    with PEChip("pesim://?seed=5&fidelity=ideal") as chip:
        res = HybridRunner(net, chip).run(x)
    assert res.outputs.dtype == bool and res.outputs.shape == (2, 300, 3)
    assert res.software_outputs is not None and res.software_outputs.dtype == bool
    assert res.outputs.any()


def test_route_around_aims_at_the_clamped_weight():
    """A weight beyond -clamp is routed as -clamp: at 30 uS / unit, -5 clamped to -3 is -90 uS;
    with G+ stuck at 20 uS the partner G- carries 110 uS (level 11), not the 150 uS of -5."""
    w = np.zeros((2, 1))
    w[0, 0] = -5.0
    bad = np.full((128, 24), np.nan)
    bad[0, 0] = 20 * US
    m = M.map_weights(w, clamp=3.0, scale_s=30 * US, bad_cells_s=bad)
    assert tuple(m.target_levels[0, 0:2]) == (2, 11)
    assert m.uncorrectable_pairs == 0


def test_route_around_counts_a_pair_more_than_half_a_level_off_as_uncorrectable():
    """-1.0 at 50 uS / unit wants -50 uS; G- stuck at 38 uS: the best is G+ = 0, 12 uS short -
    more than half a level (5 uS): uncorrectable."""
    w = np.zeros((1, 1))
    w[0, 0] = -1.0
    bad = np.full((128, 24), np.nan)
    bad[0, 1] = 38 * US
    m = M.map_weights(w, clamp=3.0, scale_s=50 * US, bad_cells_s=bad)
    assert tuple(m.target_levels[0, 0:2]) == (0, 4)
    assert m.uncorrectable_pairs == 1
    bad[0, 1] = 46 * US                                  # 4 uS short: within half a level
    assert M.map_weights(w, clamp=3.0, scale_s=50 * US, bad_cells_s=bad).uncorrectable_pairs == 0


def test_route_around_prefers_the_smaller_conductance_between_equally_good_choices():
    """+0.9 at 50 uS / unit = +45 uS with G+ stuck at 80 uS: G- = 30 or 40 uS are both 5 uS
    off; the smaller (less read current) wins."""
    w = np.zeros((1, 1))
    w[0, 0] = 0.9
    bad = np.full((128, 24), np.nan)
    bad[0, 0] = 80 * US
    m = M.map_weights(w, clamp=3.0, scale_s=50 * US, bad_cells_s=bad)
    assert tuple(m.target_levels[0, 0:2]) == (8, 3)


def test_software_forward_is_the_network_model_forward():
    """The runner's all-software path (batched, threaded) gives the network model's spikes."""
    from bench.hybrid import plan_network

    net = Network.create((800, 30, 11), seed=1, init_scale=2.0)
    runner = HybridRunner(net, None, plan=plan_network(net, None, chip_layers=[]))
    x = np.random.default_rng(0).random((3, 300, 800)) < 0.05
    got = runner.software_forward(x)
    want = net.forward(x)[-1].astype(bool)
    assert want.sum() > 10
    np.testing.assert_array_equal(got, want)


def test_require_chip_layers_uses_the_given_geometry():
    """A 30-neuron layer needs 3 PEs: refused on the default one-PE chip, placed on a 4-PE one."""
    from bench.errors import ConfigError
    from bench.hybrid import ChipGeometry, require_chip_layers

    net = Network([Dense(np.random.default_rng(0).normal(0, 0.5, (30, 50)))],       # 50 -> 30
                  input=InputConfig(sensor_width=5, sensor_height=5, padding=0, pool=1))
    with pytest.raises(ConfigError, match=r"^model.h5: no layer of the model fits the chip.*needs 3 PE"):
        require_chip_layers(net, "model.h5")
    plan = require_chip_layers(net, "model.h5", ChipGeometry(pes=4))
    assert plan.chip_layers == [0] and plan.layers[0].pes_used == 3


def test_level_maps_accept_whole_floats_and_refuse_nan():
    lev = np.zeros((128, 24))
    lev[0, 0] = 15.0
    assert M.map_levels(lev).target_levels[0, 0] == 15
    lev[1, 1] = np.nan
    with pytest.raises(M.MappingError, match="^level map contains NaN or inf$"):
        M.map_levels(lev)
    lev[1, 1] = 2.5
    with pytest.raises(M.MappingError, match="^level map must hold integer level indices$"):
        M.map_levels(lev)


def test_mapping_attributes_for_the_run_file():
    w = np.array([[1.0, -2.0, 0.5]])                    # 1 row, 3 neurons
    m = M.map_weights(w, clamp=3.0, scale_s=50 * US)
    a = m.as_attrs()
    assert (a["rows_used"], a["neurons_used"], a["clamp"]) == (1, 3, 3.0)
    assert a["scale_s"] == a["g_unit_s"] == 50 * US and a["source"] == "weights"
    assert (a["rerouted_pairs"], a["uncorrectable_pairs"]) == (0, 0)
    assert a["levels_s"] == pytest.approx([i * 10 * US for i in range(16)])
    # 1.0 -> 50 uS, 2.0 -> 100 uS, 0.5 -> 25 uS ~ level 2 (20 uS, tie goes down): rms of (0, 0, 0.1)
    assert a["quantisation_rms"] == pytest.approx(np.sqrt(0.1 ** 2 / 3))
