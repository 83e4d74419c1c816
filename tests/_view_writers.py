"""Writers of run and campaign files in the layouts the measurement commands write, for the
live-view tests.  Run as a script it is "another process" writing a run slowly:

    python tests/_view_writers.py program|infer|power|campaign PATH [--units N] [--sleep S] [--hang]

``--hang``: after the units, print "hanging" and sleep (the test SIGKILLs it).
The expected values the tests check come from the arrays these functions build
(``expected_*``), not from the viewer's code.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.programming import CELL_DTYPE  # noqa: E402
from bench.runstore import RunFile  # noqa: E402

ROWS, COLS = 128, 24
LEVEL_S = 10e-6  # 15 levels of 10 uS up to 150 uS


def target_map(seed: int = 0) -> np.ndarray:
    """Targets (S): a smooth ramp down the rows plus a random level per cell."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 14, ROWS)[:, None] * np.ones((1, COLS))
    lv = np.clip(np.round(0.6 * ramp + rng.integers(0, 6, (ROWS, COLS))), 0, 15)
    return lv * LEVEL_S


def stuck_cells(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    s = np.zeros((ROWS, COLS), bool)
    s.ravel()[rng.choice(ROWS * COLS, 20, replace=False)] = True
    return s


def program_records(seed: int = 0) -> np.ndarray:
    t = target_map(seed)
    stuck = stuck_cells(seed)
    rng = np.random.default_rng(seed + 2)
    rec = np.zeros(ROWS * COLS, CELL_DTYPE)
    rr, cc = np.indices(t.shape)
    rec["index"] = np.arange(rec.size)
    rec["row"], rec["col"] = rr.ravel(), cc.ravel()
    rec["target_s"] = t.ravel()
    g = t + rng.normal(0, 1e-6, t.shape)
    g[stuck] = 1e-6
    rec["g_s"] = g.ravel()
    rec["pulses"] = rng.integers(1, 30, rec.size)
    rec["flags"] = np.where(stuck.ravel(), 0x02, 0x01)
    return rec


def write_program(path, units: int = 12, sleep: float = 0.0, hang: bool = False, seed: int = 0) -> None:
    rec = program_records(seed)
    with RunFile(path, "chip_program", chip_info={"rows": ROWS, "columns": COLS}) as run:
        run.write("maps/target_s", target_map(seed), units="S")
        run.append("cells", np.zeros(0, CELL_DTYPE))
        run.flush()
        for part in np.array_split(rec, units):
            time.sleep(sleep)
            run.append("cells", part)
            run.flush()
        _hang(hang)


STEPS, N_IN, K = 300, 800, 11


def infer_data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, STEPS, N_IN)) < np.linspace(0.002, 0.08, N_IN)[None, None, :]
    labels = rng.integers(0, K, n)
    pred = np.where(rng.random(n) < 0.8, labels, (labels + 1) % K)
    sw = np.where(rng.random(n) < 0.9, labels, (labels + 2) % K)
    out = np.zeros((n, STEPS, K), np.uint8)
    for i in range(n):
        out[i, ::7, pred[i]] = 1
    return {"x": x, "labels": labels, "pred": pred, "sw": sw, "out": out}


def write_infer(path, units: int = 6, per_unit: int = 4, sleep: float = 0.0, hang: bool = False,
                seed: int = 0) -> None:
    n = units * per_unit
    d = infer_data(n, seed)
    with RunFile(path, "infer") as run:
        run.set_attrs("/", n_classes=K, samples_total=n)
        run.flush()
        for i in range(0, n, per_unit):
            time.sleep(sleep)
            s = slice(i, i + per_unit)
            run.append("inputs_packed", np.packbits(d["x"][s], axis=2, bitorder="little"),
                       shape_per_sample=[STEPS, N_IN])
            run.append("output_spikes", d["out"][s])
            run.append("predictions", d["pred"][s])
            run.append("software_predictions", d["sw"][s])
            run.append("labels", d["labels"][s])
            run.flush()
        _hang(hang)


RAILS = {"VDDA": (1.8, 12e-3, 1e-3), "VDDD": (1.8, 3e-3, 0.5e-3), "VDDIO": (3.3, 2e-3, 0.2e-3)}
PERIOD_S = 1e-5


