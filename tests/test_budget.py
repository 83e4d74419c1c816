"""The error budget (issue 15 item 4): ``bench.budget``, ``snnbench budget``, the simulator's
per-effect switches (``pesim://?p.<field>=``) and the input-spike faults of the row drivers."""
import dataclasses
import json

import numpy as np
import pytest

import sim_backend  # noqa: F401  (pesim://)
from bench.budget import EFFECTS, NOT_BUDGETED, chip_url, covered_fields, measure_budget
from bench.cli import main
from bench.network.model import Network
from bench.scoring import predict
from drivers.pechip import PEChip
from sim_backend.physics.params import PRESETS, ChipParams
from sim_backend.physics.rowdrive import drive_inputs
from tests.strict_json import loads_strict


def _net_on_levels(seed=0, n_in=64):
    """64 -> 11, the whole network on one PE, chip-layer weights ON the 16-level grid: multiples
    of 10 uS / 50 uS = 0.2 weight units within +-3 (150 uS), with +-3 present (pins the scale)."""
    net = Network.create((n_in, 11), seed=seed, init_scale=3.0)
    w = np.clip(np.round(net.layers[0].weight / 0.2) * 0.2, -3.0, 3.0)
    w[0, 0], w[1, 1] = 3.0, -3.0
    net.layers[0].weight = w
    return net


def _inputs(n=24, t=300, n_in=64, rate=0.06, seed=1):
    return np.random.default_rng(seed).random((n, t, n_in)) < rate


def _labels(net, x):
    """Labels = the software network's own decisions, so software accuracy is 100 %."""
    return predict(net.forward(x.astype(np.float64))[-1], net.n_classes)


# --- the simulator's switches ---------------------------------------------------------------
def test_pesim_parameter_override_switches_one_effect():
    """A fresh ideal array reads exactly 0 S; with only a read-noise floor switched on, two reads
    of the same cells differ by that floor's sigma times sqrt(2) (1 uS here, single reads)."""
    rows, cols = np.repeat(np.arange(128), 24), np.tile(np.arange(24), 128)
    with PEChip("pesim://?seed=3&fidelity=ideal") as chip:
        g0 = chip.read_cells(rows, cols, 0.2, averages=1)
    with PEChip("pesim://?seed=3&fidelity=ideal&p.read_noise_floor_s=1e-6") as chip:
        a = chip.read_cells(rows, cols, 0.2, averages=1)
        b = chip.read_cells(rows, cols, 0.2, averages=1)
    assert np.all(g0 == 0.0)
    assert 0.93e-6 < np.std(a - b) / np.sqrt(2) < 1.07e-6   # 3072 cells: sigma of the estimate ~1.3 %


@pytest.mark.parametrize("query, why", [("p.bogus=1", "p.bogus"), ("p.name=x", "p.name"),
                                        ("p.read_noise_rel=abc", "must be a number"),
                                        ("p.column_noise=maybe", "0, 1, true or false")])
def test_pesim_bad_override_is_named(query, why):
    with pytest.raises(Exception, match=why):
        PEChip(f"pesim://?seed=1&{query}")


def test_chip_url_round_trips_values():
    url = chip_url("ideal", 4, 2, {"read_noise_rel": 0.01, "column_noise": True})
    assert url.startswith("pesim://?") and "p.read_noise_rel=0.01" in url and "p.column_noise=1" in url


# --- input-spike faults ----------------------------------------------------------------------
def test_drive_inputs_loss_rate_and_jitter_moves_one_step():
    rng = np.random.default_rng(0)
    x = rng.random((20, 300, 128)) < 0.05
    n = int(x.sum())
    assert np.array_equal(drive_inputs(x, 0.0, 0.0, rng), x)
    lost = drive_inputs(x, 0.1, 0.0, np.random.default_rng(1))
    kept = int(lost.sum())
    # binomial: expected 0.9 n kept, sigma sqrt(n * 0.09); 5 sigma band
    assert abs(kept - 0.9 * n) < 5 * np.sqrt(n * 0.09)
    assert not np.any(lost & ~x)                      # loss only removes spikes
    jit = drive_inputs(x, 0.0, 1.0, np.random.default_rng(2))
    # every spike moved by exactly one step: no output spike sits where an input spike was
    # unless a neighbour moved onto it; each output spike has an input one step away
    near = np.zeros_like(x)
    near[:, 1:] |= x[:, :-1]
    near[:, :-1] |= x[:, 1:]
    assert not np.any(jit & ~near)
    assert jit.sum() <= n


