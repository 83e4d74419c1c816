"""A chip layer's scale and its stuck cells, on hand-built cases (issue 15, next steps):

- a layer trained hardware-aware is mapped at the g_unit it was trained for (the model file's
  metadata), a fine-tuned one at its fine-tuning scale; a plain layer keeps the mapper's
  MSE-optimal scale;
- the stuck cells write-verify reports are routed around: the healthy partner of a stuck
  device is re-programmed so the pair's effective weight stays within one quantisation step,
  the stuck device keeps its stuck level as its target, and chip-in-the-loop fine-tuning keeps
  routing around the same cells.

Levels: 0, 10, ..., 150 uS; the G_UNIT register holds 1 nS codes.
"""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

import sim_backend  # noqa: F401  (registers pesim://)
from bench.finetune import ChipLayerTuner
from bench.hybrid import HybridRunner, trained_g_unit_s
from bench.network.model import Dense, InputConfig, Network
from bench.session import register_sim_urls
from drivers.pechip import PEChip
from sim_backend.die import create_die

US = 1e-6
WV_TOL = 5 * US
"""The bench's default write-verify tolerance (bench.programming.default_schedule)."""


def hw_meta(g_unit_s: float | None = 50 * US, layers: str = "chip", finetune_scale_s: float | None = None) -> dict:
    """Model metadata as `snnbench train --hw-aware` (and `snnbench finetune`) write it."""
    hw = None if g_unit_s is None else {"quantize": True, "g_max_s": 150 * US, "g_step_s": 10 * US,
                                        "g_unit_s": g_unit_s, "layers": layers}
    md: dict = {"training": {"hw_aware": True, "config": {"hw_aware": True, "hw": hw}}}
    if finetune_scale_s is not None:
        md["finetune"] = {"scale_s": finetune_scale_s, "chip_url": "pesim://?seed=1&fidelity=typical"}
    return md


def one_layer(w: np.ndarray, metadata: dict | None = None) -> Network:
    """A single chip layer on 4 inputs (a 1 x 2 sensor, 2 polarities)."""
    return Network([Dense(np.asarray(w, float), clamp=3.0)], chip_layer=0, metadata=metadata or {},
                   input=InputConfig(sensor_width=2, sensor_height=1, padding=0, pool=1))


def two_layers(metadata: dict) -> Network:
    return Network([Dense(np.full((3, 4), 0.5), clamp=5.0), Dense(np.full((2, 3), 0.5), clamp=3.0)],
                   chip_layer=1, metadata=metadata,
                   input=InputConfig(sensor_width=2, sensor_height=1, padding=0, pool=1))


# --- 1. which scale ------------------------------------------------------------------------------
@pytest.mark.parametrize("metadata, idx, want", [
    ({}, 1, None),                                                        # no training record
    ({"training": {"hw_aware": False, "config": {"hw_aware": False, "hw": None}}}, 1, None),   # plain
    (hw_meta(40 * US), 1, 40 * US),                                       # the training's g_unit
    (hw_meta(None), 1, 50 * US),                                          # no hw config: the register default
    (hw_meta(50 * US, finetune_scale_s=70.447 * US), 1, 70.447 * US),     # fine-tuned: the tuning scale wins
    (hw_meta(50 * US, layers="chip"), 0, None),                           # only the chip layer was hw-aware
    (hw_meta(50 * US, layers="all"), 0, 50 * US),                         # every layer was
    (hw_meta(50 * US, finetune_scale_s=70.447 * US), 0, 50 * US),         # fine-tuning touched the chip layer only
])
def test_trained_g_unit_comes_from_the_model_metadata(metadata, idx, want):
    """Protects trained_g_unit_s: reads the hw-aware g_unit / fine-tuning scale the model file
    records (bench/commands/train.py, bench/commands/finetune.py), per layer."""
    net = two_layers(metadata if idx == 1 or "finetune" not in metadata else
                     {**metadata, "training": {**metadata["training"], "config": {
                         **metadata["training"]["config"], "hw": {**metadata["training"]["config"]["hw"],
                                                                  "layers": "all"}}}})
    got = trained_g_unit_s(net, idx)
    assert (got is None) if want is None else got == pytest.approx(want, rel=1e-12)


def _prepare(net: Network, url: str = "pesim://?fidelity=ideal&seed=1", **kw):
    register_sim_urls()
    with PEChip(url) as chip:
        runner = HybridRunner(net, chip, **kw)
        return runner.prepare()[0]


