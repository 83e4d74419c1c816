"""NeuronParams validation the mutation run found unchecked (issue 18): a time constant or
threshold of zero, negative, NaN or infinite is refused with a message naming the field, and
an empty clamp window is refused naming both bounds.  Expected behaviour from the dataclass's
own contract: "finite and > 0" and "clamp_low < clamp_high"."""
from __future__ import annotations

import math

import pytest

from sim_backend.physics.neuron import NeuronParams


@pytest.mark.parametrize("name", ["tau_steps", "tau_ref_steps", "theta"])
@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_time_constants_and_threshold_must_be_finite_and_positive(name, bad):
    """Kills neuron.NeuronParams.__post_init__ mutants _12 (`not finite and v <= 0`: 0 and
    -1 pass, NaN/inf pass), _15 (`v < 0`: zero passes - tau = 0 divides by zero in the PSP
    decay exp(-1/tau)) and _17 (the message replaced by None)."""
    with pytest.raises(ValueError, match=rf"NeuronParams\.{name} must be finite and > 0, got {bad!r}"):
        NeuronParams(**{name: bad})


def test_small_positive_values_are_accepted():
    """The bound is strict at 0, not above it: 1e-3 steps and a threshold of 1e-9 are valid."""
    p = NeuronParams(tau_steps=1e-3, tau_ref_steps=1e-3, theta=1e-9)
    assert (p.tau_steps, p.tau_ref_steps, p.theta) == (1e-3, 1e-3, 1e-9)


@pytest.mark.parametrize("lo, hi", [(5.0, 5.0), (2.0, -1.0)])
def test_clamp_window_must_not_be_empty(lo, hi):
    """Kills neuron.NeuronParams.__post_init__ mutant _20 (the clamp message replaced by
    None): the error names both bounds."""
    with pytest.raises(ValueError, match=rf"clamp_low \({lo}\) must be < clamp_high \({hi}\)"):
        NeuronParams(clamp_low=lo, clamp_high=hi)


# --- srm_forward, hand cases from the discrete-time definition in neuron.py's docstring ----------
import numpy as np  # noqa: E402

from sim_backend.physics.neuron import srm_forward  # noqa: E402


def test_refractory_decay_uses_tau_ref_in_steps():
    """Kills neuron.srm_forward mutant _39 (b = exp(-tau_ref) instead of exp(-1/tau_ref): the
    same at the default tau_ref = 1 step).  tau = 4 steps, tau_ref = 2 steps, theta = 1: input
    z[0] = 4 gives p[0] = 4/4 = 1 = theta, a spike at step 0; no input afterwards, so
    p[t] = e^(-t/4) and r[t] = -10 e^(-(t-1)/2) for t >= 1: u[t] = e^(-t/4) - 10 e^(-(t-1)/2)."""
    z = np.zeros((12, 1))
    z[0, 0] = 4.0
    s, st = srm_forward(z, NeuronParams(tau_steps=4.0, tau_ref_steps=2.0), keep_state=True)
    t = np.arange(1, 12)
    want = np.exp(-t / 4.0) - 10.0 * np.exp(-(t - 1) / 2.0)
    np.testing.assert_allclose(st.u[0, 1:, 0], want, rtol=1e-12)
    assert st.u[0, 0, 0] == 1.0 and s[:, 0].tolist() == [1.0] + [0.0] * 11


def test_state_keeps_every_trajectory_in_batch_shape():
    """Kills neuron.srm_forward mutants _85 (state.x None), _95 (a (B, T, N) input's spikes
    given an extra axis) and _96 (a (T, N) input's spikes not given the batch axis), and
    _per_neuron _4/_7/_14 (thresholds of integer inputs kept as integers).  The state holds
    (B, T, N) float64 arrays - x the clamped input - and the per-neuron float64 thresholds."""
    z = np.array([[-2.0, 0.5], [7.0, 0.5], [0.0, 0.5]])          # (T=3, N=2)
    s, st = srm_forward(z, NeuronParams(theta=1, tau_steps=1), keep_state=True)
    assert s.shape == (3, 2)
    for arr in (st.x, st.p, st.u, st.s):
        assert arr.shape == (1, 3, 2)
    np.testing.assert_array_equal(st.x[0], [[0.0, 0.5], [5.0, 0.5], [0.0, 0.5]])
    np.testing.assert_array_equal(st.s[0], s)
    assert st.theta.dtype == np.float64 and st.theta.tolist() == [1.0, 1.0]
    s3, st3 = srm_forward(np.stack([z, z]), NeuronParams(), theta=[1, 2], keep_state=True)
    assert s3.shape == st3.s.shape == st3.x.shape == (2, 3, 2)
    assert st3.theta.dtype == np.float64 and st3.theta.tolist() == [1.0, 2.0]


def test_single_precision_input_gives_float64_spikes():
    """Kills neuron.srm_forward mutant _4 (the input kept in its own dtype: a float32 input
    then gives float32 spikes).  The docstring promises float64 0/1: z = 1 with tau = 1 fires
    at step 0 and the refractory kernel blocks step 1."""
    s = srm_forward(np.array([[1], [1]], dtype=np.float32), NeuronParams(tau_steps=1.0))
    assert s.dtype == np.float64 and s[:, 0].tolist() == [1.0, 0.0]


def test_input_of_the_wrong_rank_is_refused_with_its_shape():
    """Kills neuron.srm_forward mutant _13 (the message replaced by None)."""
    with pytest.raises(ValueError, match=r"expects \(B, T, N\) or \(T, N\) input, got shape \(4,\)"):
        srm_forward(np.zeros(4))
