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