# --- the budget ---------------------------------------------------------------------------------
def test_every_parameter_that_separates_the_presets_is_in_the_budget():
    """A field that differs between ideal and typical/worst either has a budget row or a stated
    reason it cannot move accuracy on a fresh die (a new non-ideality cannot hide)."""
    ideal = PRESETS["ideal"]
    differing = {f.name for f in dataclasses.fields(ChipParams) for p in ("typical", "worst")
                 if getattr(PRESETS[p], f.name) != getattr(ideal, f.name)}
    assert differing - covered_fields() == set()
    assert set(NOT_BUDGETED) - {f.name for f in dataclasses.fields(ChipParams)} == set()


@pytest.fixture(scope="module")
def on_levels():
    net = _net_on_levels()
    x = _inputs()
    return net, x, _labels(net, x)


def test_ideal_budget_quantisation_of_on_level_weights_costs_nothing(on_levels):
    """Hand-checkable: weights already on the 16 levels -> quantisation alone drops nothing, and
    at the ideal preset every effect row is exactly zero (each is off)."""
    net, x, y = on_levels
    b = measure_budget(net, x, y, fidelity="ideal", chip_seeds=(1, 2))
    rows = {r["key"]: r for r in b["rows"]}
    assert b["software_accuracy"] == 1.0
    assert rows["quantisation"]["drop_points"] == 0.0 and b["quantised_accuracy"] == 1.0
    for e in EFFECTS:
        assert rows[e.key]["drops"] == [0.0, 0.0], e.key
        assert rows[e.key]["active"] is False
    assert b["all"]["drop_points"] == pytest.approx(rows["quantisation"]["drop_points"]
                                                    + rows["residual"]["drop_points"])


def test_quantisation_row_sees_off_level_weights():
    """Weights halfway between two levels (0.1 + 0.2 k): quantisation must move every one of
    them by 0.1 unit; with 11 output neurons fed by ~4 active inputs per step that changes
    decisions on some samples -> quantised accuracy < software accuracy."""
    net = _net_on_levels()
    w = net.layers[0].weight
    net.layers[0].weight = np.clip(np.where(np.abs(w) < 2.9, w + 0.1 * np.sign(w + 1e-9), w), -3, 3)
    x = _inputs(n=48, seed=5)
    y = _labels(net, x)
    b = measure_budget(net, x, y, fidelity="ideal", chip_seeds=(1,))
    assert b["software_accuracy"] == 1.0
    assert b["quantised_accuracy"] < 1.0


def test_worst_budget_rows_and_sum(on_levels):
    """Loose: every row present, the noisy rows measured on each die, all together no better
    than the best single row and not far above the sum of the rows."""
    net, x, y = on_levels
    b = measure_budget(net, x, y, fidelity="worst", chip_seeds=(1, 2), age_s=3600.0)
    keys = [r["key"] for r in b["rows"]]
    assert keys == ["quantisation", "residual"] + [e.key for e in EFFECTS]
    for r in b["rows"][2:]:
        assert len(r["accuracies"]) == 2 and r["active"] is True
        assert r["params"], r["key"]
    drops = [r["drop_points"] for r in b["rows"]]
    assert b["all"]["drop_points"] > 0
    assert b["all"]["drop_points"] <= b["sum_of_rows_points"] + 25.0
    assert b["all"]["drop_points"] >= max(drops) - 25.0
    assert b["interaction_points"] == pytest.approx(b["all"]["drop_points"] - b["sum_of_rows_points"])


# --- the command ---------------------------------------------------------------------------------
def _run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    from bench.data.synth import generate
    from bench.network.modelfile import save_model

    d = tmp_path_factory.mktemp("budget")
    generate(d / "syn", seed=0, per_class=4)
    save_model(Network.create((800, 64, 11), seed=0, init_scale=3.0), d / "m.h5")
    return d


def test_budget_command_json_run_file_and_report(small_set, capsys, tmp_path):
    out = tmp_path / "b"
    code, so, se = _run(capsys, "budget", "--model", str(small_set / "m.h5"), "--data", str(small_set / "syn"),
                        "--limit", "12", "--chips", "1", "--out", str(out), "--json")
    assert code == 0, se
    d = loads_strict(so)
    assert [r["key"] for r in d["rows"]] == ["quantisation", "residual"] + [e.key for e in EFFECTS]
    assert d["samples"] == 12 and d["fidelity"] == "typical"
    assert (out / "budget.h5").is_file()
    png = out / "report" / "error_budget.png"
    assert str(png) in d["figures"] and png.stat().st_size > 5000
    page = (out / "report" / "index.html").read_text()
    assert "Error budget" in page and "all together (typical)" in page
    import h5py

    with h5py.File(out / "budget.h5", "r") as f:
        assert json.loads(f["budget"].attrs["budget_json"])["rows"][0]["key"] == "quantisation"


