"""Simulated SMU query latency, per model, as a ratio to a raw socket round trip (issue 17).

    .venv/bin/python benchmarks/bench_instruments_latency.py [--quick] [--json]

The three simulated SMUs of the default bench (Keithley 2450, Keysight B2901A, Keithley
2601B) on a SimWorld (the virtual chip's rail timeline, with some recorded activity) in a
process of their own, as ``snnbench sim serve`` runs them; reached through the drivers,
pyvisa and pyvisa-py exactly as a campaign point reaches them.  Measured in one run, per model:

* ``raw_rtt``: a raw TCP socket (Nagle off) to the same simulator, ``*IDN?`` round trip --
  the baseline every ratio is taken against;
* ``raw_exchange``: over that raw socket, a set command and the error-queue query sent as two
  messages, then the reply (what the driver does after every setting);
* ``idn``: ``*IDN?`` through the driver's VisaAdapter;
* ``exchange``: ``smu.source_voltage = 0`` then ``smu.check_errors()`` through the driver
  (one write, one query), as shipped (TCP_NODELAY set by VisaAdapter) and with Nagle's
  algorithm switched back on on the same socket (the behaviour before the fix);
* ``count``: the reading-count query that completes an N-point buffered trace (N = 57,070,
  the 1x point of campaigns/time_scaling.toml; 20,000 with --quick), on a simulator with the
  vectorised ``SimWorld.mean_currents_a`` and on a second simulator process where it is
  hidden (the channel's per-window fallback, the behaviour before the fix);
* ``stop``: ``serve_instruments``' stop function, three idle SMU servers, in this process
  (every simulated bench pays it at shutdown; was up to 0.2 s per SMU, a polling accept).
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drivers.instruments import open_smu, safety  # noqa: E402

_SIM = r"""
import json, sys
import numpy as np
sys.path.insert(0, {root!r})
from sim_backend.world import SimWorld
from sim_backend.instruments import serve_instruments
if {scalar!r}:
    del SimWorld.mean_currents_a          # the channel falls back to one mean_current_a per window
world = SimWorld(chip_seed=1, fidelity="typical")
rng = np.random.default_rng(0)
for _ in range(20):                        # a timeline with recorded activity, as after an inference
    world.chip.run(rng.random((4, 300, 128)) < 0.05)
    world.advance_to(world.clock_s() + 1e-3)
desc, stop = serve_instruments(world)
print(json.dumps(desc), flush=True)
sys.stdin.read()
stop()
"""

_SET_AND_ERR = {"2450": (b":SOUR:VOLT 0\n", b":SYST:ERR?\n"),
                "B2901A": (b":SOUR1:VOLT 0\n", b":SYST:ERR?\n"),
                "2601B": (b"smua.source.levelv = 0\n", b"print(errorqueue.next())\n")}


def _start_sim(scalar: bool) -> tuple[subprocess.Popen, list[dict[str, Any]]]:
    proc = subprocess.Popen([sys.executable, "-c", _SIM.format(root=str(ROOT), scalar=scalar)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def _stop_sim(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _median_s(f, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _raw(port: int, model: str, n: int) -> tuple[float, float]:
    """(``*IDN?`` round trip, set + error query exchange) over a raw socket, Nagle off."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def ask(*msgs: bytes) -> None:
            for m in msgs:
                s.sendall(m)
            buf = b""
            while not buf.endswith(b"\n"):
                buf += s.recv(4096)

        rtt = _median_s(lambda: ask(b"*IDN?\n"), n)
        exch = _median_s(lambda: ask(*_SET_AND_ERR[model]), n)
    return rtt, exch


def _cfg(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "max_voltage_v": 3.6, "max_current_a": 0.2}


