"""What training buys (issue 15 item 5): the same test inputs through several models, each in
software and on the same simulated die — e.g. trained plainly, trained hardware-aware, and
hardware-aware then fine-tuned with the chip in the loop.

The die is a fresh in-process virtual board (``pesim://``, the preset and chip seed given), so
every model meets the same device-to-device map; each model is mapped, programmed by
write-verify and streamed exactly as ``snnbench infer`` does (``bench.budget.run_on_chip``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.budget import ChipTail, chip_url, run_on_chip

SHIPPED = Path(__file__).resolve().parent / "models"
SHIPPED_MODELS: tuple[tuple[str, str, str], ...] = (
    ("plain", "chip, trained without hardware awareness", "gesture_plain.h5"),
    ("hwaware", "chip, trained hardware-aware", "gesture_hwaware.h5"),
    ("finetuned", "chip, hardware-aware + chip-in-the-loop fine-tuning", "gesture_finetuned.h5"),
)
"""(key, label, file in bench/models/) of the shipped reference models, in the report's order."""

BASELINE: dict[str, str] = {"finetuned": "hwaware"}
"""A fine-tuned chip layer is tuned to one die and means nothing in software: its drop is taken
against the software accuracy of the model it was fine-tuned from."""


def shipped_models() -> list[tuple[str, str, Path]]:
    """The shipped reference models that are present (key, label, path)."""
    return [(k, label, SHIPPED / f) for k, label, f in SHIPPED_MODELS if (SHIPPED / f).is_file()]


def compare_models(models: list[tuple[str, str, Any]], x: np.ndarray, labels: np.ndarray, *,
                   fidelity: str = "typical", chip_seeds: tuple[int, ...] = (1,), run_seed: int = 0,
                   age_s: float = 0.0, schedule=None, threads: int | None = None,
                   mapping: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each (key, label, Network) in software and on the die(s); accuracies are fractions.

    Returns ``{"fidelity", "chip_seeds", "samples", "rows": [{key, label, software_accuracy,
    chip_accuracy, chip_accuracies, drop_points, baseline, metadata}]}``; ``drop_points`` is
    against the software accuracy of the row named by :data:`BASELINE` (a fine-tuned model's
    parent) when that row is compared too, else against the model's own.
    """
    from bench.scoring import predict

    t0 = time.perf_counter()
    labels = np.asarray(labels, dtype=np.int64)
    rows = []
    for key, label, net in models:
        tail = ChipTail(net, x, threads=threads)
        sw = float(np.mean(predict(tail.software(), net.n_classes) == labels))
        accs = []
        for seed in chip_seeds:
            out, _ = run_on_chip(tail, chip_url(fidelity, seed, run_seed), schedule=schedule, age_s=age_s,
                                 mapping=mapping)
            accs.append(float(np.mean(predict(out, net.n_classes) == labels)))
        acc = float(np.mean(accs))
        rows.append({"key": key, "label": label, "software_accuracy": sw, "chip_accuracy": acc,
                     "chip_accuracies": accs, "drop_points": 100 * (sw - acc),
                     "trained": _provenance(net)})
    own = {r["key"]: r["software_accuracy"] for r in rows}
    for r in rows:
        base = BASELINE.get(r["key"])
        r["baseline"] = base if base in own else r["key"]
        r["drop_points"] = 100 * (own[r["baseline"]] - r["chip_accuracy"])
    from bench.hybrid import DEFAULT_ROUTE_STUCK, DEFAULT_SCALE_POLICY

    used = {"scale_policy": DEFAULT_SCALE_POLICY, "route_stuck": DEFAULT_ROUTE_STUCK, **(mapping or {})}
    return {"fidelity": fidelity, "chip_seeds": [int(s) for s in chip_seeds], "run_seed": int(run_seed),
            "age_s": float(age_s), "samples": int(labels.size), "mapping": used, "rows": rows,
            "seconds": time.perf_counter() - t0}


def _provenance(net) -> dict[str, Any]:
    """How the model was made (from its metadata): hw-aware?, fine-tuned on which die?"""
    md = net.metadata or {}
    tr = md.get("training") or {}
    ft = md.get("finetune") or {}
    out: dict[str, Any] = {"hw_aware": bool(tr.get("hw_aware", False)), "epochs": tr.get("epochs")}
    if ft:
        out["finetuned"] = {k: ft.get(k) for k in ("chip_url", "fidelity", "rounds", "best_round")}
    return json.loads(json.dumps(out, default=str))


def format_comparison(c: dict[str, Any]) -> str:
    """The comparison as a plain-text table."""
    mp = c.get("mapping") or {}
    flow = ("" if not mp else f"; scale {mp.get('scale_policy')}, "
            f"{'routed around' if mp.get('route_stuck') else 'not routed around'} stuck cells")
    lines = [f"what training buys, {c['fidelity']} die(s) {c['chip_seeds']}, {c['samples']} samples{flow}"]
    w = max(len(r["label"]) for r in c["rows"]) if c["rows"] else 10
    lines.append(f"{'model':<{w}}  software    chip  drop (points)")
    for r in c["rows"]:
        base = r.get("baseline", r["key"])
        note = "" if base == r["key"] else f" (against {base} software)"
        lines.append(f"{r['label']:<{w}}  {100 * r['software_accuracy']:6.2f} %  {100 * r['chip_accuracy']:6.2f} %"
                     f"  {r['drop_points']:+.2f}{note}")
    return "\n".join(lines)