def write_power(path, units: int = 4, per_unit: int = 8, points: int = 200, sleep: float = 0.0,
                hang: bool = False) -> None:
    """Idle baseline then ``units`` chunks of ``per_unit`` samples; rail currents constant
    (run level, idle level): the energy per sample is known in closed form
    (:func:`expected_energy_per_sample`)."""
    with RunFile(path, "power") as run:
        for rail, (v, _i_run, i_idle) in RAILS.items():
            run.append(f"idle/{rail}/current_a", np.full(50, i_idle), units="A")
            run.append(f"idle/{rail}/time_s", np.arange(50) * PERIOD_S, units="s")
            run.set_attrs(f"idle/{rail}", voltage_v=v, period_s=PERIOD_S)
            run.flush()
        for k in range(units):
            time.sleep(sleep)
            for rail, (v, i_run, _i) in RAILS.items():
                # as bench.power.store_trace writes them: times relative to each chunk's
                # trigger, the chunk number per point, back-to-back apertures, no trigger line
                run.append(f"run/{rail}/current_a", np.full(points, i_run), units="A")
                run.append(f"run/{rail}/time_s", np.arange(points) * PERIOD_S, units="s")
                run.append(f"run/{rail}/chunk", np.full(points, k, dtype=np.int32))
                run.set_attrs(f"run/{rail}", voltage_v=v, period_s=PERIOD_S, aperture_s=PERIOD_S,
                              trigger_line=-1)
            run.append("run/chunk_run_s", np.array([0.5 * points * PERIOD_S]), units="s")
            run.append("run/chunk_samples", np.array([per_unit]))
            run.flush()
        _hang(hang)


def expected_energy_per_sample(per_unit: int = 8, points: int = 200) -> float:
    """Net energy of one chunk over its samples: sum over rails of (I_run - I_idle) V T / n."""
    return sum((i_run - i_idle) * v * points * PERIOD_S for v, i_run, i_idle in RAILS.values()) / per_unit


AXES = [{"name": "v_read", "values": [0.1, 0.2, 0.3, 0.4], "unit": "V"},
        {"name": "chip", "values": [1, 2, 3], "unit": ""}]


def campaign_status() -> np.ndarray:
    """Status per flat point index after the campaign's committed rows (-1 = pending)."""
    s = np.full(12, -1, np.int8)
    s[[0, 1, 2, 3, 5, 6, 8]] = 0
    s[[4, 9]] = 1
    s[7] = 2
    return s


def write_campaign(path, units: int | None = None, sleep: float = 0.0, state: str = "running") -> None:
    """A campaign file per docs (agreed layout): 4 x 3 product grid, rows committed one by one."""
    status = campaign_status()
    order = [i for i in range(12) if status[i] >= 0]
    units = len(order) if units is None else units
    grid = np.array(np.meshgrid(AXES[0]["values"], AXES[1]["values"], indexing="ij")).reshape(2, -1).T
    with h5py.File(path, "w") as f:
        f.attrs.update(kind="campaign", format_version=1, plan_toml="", plan_sha256="0" * 64,
                       snnbench_version="0", git_revision="", station="builtin-sim", created_utc="",
                       ended_utc="", state="running", n_points=12, axes=json.dumps(AXES),
                       grid_shape=np.array([4, 3]), result_columns=json.dumps(["accuracy"]), committed=0)
        t = f.create_group("table")
        cols = {"index": np.int64, "commit_order": np.int64, "status": np.int8, "v_read": np.float64,
                "chip": np.float64, "accuracy": np.float64, "wall_s": np.float64}
        for name, dt in cols.items():
            t.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(64,), dtype=dt)
        t.create_dataset("error", shape=(0,), maxshape=(None,), chunks=(64,), dtype=h5py.string_dtype())
        f.flush()
        for n, i in enumerate(order[:units]):
            time.sleep(sleep)
            row = {"index": i, "commit_order": n, "status": status[i], "v_read": grid[i, 0], "chip": grid[i, 1],
                   "accuracy": 0.5 + grid[i, 0] if status[i] == 0 else np.nan, "wall_s": 0.5,
                   "error": "" if status[i] != 1 else "boom"}
            for name, v in row.items():
                ds = t[name]
                ds.resize(n + 1, axis=0)
                ds[n] = v
            f.attrs["committed"] = n + 1
            f.flush()
        f.attrs["state"] = state


def _hang(hang: bool) -> None:
    if hang:
        print("hanging", flush=True)
        time.sleep(3600)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["program", "infer", "power", "campaign"])
    ap.add_argument("path")
    ap.add_argument("--units", type=int, default=None)
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--hang", action="store_true")
    a = ap.parse_args()
    kw = {} if a.units is None else {"units": a.units}
    if a.what == "campaign":
        write_campaign(a.path, sleep=a.sleep, **kw)
    else:
        {"program": write_program, "infer": write_infer, "power": write_power}[a.what](
            a.path, sleep=a.sleep, hang=a.hang, **kw)
