"""``snnbench power``: average power, energy and latency per sample, SOPs and TSOPS/W.

    snnbench power --out run.h5 --json                       # built-in simulated bench
    snnbench power --station lab.toml --samples 256 --out run.h5
    snnbench power --chip socket://127.0.0.1:5555 \\
        --smu VDDA=2450@TCPIP0::10.0.0.5::5025::SOCKET --smu ... --out run.h5

SMUs come from the station file (resource, model, rail, voltage, compliance, per-rail
limits); ``--smu`` overrides them: ``RAIL=MODEL@RESOURCE``, or a bare ``RESOURCE`` that
replaces the station's entries in order (or, with none in the station, is identified by
``*IDN?`` and assigned to VDDA, VDDD, VDDIO in order).  With no workload options the chip
model's reference workload is run (the one its energy model is calibrated on).
"""
from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

from bench.commands._args import add_chip_argument, float_range, int_range, pos_float, seed_int
from bench.errors import UsageError
from bench.view.live import add_live_argument, follow

DEFAULT_RAILS = ("VDDA", "VDDD", "VDDIO")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("power", parents=[common],
                              help="measure power / energy per sample with the SMUs on the supply rails")
    add_chip_argument(p)
    p.add_argument("--smu", metavar="RESOURCE", action="append", default=[],
                   help="SMU resource (repeatable): RAIL=MODEL@RESOURCE or a bare VISA resource")
    p.add_argument("--samples", type=_samples, default=64,
                   help=f"samples to run back to back (default 64, at most {MAX_SAMPLES:,})")
    p.add_argument("--seed", type=seed_int, default=0, help="reference-workload seed (default 0)")
    p.add_argument("--idle-points", type=_idle_points, default=100,
                   help=f"points of the idle baseline trace (default 100, at most {MAX_IDLE_POINTS:,} "
                        "and the smallest SMU buffer)")
    p.add_argument("--interval-us", type=pos_float, default=None,
                   help="SMU sample interval in us; every SMU's aperture is set to it (gap-free), so it "
                        "must be within every SMU's aperture range (default: the station's NPLC)")
    p.add_argument("--margin", type=_margin, default=0.25,
                   help=f"trace length margin over the expected run, 0..{MAX_MARGIN:g} (default 0.25)")
    p.add_argument("--no-program", action="store_true", help="do not write-verify the workload's conductances")
    p.add_argument("--replay", metavar="INFER_RUN.h5", default=None,
                   help="replay the chip-layer inputs (and conductances) recorded by 'infer' in that run "
                        "file instead of the reference workload: the replay to compare with the power "
                        "measured during the accuracy pass")
    p.add_argument("--dry-run", action="store_true",
                   help="check station, limits, SMU models, interval and write-verify schedule; touch nothing")
    p.add_argument("--out", metavar="RUN.h5", default=None, help="run file (HDF5) for traces and results "
                   "(required unless --dry-run)")
    add_live_argument(p)
    p.set_defaults(func=_power)


MAX_SAMPLES = 1_000_000      # = bench.power.MAX_SAMPLES (checked by a test; no heavy import here)
MAX_IDLE_POINTS = 10_000     # = bench.power.MAX_IDLE_POINTS
MAX_MARGIN = 10.0            # = bench.power.MAX_MARGIN


_samples = int_range(1, MAX_SAMPLES)
_idle_points = int_range(1, MAX_IDLE_POINTS)
_margin = float_range(0.0, MAX_MARGIN)


_SPEC = re.compile(r"^(?P<rail>[A-Za-z0-9_]+)=(?P<model>[A-Za-z0-9]+)@(?P<res>.+)$")


def _smu_configs(args: argparse.Namespace, station: Any, served: list[dict]) -> list[Any]:
    from bench.station import SmuConfig
    from sim_backend.physics.params import RAILS

    base = list(station.smu)

    def default(rail: str, model: str, resource: str, channel: int = 1) -> SmuConfig:
        v = float(RAILS.get(rail, 1.8))
        return SmuConfig(resource=resource, model=model, rail=rail, voltage_v=v, current_limit_a=0.1,
                         channel=channel, max_voltage_v=max(3.6, v), max_current_a=0.2, nplc=0.01,
                         trigger_line=trigger.get(resource, 0))

    # the simulated bench says which trigger input of each SMU is wired to the board
    trigger = {d["resource"]: int(d.get("trigger_line", 0) or 0) for d in served}

    if not args.smu:
        if base:
            return base
        return [default(d["rail"], d["model"], d["resource"], int(d.get("channel", 1))) for d in served]
    out = []
    for i, spec in enumerate(args.smu):
        m = _SPEC.match(spec)
        if m:
            rail, model, res = m.group("rail"), m.group("model"), m.group("res")
            st = next((s for s in base if s.rail == rail), None)
            out.append(dataclasses.replace(st, resource=res, model=model) if st else default(rail, model, res))
        elif i < len(base):
            out.append(dataclasses.replace(base[i], resource=spec))
        else:
            if i >= len(DEFAULT_RAILS):
                raise UsageError(f"--smu {spec}: no rail for a {i + 1}th bare resource; use RAIL=MODEL@RESOURCE")
            out.append(default(DEFAULT_RAILS[i], _identify(spec), spec))
    rails = [c.rail for c in out]
    if len(set(rails)) != len(rails):
        raise UsageError(f"--smu: a rail is named twice ({', '.join(rails)})")
    return out


