"""Software network inference speed (issue 17 item 2): fast path vs numpy and PyTorch baselines.

    .venv/bin/python benchmarks/bench_network.py [--quick] [--json] [--reps N] [--rate 0.05]

The shipped reference network (bench/models/reference.h5, 800-480-120-11, 300 steps) on random
binary inputs spiking with probability ``--rate`` per input and step (the same inputs for every
implementation), one thread for everything (BLAS and torch limited to one thread before they
load; the fast path is single-threaded), at batch 64 (one call per 64 samples) and batch 1 (one
call per sample).  Candidates, measured interleaved in the same run:

- ``fast``: ``bench.network.kernel.FastNetwork`` (numba, event-driven, float64), prepared once;
- ``fast_api``: ``Network.forward`` (the same kernel; prepares the weights on every call and
  returns float64 0/1 arrays) - for information;
- ``fast_f32``: the float32 variant (its own definition; its disagreement with the float64
  reference is reported) - for information, compared with ``torch_layer_f32``;
- ``numpy_step`` / ``numpy_layer``: benchmarks/baseline_numpy.py (dense matmul per step, or per
  layer over all steps), float64;
- ``torch_step`` / ``torch_layer``: benchmarks/baseline_torch.py, float64 (skipped with a message
  when torch is not installed: ``pip install -e '.[torch]'``); ``torch_layer_f32`` is reported
  for information (a different precision, not a baseline of the float64 network).

Reported: median samples/s and spread (min..max) over the repetitions, the ratio of the fast
path to the best float64 baseline at each batch size (the issue's target is >= 5x), and the
agreement of every implementation's output spikes with the float64 reference definition.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.network import kernel  # noqa: E402
from bench.network.model import predict  # noqa: E402
from bench.network.modelfile import load_model  # noqa: E402
from benchmarks import baseline_numpy, baseline_torch  # noqa: E402

TARGET = 5.0


def _candidates(net, with_torch: bool) -> dict[str, Callable[[np.ndarray], list[np.ndarray]]]:
    ws = [layer.weight for layer in net.layers]
    ps = [layer.neuron for layer in net.layers]
    fast = kernel.FastNetwork(net.layers)
    fast32 = kernel.FastNetwork(net.layers, np.float32)
    c: dict[str, Callable] = {"fast": fast.forward, "fast_f32": fast32.forward,
                              "fast_api": net.forward}
    for m in baseline_numpy.MODES:
        c[f"numpy_{m}"] = (lambda m: lambda x: baseline_numpy.forward(x, ws, ps, mode=m))(m)
    if with_torch:
        t64 = baseline_torch.TorchNetwork(ws, ps, "float64")
        t32 = baseline_torch.TorchNetwork(ws, ps, "float32")
        for m in baseline_torch.MODES:
            c[f"torch_{m}"] = (lambda m: lambda x: t64.forward(x, mode=m))(m)
        c["torch_layer_f32"] = lambda x: t32.forward(x, mode="layer")
    return c


def _time_batch(f, x: np.ndarray, batch: int) -> float:
    """Samples/s of running ``x`` in calls of ``batch`` samples."""
    t0 = time.perf_counter()
    for i in range(0, len(x), batch):
        f(x[i:i + batch])
    return len(x) / (time.perf_counter() - t0)


def run(reps: int, n64: int, n1: int, rate: float, seed: int = 0) -> dict:
    net = load_model(ROOT / "bench" / "models" / "reference.h5")
    rng = np.random.default_rng(seed)
    x = rng.random((max(n64, n1), net.input.steps, net.sizes[0])) < rate
    torch_missing = baseline_torch.available()
    cands = _candidates(net, torch_missing is None)
    # warm-up (JIT compile / cache load, BLAS init) and agreement with the reference definition
    h = x[:8]
    ref = []
    for layer in net.layers:
        h = kernel.reference_layer(h, layer.weight, layer.neuron)
        ref.append(h)
    h = x[:8]
    ref32 = []
    for layer in net.layers:
        h = kernel.reference_layer(h, layer.weight, layer.neuron, dtype=np.float32)
        ref32.append(h)
    agree = {}
    for name, f in cands.items():
        outs = f(x[:8])
        agree[name] = {"spikes_differing": int(sum(int(np.sum((o != 0) != r)) for o, r in zip(outs, ref))),
                       "spikes_total": int(sum(o.size for o in ref)),
                       "spikes_fired_reference": int(sum(int(r.sum()) for r in ref)),
                       "predictions_equal": bool(np.array_equal(predict(outs[-1]), predict(ref[-1])))}
    agree["fast_f32"]["equal_to_float32_reference"] = all(
        np.array_equal(o, r) for o, r in zip(cands["fast_f32"](x[:8]), ref32))
    # float32 vs float64 on more samples: the disagreement of the two definitions
    n_cmp = min(len(x), 64)
    o64, o32 = cands["fast"](x[:n_cmp]), cands["fast_f32"](x[:n_cmp])
    agree["float32_vs_float64"] = {
        "samples": n_cmp,
        "spikes_differing_per_layer": [int(np.sum(a != b)) for a, b in zip(o64, o32)],
        "spikes_fired_per_layer": [int(a.sum()) for a in o64],
        "predictions_differing": int(np.sum(predict(o64[-1]) != predict(o32[-1])))}
    res: dict = {name: {"64": [], "1": []} for name in cands}
    for _ in range(reps):                      # interleaved: every candidate once per repetition
        for name, f in cands.items():
            res[name]["64"].append(_time_batch(f, x[:n64], 64))
            res[name]["1"].append(_time_batch(f, x[:n1], 1))
    out: dict = {"config": {"reps": reps, "samples_batch64": n64, "samples_batch1": n1, "input_rate": rate,
                            "input_rate_measured": float(x.mean()), "network": net.sizes,
                            "steps": net.input.steps, "threads": 1, "jit": kernel.jit_status(),
                            "torch": "missing: " + torch_missing if torch_missing else "2.x " + _torch_version(),
                            "machine": platform.processor() or platform.machine(),
                            "loadavg_start": list(os.getloadavg())},
                 "samples_per_second": {}, "agreement_with_reference": agree, "ratios": {}}
    for name, d in res.items():
        out["samples_per_second"][name] = {b: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                                           for b, v in d.items()}
    for b in ("64", "1"):
        base = {k: v[b]["median"] for k, v in out["samples_per_second"].items()
                if not k.startswith("fast") and not k.endswith("_f32")}
        best = max(base, key=base.get)
        fast = out["samples_per_second"]["fast"][b]["median"]
        # per-repetition ratios against the same repetition's best baseline: the spread
        per_rep = [res["fast"][b][i] / max(res[k][b][i] for k in base) for i in range(reps)]
        out["ratios"][b] = {"best_baseline": best, "fast_vs_best": fast / base[best],
                            "per_rep_min": min(per_rep), "per_rep_max": max(per_rep),
                            **{f"fast_vs_{k}": fast / v for k, v in base.items()}}
        sps = out["samples_per_second"]
        out["ratios"][b]["fast_api_vs_best"] = sps["fast_api"][b]["median"] / base[best]
        out["ratios"][b]["fast_f32_vs_best"] = sps["fast_f32"][b]["median"] / base[best]
        if "torch_layer_f32" in sps:
            out["ratios"][b]["fast_f32_vs_torch_layer_f32"] = (sps["fast_f32"][b]["median"]
                                                              / sps["torch_layer_f32"][b]["median"])
    out["config"]["loadavg_end"] = list(os.getloadavg())
    out["target_met"] = all(out["ratios"][b]["fast_vs_best"] >= TARGET for b in ("64", "1"))
    return out


def _torch_version() -> str:
    import torch
    return torch.__version__


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and repetitions")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--rate", type=float, default=0.05, help="input spike probability per step")
    a = ap.parse_args()
    if not 0.0 <= a.rate <= 1.0:
        print(f"error: --rate must be in [0, 1], got {a.rate}", file=sys.stderr)
        return 2
    reps = a.reps or (3 if a.quick else 7)
    r = run(reps, 64 if a.quick else 128, 8 if a.quick else 16, a.rate)
    if a.json:
        print(json.dumps(r))
        return 0
    c = r["config"]
    print(f"== 800-480-120-11 reference network, {c['steps']} steps, input rate {c['input_rate_measured']:.3f}, "
          f"1 thread, {reps} interleaved repetitions ==")
    print(f"fast path: {c['jit']['path']} ({c['jit'].get('reason')}); torch: {c['torch']}")
    if c["torch"].startswith("missing"):
        print("torch baseline skipped: torch is not installed (pip install -e '.[torch]' for the CPU build)")
    print(f"{'implementation':18s} {'batch 64 samples/s (min..max)':>34s} {'batch 1 samples/s (min..max)':>34s}  agreement")
    for name, v in r["samples_per_second"].items():
        ag = r["agreement_with_reference"][name]
        cells = [f"{v[b]['median']:10.1f} ({v[b]['min']:.1f}..{v[b]['max']:.1f})" for b in ("64", "1")]
        print(f"{name:18s} {cells[0]:>34s} {cells[1]:>34s}  {ag['spikes_differing']} of {ag['spikes_total']} "
              f"spikes differ, predictions {'equal' if ag['predictions_equal'] else 'DIFFER'}")
    print("(agreement: output spikes of all layers vs the float64 reference definition, 8 samples)")
    for b in ("64", "1"):
        q = r["ratios"][b]
        print(f"batch {b:>2s}: fast = {q['fast_vs_best']:.2f}x the best baseline ({q['best_baseline']}; "
              f"per repetition {q['per_rep_min']:.2f}..{q['per_rep_max']:.2f}x); "
              + ", ".join(f"{k[8:]} {v:.1f}x" for k, v in q.items() if k.startswith("fast_vs_") and k != "fast_vs_best"))
        print(f"          Network.forward {q['fast_api_vs_best']:.2f}x; float32 fast path {q['fast_f32_vs_best']:.2f}x"
              + (f" ({q['fast_f32_vs_torch_layer_f32']:.1f}x torch float32)" if "fast_f32_vs_torch_layer_f32" in q else ""))
    d = r["agreement_with_reference"]["float32_vs_float64"]
    print(f"float32 path: equal to its float32 reference: {r['agreement_with_reference']['fast_f32']['equal_to_float32_reference']}; "
          f"vs float64 over {d['samples']} samples: {d['spikes_differing_per_layer']} spikes differ of "
          f"{d['spikes_fired_per_layer']} fired per layer, {d['predictions_differing']} predictions differ")
    print(f"target >= {TARGET:.0f}x at batch 64 and 1: {'met' if r['target_met'] else 'NOT met'}; "
          f"load average {c['loadavg_start'][0]:.1f} -> {c['loadavg_end'][0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
