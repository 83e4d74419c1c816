"""Where the chip layer's time goes, per 100 ns chip step (issue 17, decision 0015).

    .venv/bin/python benchmarks/bench_chip_kernel_parts.py [--batch N] [--reps N] [--json]

One process, the seeded reference workload (120->11 layer at ``typical``: ~11 % input rate,
column noise, neuron noise, mismatch, energy accounting).  Every figure is process CPU time
per chip step (ns), median of ``--reps`` interleaved repetitions, so the load of a shared
machine hits all parts alike; ratios are taken between figures of the same run:

  * ``main_kernel``: the generic kernel (``_kernels.layer_kernel``, what main ran before the
    SIMD kernel) on the same arguments;
  * ``simd_kernel``: ``_kernels.layer_simd_noisy`` on the same layer (bit-identical spikes,
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
from sim_backend.physics import energy as energy_mod  # noqa: E402
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
    """Stripped copies of the SIMD kernel's loop (compiled on first call; imports numba)."""
    from sim_backend.physics._kernels import _U0, _U1, _scan_pair
    from sim_backend.physics._simd import (nzeros_noisy, popcount64, store_bits, vadd_row, vdraw, vload, vnoise,
                                           vlane, vsplit, vsrm, vzeros, vzeros_like)
    from sim_backend.physics.jit import njit

    @njit
    def scan_accumulate(x, n_steps, nw64, wv, proto, cnt):
        """Row masks + active-row sums of step pairs (+ the byte-wide row counters)."""
        urw = np.uint64(nw64 * 64)
        stride = np.uint64(8 * len(proto))
        zoff = urw * stride
        tot = 0.0
        for st in range(0, n_steps - 1, 2):
            bt = np.uint64(st)
            if st % 254 == 0:
                cnt[:] = 0
            acc_a, acc_b = _scan_pair(x, bt * urw, (bt + _U1) * urw, True, nw64, 64, wv, proto, stride, zoff,
                                      cnt)
            tot += vlane(acc_a[0], 0) + vlane(acc_b[0], 0)
        return tot

    @njit
    def noise(n_steps, n_, key, table, proto):
        """Counter-based draws + table look-ups of every step."""
        un = np.uint64(n_)
        like = nzeros_noisy(proto)
        tot = 0.0
        for st in range(n_steps):
            tot += vlane(vdraw(table, np.uint64(st) * un, un, np.uint64(key), like), st & 7)
        return tot

    @njit
    def neuron(rows, proto, n_steps, n_, nzbuf, var0, th, a, inv_tau, bref, jump, clo, chi, s):
        """Noise scaling + SRM update + spike store + output count, on fixed sums."""
        un = np.uint64(n_)
        lanes = np.uint64(8 * len(proto))
        accs = (vadd_row(vzeros(proto), rows, _U0), vadd_row(vzeros(proto), rows, lanes))
        like = nzeros_noisy(proto)
        v0 = vload(var0, _U0, like)
        thv = vload(th, _U0, like)
        av = vload(a, _U0, like)
        itv = vload(inv_tau, _U0, like)
        jv = vload(jump, _U0, like)
        p = vzeros_like(like)
        r = vzeros_like(like)
        nout = _U0
        for st in range(n_steps):
            z, var = vsplit(accs[st & 1])
            z = vnoise(z, var, v0, vload(nzbuf, _U0, like))
            p, r, bits = vsrm(z, p, r, thv, av, itv, jv, bref, clo, chi)
            store_bits(s, np.uint64(st) * un, bits, like)
            nout += popcount64(bits)
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
    fastpath.wait_warm()
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

    width = fastpath._simd_width(n_, True)

    def simd_kernel():
        return fastpath._layer_simd(K, x, wd, var, int(key), var0, th, a, inv_tau, bref, jump, params,
                                    width)

    m0, s0 = main_kernel(), simd_kernel()
    assert np.array_equal(m0[0], s0[0].view(np.uint8)) and np.array_equal(m0[1], s0[1]) and m0[2] == s0[2]

    scan_accumulate, noise, neuron = _parts()
    lanes = 8 * width
    nl = K.neuron_lanes(width, True)
    wv = np.zeros((r_ + 1, lanes))
    wv[:r_, :n_] = wd
    wv[:r_, lanes // 2:lanes // 2 + n_] = var
    wv = wv.ravel()
    proto = (0.0,) * width
    xf = x.ravel()
    cnt = np.zeros(r_, np.uint8)
    nzbuf = np.zeros(nl)
    pad = fastpath._pad
    rng = np.random.default_rng(3)
    acc_rows = rng.normal(0.3, 0.5, 2 * lanes)
    acc_rows[lanes // 2:lanes] = np.abs(acc_rows[lanes // 2:lanes])     # variances >= 0
    acc_rows[3 * lanes // 2:] = np.abs(acc_rows[3 * lanes // 2:])
    s_out = np.empty(steps * n_ + nl, np.uint8)
    consts = (pad(var0, nl, 0.0), pad(th, nl, np.inf), pad(a, nl, 0.0), pad(inv_tau, nl, 0.0), bref,
              pad(jump, nl, 0.0), clo, chi)
    g_now = chip.conductances()
    rcount, nspk = s0[1], s0[2]

    def energy():
        """The per-RUN energy accounting of ``chip.run`` (activity from the kernel's row counts,
        energy per component, the chip's accumulators), 100 times."""
        for _ in range(100):
            act = energy_mod.activity_from_counts(b_, t_, rcount, nspk, g_now, chip.regs.v_spike_v,
                                                  chip.regs.dt_s, chip.regs.latency_s)
            comp = energy_mod.inference_energy(act, energy_mod.CAL, chip.params.e_scale, chip.regs.v_spike_v)
            chip._account(act.t_enabled_s, comp)

    parts = {
        "main_kernel": main_kernel,
        "simd_kernel": simd_kernel,
        "scan_accumulate": lambda: scan_accumulate(xf, steps, r_ // 64, wv, proto, cnt),
        "noise": lambda: noise(steps, n_, ukey, fastpath.NOISE_TABLE, proto),
        "neuron": lambda: neuron(acc_rows, proto, steps, n_, nzbuf, *consts, s_out),
        "energy_accounting_per_run": energy,
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
            div = {"chip_run_1": 16 * t_, "energy_accounting_per_run": 100 * steps}.get(k, steps)
            per[k].append(dt / div * 1e9)
    ns = {k: _median(v) for k, v in per.items()}
    ratios = [m / s for m, s in zip(per["main_kernel"], per["simd_kernel"])]
    res = {
        "batch": b_, "steps_per_sample": t_, "load_avg": os.getloadavg()[0], "kernel": jit.report(),
        "ns_per_step": ns, "ns_per_step_all": per,
        "energy_accounting_us_per_run": ns["energy_accounting_per_run"] * steps / 1e3,
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
        print(f"  (energy accounting: {res['energy_accounting_us_per_run']:.1f} us per RUN)")
        print(f"SIMD kernel vs main's kernel, same process: {res['simd_vs_main']:.2f}x "
              f"({', '.join(f'{r:.2f}' for r in ratios)})")
        print(f"chip.run at batch {b_}: {res['chip_run_sps_cpu']:,.0f} samples per CPU-s = "
              f"{res['chip_run_vs_silicon']:.2f}x silicon; Python around a 1-sample RUN "
              f"{res['python_overhead_us_per_call']:.0f} us")
    return res


if __name__ == "__main__":
    main()
