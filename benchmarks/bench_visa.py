"""VISA path to the simulated SMUs (issue 5).

    .venv/bin/python benchmarks/bench_visa.py [--quick] [--json]

Measures, in one run, on 127.0.0.1:
  * query round trip: ``*IDN?`` through pyvisa + pyvisa-py (``TCPIP0::...::SOCKET``) to the
    Keithley 2450 simulator, versus the same query over a raw TCP socket to the same server
    (and, for reference, a raw socket round trip to a minimal echo server);
  * buffered-trace throughput: fetch of a completed N-point trace through the driver
    (``*WAI`` + ``:TRAC:DATA? ... READ, REL``; 2 numbers per point) in points/s, versus pushing
    the same number of bytes through a raw socket (points/s at the same bytes per point), and
    versus the same query + parse over a raw socket to the simulator (no VISA);
    plus arm + acquire + fetch end to end (includes the simulator computing the points).
The simulator runs in its own process (like ``snnbench sim serve``) on a StubWorld (constant rail currents), so the figures measure
the I/O path, not the chip model.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.instruments import open_smu, safety  # noqa: E402
from drivers.instruments.base import VisaAdapter  # noqa: E402


_SIM = r"""
import sys, time
sys.path.insert(0, {root!r})
from sim_backend.instruments import Keithley2450Server, StubWorld
srv = Keithley2450Server(StubWorld(), "VDDA").start()
print(srv.port, flush=True)
sys.stdin.read()
srv.stop()
"""


def _start_sim() -> tuple[subprocess.Popen, int]:
    """The simulator in its own process, as ``snnbench sim serve`` runs it (no shared GIL)."""
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, "-c", _SIM.format(root=root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, port


def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.create_server(("127.0.0.1", 0))

    def loop() -> None:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    return
                conn.sendall(data)

    threading.Thread(target=loop, daemon=True).start()
    return srv, srv.getsockname()[1]


def _bulk_server(payload: bytes) -> tuple[socket.socket, int]:
    srv = socket.create_server(("127.0.0.1", 0))

    def loop() -> None:
        conn, _ = srv.accept()
        with conn:
            while conn.recv(64):
                conn.sendall(payload)

    threading.Thread(target=loop, daemon=True).start()
    return srv, srv.getsockname()[1]


def _raw_rtt(port: int, message: bytes, n: int) -> float:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            s.sendall(message)
            buf = b""
            while not buf.endswith(b"\n"):
                buf += s.recv(4096)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _raw_bulk(port: int, size: int, reps: int) -> float:
    with socket.create_connection(("127.0.0.1", port)) as s:
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            s.sendall(b"go\n")
            got = 0
            while got < size:
                got += len(s.recv(1 << 20))
            best = min(best, time.perf_counter() - t)
    return best


def _raw_trace_fetch(port: int, n_points: int, reps: int) -> float:
    """The same buffered trace read over a raw socket (no VISA): best fetch time."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def ask(cmd: bytes) -> bytes:
            s.sendall(cmd)
            buf = bytearray()
            while not buf.endswith(b"\n"):
                buf += s.recv(1 << 16)
            return bytes(buf)

        for cmd in (b":SOUR:VOLT:ILIM 0.1\n", b":SENS:CURR:NPLC 0.01\n", b":SOUR:VOLT 1.8\n", b":OUTP ON\n"):
            s.sendall(cmd)
        best = float("inf")
        for _ in range(reps):
            s.sendall(f':TRAC:CLE "defbuffer1"\n:TRIG:LOAD "SimpleLoop", {n_points}, 0, "defbuffer1"\n'
                      f':INIT\n*WAI\n'.encode())
            ask(b':TRAC:ACT? "defbuffer1"\n')
            t = time.perf_counter()
            s.sendall(b"*WAI\n")
            reply = ask(f':TRAC:DATA? 1, {n_points}, "defbuffer1", READ, REL\n'.encode())
            np.array(reply.decode().strip().split(","), dtype=np.float64)
            best = min(best, time.perf_counter() - t)
        s.sendall(b":SOUR:VOLT 0\n:OUTP OFF\n")
        ask(b":OUTP?\n")
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n_rtt = 200 if args.quick else 1000
    n_points = 20_000 if args.quick else 100_000
    reps = 2 if args.quick else 3

    proc, port = _start_sim()
    res = f"TCPIP0::127.0.0.1::{port}::SOCKET"
    out: dict[str, float] = {}
    try:
        # raw socket to the simulator (the simulator's own parse/reply cost included)
        out["raw_sim_rtt_s"] = _raw_rtt(port, b"*IDN?\n", n_rtt)
        echo, eport = _echo_server()
        out["raw_echo_rtt_s"] = _raw_rtt(eport, b"*IDN?\n", n_rtt)
        echo.close()
        # pyvisa-py to the same simulator
        ad = VisaAdapter(res)
        times = []
        for _ in range(n_rtt):
            t = time.perf_counter()
            ad.query("*IDN?")
            times.append(time.perf_counter() - t)
        ad.close()
        out["visa_rtt_s"] = statistics.median(times)
        out["visa_rtt_over_raw_sim"] = out["visa_rtt_s"] / out["raw_sim_rtt_s"]
        out["visa_rtt_over_raw_echo"] = out["visa_rtt_s"] / out["raw_echo_rtt_s"]

        # buffered trace through the driver
        cfg = {"resource": res, "model": "2450", "rail": "VDDA", "max_voltage_v": 3.6, "max_current_a": 0.2}
        with open_smu(cfg, timeout_s=60) as smu:
            smu.configure(1.8, 0.1, 0.01)
            smu.enable()
            best = best_e2e = float("inf")
            nbytes = 0
            for _ in range(reps):
                # end to end: arm, the world advances, the simulator computes, format, transfer, parse
                t = time.perf_counter()
                smu.arm_trace(n_points, smu.aperture_s)
                tr = smu.fetch_trace(timeout_s=60)
                best_e2e = min(best_e2e, time.perf_counter() - t)
                assert tr.current_a.size == n_points
                # transfer only: the acquisition is complete before the fetch starts
                smu.arm_trace(n_points, smu.aperture_s)
                smu.write("*WAI")
                smu.ask(':TRAC:ACT? "defbuffer1"', timeout_s=60)
                t = time.perf_counter()
                tr = smu.fetch_trace(timeout_s=60)
                best = min(best, time.perf_counter() - t)
                assert tr.current_a.size == n_points
            # bytes the simulator sends for that trace
            nbytes = len(smu.ask(f':TRAC:DATA? 1, {n_points}, "defbuffer1", READ, REL', timeout_s=60)) + 1
        out["trace_points"] = n_points
        out["trace_bytes"] = nbytes
        out["trace_points_per_s"] = n_points / best
        out["trace_points_per_s_end_to_end"] = n_points / best_e2e
        out["raw_trace_fetch_points_per_s"] = n_points / _raw_trace_fetch(port, n_points, reps)
        out["trace_over_raw_trace_fetch"] = out["trace_points_per_s"] / out["raw_trace_fetch_points_per_s"]
        bulk, bport = _bulk_server(b"x" * (nbytes - 1) + b"\n")
        raw_s = _raw_bulk(bport, nbytes, reps + 2)
        bulk.close()
        out["raw_points_per_s"] = n_points / raw_s
        out["trace_over_raw"] = out["trace_points_per_s"] / out["raw_points_per_s"]
    finally:
        safety.shutdown_all()
        proc.communicate("", timeout=10)

    if args.json:
        print(json.dumps(out))
    else:
        print(f"query round trip: pyvisa-py {out['visa_rtt_s'] * 1e6:.0f} us, raw socket to the simulator "
              f"{out['raw_sim_rtt_s'] * 1e6:.0f} us (x{out['visa_rtt_over_raw_sim']:.2f}), raw echo "
              f"{out['raw_echo_rtt_s'] * 1e6:.0f} us (x{out['visa_rtt_over_raw_echo']:.2f})")
        print(f"buffered trace: {out['trace_points']} points ({out['trace_bytes'] / 1e6:.2f} MB) at "
              f"{out['trace_points_per_s']:.0f} points/s through the driver; raw socket "
              f"{out['raw_points_per_s']:.0f} points/s (ratio {out['trace_over_raw']:.3f}); "
              f"arm+acquire+fetch end to end {out['trace_points_per_s_end_to_end']:.0f} points/s")
        print(f"same trace fetched and parsed over a raw socket: {out['raw_trace_fetch_points_per_s']:.0f} points/s "
              f"(driver/raw ratio {out['trace_over_raw_trace_fetch']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
