"""Benchmark (issue 4): program the full 128x24 array to a random 16-level target.

Reports, for board-side and host-driven (row-parallel) write-verify on the virtual chip at
``typical`` fidelity: median / p95 pulses per cell, round trips, bytes, modelled wall time on a
3 Mbaud / 1 ms-latency serial link with 1 us pulses, and host CPU seconds; plus a host-driven
*per-cell* baseline (one cell at a time, a read and a pulse round trip per step, NeuRRAM's
style) measured in the same run on a random subset of cells and scaled to 3,072 cells.

    .venv/bin/python benchmarks/bench_program.py [--seed 1] [--baseline-cells 96] [--json]

Targets: board-side <= 30 s modelled for 3,072 cells, <= 5 s host CPU.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import sim_backend  # noqa: F401  (pesim://)
from bench import mapping as M
from bench import programming as P
from drivers.pechip import PEChip

BAUD, LATENCY_S = 3_000_000, 1e-3
TOL = 5e-6


def _row(name: str, res: P.ProgramResult, readback=None, scale: float = 1.0) -> dict:
    s = P.summarise(res, TOL, readback)
    return {"mode": name, "cells": s["cells"], "within_tolerance": s["within_tolerance"],
            "stuck_cells": s["stuck_cells"], "pulses_median": s["pulses_median"],
            "pulses_p95": s["pulses_p95"], "round_trips": int(res.link.round_trips * scale),
            "bytes": int((res.link.bytes_tx + res.link.bytes_rx) * scale),
            "modelled_seconds": res.modelled_seconds(BAUD, LATENCY_S) * scale,
            "host_cpu_seconds": res.host_seconds * scale, "scaled_from_cells": int(res.rows.size) if scale != 1 else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--baseline-cells", type=int, default=96)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    url = f"pesim://?seed={a.seed}&fidelity=typical"
    schedule = P.default_schedule(TOL)
    rows_out = []
    for mode in ("board", "host"):
        with PEChip(url) as chip:
            info = chip.info()
            targets = M.map_levels(M.random_levels(a.seed), levels_s=info.levels_s).targets_s
            res = P.program_array(chip, targets, schedule, mode=mode)
            rows_out.append(_row(mode, res, P.read_map(chip)))
    with PEChip(url) as chip:
        info = chip.info()
        targets = M.map_levels(M.random_levels(a.seed), levels_s=info.levels_s).targets_s
        rng = np.random.default_rng(a.seed)
        cells = rng.choice(targets.size, a.baseline_cells, replace=False)
        r, c = np.unravel_index(cells, targets.shape)
        base = P.program_baseline_per_cell(chip, r, c, targets[r, c], schedule)
        rows_out.append(_row("host per-cell baseline", base, scale=targets.size / a.baseline_cells))
    board = rows_out[0]
    baseline = rows_out[2]
    out = {"cells": 3072, "link": {"baud": BAUD, "latency_s": LATENCY_S, "pulse_width_s": schedule.width_s},
           "schedule": {k: getattr(schedule, k) for k in schedule.__dataclass_fields__},
           "results": rows_out,
           "speedup_modelled_board_vs_baseline": baseline["modelled_seconds"] / board["modelled_seconds"],
           "speedup_modelled_host_vs_baseline": baseline["modelled_seconds"] / rows_out[1]["modelled_seconds"],
           "targets_met": {"board_modelled_le_30s": board["modelled_seconds"] <= 30,
                           "board_host_cpu_le_5s": board["host_cpu_seconds"] <= 5}}
    if a.json:
        print(json.dumps(out))
    else:
        hdr = f"{'mode':<24}{'within':>8}{'stuck':>6}{'p50':>5}{'p95':>5}{'trips':>9}{'bytes':>11}{'model s':>10}{'cpu s':>8}"
        print(hdr)
        for r_ in rows_out:
            print(f"{r_['mode']:<24}{r_['within_tolerance']:>8.4f}{r_['stuck_cells']:>6}{r_['pulses_median']:>5.0f}"
                  f"{r_['pulses_p95']:>5.0f}{r_['round_trips']:>9}{r_['bytes']:>11}{r_['modelled_seconds']:>10.2f}"
                  f"{r_['host_cpu_seconds']:>8.2f}")
        print(f"board vs per-cell baseline (modelled): {out['speedup_modelled_board_vs_baseline']:.0f}x; "
              f"host row-parallel vs baseline: {out['speedup_modelled_host_vs_baseline']:.0f}x")
        print("targets met:", out["targets_met"])
    return 0 if all(out["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
