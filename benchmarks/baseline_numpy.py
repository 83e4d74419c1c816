"""Plain-numpy baseline of the SRM network (issue 17): dense matmuls, float64, single thread.

The straightforward implementation a user would write from the model equations
(bench/network/model.py, sim_backend/physics/neuron.py), in two forms:

- ``"step"``: a simulation loop over time steps, each step one dense matmul per layer
  (``s_prev @ W.T``) followed by the neuron update of that layer;
- ``"layer"``: layer by layer, the synaptic input of all steps in one dense matmul
  (``(B*T, n_in) @ W.T``), then the neuron recursion over steps.

Both compute the same network (same clamp, PSP filter, threshold and refractory kernel) on
the same binary inputs; their sums are BLAS's, so a spike can differ from the fast path's in
the last bit of a tie (rare; measured by benchmarks/bench_network.py).  Thread count: the
caller limits BLAS to one thread (``OMP_NUM_THREADS=1`` / ``OPENBLAS_NUM_THREADS=1`` before
numpy is imported; bench_network.py does).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from sim_backend.physics.neuron import NeuronParams

MODES = ("step", "layer")


def _consts(p: NeuronParams):
    return np.exp(-1.0 / p.tau_steps), 1.0 / p.tau_steps, np.exp(-1.0 / p.tau_ref_steps), p.ref_scale * p.theta


def forward(spikes: np.ndarray, weights: Sequence[np.ndarray], params: Sequence[NeuronParams],
            mode: str = "step") -> list[np.ndarray]:
    """Binary spikes (B, T, n_in) -> per-layer output spikes, bool (B, T, n_i).

    ``weights[i]`` is layer i's (n_out, n_in) matrix in normalised units, ``params[i]`` its neurons.
    """
    x = np.asarray(spikes, dtype=np.float64)
    b_, t_, _ = x.shape
    if mode == "layer":
        outs = []
        for w, p in zip(weights, params):
            a, inv_tau, bref, jump = _consts(p)
            z = (x.reshape(b_ * t_, -1) @ w.T).reshape(b_, t_, -1)
            np.clip(z, p.clamp_low, p.clamp_high, out=z)
            z *= inv_tau
            s = np.zeros(z.shape)
            pot = np.zeros((b_, z.shape[2]))
            ref = np.zeros((b_, z.shape[2]))
            for t in range(t_):
                pot = a * pot + z[:, t]
                st = pot + ref >= p.theta
                s[:, t] = st
                ref = bref * ref - jump * st
            outs.append(s.astype(bool))
            x = s
        return outs
    if mode != "step":
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    wts = [np.ascontiguousarray(w.T) for w in weights]
    cs = [_consts(p) for p in params]
    pots = [np.zeros((b_, w.shape[1])) for w in wts]
    refs = [np.zeros((b_, w.shape[1])) for w in wts]
    outs = [np.zeros((b_, t_, w.shape[1]), bool) for w in wts]
    for t in range(t_):
        h = x[:, t]
        for k, (wt, p) in enumerate(zip(wts, params)):
            a, inv_tau, bref, jump = cs[k]
            z = np.clip(h @ wt, p.clamp_low, p.clamp_high) * inv_tau
            pots[k] = a * pots[k] + z
            st = pots[k] + refs[k] >= p.theta
            outs[k][:, t] = st
            refs[k] = bref * refs[k] - jump * st
            h = st.astype(np.float64)
    return outs
