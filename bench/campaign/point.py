"""One campaign point, run where a worker is: its own bench, its own seeds, results back.

A point is independent of every other: on the simulated backend it opens its own in-process
virtual board (``pesim://?seed=<chip_seed>&run_seed=<r>&fidelity=...``, plus any link
faults the plan injects: ``setup.link_drop``), with ``r`` drawn from ``SeedSequence([campaign_seed, index])``.
So a point gives the same result on any worker, in any order, on a first run or a resume.
On a physical station the point opens the station's chip (the engine serialises such
points on the station).  A point never raises: a failure is a result with ``status = 1``
and the error's one-line message, so the campaign goes on.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STATUS_OK, STATUS_FAILED, STATUS_SKIPPED = 0, 1, 2


@dataclass(frozen=True)
class PointSpec:
    """Everything a worker needs for one point (small, picklable)."""

    index: int
    campaign_seed: int
    setup: dict[str, Any]
    steps: tuple[tuple[str, str, dict[str, Any]], ...]
    station_file: str | None = None
    data_dir: str | None = None
    attempt: int = 1

    @property
    def seed_sequence(self) -> np.random.SeedSequence:
        return np.random.SeedSequence([self.campaign_seed, self.index])

    @property
    def run_seed(self) -> int:
        return int(self.seed_sequence.generate_state(1, np.uint32)[0] >> 1)


@dataclass
class PointResult:
    index: int
    status: int
    error: str
    scalars: dict[str, float]
    arrays: dict[str, tuple[np.ndarray, str]]
    seed: int
    started_utc: str
    ended_utc: str
    wall_s: float
    attempt: int
    chip_url: str = ""
    worker: str = ""
    point_s: float = 0.0
    """Time spent inside the point's steps (excludes opening the bench)."""
    cpu_s: float = 0.0
    """CPU time of the worker process during the point (user + system)."""
    extra: dict[str, Any] = field(default_factory=dict)


def chip_url(spec: PointSpec) -> str:
    s = spec.setup
    url = (f"pesim://?seed={int(s.get('chip_seed', 1))}&run_seed={spec.run_seed}"
           f"&fidelity={s.get('fidelity', 'typical')}")
    drop = float(s.get("link_drop", 0.0))
    return url + (f"&drop={drop!r}" if drop else "")


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _shutdown(smus) -> None:
    for smu in smus:
        with contextlib.suppress(Exception):
            smu.shutdown()
        with contextlib.suppress(Exception):
            smu.close()


def run_point(spec: PointSpec) -> PointResult:
    """Run the point's steps in order on a fresh bench; never raises (failures are results)."""
    import os
    import socket

    from bench.campaign.procedures import PROCEDURES, Context
    from bench.runstore import utc_now
    from bench.session import open_bench
    from bench.station import load_station

    t0, c0 = time.perf_counter(), time.process_time()
    started = utc_now()
    scalars: dict[str, float] = {}
    ctx: Context | None = None
    status, error, url, point_s = STATUS_OK, "", "", 0.0
    try:
        station = load_station(spec.station_file)
        needs_smu = any(proc == "power" for _, proc, _ in spec.steps)
        url = chip_url(spec) if station.simulated else station.chip.url
        if station.simulated and needs_smu:
            # the built-in simulated bench (a subprocess) with its SMU simulators, this point's die
            url = "sim"
            # a fresh die of the point's own (never the per-user default die file: points are independent)
            chip_kw = {"die": ""} if any(f.name == "die" for f in dataclasses.fields(station.chip)) else {}
            station = dataclasses.replace(station, chip=dataclasses.replace(
                station.chip, seed=int(spec.setup.get("chip_seed", 1)), run_seed=spec.run_seed,
                fidelity=spec.setup.get("fidelity", "typical"), **chip_kw))
        with contextlib.ExitStack() as stack:
            b = stack.enter_context(open_bench(None, url if station.simulated and url != "sim" else None,
                                               station=station, smu=needs_smu))
            url = b.chip_url
            ctx = Context(chip=b.chip, station=station, seed=spec.seed_sequence, data_dir=spec.data_dir)
            if needs_smu:
                from bench.demo import _smu_configs
                from drivers.instruments import open_smus

                ctx.smu_configs = _smu_configs(b)
                ctx.smus = open_smus(ctx.smu_configs)
                stack.callback(_shutdown, ctx.smus)  # 0 V, output off, on every exit path
            t1 = time.perf_counter()
            try:
                for name, proc, params in spec.steps:
                    out = PROCEDURES[proc].run(ctx, **params)
                    scalars.update({f"{name}.{k}": float(v) for k, v in out.items()})
            finally:
                point_s = time.perf_counter() - t1
    except Exception as exc:  # noqa: BLE001 - a failed point is recorded, the campaign goes on
        status, error = STATUS_FAILED, _one_line(exc)
    arrays = {k: (np.asarray(v), u) for k, (v, u) in (ctx.arrays.items() if ctx else ())}
    return PointResult(index=spec.index, status=status, error=error, scalars=scalars, arrays=arrays,
                       seed=spec.run_seed, started_utc=started, ended_utc=utc_now(),
                       wall_s=time.perf_counter() - t0, attempt=spec.attempt, chip_url=url,
                       worker=f"{socket.gethostname()}:{os.getpid()}", point_s=point_s,
                       cpu_s=time.process_time() - c0)


def run_points(specs: list[PointSpec]) -> list[PointResult]:
    """Several points in one task (fast points: amortises the scheduler's per-task cost)."""
    return [run_point(s) for s in specs]
