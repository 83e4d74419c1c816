"""Fuzz the virtual firmware and the host parsers; measure the link's fault budget (issue 16).

    .venv/bin/python benchmarks/bench_fuzz.py [--quick] [--frames N] [--host-frames N] [--seeds N]

1. Firmware: N seeded fuzz frames (benchmarks/fuzzframes.py: garbage, random, extreme-valued,
   mutated) into virtual boards; counts crashes (an exception out of ``feed``), INTERNAL replies,
   hangs (a frame taking > 2 s), the slowest frame, and peak traced memory (tracemalloc over the
   first 20,000 frames, against the stated bound LIMITS.memory_bytes).  Time per fuzz frame is
   printed as a ratio to a same-run baseline: valid STATUS frames through the same firmware.
2. Host parsers: N random / mutated payloads into every host-side decoder and the frame decoder;
   counts crashes (anything but PayloadError / ValueError / FrameError).
3. Fault budget: a workload (write-verify 512 cells, a whole-array read, upload + run + readout
   of 16 samples) over ``pesim://`` with bit-error rate x drop rate on a grid, ``--seeds`` link
   seeds each, default settings (retries 5): completion rate, retries per command, round trips
   as a ratio to the clean link, and whether the results are identical to the clean link.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.fuzzframes import FrameFuzzer, mutate, payload  # noqa: E402
from firmware_iface import bulk, messages as msg  # noqa: E402
from firmware_iface.framing import Frame, FrameDecoder, FrameError, decode_body, encode_frame  # noqa: E402
from firmware_iface.records import PayloadError  # noqa: E402
from firmware_iface.spec import Opcode, Status  # noqa: E402
from firmware_iface.spikes import decode_output, decode_upload  # noqa: E402

HANG_S = 2.0
TRACED_FRAMES = 20_000


def firmware_fuzz(frames: int, boards: int = 8) -> dict:
    from sim_backend.board import make_board
    from sim_backend.firmware import MEMORY_BYTES

    crashes = internal = hangs = 0
    slowest = 0.0
    peak = 0
    per_board = -(-frames // boards)
    fuzz_s = 0.0
    done = 0
    reset_ok = 0
    for b in range(boards):
        fw, dec, fz = make_board(b + 1, b, "typical"), FrameDecoder(), FrameFuzzer(seed=1000 + b)
        fw.feed(fz.hello())
        traced = b == 0
        if traced:
            tracemalloc.start()
        for i in range(min(per_board, frames - done)):
            if i % 500 == 0:
                fw.feed(fz.hello())
            _, data = fz.next()
            t0 = time.perf_counter()
            try:
                out = fw.feed(data)
            except Exception:  # noqa: BLE001 - counted: the firmware must never raise
                crashes += 1
                continue
            dt = time.perf_counter() - t0
            fuzz_s += dt
            slowest = max(slowest, dt)
            hangs += dt > HANG_S
            internal += sum(f.status == Status.INTERNAL for f in dec.feed(out))
            if traced and i == TRACED_FRAMES:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                traced = False
        done += min(per_board, frames - done)
        if traced:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        # STATUS after RESET, whatever the fuzz left behind
        s = 0xC0DE
        replies = dec.feed(fw.feed(encode_frame(Frame(int(Opcode.HELLO), 0, b"", session=s))
                                   + encode_frame(Frame(int(Opcode.RESET), 1, b"", session=s))
                                   + encode_frame(Frame(int(Opcode.STATUS), 2, b"", session=s))))
        reset_ok += [f.status for f in replies] == [Status.OK] * 3
    # baseline: valid STATUS frames through a fresh firmware, same run
    fw, dec = make_board(1, 0, "typical"), FrameDecoder()
    fw.feed(encode_frame(Frame(int(Opcode.HELLO), 0, b"", session=7)))
    status = encode_frame(Frame(int(Opcode.STATUS), 1, b"", session=7))
    n_base = min(20_000, max(1000, frames // 20))
    t0 = time.perf_counter()
    for _ in range(n_base):
        dec.feed(fw.feed(status))
    base_s = (time.perf_counter() - t0) / n_base
    return {"frames": done, "crashes": crashes, "internal": internal, "hangs": hangs, "slowest_s": slowest,
            "peak_traced_bytes": peak, "traced_frames": min(TRACED_FRAMES, per_board),
            "memory_bound_bytes": MEMORY_BYTES, "status_after_reset_ok": f"{reset_ok}/{boards}",
            "us_per_fuzz_frame": fuzz_s / max(1, done) * 1e6, "us_per_status_frame": base_s * 1e6,
            "ratio_fuzz_to_status": fuzz_s / max(1, done) / base_s}


HOST_DECODERS = {
    "info": msg.decode_info, "hello": msg.decode_hello, "status": msg.decode_status,
    "conductances": msg.decode_conductances, "cell_results": msg.decode_cell_results, "done": msg.decode_done,
    "limits": bulk.decode_limits, "result": bulk.decode_result,
    "output": lambda p: decode_output(p, n_expected=16, max_steps=4096, max_neurons=12),
    "upload": lambda p: decode_upload(p, max_bits=1 << 24),
}


def host_fuzz(frames: int, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    names = list(HOST_DECODERS)
    valid = {  # real replies to mutate
        "info": None, "hello": None,
        "status": msg.encode_status(state=0, last_error=0, chip_ns=1, frames_rx=1, bad_frames=0, duplicates=0,
                                    samples_stored=0, outputs_ready=0),
        "conductances": msg.encode_conductances(np.full(24, 1e-5, np.float32)),
        "done": msg.encode_done(3, 100),
        "output": None,
    }
    crashes, examples = 0, []
    dec = FrameDecoder()
    t0 = time.perf_counter()
    for i in range(frames):
        which = names[i % len(names)]
        r = rng.random()
        if r < 0.3 and valid.get(which):
            data = mutate(rng, valid[which])
        elif r < 0.6:
            data = payload(rng, "record")[1]
        else:
            data = rng.bytes(int(rng.integers(0, 200)))
        try:
            HOST_DECODERS[which](data)
        except (PayloadError, ValueError):
            pass
        except Exception as exc:  # noqa: BLE001 - counted
            crashes += 1
            examples.append(f"{which}: {type(exc).__name__}: {exc}"[:120])
        if i % 4 == 0:  # the frame layer: the same bytes as a stuffed body and as a stream
            try:
                decode_body(data)
            except FrameError:
                pass
            except Exception as exc:  # noqa: BLE001
                crashes += 1
                examples.append(f"frame: {type(exc).__name__}: {exc}"[:120])
            dec.feed_events(data + (b"\x00" if rng.random() < 0.5 else b""))
    return {"frames": frames, "crashes": crashes, "examples": examples[:3],
            "us_per_frame": (time.perf_counter() - t0) / frames * 1e6}


def _workload(url: str) -> tuple[dict, dict]:
    from drivers.pechip import PEChip
    from firmware_iface.write_verify import PulseSchedule

    rng = np.random.default_rng(0)
    with PEChip(url) as chip:
        rows, cols = np.divmod(np.arange(512), 24)
        lv = np.asarray(chip.info().levels_s)
        wv = chip.write_verify(rows, cols, lv[rng.integers(0, 16, 512)], PulseSchedule())
        g = chip.read_array(averages=8)
        out = chip.infer(rng.random((16, 300, 128)) < 0.05)
        st = chip.stats
        res = {"g_wv": wv.g_s, "pulses": wv.pulses, "g": g, "out": out}
        return res, {"operations": st.operations, "retries": st.retries, "round_trips": st.round_trips}


def fault_grid(seeds: int, bers, drops) -> list[dict]:
    base = "pesim://?seed=3&fidelity=typical"
    want, clean = _workload(base)
    rows = []
    for ber in bers:
        for drop in drops:
            ok = same = 0
            retries = ops = trips = 0
            errors = []
            for s in range(1, seeds + 1):
                url = f"{base}&ber={ber:g}&drop={drop:g}&link_seed={s}"
                try:
                    got, st = _workload(url)
                except Exception as exc:  # noqa: BLE001 - a failed run is the measurement
                    errors.append(f"{type(exc).__name__}: {exc}"[:100])
                    continue
                ok += 1
                same += all(np.array_equal(got[k], want[k]) for k in want)
                retries, ops, trips = retries + st["retries"], ops + st["operations"], trips + st["round_trips"]
            rows.append({"ber": ber, "drop": drop, "completed": f"{ok}/{seeds}", "identical": f"{same}/{ok}",
                         "retries_per_command": retries / ops if ops else None,
                         "round_trips_ratio_to_clean": trips / max(1, ok) / clean["round_trips"],
                         "errors": errors[:2]})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="50,000 frames each, 3 seeds, small grid")
    p.add_argument("--frames", type=int, default=None, help="firmware fuzz frames (default 1,000,000)")
    p.add_argument("--host-frames", type=int, default=None, help="host parser frames (default 1,000,000)")
    p.add_argument("--seeds", type=int, default=None, help="link seeds per grid point (default 10)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    frames = a.frames or (50_000 if a.quick else 1_000_000)
    host_frames = a.host_frames or (50_000 if a.quick else 1_000_000)
    seeds = a.seeds or (3 if a.quick else 10)
    bers = (0.0, 1e-5, 1e-4) if a.quick else (0.0, 1e-6, 1e-5, 3e-5, 1e-4)
    drops = (0.0, 0.005, 0.02)
    t0 = time.time()
    report = {"firmware": firmware_fuzz(frames), "host": host_fuzz(host_frames),
              "grid": fault_grid(seeds, bers, drops), "seconds": time.time() - t0,
              "load": os.getloadavg()}
    if a.json:
        print(json.dumps(report, indent=1, default=float))
        return 0
    fw, host = report["firmware"], report["host"]
    print(f"firmware: {fw['frames']:,} frames: crashes {fw['crashes']}, INTERNAL {fw['internal']}, hangs "
          f"{fw['hangs']} (slowest {fw['slowest_s'] * 1e3:.1f} ms), peak traced memory "
          f"{fw['peak_traced_bytes'] / 2**20:.1f} MiB over {fw['traced_frames']:,} frames (bound "
          f"{fw['memory_bound_bytes'] / 2**20:.0f} MiB), STATUS after RESET {fw['status_after_reset_ok']}")
    print(f"          {fw['us_per_fuzz_frame']:.0f} us per fuzz frame = {fw['ratio_fuzz_to_status']:.2f} x a "
          f"valid STATUS frame ({fw['us_per_status_frame']:.0f} us, same run)")
    print(f"host parsers: {host['frames']:,} payloads: crashes {host['crashes']} {host['examples']}")
    print("fault budget (default settings: retries 5), workload = write-verify 512 cells + array read + 16 "
          "samples upload/run/readout:")
    print(f"{'BER':>8} {'drop':>6} {'completed':>10} {'identical':>10} {'retries/cmd':>12} {'trips x clean':>14}")
    for r in report["grid"]:
        rpc = "-" if r["retries_per_command"] is None else f"{r['retries_per_command']:.3f}"
        print(f"{r['ber']:>8g} {r['drop']:>6g} {r['completed']:>10} {r['identical']:>10} {rpc:>12} "
              f"{r['round_trips_ratio_to_clean']:>14.2f}" + (f"  {r['errors'][0]}" if r["errors"] else ""))
    print(f"({report['seconds']:.0f} s, load average {report['load'][0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
