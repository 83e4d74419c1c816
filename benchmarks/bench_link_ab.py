"""A/B of the link between source trees: one ``sim serve`` per tree, side by side, same minutes.

On a shared 2-core machine two runs of bench_link.py minutes apart differ by more than most
changes to the link do; this runs every variant in *one* process, alternating the variants'
order every repetition, each transfer in the same surroundings as bench_link.py's (the raw
baseline just before it, a READ_OUTPUT computing 100 samples between repetitions -- caches as
cold as in use).  Per variant it reports, as medians over the repetitions:

- the wall time of an UPLOAD_SPIKES of already-packed spikes (``--quick``: 400 samples,
  1.92 MB) and of the bulk readout of a READ_OUTPUT's reply (the BULK_GET rounds after its
  COMMIT: 1.44 MB), each with its ratio to the raw transport measured just before it;
- the CPU time the variant's board process spent on each (``/proc/PID/task/*/schedstat``, ns:
  a measure the machine's load disturbs far less than wall time).

The host side (drivers/, firmware_iface/) is this checkout's for every variant; a variant is
``TREE[:PIECE]``: a source tree (e.g. ``git worktree add --detach /tmp/base <commit>``) whose
``sim_backend`` the board process imports, and optionally the host's largest bulk piece
(bytes; default drivers.bulkmode.PIECE_MAX).  Linux only (schedstat).

    .venv/bin/python benchmarks/bench_link_ab.py /tmp/base . [.:1048576] [--reps 101] [--full]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_link as bl  # noqa: E402

from drivers import bulkmode  # noqa: E402
from firmware_iface import messages as msg  # noqa: E402
from firmware_iface.spec import Opcode  # noqa: E402
from firmware_iface.spikes import encode_upload  # noqa: E402


def _serve(tree: str) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "sim_backend", "serve", "--fidelity", "ideal", "--no-instruments"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=tree)
    return p, json.loads(p.stdout.readline())["chip"]


def _board_ns(pid: int) -> int:
    """CPU time (ns) of every thread of process ``pid`` so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def _variant(v: str) -> tuple[str, int]:
    """``TREE[:PIECE]`` -> (tree, largest bulk piece in bytes)."""
    tree, _, piece = v.rpartition(":")
    return (tree, int(piece)) if tree and piece.isdigit() else (v, bulkmode.PIECE_MAX)


def run(variants: list[str], reps: int, n_up: int, n_read: int) -> dict:
    procs: list[subprocess.Popen] = []
    chips: list[bl.TimedChip] = []
    raw = bl.Raw("socket")
    keys = ("up_s", "up_raw_s", "up_cpu_s", "rd_s", "rd_raw_s", "rd_cpu_s")
    trees, pieces = zip(*map(_variant, variants))
    rows = [{k: [] for k in keys} for _ in variants]
    try:
        for tree in trees:
            p, url = _serve(tree)
            procs.append(p)
            chip = bl.TimedChip(url, timeout_s=30)
            chip.__enter__()
            chips.append(chip)
            bl._prepare(chip, n_read)
        sp = np.random.default_rng(2).random((n_up, 300, 128)) < 0.05
        payloads = bl._upload_payloads(chips[0], sp, slot=n_read)
        up_bytes = sum(map(len, payloads))
        read_req = msg.encode_run(0, n_read)
        cap = 12 + n_read * chips[0].info().neurons * (2 + 4 * 300)
        rd_bytes = len(chips[0].call(Opcode.READ_OUTPUT, read_req, reply_bytes=cap))
        up_blob, rd_blob = b"\x55" * up_bytes, b"\x55" * rd_bytes
        order = list(range(len(variants)))
        for r in range(reps):
            for i in (order if r % 2 == 0 else order[::-1]):
                chip, pid, row = chips[i], procs[i].pid, rows[i]
                piece = chip.bulk_piece = pieces[i]
                row["up_raw_s"].append(raw.upload(up_blob))
                c0, t0 = _board_ns(pid), time.perf_counter()
                for pl in payloads:
                    chip.call(Opcode.UPLOAD_SPIKES, pl)
                row["up_s"].append(time.perf_counter() - t0)
                row["up_cpu_s"].append((_board_ns(pid) - c0) * 1e-9)
                row["rd_raw_s"].append(raw.readout(rd_blob))
                chip.bulk_piece = pieces[i]  # a clean upload doubled it (up to PIECE_MAX)
                chip.get_s, c0 = 0.0, _board_ns(pid)
                chip.call(Opcode.READ_OUTPUT, read_req, reply_bytes=cap)
                row["rd_s"].append(chip.get_s)
                row["rd_cpu_s"].append((_board_ns(pid) - c0) * 1e-9)  # the whole command's
    finally:
        for chip in chips:
            chip.__exit__(None, None, None)
        raw.close()
        for p in procs:
            p.terminate()
            p.wait()
    med = lambda v: float(np.median(v))  # noqa: E731
    out: dict = {"load_1min": os.getloadavg()[0], "reps": reps, "upload_bytes": up_bytes, "readout_bytes": rd_bytes}
    for variant, tree, piece, row in zip(variants, trees, pieces, rows):
        out[variant] = {
            "tree": str(Path(tree).resolve()), "piece_bytes": piece,
            "upload_ms": 1e3 * med(row["up_s"]),
            "upload_ratio_to_raw": med(np.array(row["up_raw_s"]) / np.array(row["up_s"])),
            "upload_board_cpu_ms": 1e3 * med(row["up_cpu_s"]),
            "readout_ms": 1e3 * med(row["rd_s"]),
            "readout_ratio_to_raw": med(np.array(row["rd_raw_s"]) / np.array(row["rd_s"])),
            "read_output_board_cpu_ms": 1e3 * med(row["rd_cpu_s"]),
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="+", metavar="TREE[:PIECE]",
                    help="a source tree whose sim_backend the board runs, and the host's largest piece (bytes)")
    ap.add_argument("--reps", type=int, default=101)
    ap.add_argument("--full", action="store_true", help="bench_link's full sizes (1000 / 200 samples)")
    a = ap.parse_args()
    for v in a.variants:
        tree, _ = _variant(v)
        if not (Path(tree) / "sim_backend").is_dir():
            print(f"bench_link_ab: error: {tree}: no sim_backend/ there (variant {v!r})", file=sys.stderr)
            return 2
    print(json.dumps(run(a.variants, a.reps, 1000 if a.full else 400, 200 if a.full else 100), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
