"""``snnbench infer``: run a data split through the hybrid network on the chip and score it.

    snnbench infer [--chip URL] --model MODEL --data DIR [--split test] [--limit N]
                   --out RUN.h5 [--batch N] [--acceleration K] [--json]

Everything is validated before the chip is touched (model file, data directory and split,
input reduction vs the model, time step vs the station limits, run-file path).  Then the
chip layer is mapped and programmed, and the samples go through in batches (one batch =
one unit of work: appended to the run file and flushed).  The software-only execution of
the same network is scored alongside, and the drop reported in percentage points.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.commands._args import MAX_SAMPLES, add_chip_argument, batch_size, int_range
from bench.errors import UsageError
from bench.view.live import add_live_argument, follow




def register(subparsers, common: argparse.ArgumentParser | None = None) -> None:
    parents = [common] if common is not None else []
    p = subparsers.add_parser(
        "infer", parents=parents, help="run a data split through the hybrid network on the chip",
        description="Classify a split of an event data set with the hybrid network (software "
                    "hidden layers, chip output layer); score chip vs software-only.")
    add_chip_argument(p)
    p.add_argument("--model", required=True, metavar="MODEL", help="model file (snnbench-model HDF5)")
    p.add_argument("--data", required=True, metavar="DIR", help="data set directory (DVS128 Gesture layout)")
    p.add_argument("--split", default="test", choices=["train", "test"], help="split (default test)")
    p.add_argument("--limit", type=int_range(0, MAX_SAMPLES, "more samples than any data split holds; the DVS128 Gesture test split has 288"), default=None, metavar="N", help="at most N samples")
    p.add_argument("--out", required=True, metavar="RUN.h5", help="run file to write")
    p.add_argument("--batch", type=batch_size, default=256, metavar="N",
                   help="samples per unit of work (appended and flushed together; default 256)")
    p.add_argument("--acceleration", default=None, metavar="K",
                   help="dataset-time / chip-time factor (default: the model's, 50000)")
    add_live_argument(p)
    p.set_defaults(func=infer_command)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def preprocess_config(net):
    """The event preprocessing that produces this network's inputs."""
    from bench.data.preprocess import PreprocessConfig
    from bench.errors import ConfigError

    inp = net.input
    bin_us = round(inp.bin_s * 1e6)
    if abs(bin_us - inp.bin_s * 1e6) > 1e-6:
        raise ConfigError(f"model input bin {inp.bin_s} s is not a whole number of microseconds")
    cfg = PreprocessConfig(sample_duration_us=int(bin_us * inp.steps), padding=int(inp.padding),
                           pool=int(inp.pool), bin_us=int(bin_us),
                           sensor=(int(inp.sensor_width), int(inp.sensor_height)))
    if cfg.n_inputs != net.layers[0].n_in:
        raise ConfigError(f"the model's input reduction gives {cfg.n_inputs} inputs, its first "
                          f"layer takes {net.layers[0].n_in}")
    return cfg


def _fidelity(b, station) -> str | None:
    """The simulated chip's fidelity preset (None for real hardware / unknown)."""
    if b.sim is not None:
        return station.chip.fidelity
    if b.chip_url.startswith("pesim://"):
        from urllib.parse import parse_qs, urlsplit

        return parse_qs(urlsplit(b.chip_url).query).get("fidelity", ["typical"])[-1]
    return None


_REPLAY_REGISTERS = ("V_READ", "V_SPIKE", "TIME_STEP", "THRESHOLD", "TAU", "REFRACTORY", "G_UNIT", "N_STEPS")
"""Registers recorded with the chip-layer inputs so a replay runs under the same settings."""


def _in_pass_meter(stack: contextlib.ExitStack, station, chip):
    """Open the station's SMUs and start the in-pass power meter (``bench.power_inpass``), or
    say why not.  The rails are shut down (0 V, off, confirmed) when ``stack`` closes."""
    from bench.power import RailSetup
    from bench.power_inpass import InPassPower, missing_trigger
    from drivers.instruments import open_smus, safety

    reason = missing_trigger(station.smu)
    if reason is not None:
        return None, reason
    stack.enter_context(safety.guard())
    smus = open_smus(station.smu)

    def close_all() -> None:
        for smu in smus:
            try:
                smu.close()
            except Exception:  # noqa: BLE001 - recorded by safety.report_unconfirmed; try every rail
                pass
    stack.callback(close_all)
    setups = [RailSetup(c.rail, c.voltage_v, c.current_limit_a, c.nplc) for c in station.smu]
    meter = InPassPower(chip, smus, setups, [c.trigger_line for c in station.smu])
    stack.enter_context(meter)
    return meter, None