@pytest.mark.parametrize("extra, msg", [
    (["--age-s", "-1"], "--age-s"),
    (["--chips", "0"], "--chips"),
    (["--fidelity", "best"], "--fidelity"),
])
def test_budget_command_bad_input_exit_2(small_set, capsys, tmp_path, extra, msg):
    code, so, se = _run(capsys, "budget", "--model", str(small_set / "m.h5"), "--data", str(small_set / "syn"),
                        "--out", str(tmp_path / "b"), "--json", *extra)
    assert code == 2 and msg in se and "Traceback" not in se
    assert not (tmp_path / "b").exists()


def test_budget_command_missing_model_exit_2(small_set, capsys, tmp_path):
    code, so, se = _run(capsys, "budget", "--model", str(tmp_path / "nope.h5"), "--data", str(small_set / "syn"),
                        "--out", str(tmp_path / "b"), "--json")
    assert code == 2 and "nope.h5" in se and "Traceback" not in se
    assert not (tmp_path / "b").exists()


def test_each_effect_alone_changes_the_chip_outputs(on_levels):
    """Each effect's switch reaches the chip: at the worst preset, an ideal die with only that
    effect on produces different output spikes from the ideal die on the same inputs."""
    from bench.budget import run_on_chip, ChipTail, effect_overrides

    net, x, _ = on_levels
    tail = ChipTail(net, x[:12])
    ideal, _ = run_on_chip(tail, chip_url("ideal", 1, 0))
    for e in EFFECTS:
        out, _ = run_on_chip(tail, chip_url("ideal", 1, 0, effect_overrides(e, "worst")), age_s=3600.0)
        assert out.shape == ideal.shape
        assert np.count_nonzero(out != ideal) > 0, e.key


# --- what training buys, shipped test split -------------------------------------------------------
def test_compare_models_same_die_for_every_model(on_levels):
    """Two models on the same ideal die: the on-level one loses nothing to quantisation, so its
    chip accuracy equals the ideal-die figure of the budget; rows keep their order and labels."""
    from bench.training_gain import compare_models

    net, x, y = on_levels
    other = _net_on_levels(seed=3)
    c = compare_models([("a", "on levels", net), ("b", "another", other)], x, y, fidelity="ideal",
                       chip_seeds=(1,))
    assert [r["key"] for r in c["rows"]] == ["a", "b"]
    assert c["rows"][0]["software_accuracy"] == 1.0
    b = measure_budget(net, x, y, fidelity="ideal", chip_seeds=(1,))
    assert c["rows"][0]["chip_accuracy"] == b["ideal_chip_accuracy"]
    assert c["rows"][0]["drop_points"] == pytest.approx(100 * (1.0 - b["ideal_chip_accuracy"]))


def test_shipped_spikes_round_trip_and_refuse_a_mismatched_model(tmp_path):
    from bench.data.preprocess import PreprocessConfig
    from bench.demo_data import load_spikes, save_spikes
    from bench.errors import DataFormatError

    cfg = PreprocessConfig()
    rng = np.random.default_rng(0)
    x = rng.random((5, 300, 800)) < 0.05
    y = np.arange(5)
    p = save_spikes(tmp_path / "s.h5", x, y, cfg, {"generator": "test"})
    net = Network.create((800, 16, 11), seed=0)
    x2, y2, attrs = load_spikes(p, net)
    assert np.array_equal(x2, x) and np.array_equal(y2, y) and attrs["source"] == {"generator": "test"}
    x3, _, _ = load_spikes(p, net, limit=2)
    assert np.array_equal(x3, x[:2])
    with pytest.raises(DataFormatError, match="n_inputs"):
        load_spikes(p, Network.create((64, 11), seed=0))
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataFormatError, match="bad.h5"):
        load_spikes(tmp_path / "bad.h5")


def test_pesim_overrides_refused_on_a_die_file(tmp_path):
    """A die file keeps its own parameter set: overriding it through the URL is an error that
    says so, and no die file is created."""
    die = tmp_path / "d.h5"
    with pytest.raises(Exception, match="fresh die"):
        PEChip(f"pesim://?seed=1&die={die}&p.read_noise_rel=0.1")
    assert not die.exists()