def test_hw_aware_layer_maps_at_its_trained_g_unit_exactly():
    """Protects the 'trained' scale policy: weights 2.0 and 0.62 trained at 50 uS per unit map
    to 100 uS (level 10) and 31 uS -> 30 uS (level 3), G_UNIT = 50 uS; the MSE-optimal scale
    for the same weights would put 2.0 on the top level (75 uS per unit)."""
    w = np.array([[2.0, 0.62, 0.0, 0.0], [0.0, 0.0, -2.0, -0.62]])
    st = _prepare(one_layer(w, hw_meta(50 * US)), scale_policy="trained")
    assert st.g_unit_s == pytest.approx(50 * US, rel=1e-12)
    assert st.registers["G_UNIT"]["in_force"] == pytest.approx(50 * US, rel=1e-12)
    assert st.mapping["scale_s"] == pytest.approx(50 * US, rel=1e-12) and st.mapping["scale_source"] == "trained"
    np.testing.assert_allclose(st.targets_s[:4, :4] / US, [[100, 0, 0, 0], [30, 0, 0, 0],
                                                           [0, 0, 0, 100], [0, 0, 0, 30]], atol=1e-6)
    # (the board reports its levels in single precision: 1e-7 relative)
    np.testing.assert_allclose(st.weights_target, [[2.0, 0.6, 0, 0], [0, 0, -2.0, -0.6]], atol=1e-6)


def test_plain_layer_keeps_the_mse_scale():
    """Protects the policy's fallback: a layer without hw-aware training is mapped at the
    MSE-optimal scale.  Weights {2.0, 0.5}: the scale can only put 2.0 at or below the top
    level (>= 75 uS per unit); at 75 uS 2.0 is exact and 0.5 -> 37.5 -> 40 uS (error 0.033),
    any larger scale clips 2.0 by more than it helps 0.5 (hand-derived), so 75 uS."""
    w = np.array([[2.0, 0.5, 0.0, 0.0], [0.0, 0.0, -2.0, -0.5]])
    for net, policy in ((one_layer(w), "trained"), (one_layer(w, hw_meta(50 * US)), "mse")):
        st = _prepare(net, scale_policy=policy)
        assert st.g_unit_s == pytest.approx(75 * US, abs=1e-12)
        assert st.mapping["scale_source"] == "mse"
        np.testing.assert_allclose(st.targets_s[:2, 0] / US, [150, 40], atol=1e-6)


def test_unknown_scale_policy_is_refused():
    with pytest.raises(ValueError, match="scale_policy"):
        HybridRunner(one_layer(np.ones((2, 4))), None, scale_policy="auto")


# --- 2. stuck cells ------------------------------------------------------------------------------
STUCK_ROW, STUCK_COL, STUCK_G = 1, 0, 180 * US
"""G+ of neuron 0 on input row 1 is stuck-on at 180 uS (the device model's stuck-on range is
160-200 uS)."""
W4x2 = np.array([[1.0, 1.4, -2.0, 0.0],     # neuron 0: row 1 wants +1.4 = +70 uS at 50 uS/unit
                 [0.6, 0.0, 0.0, -1.0]])


@pytest.fixture
def stuck_die(tmp_path):
    """An ideal die (no noise, exact levels) with one stuck-on cell; a fresh copy per use."""
    base = tmp_path / "base.h5"
    create_die(base, 1, "ideal")
    with h5py.File(base, "r+") as f:
        f["cells/fab_stuck_on"][STUCK_ROW, STUCK_COL] = True
        g = f["cells/g_fab_stuck"][()]
        g[STUCK_ROW, STUCK_COL] = STUCK_G
        f["cells/g_fab_stuck"][...] = g
    n = iter(range(100))

    def fresh() -> str:
        p = tmp_path / f"die{next(n)}.h5"
        shutil.copy(base, p)
        return f"pesim://?die={p}&freeze=1"
    return fresh


def test_routed_mapping_keeps_the_stuck_columns_weight_within_a_step(stuck_die):
    """Protects route_stuck in HybridRunner._program: with G+ stuck at 180 uS, +1.4 (70 uS) is
    realised by G- = 110 uS (level 11), so the effective weight stays within one step (0.2
    units = 10 uS) of 1.4; unrouted it is (180 - 0) / 50 = 3.6.  Only the partner is written
    again; the stuck device keeps its stuck level (150 uS, the nearest) as its target."""
    net = one_layer(W4x2, hw_meta(50 * US))
    plain = _prepare(net, stuck_die(), route_stuck=False, scale_policy="trained")
    assert plain.weights_realised[0, 1] == pytest.approx(3.6, abs=WV_TOL / (50 * US))
    assert plain.bad_cells_s is None and "routing" not in plain.programming

    st = _prepare(net, stuck_die(), route_stuck=True, scale_policy="trained")
    assert abs(st.weights_realised[0, 1] - 1.4) <= 0.2
    assert st.targets_s[STUCK_ROW, STUCK_COL] == pytest.approx(150 * US, rel=1e-6)
    assert st.targets_s[STUCK_ROW, STUCK_COL + 1] == pytest.approx(110 * US, rel=1e-6)
    assert st.programming["routing"]["stuck_cells"] == 1
    assert st.programming["routing"]["rerouted_pairs"] == 1
    assert st.programming["routing"]["uncorrectable_pairs"] == 0
    assert st.programming["routing"]["cells"] == 1            # the partner only, not the stuck device
    assert st.mapping["rerouted_pairs"] == 1
    bad = np.isfinite(st.bad_cells_s)
    assert bad.sum() == 1 and bad[STUCK_ROW, STUCK_COL]
    assert st.bad_cells_s[STUCK_ROW, STUCK_COL] == pytest.approx(STUCK_G, rel=0.01)
    # every other weight is where it was mapped (write-verify residual only)
    others = np.ones_like(W4x2, bool)
    others[0, 1] = False
    np.testing.assert_allclose(st.weights_realised[others], W4x2[others], atol=WV_TOL / (50 * US))