def _identify(resource: str) -> str:
    from drivers.errors import InstrumentError
    from drivers.instruments import Keithley2450, Keithley2600, KeysightB2900, VisaAdapter

    ad = VisaAdapter(resource)
    try:
        idn = ad.query("*IDN?")
    finally:
        ad.close()
    for cls in (Keithley2450, KeysightB2900, Keithley2600):
        try:
            model = cls.normalise_model(cls.model_from_idn(idn))
        except (ValueError, IndexError):
            continue
        if model in cls.ranges:
            return model
    raise InstrumentError(f"{resource}: *IDN? reply {idn!r} is not a supported SMU")


def _check_smu_specs(specs: list[str]) -> None:
    """``--smu`` values that can be checked without the instruments: model, rail names."""
    from drivers.errors import InstrumentError
    from drivers.instruments import smu_class

    rails = []
    for spec in specs:
        m = _SPEC.match(spec)
        if m is None:
            if not spec.strip() or "=" in spec.split("::")[0]:
                raise UsageError(f"--smu {spec!r}: expected RAIL=MODEL@RESOURCE or a VISA resource")
            continue
        try:
            smu_class(m.group("model"))
        except InstrumentError as exc:
            raise UsageError(f"--smu {spec}: {exc}") from None
        rails.append(m.group("rail"))
    if len(set(rails)) != len(rails):
        raise UsageError(f"--smu: a rail is named twice ({', '.join(rails)})")


def _check_interval(args: argparse.Namespace, models: list[str]) -> None:
    """--interval-us against the models' aperture ranges (at 50 or 60 Hz: the line frequency is
    only known once the instruments answer; measure_power checks again with it)."""
    from bench.power import describe_range_us
    from drivers.instruments import smu_class

    if args.interval_us is None:
        return
    iv = args.interval_us * 1e-6
    for model in models:
        rng = smu_class(model).ranges[smu_class(model).normalise_model(model)]
        spans = [(max(rng.nplc_min / lf, rng.min_interval_s), min(rng.nplc_max / lf, rng.max_interval_s))
                 for lf in (50.0, 60.0)]
        if not any(lo * (1 - 1e-9) <= iv <= hi * (1 + 1e-9) for lo, hi in spans):
            raise UsageError(f"--interval-us {args.interval_us:g}: not a gap-free sample interval for the "
                             f"{model} (the aperture must equal the interval): it integrates "
                             f"{describe_range_us(spans)}")


def _replay_workload(path: str) -> tuple[Any, Any, dict[str, float]]:
    """(spikes, conductances or None, registers) recorded by ``infer`` in a run file."""
    from bench.errors import DataFormatError
    from bench.power import ArrayWorkload

    import h5py
    import numpy as np

    try:
        with h5py.File(path, "r") as f:
            if "chip_input_packed" not in f:
                raise DataFormatError(f"{path}: no chip_input_packed dataset (not an 'infer' run file of "
                                      "this version): nothing to replay")
            ds = f["chip_input_packed"]
            shape = ds.attrs["shape_per_sample"]
            if isinstance(shape, (str, bytes)):      # the run store keeps lists as JSON text
                import json

                shape = json.loads(shape)
            steps, rows = (int(v) for v in shape)
            spikes = np.unpackbits(ds[:], axis=2, bitorder="little", count=rows).astype(bool)
            g = f["chip_targets_s"][:] if "chip_targets_s" in f else None
            regs = ({k[4:]: float(v) for k, v in f["chip_replay"].attrs.items() if k.startswith("reg_")}
                    if "chip_replay" in f else {})
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read run file ({exc})") from None
    if spikes.shape[0] == 0 or spikes.shape[1] != steps:
        raise DataFormatError(f"{path}: chip_input_packed holds no samples")
    return ArrayWorkload(spikes), g, regs