def infer_command(args) -> dict[str, Any]:
    from bench.data.dataset import load_split, split_files
    from bench.network.modelfile import load_model
    from bench.runstore import check_writable
    from bench.session import resolve_station
    from bench.streaming import TimeBase

    # --- validate everything before touching the chip ---------------------------------------
    t_all = time.perf_counter()
    out = check_writable(args.out)
    model_path = Path(args.model)
    net = load_model(model_path)
    cfg = preprocess_config(net)
    timebase = TimeBase.for_network(net, args.acceleration)
    station = resolve_station(args.station)
    lim = station.limits
    if not lim.dt_min_s * (1 - 1e-9) <= timebase.dt_s <= lim.dt_max_s * (1 + 1e-9):
        raise UsageError(f"acceleration {float(timebase.acceleration):g} gives a chip step of "
                         f"{timebase.dt_s:g} s, outside the station's [{lim.dt_min_s:g}, {lim.dt_max_s:g}] s")
    from bench.hybrid import require_chip_layers
    from bench.programming import schedule_for_station

    require_chip_layers(net, str(model_path))
    schedule = schedule_for_station(station)
    split_files(args.data, args.split)  # data dir and trial list exist
    t0 = time.perf_counter()
    samples = load_split(args.data, args.split, args.limit,
                         sensor=(int(net.input.sensor_width), int(net.input.sensor_height)))
    t_read = time.perf_counter() - t0
    if not samples:
        raise UsageError(f"{args.data}: split {args.split!r} has no samples"
                         + (" (--limit 0)" if args.limit == 0 else ""))
    labels = np.array([s.label for s in samples], dtype=np.int64)
    if labels.max() >= net.n_classes:
        raise UsageError(f"{args.data}: labels go up to {labels.max()}, the model has {net.n_classes} classes")
    follow(args, out)
    return run_inference(net, samples, cfg, timebase, station, out, chip_url=args.chip,
                         batch=args.batch, schedule=schedule, read_seconds=t_read, t_start=t_all,
                         provenance={"model": str(model_path), "model_sha256": _sha256(model_path),
                                     "data": str(args.data), "split": args.split,
                                     "limit": -1 if args.limit is None else args.limit})


