"""Energy per sample measured during the pass vs the replay vs the chip's counters (issue 14).

    .venv/bin/python benchmarks/bench_power_trigger.py [--quick] [--json]

For each SMU model (all three rails on simulated instruments of that model: Keithley 2450,
Keysight B2901A, Keithley 2601B) on one in-process virtual bench (chip on socket://, SMUs
through pyvisa-py on 127.0.0.1, one shared world), one repetition is:

  * in pass   -- the reference workload run batch by batch (upload + RUN, like an accuracy
                 pass) with every SMU armed on the board's trigger (``bench.power_inpass``);
  * replay    -- the same spikes replayed by the ``power`` procedure, triggered
                 (``bench.power.measure_power`` with trigger lines);
  * untriggered replay -- the same, armed in software (alignment-free estimate, the method
                 without a trigger);

each compared with the chip model's own energy counters for the RUNs of that same
measurement (the baseline, measured in the same run).  Printed: the ratio to the counters
(median and spread over the interleaved repetitions) and the fraction of the run the trace
apertures cover.  The figures measure the method, not the host: no timing is involved.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.power import PowerOptions, RailSetup, measure_power  # noqa: E402
from bench.power_inpass import InPassPower  # noqa: E402
from drivers.instruments import open_smus, safety  # noqa: E402
from drivers.pechip import PEChip  # noqa: E402
from firmware_iface.write_verify import PulseSchedule  # noqa: E402
from sim_backend.chip import VirtualChip  # noqa: E402
from sim_backend.firmware import VirtualFirmware  # noqa: E402
from sim_backend.instruments import serve_instruments  # noqa: E402
from sim_backend.link import LinkModel  # noqa: E402
from sim_backend.physics.energy import reference_workload  # noqa: E402
from sim_backend.server import _Pump, serve_tcp  # noqa: E402
from sim_backend.world import SimWorld  # noqa: E402

MODELS = ("2450", "B2901A", "2601B")
RAILS = ("VDDA", "VDDD", "VDDIO")


class _Bench:
    def __init__(self, model: str) -> None:
        self.chip = VirtualChip(chip_seed=1, run_seed=0, fidelity="typical")
        self.world = SimWorld(self.chip)
        self.fw = VirtualFirmware(self.chip, lock=self.world.lock)
        self.fw.world = self.world
        self._stop = threading.Event()
        self.url, _ = serve_tcp(_Pump(self.fw, LinkModel()), "127.0.0.1", 0, self._stop)
        self.smu, self._stop_smu = serve_instruments(self.world, bench=tuple((model, r, 1) for r in RAILS))
        self.counted = {"j": 0.0, "n": 0}
        orig = self.chip.run

        def run(batch, *a, **k):     # the chip model's own counters, per RUN
            out = orig(batch, *a, **k)
            self.counted["j"] += float(sum(self.chip.last_run["energy_j"].values()))
            self.counted["n"] += int(self.chip.last_run["n"])
            return out
        self.chip.run = run

    def take(self) -> float:
        j, n = self.counted["j"], self.counted["n"]
        self.counted.update(j=0.0, n=0)
        return j / n

    def close(self) -> None:
        self._stop.set()
        self._stop_smu()


def one(model: str, n: int, batch: int) -> dict[str, float]:
    b = _Bench(model)
    spikes, g = reference_workload(n, 0)
    cfgs = [dict(d, max_voltage_v=3.6, max_current_a=0.2) for d in b.smu]
    setups = [RailSetup(d["rail"], d["voltage_v"], 0.1, 0.01) for d in b.smu]
    try:
        with PEChip(b.url) as pe:
            rows, cols = np.nonzero(np.ones_like(g, bool))
            pe.write_verify(rows, cols, g[rows, cols], PulseSchedule())
            smus = open_smus(cfgs)
            try:
                dt, lat = pe.read_register("TIME_STEP"), pe.info().latency_s
                with InPassPower(pe, smus, setups, [1] * 3) as meter:
                    for i in range(0, n, batch):
                        part = spikes[i:i + batch]

                        def action(p=part):
                            pe.upload_spikes(p, slot=0)
                            return pe.run(p.shape[0], slot=0)
                        meter.measure(len(part), len(part) * (part.shape[1] * dt + lat), action, float)
                inpass = meter.result()
                c_inpass = b.take()
                rep = measure_power(pe, smus, setups, spikes=spikes, options=PowerOptions(
                    program=False, idle_points=50, chunk_samples=batch, trigger_lines=[1] * 3))
                c_rep = b.take()
                soft = measure_power(pe, smus, setups, spikes=spikes, options=PowerOptions(
                    program=False, idle_points=50, chunk_samples=batch))
                c_soft = b.take()
            finally:
                for s in smus:
                    s.close()
    finally:
        safety.shutdown_all()
        b.close()
    return {"in_pass": inpass["energy_per_sample_j"] / c_inpass, "replay": rep["energy_per_sample_j"] / c_rep,
            "replay_untriggered": soft["energy_per_sample_j"] / c_soft,
            "covered_in_pass": inpass["covered_fraction"], "covered_replay": rep["covered_fraction"],
            "uj_per_sample_counters": c_inpass * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and repetitions")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n, batch, reps = (64, 32, 2) if args.quick else (512, 128, 5)
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in MODELS}
    for _ in range(reps):                        # interleaved: every model once per repetition
        for m in MODELS:
            rows[m].append(one(m, n, batch))
    out = {}
    for m in MODELS:
        agg = {}
        for key in rows[m][0]:
            vals = [r[key] for r in rows[m]]
            agg[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
        out[m] = agg
    if args.json:
        print(json.dumps({"samples": n, "batch": batch, "repetitions": reps, "models": out}))
        return
    print(f"{n} reference samples, batches of {batch}, {reps} interleaved repetitions; ratio to the chip's "
          "energy counters of the same RUNs (median [min..max]); covered = trace apertures / run")
    print(f"{'model':8} {'in pass':>22} {'replay (trigger)':>22} {'replay (software)':>22} "
          f"{'covered pass':>13} {'covered replay':>15}")
    for m in MODELS:
        a = out[m]
        f = lambda k: f"{a[k]['median']:.4f} [{a[k]['min']:.4f}..{a[k]['max']:.4f}]"  # noqa: E731
        print(f"{m:8} {f('in_pass'):>22} {f('replay'):>22} {f('replay_untriggered'):>22} "
              f"{a['covered_in_pass']['median']:13.3f} {a['covered_replay']['median']:15.3f}")


if __name__ == "__main__":
    main()
