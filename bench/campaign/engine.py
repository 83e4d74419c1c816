"""Run a campaign's pending points on dask.distributed and commit them through one writer.

- Cluster: a ``LocalCluster`` of ``workers`` single-threaded worker processes on 127.0.0.1 by
  default, or an existing cluster at ``scheduler`` (``tcp://host:port``) — one code path.
  ``workers = 0`` runs the points in this process (no dask; for debugging and baselines).
- Submission: explicit keys ``<campaign>-<hash>/<first index>[-<last>]/a<attempt>``,
  ``pure=False``, ``retries=0``; at most ``window`` tasks in flight (``as_completed`` +
  ``add``).  Fast points are grouped, consecutive, into tasks of about ``TASK_TARGET_S`` of
  work (from the point times seen so far), so dask's per-task cost stays small; every
  point still has its own seed and its own commit.  A task's points are committed
  together (one table append, one flush pair).
- Exactly once *in the file*: dask may run a task twice (a worker dies, the task reruns), so
  the coordinator drops a result whose point is already committed.  A point lost with its
  worker (``KilledWorker``, a lost connection) is resubmitted by the coordinator with the
  next attempt number, up to ``max_attempts``; then it is recorded as failed.
- Stations: a point on a physical station carries the resource ``station-<name>=1``; only a
  worker that advertises it runs it, one point at a time (checked before anything runs).
  Without a scheduler, physical-station points run on one local worker.
- Signals: the first SIGINT/SIGTERM stops submissions, lets the points in flight finish and
  commits them; a second one cancels them.  Either way the file ends consistent with
  ``state = "stopped"`` and the reason.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.campaign.plan import Plan
from bench.campaign.point import STATUS_FAILED, PointResult, PointSpec, run_point
from bench.campaign.store import CampaignStore
from bench.errors import BenchError, ConfigError
from bench.runstore import utc_now


COMMIT_PERIOD_S = 0.2
"""In-process runs commit finished points at least this often (a kill loses at most this much)."""
TASK_TARGET_S = 0.25
"""Fast points are grouped into tasks of about this much work (dask's per-task cost ~ms)."""
MAX_CHUNK = 256


class EngineError(BenchError):
    exit_code = 1


@dataclass
class EngineOptions:
    workers: int | None = None
    """Local worker processes (None = number of cores; 0 = run in this process)."""
    scheduler: str | None = None
    window: int | None = None
    """Points in flight (default 2 per worker)."""
    max_attempts: int = 3
    on_point: Callable[[PointResult, bool], None] | None = None
    """Called after each finished point with (result, committed)."""
    on_start: Callable[[int, int], None] | None = None
    """Called once with (n_points, already committed) before the first submission."""
    connect_timeout_s: float = 15.0


@dataclass
class EngineSummary:
    state: str
    reason: str
    committed_now: int = 0
    duplicates: int = 0
    resubmitted: int = 0
    failed_now: int = 0
    wall_s: float = 0.0
    point_wall_s: float = 0.0
    point_inner_s: float = 0.0
    point_cpu_s: float = 0.0
    workers: int = 0
    bytes_per_point: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class _Stopper:
    """First SIGINT/SIGTERM: stop submitting; second: cancel what is in flight."""

    def __init__(self) -> None:
        self.on_cancel: Callable[[], None] | None = None
        self.signals = 0
        self.reason = ""
        self.cancel = threading.Event()
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_Stopper":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._on)
        return self

    def _on(self, signum, frame) -> None:  # noqa: ARG002
        self.signals += 1
        self.reason = self.reason or f"{signal.Signals(signum).name} received"
        if self.signals > 1:
            self.cancel.set()
            if self.on_cancel is not None:
                self.on_cancel()

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    @property
    def stopping(self) -> bool:
        return self.signals > 0


def station_resource(plan: Plan) -> str | None:
    if plan.simulated:
        return None
    return f"station-{Path(plan.station_file).stem}"


def specs(plan: Plan, indices: list[int], data_dir: str | None) -> dict[int, PointSpec]:
    out = {}
    for i in indices:
        setup, steps = plan.point_params(i)
        out[i] = PointSpec(index=i, campaign_seed=plan.seed, setup=setup,
                           steps=tuple((n, p, dict(v)) for n, p, v in steps),
                           station_file=plan.station_file, data_dir=data_dir)
    return out


def _bytes(res: PointResult) -> int:
    import pickle

    return len(pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL))


