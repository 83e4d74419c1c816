"""Issue 3 item 5: the energy calibration on the real thing.

The reference model's chip layer (bench/models/reference.h5, layer 120->11) on the default
synthetic gesture set (``bench.data.synth.generate(dir, seed=0)``, test split), run through a
``typical`` virtual chip with the mapped conductances: average power, energy per sample and
every breakdown item stay within +-10 % of the published figures.  The same run re-measures
the statistics the seeded reference workload is built from (``energy.REF_*``) and checks them.
"""
import numpy as np
import pytest

from sim_backend.chip import VirtualChip
from sim_backend.physics import energy

pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def gesture_layer(tmp_path_factory):
    from bench.data.dataset import load_split
    from bench.data.preprocess import PreprocessConfig, batch_to_spikes
    from bench.data.synth import generate
    from bench.demo import REFERENCE_MODEL
    from bench.mapping import map_weights
    from bench.network.modelfile import load_model

    data = generate(tmp_path_factory.mktemp("synth") / "gestures", seed=0)
    x = batch_to_spikes(load_split(data, "test"), PreprocessConfig())
    net = load_model(REFERENCE_MODEL)
    k = net.chip_layer
    layer = net.layers[k]
    assert (layer.n_in, layer.n_out) == (120, 11)
    h = net.forward_from(0, x, stop=k, batch_size=32)[-1].astype(bool)   # chip-layer inputs
    chip = VirtualChip(chip_seed=0, run_seed=0, fidelity="typical")
    m = map_weights(np.asarray(layer.weight).T, levels_s=chip.levels_s, clamp=3.0)
    spikes = np.zeros(h.shape[:2] + (chip.rows,), bool)
    spikes[:, :, :h.shape[2]] = h
    return spikes, m


def test_reference_workload_constants_match_the_gesture_layer(gesture_layer):
    spikes, m = gesture_layer
    n = spikes.shape[0]
    rates = spikes[:, :, :120].sum(axis=1) / 300
    assert rates.size == sum(energy.REF_RATE_COUNTS) + energy.REF_RATE_SILENT
    assert (rates == 0).sum() == energy.REF_RATE_SILENT
    counts, _ = np.histogram(rates[rates > 0], bins=energy.REF_RATE_EDGES)
    assert tuple(int(c) for c in counts) == energy.REF_RATE_COUNTS
    assert spikes.sum() / n == pytest.approx(4115, rel=0.01)
    lv = m.target_levels[:120, :22]
    pos, neg = lv[:, 0::2], lv[:, 1::2]
    assert ((pos > 0).sum(), (neg > 0).sum(), ((pos == 0) & (neg == 0)).sum()) == (
        energy.REF_LEVEL_SIGN["pos"], energy.REF_LEVEL_SIGN["neg"], energy.REF_LEVEL_SIGN["zero"])
    mag = np.maximum(pos, neg)
    assert tuple(int(c) for c in np.bincount(mag[mag > 0], minlength=16)[1:]) == energy.REF_LEVEL_COUNTS
    assert m.targets_s[:120, :22].mean() == pytest.approx(18.9e-6, rel=0.01)


def test_published_energy_figures_on_the_gesture_layer(gesture_layer):
    spikes, m = gesture_layer
    n = spikes.shape[0]
    chip = VirtualChip(chip_seed=0, run_seed=0, fidelity="typical")
    chip.set_conductances(m.targets_s)
    chip.regs.g_unit_s = m.g_unit_s
    e0, t0 = dict(chip.energy_j), chip.clock_s
    out = chip.run(spikes)
    comp = {k: chip.energy_j[k] - e0[k] for k in e0}
    total, dur = sum(comp.values()), chip.clock_s - t0
    assert dur / n == pytest.approx(44.31e-6, rel=1e-9)
    assert out.sum() / n == pytest.approx(452, rel=0.15)           # trained layer's output activity
    assert total / dur == pytest.approx(energy.P_AVG_W, rel=0.10)
    assert total / n == pytest.approx(energy.E_SAMPLE_J, rel=0.10)
    for k, frac in energy.BREAKDOWN.items():
        if frac == 0:
            assert comp[k] == 0, k
        else:
            assert comp[k] / total == pytest.approx(frac, rel=0.10), k
    assert (comp["tia"] + comp["soma"]) / total == pytest.approx(0.6178, rel=0.10)
