"""Crossbar details the mutation run found unchecked (issue 18): the per-column read-noise
variance is computed in double precision whatever the dtype of the conductance map (a map
read back from a file may be float32).  Expected value worked out by hand from the formula
in crossbar.py's docstring: var_k = sum over active rows of (rel G+)^2 + (rel G-)^2, over
g_unit^2."""
from __future__ import annotations

import numpy as np
import pytest

from sim_backend.physics.crossbar import aggregated_noise_var


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_noise_variance_is_computed_in_double_precision(dtype):
    """Kills crossbar.aggregated_noise_var mutant _5 (the conductances kept in their own dtype:
    float32 maps then give float32 variances, 1e-8 off).  Conductances 2^-14 S and 2^-16 S
    are exact in float32; rel = 1 %, g_unit = 2^-14 S: one active row gives
    var = 0.01^2 (1 + 1/16) = 1.0625e-4 on neuron 0, and two active rows twice that."""
    g = np.zeros((3, 4), dtype=dtype)
    g[0, 0], g[0, 1] = 2.0 ** -14, 2.0 ** -16
    g[2, 0], g[2, 1] = 2.0 ** -14, 2.0 ** -16
    var = aggregated_noise_var(np.array([[1, 0, 0], [1, 0, 1]], dtype=bool), g, 0.01, 2.0 ** -14)
    assert var.dtype == np.float64 and var.shape == (2, 2)
    assert var[0, 0] == pytest.approx(1.0625e-4, rel=1e-14)
    assert var[1, 0] == pytest.approx(2 * 1.0625e-4, rel=1e-14)
    assert var[0, 1] == var[1, 1] == 0.0


def test_per_cell_reference_noise_is_unbiased_gaussian_and_multiplicative():
    """Kills crossbar.per_cell_noisy_input mutant _16 (current G / (1 + rel eps) instead of
    G (1 + rel eps): biased by ~rel^2 and skewed).  One active cell on G+ at 50 uS, V = 0.2 V,
    g_unit = 50 uS, rel = 20 %: z = (V G (1 + rel eps)) / (V g_unit) = 1 + 0.2 eps, a Gaussian
    of mean 1 and standard deviation 0.2 (no skew); the G- column at 0 S adds nothing."""
    from sim_backend.physics.crossbar import per_cell_noisy_input

    g = np.zeros((2, 2))
    g[0, 0] = 50e-6
    spikes = np.zeros((200_000, 2))
    spikes[:, 0] = 1.0
    z = per_cell_noisy_input(spikes, g, 0.2, 50e-6, 0.2, np.random.default_rng(3))[:, 0]
    assert z.mean() == pytest.approx(1.0, abs=0.003)
    assert z.std() == pytest.approx(0.2, abs=0.003)
    skew = np.mean((z - z.mean()) ** 3) / z.std() ** 3
    assert abs(skew) < 0.05