def _power(args: argparse.Namespace) -> dict:
    from bench.power import PowerOptions, RailSetup, ReferenceWorkload, measure_power
    from bench.programming import schedule_for_station
    from bench.runstore import RunFile, check_writable
    from bench.session import open_bench
    from bench.station import load_station
    from drivers.instruments import open_smus, safety

    # every argument is checked before the bench starts (argparse types did the numbers)
    _check_smu_specs(args.smu)
    station = load_station(args.station)
    schedule = schedule_for_station(station)
    specs = {m.group("rail"): m.group("model") for m in map(_SPEC.match, args.smu) if m}
    models = [c.model for c in station.smu if c.rail not in specs] + list(specs.values())
    _check_interval(args, models)
    if args.dry_run:
        return _dry_run(args, station, schedule, models)
    if args.out is None:
        raise UsageError("--out RUN.h5 is required (unless --dry-run)")
    check_writable(args.out)
    follow(args, args.out)
    if args.replay is not None:
        workload, replay_g, replay_regs = _replay_workload(args.replay)
    else:
        workload, replay_g, replay_regs = ReferenceWorkload(args.samples, args.seed), None, {}
    conductances = workload.conductances_s if args.replay is None else replay_g
    opts = PowerOptions(samples=workload.n_samples, seed=args.seed, idle_points=args.idle_points,
                        margin=args.margin, program=not args.no_program, schedule=schedule,
                        interval_s=None if args.interval_us is None else args.interval_us * 1e-6)
    with safety.guard(), open_bench(args.station, args.chip, smu=True, station=station) as b:
        cfgs = _smu_configs(args, b.station, b.smu)
        if not cfgs:
            if b.sim is not None:
                raise UsageError("the simulated bench serves no SMUs ('snnbench sim serve' listed none: "
                                 "its board has no SimWorld attached); name SMUs with --smu")
            raise UsageError("no SMUs: name them in the station file ([[smu]]) or with --smu")
        setups = [RailSetup(c.rail, c.voltage_v, c.current_limit_a, c.nplc) for c in cfgs]
        opts.trigger_lines = [c.trigger_line or None for c in cfgs]
        for name, value in replay_regs.items():     # the infer run's time step, gain, ...
            b.chip.write_register(name, value)
        with RunFile(args.out, "power", station=b.station.as_dict(),
                     seeds={"workload_seed": args.seed, "chip_seed": b.station.chip.seed,
                            "run_seed": b.station.chip.run_seed},
                     chip_info=b.chip.info().as_dict(),
                     workload="reference" if args.replay is None else f"replay of {args.replay}") as run:
            smus = open_smus(cfgs)
            try:
                run.set_attrs("/", instruments=[{"rail": s.rail, "identity": s.identity,
                                                 "resource": s.adapter.resource_name} for s in smus])
                result = measure_power(b.chip, smus, setups, spikes=workload, conductances_s=conductances,
                                       options=opts, run=run)
            finally:
                errors = []
                for s in smus:
                    try:
                        s.close()
                    except Exception as exc:  # noqa: BLE001 - every rail must still be tried
                        errors.append(str(exc))
                if errors:
                    run.set_attrs("/", shutdown_errors=errors)
    result["out"] = str(args.out)
    result["chip_url"] = b.chip_url
    result["simulated"] = b.simulated
    result["replay"] = args.replay
    result["summary"] = (f"{result['average_power_w'] * 1e3:.3f} mW average, "
                         f"{result['energy_per_sample_j'] * 1e6:.4f} uJ/sample, "
                         f"{result['latency_s'] * 1e6:.2f} us/sample over {result['samples']} samples; "
                         f"TSOPS/W dense {result['tsops_per_w']['dense']:.4g}, "
                         f"event {result['tsops_per_w']['event']:.4g}; traces cover "
                         f"{result['covered_fraction']:.1%} of the run -> {args.out}")
    return result


def _dry_run(args: argparse.Namespace, station: Any, schedule: Any, models: list[str]) -> dict:
    """What ``power`` would do, checked without touching chip or instruments."""
    import dataclasses as dc

    from drivers.instruments import smu_class

    rails = []
    for c in station.smu:
        cls = smu_class(c.model)
        rng = cls.ranges[cls.normalise_model(c.model)]
        ap = {lf: c.nplc / lf for lf in (50.0, 60.0)}
        if not rng.nplc_min <= c.nplc <= rng.nplc_max:
            from bench.errors import ConfigError

            raise ConfigError(f"{station.source}: smu rail {c.rail}: nplc {c.nplc:g} outside the {c.model}'s "
                              f"{rng.nplc_min:g}..{rng.nplc_max:g}")
        if c.trigger_line and c.trigger_line > rng.trigger_lines:
            from bench.errors import ConfigError

            raise ConfigError(f"{station.source}: smu rail {c.rail}: trigger_line {c.trigger_line} outside the "
                              f"{c.model}'s trigger inputs 1..{rng.trigger_lines}")
        rails.append({"rail": c.rail, "model": c.model, "resource": c.resource, "voltage_v": c.voltage_v,
                      "current_limit_a": c.current_limit_a, "trigger_line": c.trigger_line or None,
                      "min_interval_s": {f"{lf:g}Hz": ap[lf] + rng.overhead_s for lf in ap}})
    return {"dry_run": True, "station": station.source, "rails": rails, "models": models,
            "write_verify_schedule": dc.asdict(schedule), "out": args.out,
            "summary": f"{station.source}: {len(rails)} SMU rail(s), limits and default write-verify "
                       "schedule accepted; nothing was touched"}