def test_finetuning_keeps_routing_and_writes_the_models_weights_unrouted(stuck_die):
    """Protects ChipLayerTuner: its re-mapping routes around the same stuck cells (unchanged
    weights -> no cell written; without the bad-cell map the partner would be reset to 0 uS),
    while the weights it writes into the model are the levels of the weights themselves
    (1.4), not this die's workaround ((150 - 110) / 50 = 0.8)."""
    register_sim_urls()
    net = one_layer(W4x2, hw_meta(50 * US))
    with PEChip(stuck_die()) as chip:
        runner = HybridRunner(net, chip, route_stuck=True, scale_policy="trained")
        runner.prepare()
        tuner = ChipLayerTuner(runner, 0)
        assert tuner.apply(net.layers[0].weight)["cells_reprogrammed"] == 0
        np.testing.assert_allclose(tuner.quantised(net.layers[0].weight), W4x2, atol=1e-6)


def test_default_flow_routes_and_keeps_the_mse_scale(stuck_die):
    """The defaults the benchmark supports (docs/BENCHMARKS.md, issue 15 — ghw): a default
    runner routes around the stuck cell and maps even a hw-aware layer at the MSE-optimal
    scale (W4x2: max |w| = 2.0 -> not the trained 50 uS per unit)."""
    st = _prepare(one_layer(W4x2, hw_meta(50 * US)), stuck_die())
    assert st.mapping["scale_source"] == "mse" and st.g_unit_s != pytest.approx(50 * US)
    assert st.programming["routing"]["rerouted_pairs"] == 1


def test_budget_passes_the_mapping_flow_to_every_die(monkeypatch):
    """Protects measure_budget's `mapping`: every die of the budget is programmed with the
    flow asked for (here: not routed, trained scale), and the budget says which flow it used."""
    import bench.hybrid as hy
    from bench.budget import measure_budget

    seen: list[tuple[str, bool]] = []
    real = hy.HybridRunner

    class Spy(real):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen.append((self.scale_policy, self.route_stuck))

    monkeypatch.setattr(hy, "HybridRunner", Spy)
    net = one_layer(W4x2, hw_meta(50 * US))
    x = np.random.default_rng(0).random((3, 300, 4)) < 0.3
    b = measure_budget(net, x, np.array([0, 1, 0]), fidelity="ideal", chip_seeds=(1,),
                       mapping={"scale_policy": "trained", "route_stuck": False})
    assert len(seen) >= 2 and set(seen) == {("trained", False)}
    assert b["mapping"] == {"scale_policy": "trained", "route_stuck": False}
    seen.clear()
    b = measure_budget(net, x, np.array([0, 1, 0]), fidelity="ideal", chip_seeds=(1,))
    assert set(seen) == {(hy.DEFAULT_SCALE_POLICY, hy.DEFAULT_ROUTE_STUCK)}
    assert b["mapping"] == {"scale_policy": hy.DEFAULT_SCALE_POLICY, "route_stuck": hy.DEFAULT_ROUTE_STUCK}


def test_compare_models_passes_and_reports_the_mapping_flow(monkeypatch):
    """Protects compare_models' `mapping`: the comparison's dies use the flow asked for, and the
    table's header names it."""
    import bench.hybrid as hy
    from bench.training_gain import compare_models, format_comparison

    seen: list[tuple[str, bool]] = []
    real = hy.HybridRunner

    class Spy(real):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen.append((self.scale_policy, self.route_stuck))

    monkeypatch.setattr(hy, "HybridRunner", Spy)
    net = one_layer(W4x2, hw_meta(50 * US))
    x = np.random.default_rng(0).random((3, 300, 4)) < 0.3
    c = compare_models([("hw", "hw-aware", net)], x, np.array([0, 1, 0]), fidelity="ideal", chip_seeds=(1, 2),
                       mapping={"scale_policy": "trained", "route_stuck": False})
    assert seen == [("trained", False)] * 2
    assert c["mapping"] == {"scale_policy": "trained", "route_stuck": False}
    assert "scale trained, not routed around stuck cells" in format_comparison(c)