def run_inference(net, samples, cfg, timebase, station, out, *, chip_url: str | None = None,
                  batch: int = 256, read_seconds: float = 0.0, t_start: float | None = None,
                  provenance: dict[str, Any] | None = None, chip_layers: list[int] | None = None,
                  schedule=None) -> dict[str, Any]:
    """Run ``samples`` through the hybrid network on the station's chip; write ``out``.

    The library entry point behind ``snnbench infer`` (the demo calls this too).
    """
    from bench.data.preprocess import batch_to_spikes
    from bench.hybrid import HybridRunner, plan_network
    from bench.runstore import RunFile
    from bench.scoring import Comparison, Score, predict
    from bench.session import open_bench

    t_start = time.perf_counter() if t_start is None else t_start
    labels = np.array([s.label for s in samples], dtype=np.int64)
    n, k = len(samples), net.n_classes
    secs = {"reading": read_seconds, "preprocessing": 0.0, "software_layers": 0.0, "link": 0.0,
            "chip": 0.0, "software_reference": 0.0, "storing": 0.0, "programming": 0.0}
    with contextlib.ExitStack() as stack:
        b = stack.enter_context(open_bench(None, chip_url, station=station))
        chip = b.chip
        info = chip.info()
        meter, power_reason = _in_pass_meter(stack, station, chip) if station.smu else (None, None)
        plan = plan_network(net, info, chip_layers=chip_layers)
        if not plan.chip_layers:
            raise UsageError(f"no layer of the model fits this chip ({info.rows} rows, {info.neurons} "
                             f"neurons per PE): nothing would run on the chip\n{plan}".splitlines()[0])
        runner = HybridRunner(net, chip, plan=plan, timebase=timebase, baud=station.link.baud,
                              latency_s=station.link.latency_s, schedule=schedule)
        t0 = time.perf_counter()
        layers = runner.prepare()
        secs["programming"] = time.perf_counter() - t0
        preds, sw_preds, checks = [], [], []
        chip_seconds = 0.0
        link_modelled = 0.0
        with RunFile(out, "infer", station=station.as_dict(),
                     seeds={"chip_seed": station.chip.seed, "run_seed": station.chip.run_seed},
                     chip_info=info.as_dict(), chip_url=b.chip_url, **(provenance or {})) as rf:
            rf.set_attrs("/", plan=plan.as_dict(), plan_text=str(plan), n_classes=k, samples_total=n,
                         layer_sizes=net.sizes, chip_layer=int(net.chip_layer),
                         preprocess={"sample_duration_us": cfg.sample_duration_us, "padding": cfg.padding,
                                     "pool": cfg.pool, "bin_us": cfg.bin_us, "sensor": list(cfg.sensor)})
            rf.set_attrs("/clocks", **{f"timebase_{kk}": v for kk, v in timebase.as_dict().items()},
                         dataset_units="us", chip_units="s", chip_latency_s=float(info.latency_s))
            rf.set_attrs("/chip_layers", **{str(i): d for i, d in runner.describe()["chip_layers"].items()})
            rf.flush()
            t_loop = time.perf_counter()
            for i in range(0, n, batch):
                part = samples[i:i + batch]
                t0 = time.perf_counter()
                x = batch_to_spikes(part, cfg)
                secs["preprocessing"] += time.perf_counter() - t0
                if meter is not None:   # the SMUs' traces armed on the board's trigger around this batch
                    est = len(part) * x.shape[1] * timebase.dt_s * len(plan.chip_layers) + \
                        len(part) * float(info.latency_s) * len(plan.chip_layers)
                    meter.run = rf
                    res = meter.measure(len(part), est, lambda x=x: runner.run(x),
                                        lambda r: r.seconds["chip_seconds"])
                else:
                    res = runner.run(x)
                s = res.seconds
                secs["software_layers"] += s["software"]
                secs["software_reference"] += s["software_reference"]
                secs["chip"] += s["run"]
                secs["link"] += s["upload"] + s["readout"]
                chip_seconds += s["chip_seconds"]
                link_modelled += s["link_modelled"]
                t0 = time.perf_counter()
                p = predict(res.outputs, k)
                ps = predict(res.software_outputs, k)
                preds.append(p)
                sw_preds.append(ps)
                ok = np.ones(len(part), bool)
                for v in res.model_check.values():
                    ok &= v
                checks.append(ok)
                raw = res.chip_raw[plan.chip_layers[-1]] if plan.chip_layers else res.outputs
                rf.append("inputs_packed", np.packbits(x, axis=2, bitorder="little"), units="bits",
                          bitorder="little", shape_per_sample=[x.shape[1], x.shape[2]],
                          doc="input spikes (sample, step, packed inputs), numpy.packbits little")
                last = plan.chip_layers[-1]
                h = res.chip_inputs.get(last)
                if h is not None:       # what the chip layer saw: 'power --replay' runs it again
                    ci = np.zeros(h.shape[:2] + (int(info.rows),), bool)
                    ci[:, :, :h.shape[2]] = h
                    rf.append("chip_input_packed", np.packbits(ci, axis=2, bitorder="little"), units="bits",
                              bitorder="little", shape_per_sample=[ci.shape[1], ci.shape[2]],
                              doc="chip-layer input spikes (sample, step, packed rows), numpy.packbits little")
                rf.append("chip_output_spikes", raw, units="spike",
                          doc="board output spikes of the chip layer (sample, step, PE neuron)")
                rf.append("output_spikes", res.outputs, units="spike", doc="hybrid network output (sample, step, class)")
                rf.append("software_output_spikes", res.software_outputs, units="spike",
                          doc="software-only network output (sample, step, class)")
                rf.append("predictions", p, units="class")
                rf.append("software_predictions", ps, units="class")
                rf.append("labels", labels[i:i + len(part)], units="class")
                rf.append("model_check", ok, units="bool",
                          doc="chip layer output equals the software model with the read-back weights")
                rf.append("sample_start_us", np.array([q.start_us for q in part], np.int64), units="us",
                          clock="dataset")
                rf.append("sample_end_us", np.array([q.end_us for q in part], np.int64), units="us",
                          clock="dataset")
                rf.append("sample_source", np.array([Path(q.source).name for q in part], dtype="S64"), units="")
                rf.set_attrs("/clocks", samples_done=i + len(part), chip_seconds=chip_seconds)
                rf.flush()
                secs["storing"] += time.perf_counter() - t0
            loop_s = time.perf_counter() - t_loop
            st_last = layers.get(plan.chip_layers[-1])
            if st_last is not None and st_last.targets_s is not None:
                rf.write("chip_targets_s", np.asarray(st_last.targets_s), units="S",
                         doc="conductance targets of the chip layer's array (rows, columns)")
            if "chip_input_packed" in rf.h5:
                rf.set_attrs("chip_replay", **{f"reg_{r}": chip.read_register(r) for r in _REPLAY_REGISTERS})
            power = meter.result() if meter is not None else None
            chip_score = Score(np.concatenate(preds), labels, k)
            sw_score = Score(np.concatenate(sw_preds), labels, k)
            cmp = Comparison(sw_score, chip_score)
            rf.write("confusion", chip_score.confusion, units="samples", rows="true class", cols="predicted class")
            rf.write("software_confusion", sw_score.confusion, units="samples")
            rf.write("per_class_accuracy", chip_score.per_class, units="fraction")
            rf.write("software_per_class_accuracy", sw_score.per_class, units="fraction")
            total_s = time.perf_counter() - t_start
            dataset_s = float(timebase.sample_dataset_s) * n
            clocks = {"dataset_seconds": dataset_s, "chip_seconds": chip_seconds,
                      "chip_seconds_per_sample": chip_seconds / n, "host_wall_seconds": total_s,
                      "link_modelled_seconds": link_modelled}
            rf.set_attrs("/clocks", **clocks)
            timed = {kk: v for kk, v in secs.items() if kk != "programming"}
            tsum = sum(timed.values()) or 1.0
            result = {
                "samples": n,
                **cmp.as_dict(),
                "model_check": float(np.mean(np.concatenate(checks))),
                "samples_per_second": n / (loop_s + read_seconds),
                "samples_per_second_total": n / total_s,
                "chip_latency_s": float(info.latency_s),
                "chip_seconds_per_sample": chip_seconds / n,
                "chip_samples_per_second": n / chip_seconds if chip_seconds else None,
                "dataset_seconds": dataset_s,
                "chip_seconds": chip_seconds,
                "link_modelled_seconds": link_modelled,
                "seconds": secs,
                "time_shares": {kk: v / tsum for kk, v in timed.items()},
                "plan": [{"layer": p_.index, "size": f"{p_.n_in}->{p_.n_out}", "where": p_.where,
                          "reason": p_.reason} for p_ in plan.layers],
                "acceleration": float(timebase.acceleration),
                "dt_s": timebase.dt_s,
                "chip_url": b.chip_url,
                "fidelity": _fidelity(b, station),
                "out": str(out),
                "power": power,
            }
            if power is None:
                result["power_reason"] = power_reason or "the station has no SMUs"
            rf.set_attrs("/", result={kk: v for kk, v in result.items() if kk != "plan"},
                         accuracy=chip_score.accuracy, software_accuracy=sw_score.accuracy,
                         drop_points=cmp.drop_points)
    if power is not None:
        result["energy_per_sample_j"] = power["energy_per_sample_j"]
    result["summary"] = ((f"power during the pass: {power['energy_per_sample_j'] * 1e6:.4f} uJ/sample, "
                          f"{power['average_power_w'] * 1e3:.3f} mW (traces cover "
                          f"{power['covered_fraction']:.1%} of the run)\n" if power else "") +
                         f"{n} samples: chip {100 * chip_score.accuracy:.2f}%, software "
                         f"{100 * sw_score.accuracy:.2f}%, drop {cmp.drop_points:+.2f} pp; "
                         f"{result['samples_per_second']:.0f} samples/s; run file {out}\n"
                         f"{plan}\n{cmp.table()}")
    return result