def run(plan: Plan, store: CampaignStore, opts: EngineOptions, data_dir: str | None = None) -> EngineSummary:
    """Run every point not yet committed in ``store``; commit as they finish."""
    pending = [i for i in range(plan.n_points) if i not in store.done]
    todo = specs(plan, pending, data_dir)
    summary = EngineSummary(state="running", reason="")
    t0 = time.perf_counter()
    if opts.on_start:
        opts.on_start(plan.n_points, store.committed)
    shipped = [0, 0]

    def finished(results: list[PointResult]) -> None:
        flags = store.commit_many(results)
        for res, ok in zip(results, flags):
            if ok:
                summary.committed_now += 1
                summary.point_wall_s += res.wall_s
                summary.point_inner_s += res.point_s
                summary.point_cpu_s += res.cpu_s
                summary.failed_now += res.status == STATUS_FAILED
            else:
                summary.duplicates += 1
            if opts.on_point:
                opts.on_point(res, ok)
            if res.status == STATUS_FAILED and plan.on_error == "stop" and summary.state == "running":
                summary.state, summary.reason = "failed", f"point {res.index} failed: {res.error}"

    with _Stopper() as stop:
        if opts.workers == 0 and opts.scheduler is None:
            summary.workers = 1
            batch: list[PointResult] = []
            last = time.perf_counter()
            for i in pending:
                if stop.stopping or summary.state != "running":
                    break
                res = run_point(todo[i])
                batch.append(res)
                # commit at least every COMMIT_PERIOD_S, and at once after a failure
                if res.status == STATUS_FAILED or time.perf_counter() - last >= COMMIT_PERIOD_S:
                    finished(batch)
                    batch, last = [], time.perf_counter()
            if batch:
                finished(batch)
        else:
            _run_dask(plan, store, opts, todo, pending, stop, summary, finished, shipped)
        if summary.state == "running":
            if stop.stopping:
                summary.state, summary.reason = "stopped", stop.reason
            elif store.committed < plan.n_points:
                summary.state, summary.reason = "stopped", "points left pending"
            else:
                summary.state = "finished"
    summary.wall_s = time.perf_counter() - t0
    summary.bytes_per_point = shipped[0] / shipped[1] if shipped[1] else 0.0
    return summary


def check_scheduler(plan: Plan, address: str, timeout_s: float = 10.0) -> int:
    """Before anything is written: the scheduler answers, has a worker, and (physical station)
    some worker advertises the station's resource.  Returns the number of workers."""
    opts = EngineOptions(scheduler=address, connect_timeout_s=timeout_s)
    client, _ = _client(plan, opts)
    try:
        workers = client.scheduler_info().get("workers", {})
        resource = station_resource(plan)
        if resource and not any(w.get("resources", {}).get(resource) for w in workers.values()):
            raise ConfigError(f"no worker of {address} advertises the resource {resource}=1 "
                              f"(start the station's worker with --resources \"{resource}=1\")")
        return len(workers)
    finally:
        client.close()