def _driver(d: dict[str, Any], n: int, n_nagle: int) -> dict[str, float]:
    smu = open_smu(_cfg(d))
    try:
        sock = smu.adapter._socket()
        out = {"idn_s": _median_s(lambda: smu.adapter.query("*IDN?"), n)}

        def exchange() -> None:
            smu.source_voltage = 0.0
            smu.check_errors()

        out["exchange_s"] = _median_s(exchange, n)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)      # as pyvisa-py leaves it
        out["exchange_nagle_s"] = _median_s(exchange, n_nagle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    finally:
        smu.close()
    return out


def _count(d: dict[str, Any], n_points: int, reps: int) -> float:
    """Median time of the reading-count query that completes an ``n_points`` trace."""
    smu = open_smu(_cfg(d), timeout_s=60)
    try:
        smu.configure(float(d["voltage_v"]), 0.1, 0.01)
        smu.enable()
        times = []
        for _ in range(reps):
            smu.arm_trace(n_points, smu.min_interval_s())
            t = time.perf_counter()
            got = smu._acquired()
            times.append(time.perf_counter() - t)
            assert got == n_points, (got, n_points)
            smu.fetch_trace(timeout_s=60)
    finally:
        smu.close()
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = 100 if args.quick else 400
    n_nagle = 10 if args.quick else 25
    n_points = 20_000 if args.quick else 57_070
    reps = 3 if args.quick else 5

    res: dict[str, dict[str, float]] = {}
    with safety.guard():
        proc, desc = _start_sim(scalar=False)
        try:
            for d in desc:
                r = res.setdefault(d["model"], {})
                port = int(d["resource"].split("::")[2])
                r["raw_rtt_s"], r["raw_exchange_s"] = _raw(port, d["model"], n)
                r.update(_driver(d, n, n_nagle))
                r["count_s"] = _count(d, n_points, reps)
        finally:
            _stop_sim(proc)
        proc, desc = _start_sim(scalar=True)
        try:
            for d in desc:
                res[d["model"]]["count_scalar_s"] = _count(d, n_points, reps)
        finally:
            _stop_sim(proc)
    from sim_backend.instruments import StubWorld, serve_instruments

    stops = []
    for _ in range(reps):
        _, stop = serve_instruments(StubWorld())
        time.sleep(0.02)                       # the accept loops are waiting
        t = time.perf_counter()
        stop()
        stops.append(time.perf_counter() - t)
    for r in res.values():
        base = r["raw_rtt_s"]
        for k in ("raw_exchange", "idn", "exchange", "exchange_nagle", "count", "count_scalar"):
            r[f"{k}_over_raw_rtt"] = r[f"{k}_s"] / base
    out = {"trace_points": n_points, "models": res, "stop_three_servers_s": statistics.median(stops)}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"simulated SMU query latency (median; count query completes a {n_points:,}-point trace)")
    print(f"{'model':7s} {'raw RTT':>9s} | {'ratio to the raw *IDN? round trip:':34s}")
    print(f"{'':7s} {'':>9s} | {'raw set+err':>11s} {'*IDN?':>7s} {'set+err':>8s} {'Nagle on':>9s}"
          f" {'count':>8s} {'count, per-window':>18s}")
    for model, r in res.items():
        print(f"{model:7s} {r['raw_rtt_s'] * 1e6:7.0f}us | {r['raw_exchange_over_raw_rtt']:11.2f}"
              f" {r['idn_over_raw_rtt']:7.2f} {r['exchange_over_raw_rtt']:8.2f}"
              f" {r['exchange_nagle_over_raw_rtt']:9.0f} {r['count_over_raw_rtt']:8.0f}"
              f" {r['count_scalar_over_raw_rtt']:18.0f}")
    print("absolute (ms): " + "; ".join(
        f"{m} set+err {r['exchange_s'] * 1e3:.3f} (Nagle on {r['exchange_nagle_s'] * 1e3:.1f}), count "
        f"{r['count_s'] * 1e3:.1f} (per-window {r['count_scalar_s'] * 1e3:.1f})" for m, r in res.items()))
    print(f"stop of three idle SMU servers: {out['stop_three_servers_s'] * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
