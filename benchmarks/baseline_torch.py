"""PyTorch CPU baseline of the SRM network (issue 17): dense matmuls, single thread.

Needs the optional extra ``pip install -e '.[torch]'`` (CPU build of torch); :func:`available`
says whether torch imports.  Same two forms as benchmarks/baseline_numpy.py (``"step"``: a
loop over time steps with one ``x @ W.T`` per layer and step; ``"layer"``: one matmul per
layer over all steps, then the neuron recursion), in ``torch.no_grad()``, with
``torch.set_num_threads(1)``.  ``dtype`` float64 (the network's precision) or float32.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from sim_backend.physics.neuron import NeuronParams

MODES = ("step", "layer")


def available() -> str | None:
    """None if torch imports, else the reason it does not."""
    try:
        import torch  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        return f"{type(e).__name__}: {e}"
    return None


class TorchNetwork:
    """The network's weights as torch tensors (prepared once), single-threaded."""

    def __init__(self, weights: Sequence[np.ndarray], params: Sequence[NeuronParams], dtype: str = "float64"):
        import torch

        torch.set_num_threads(1)
        self.torch = torch
        self.dtype = getattr(torch, dtype)
        self.wts = [torch.from_numpy(np.ascontiguousarray(np.asarray(w, np.float64).T)).to(self.dtype)
                    for w in weights]
        self.params = list(params)

    def forward(self, spikes: np.ndarray, mode: str = "step") -> list[np.ndarray]:
        """Binary spikes (B, T, n_in) -> per-layer output spikes, bool numpy (B, T, n_i)."""
        torch = self.torch
        with torch.no_grad():
            x = torch.from_numpy(np.asarray(spikes)).to(self.dtype)
            b_, t_, _ = x.shape
            if mode == "layer":
                outs = []
                for wt, p in zip(self.wts, self.params):
                    a, inv_tau = math.exp(-1.0 / p.tau_steps), 1.0 / p.tau_steps
                    bref, jump = math.exp(-1.0 / p.tau_ref_steps), p.ref_scale * p.theta
                    z = torch.clamp((x.reshape(b_ * t_, -1) @ wt), p.clamp_low, p.clamp_high)
                    z = (z * inv_tau).reshape(b_, t_, -1)
                    s = torch.zeros_like(z)
                    pot = torch.zeros((b_, z.shape[2]), dtype=self.dtype)
                    ref = torch.zeros_like(pot)
                    for t in range(t_):
                        pot = a * pot + z[:, t]
                        st = (pot + ref >= p.theta).to(self.dtype)
                        s[:, t] = st
                        ref = bref * ref - jump * st
                    outs.append(s.numpy().astype(bool))
                    x = s
                return outs
            if mode != "step":
                raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
            pots = [torch.zeros((b_, wt.shape[1]), dtype=self.dtype) for wt in self.wts]
            refs = [torch.zeros_like(q) for q in pots]
            outs = [torch.zeros((b_, t_, wt.shape[1]), dtype=torch.bool) for wt in self.wts]
            for t in range(t_):
                h = x[:, t]
                for k, (wt, p) in enumerate(zip(self.wts, self.params)):
                    a, inv_tau = math.exp(-1.0 / p.tau_steps), 1.0 / p.tau_steps
                    bref, jump = math.exp(-1.0 / p.tau_ref_steps), p.ref_scale * p.theta
                    z = torch.clamp(h @ wt, p.clamp_low, p.clamp_high) * inv_tau
                    pots[k] = a * pots[k] + z
                    st = pots[k] + refs[k] >= p.theta
                    outs[k][:, t] = st
                    h = st.to(self.dtype)
                    refs[k] = bref * refs[k] - jump * h
            return [o.numpy() for o in outs]
