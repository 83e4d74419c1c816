"""Write the shipped realistic test split, ``bench/models/gesture_test.h5`` (issue 15, decision 0020).

    .venv/bin/python benchmarks/ship_gesture_test.py --data DIR --command "snnbench data synth ..." \
        [--out bench/models/gesture_test.h5] [--commit HASH]

The test split of a realistic set ``DIR`` (``snnbench data synth``), preprocessed as the reference
network reads it (``bench.network.model.InputConfig``: 1.5 s, 5 ms bins, 6 px padding, 7x7 pooling),
packed with ``bench.demo_data.save_spikes``. Samples in round-robin order over the test recordings
(sample k of every recording, then sample k + 1), so the demo's first samples (``--quick``, the
demo's ``REALISTIC_SAMPLES``) span every test subject and lighting.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def round_robin(samples: list) -> list:
    """``samples`` (grouped by recording, in file order) reordered as sample k of every recording,
    then k + 1 (recordings in first-seen order)."""
    by_rec: dict[str, list] = {}
    for s in samples:
        by_rec.setdefault(s.source, []).append(s)
    groups = list(by_rec.values())
    out = []
    for k in range(max((len(g) for g in groups), default=0)):
        out += [g[k] for g in groups if k < len(g)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="realistic set directory (release layout + synth.json)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "models" / "gesture_test.h5"))
    ap.add_argument("--command", required=True, help="the command that generated --data (recorded)")
    ap.add_argument("--commit", default=None, help="the generator's git commit (recorded)")
    a = ap.parse_args(argv)

    from bench.commands.train import preprocess_config
    from bench.data.dataset import load_split
    from bench.data.preprocess import batch_to_spikes
    from bench.demo_data import save_spikes
    from bench.network.model import InputConfig

    data = Path(a.data)
    m = json.loads((data / "synth.json").read_text())
    samples = round_robin(load_split(data, "test"))
    cfg = preprocess_config(InputConfig())
    x = batch_to_spikes(samples, cfg)
    y = np.array([s.label for s in samples], dtype=np.int64)
    recs = list(dict.fromkeys(Path(s.source).name for s in samples))
    source = {"generator": m["generator"], "kind": m["kind"], "version": m["version"], "seed": m["seed"],
              "gesture_s": m["gesture_s"], "split": "test", "test_subjects": m["test_subjects"],
              "recordings": recs, "samples": int(y.size),
              "order": "round robin over the recordings (sample k of every recording, then k+1)",
              "command": a.command}
    if a.commit:
        source["generator_commit"] = a.commit
    save_spikes(a.out, x, y, cfg, source)
    print(json.dumps({"out": a.out, "samples": int(y.size), "recordings": len(recs),
                      "bytes": Path(a.out).stat().st_size}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