def _tcp_refused(address: str, timeout_s: float) -> str | None:
    """One plain TCP connect to a ``tcp://`` scheduler address before dask's client: the reason
    when nothing can be reached there, else None (and None for other schemes, left to dask).

    dask's ``Client`` retries a refused connection until its whole timeout (10 s in
    ``check_scheduler``) and then reports a time-out; a refused port (no scheduler there) is
    reported at once instead, by name.  A scheduler that is merely slow to answer still accepts
    the TCP connection at once (the kernel completes the handshake), so it passes here and gets
    dask's full timeout as before; a connect that hangs (filtered port) fails after
    ``timeout_s`` (s) here, as it would in dask."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, loc = parse_address(address)
        if scheme != "tcp":
            return None
        host, port = parse_host_port(loc, 8786)   # dask's default scheduler port
    except ValueError:
        return None   # dask reports a malformed address in its own words
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except ConnectionRefusedError:
        return f"connection refused: nothing listens on {host}:{port}"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout_s:g} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def _client(plan: Plan, opts: EngineOptions):
    from distributed import Client, LocalCluster

    if opts.scheduler:
        dead = _tcp_refused(opts.scheduler, opts.connect_timeout_s)
        if dead:
            raise ConfigError(f"--scheduler {opts.scheduler}: cannot connect ({dead})")
        try:
            client = Client(opts.scheduler, timeout=opts.connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"--scheduler {opts.scheduler}: cannot connect ({exc})") from None
        try:
            client.wait_for_workers(1, timeout=opts.connect_timeout_s)
        except TimeoutError:
            client.close()
            raise ConfigError(f"--scheduler {opts.scheduler}: no worker joined within "
                              f"{opts.connect_timeout_s:g} s") from None
        return client, None
    n = opts.workers if opts.workers is not None else (os.cpu_count() or 1)
    if not plan.simulated:
        n = 1  # one physical station: its points run one at a time
    # The workers start with SIGINT ignored (inherited): Ctrl-C in a terminal reaches the whole
    # process group, and only the client decides what an interrupt means (finish, then stop).
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        cluster = LocalCluster(n_workers=max(1, n), threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.ERROR)
    finally:
        if main:
            signal.signal(signal.SIGINT, old)
    return Client(cluster, set_as_default=False), cluster


def _warm_up() -> None:
    import bench.campaign.point  # noqa: F401
    import bench.campaign.procedures  # noqa: F401
    import bench.session  # noqa: F401
    import sim_backend  # noqa: F401


def _run_dask(plan, store, opts, todo, pending, stop, summary, finished, shipped) -> None:
    from dataclasses import replace

    from distributed import as_completed

    from bench.campaign.point import run_points

    t_start = time.perf_counter()
    client, cluster = _client(plan, opts)
    try:
        client.run(_warm_up)  # every worker imports the bench before the first point
    except BaseException:
        client.close()
        if cluster is not None:
            cluster.close()
        raise
    summary.extra["cluster_start_s"] = time.perf_counter() - t_start
    try:
        info = client.scheduler_info()
        workers = info.get("workers", {})
        summary.workers = len(workers)
        resource = station_resource(plan) if opts.scheduler else None
        if resource and not any(w.get("resources", {}).get(resource) for w in workers.values()):
            raise ConfigError(f"no worker of {opts.scheduler} advertises the resource {resource}=1 "
                              f"(start the station's worker with --resources \"{resource}=1\")")
        window = opts.window or max(2, 2 * summary.workers)
        prefix = f"{plan.name}-{plan.sha256[:12]}"
        queue = list(pending)
        attempts: dict[int, int] = {}
        owner: dict[Any, list[int]] = {}
        timing = {"points": 0, "seconds": 0.0}

        def chunk_size() -> int:
            """Points per task: about TASK_TARGET_S of work once point times are known."""
            if not timing["points"]:
                return 1
            mean = timing["seconds"] / timing["points"]
            return int(min(MAX_CHUNK, max(1, TASK_TARGET_S / max(mean, 1e-6))))

        def submit(idx: list[int]):
            batch = []
            for i in idx:
                attempts[i] = attempts.get(i, 0) + 1
                batch.append(replace(todo[i], attempt=attempts[i]) if attempts[i] > 1 else todo[i])
            key = f"{prefix}/{idx[0]:06d}" + (f"-{idx[-1]:06d}" if len(idx) > 1 else "") + f"/a{attempts[idx[0]]}"
            fut = client.submit(run_points, batch, key=key, pure=False, retries=0,
                                resources={resource: 1} if resource else None)
            owner[fut] = idx
            return fut

        def take() -> list[int]:
            n = chunk_size()
            idx, queue[:n] = queue[:n], []
            return idx

        stop.on_cancel = lambda: client.cancel(list(owner), force=True)
        ac = as_completed([submit(take()) for _ in range(min(window, len(queue)))], loop=client.loop)
        for fut in ac:
            idx = owner.pop(fut)
            if stop.cancel.is_set():
                continue
            try:
                results = fut.result()
            except Exception as exc:  # noqa: BLE001 - lost worker, cancelled, comm error
                if stop.stopping:  # stopping: a lost point stays pending (redone on --resume)
                    continue
                if attempts[idx[0]] < opts.max_attempts:
                    summary.resubmitted += len(idx)
                    ac.add(submit(idx))
                    continue
                results = [PointResult(index=i, status=STATUS_FAILED, error=f"lost after {attempts[i]} attempts: "
                                       f"{type(exc).__name__}: {' '.join(str(exc).split())}", scalars={}, arrays={},
                                       seed=todo[i].run_seed, started_utc=utc_now(), ended_utc=utc_now(),
                                       wall_s=0.0, attempt=attempts[i]) for i in idx]
            fut.release()
            for r in results:
                shipped[0] += _bytes(r)
                shipped[1] += 1
                timing["points"] += 1
                timing["seconds"] += r.wall_s
            finished(results)
            if queue and not stop.stopping and summary.state == "running":
                ac.add(submit(take()))
    finally:
        t_stop = time.perf_counter()
        client.close()
        if cluster is not None:
            cluster.close()
        summary.extra["cluster_stop_s"] = time.perf_counter() - t_stop
