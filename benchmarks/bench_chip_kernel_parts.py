"""Where the chip layer's time goes, per 100 ns chip step (issue 17, decision 0015).

    .venv/bin/python benchmarks/bench_chip_kernel_parts.py [--batch N] [--reps N] [--json]

One process, the seeded reference workload (120->11 layer at ``typical``: ~11 % input rate,
column noise, neuron noise, mismatch, energy accounting).  Every figure is process CPU time
per chip step (ns), median of ``--reps`` interleaved repetitions, so the load of a shared
machine hits all parts alike; ratios are taken between figures of the same run:

  * ``main_kernel``: the generic kernel (``_kernels.layer_kernel``, what main ran before the
    SIMD kernel) on the same arguments;
  * ``simd_kernel``: ``_kernels.layer_kernel_simd`` on the same layer (bit-identical spikes,
    counts and output count, checked here);
  * its parts, each a stripped copy of the kernel's loop: ``scan_accumulate`` (row masks +
    active-row sums), ``row_counts`` (the byte-wide per-row counters, as the increment over
    scan_accumulate), ``noise`` (counter-based draws + table look-ups), ``neuron`` (noise
    scaling + SRM update + spike store, on fixed inputs);
  * ``chip_run``: ``VirtualChip.run`` end to end (kernel + Python around it + energy
    accounting), per step at the batch size given, and the Python overhead per call
    (``chip.run`` on one sample minus the kernel's share).
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim_backend.chip import VirtualChip  # noqa: E402
from sim_backend.physics import fastpath, jit  # noqa: E402
from sim_backend.physics.energy import reference_workload  # noqa: E402

from benchmarks.baselines import SILICON_RATE  # noqa: E402


def _capture(chip: VirtualChip, spikes: np.ndarray) -> dict:
    """The arguments ``chip.run`` hands to ``fastpath.layer_forward`` (noise key included)."""
    got: dict = {}
    real = fastpath.layer_forward

    def spy(*a, **kw):
        got["args"], got["kw"] = a, kw
        return real(*a, **kw)
    import sim_backend.chip as chip_mod
    chip_mod.layer_forward = spy
    try:
        chip.run(spikes)
    finally:
        chip_mod.layer_forward = real
    return got


def _parts():
    """The stripped kernel loops (compiled on first call; numba imported here)."""
    from sim_backend.physics._kernels import (_GOLDEN, _U0, _U1, _U2, _U3, _U4, _U16, _U64, _UFFFF,
                                              _mix64, _srm_step)
    from sim_backend.physics._simd import add_bytes64, ctz64, nonzero_mask64, vadd_row, vstore, vzeros
    from sim_backend.physics.jit import njit

    @njit
    def scan_accumulate(x, n_steps, nw64, wv, proto, acc, count):
        urw = np.uint64(nw64 * 64)
        stride = np.uint64(8 * len(proto))
        cnt = np.zeros(nw64 * 64, dtype=np.uint8)
        tot = 0.0
        for st in range(n_steps):
            base = np.uint64(st) * urw
            av = vzeros(proto)
            for k in range(nw64):
                uk = np.uint64(k) * _U64
                if count:
                    add_bytes64(cnt, uk, x, base + uk)
                mask = nonzero_mask64(x, base + uk)
                while mask != _U0:
                    i = uk + ctz64(mask)
                    mask &= mask - _U1
                    av = vadd_row(av, wv, i * stride)
            vstore(acc, _U0, av)
            tot += acc[0]
        return tot + cnt[0]

    @njit
    def noise(n_steps, n_, key, table, nz):
        un = np.uint64(n_)
        ukey = np.uint64(key)
        tot = 0.0
        for st in range(n_steps):
            e0 = np.uint64(st) * un
            h = _U0
            for j in range(n_):
                e = e0 + np.uint64(j)
                if j == 0 or (e & _U3) == _U0:
                    h = _mix64(ukey + (e >> _U2) * _GOLDEN)
                nz[j] = table[((h >> (_U16 * (e & _U3))) & _UFFFF) >> _U4]
            tot += nz[0]
        return tot

    @njit
    def neuron(z, n_steps, n_, vo, nz, var0, th, a, inv_tau, bref, jump, clo, chi, s):
        un = np.uint64(n_)
        p = np.zeros(n_)
        r = np.zeros(n_)
        acc = np.empty(z.shape[1])
        nout = 0
        for st in range(n_steps):
            row = z[st % z.shape[0]]
            for j in range(z.shape[1]):
                acc[j] = row[j]
            for j in range(n_):
                uj = np.uint64(j)
                sd = np.sqrt(acc[vo + uj] + var0[j])
                acc[uj] = acc[uj] + sd * nz[j]
            nout += _srm_step(acc, _U0, th, a, inv_tau, bref, jump, clo, chi, p, r, s,
                              np.uint64(st) * un)
        return nout

    return scan_accumulate, noise, neuron


def _median(xs: list[float]) -> float:
    return float(np.median(xs))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not fastpath.have_kernel():
        raise SystemExit(f"numba path off: {jit.reason()}")
    from sim_backend.physics import _kernels as K

    spikes, g = reference_workload(args.batch, seed=0)
    chip = VirtualChip(chip_seed=0, run_seed=0, fidelity="typical")
    chip.set_conductances(g)
    fastpath.warm()
    cap = _capture(chip, spikes)
    sp, wd, var, key, var0, params = cap["args"]
    theta, tau = cap["kw"]["theta"], cap["kw"]["tau_steps"]
    b_, t_, r_ = sp.shape
    n_ = wd.shape[1]
    steps = b_ * t_
    th, a, inv_tau, bref, jump = fastpath._neuron_consts(params, n_, theta, tau)
    clo, chi = float(params.clamp_low), float(params.clamp_high)
    x = np.ascontiguousarray(sp.view(np.uint8))
    ukey = np.uint64(int(key) & (2 ** 64 - 1))

    # main's generic kernel, on the same arguments
    words = x.view(np.uint64)
    wv_main = np.ascontiguousarray(np.concatenate([wd, var], axis=1))

    def main_kernel():
        s = np.empty((b_, t_, n_), np.uint8)
        rc = np.zeros(r_, np.int64)
        n = K.layer_kernel(words, wv_main, True, ukey, fastpath.NOISE_TABLE, var0, th, a, inv_tau,
                           bref, jump, clo, chi, s, rc)
        return s, rc, n

    def simd_kernel():
        s = np.empty((b_, t_, n_), np.uint8)
        width = fastpath._simd_width(2 * -(-n_ // 8))
        s2, rc, n = fastpath._layer_simd(K, x, wd, var, int(key), var0, th, a, inv_tau, bref, jump,
                                         params, s, width)
        return s2.view(np.uint8), rc, n

    m0, s0 = main_kernel(), simd_kernel()
    assert np.array_equal(m0[0], s0[0]) and np.array_equal(m0[1], s0[1]) and m0[2] == s0[2]

    scan_accumulate, noise, neuron = _parts()
    width = fastpath._simd_width(2 * -(-n_ // 8))
    kh = width // 2
    wv = np.zeros((r_, 8 * width))
    wv[:, :n_] = wd
    wv[:, 8 * kh:8 * kh + n_] = var
    wv = wv.ravel()
    proto = (0.0,) * width
    acc = np.empty(8 * width)
    xf = x.ravel()
    nz = np.empty(n_)
    zfix = np.ascontiguousarray(np.random.default_rng(3).normal(0.3, 0.5, (997, 8 * width)))
    s_out = np.empty(steps * n_, np.uint8)

    parts = {
        "main_kernel": main_kernel,
        "simd_kernel": simd_kernel,
        "scan_accumulate": lambda: scan_accumulate(xf, steps, r_ // 64, wv, proto, acc, False),
        "scan_accumulate_count": lambda: scan_accumulate(xf, steps, r_ // 64, wv, proto, acc, True),
        "noise": lambda: noise(steps, n_, ukey, fastpath.NOISE_TABLE, nz),
        "neuron": lambda: neuron(zfix, steps, n_, np.uint64(8 * kh), nz, var0, th, a, inv_tau, bref,
                                 jump, clo, chi, s_out),
        "chip_run": lambda: chip.run(spikes),
        "chip_run_1": lambda: [chip.run(spikes[i:i + 1]) for i in range(16)],
    }
    for f in parts.values():
        f()                                              # compile / warm
    per: dict = {k: [] for k in parts}
    for _ in range(args.reps):
        for k, f in parts.items():
            c = time.process_time()
            f()
            dt = time.process_time() - c
            per[k].append(dt / (16 * t_ if k == "chip_run_1" else steps) * 1e9)
    ns = {k: _median(v) for k, v in per.items()}
    ratios = [m / s for m, s in zip(per["main_kernel"], per["simd_kernel"])]
    res = {
        "batch": b_, "steps_per_sample": t_, "load_avg": os.getloadavg()[0], "kernel": jit.report(),
        "ns_per_step": ns, "ns_per_step_all": per,
        "row_counts_ns": ns["scan_accumulate_count"] - ns["scan_accumulate"],
        "simd_vs_main": float(np.median(ratios)), "simd_vs_main_all": ratios,
        "chip_run_sps_cpu": 1e9 / (ns["chip_run"] * t_),
        "chip_run_vs_silicon": 1e9 / (ns["chip_run"] * t_) / SILICON_RATE,
        "python_overhead_us_per_call": (ns["chip_run_1"] - ns["simd_kernel"]) * t_ / 1e3,
    }
    if args.json:
        print(json.dumps(res))
    else:
        print(f"kernel path {res['kernel']['path']}, load average {res['load_avg']:.1f}, batch {b_}, "
              f"{t_} steps; CPU ns per chip step, median of {args.reps}:")
        for k in parts:
            print(f"  {k:24s} {ns[k]:7.1f}")
        print(f"  {'row_counts (increment)':24s} {res['row_counts_ns']:7.1f}")
        print(f"SIMD kernel vs main's kernel, same process: {res['simd_vs_main']:.2f}x "
              f"({', '.join(f'{r:.2f}' for r in ratios)})")
        print(f"chip.run at batch {b_}: {res['chip_run_sps_cpu']:,.0f} samples per CPU-s = "
              f"{res['chip_run_vs_silicon']:.2f}x silicon; Python around a 1-sample RUN "
              f"{res['python_overhead_us_per_call']:.0f} us")
    return res


if __name__ == "__main__":
    main()
