"""Threads and temporaries of the compiled training step (issue 17 item 5, decision 0018):

- the surrogate computed in place (``surrogate_grad(..., overwrite=True)``) and block by block
  (``surrogate_at``, used by the compiled backward) gives the same bits as the allocating
  reference expression, for every surrogate;
- the BLAS product of the compiled backward (dL/ds_in) runs with BLAS limited to one thread,
  the limit is lifted afterwards, and one or two OpenBLAS threads give the same bits at the
  reference network's shapes (so the limit cannot change a gradient);
- ``OMP_WAIT_POLICY`` defaults to PASSIVE once the kernels load, and an explicit setting wins;
- bool input spikes (the data pipeline's dtype) train exactly like the same spikes as float64.

Expected values: the plain numpy expressions of the surrogates (written out here, independent of
the in-place code), threadpoolctl's own report of the BLAS thread counts, and the environment of
a fresh interpreter.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bench.network import train as T
from bench.network import train_kernel as K
from sim_backend.physics.neuron import NeuronParams

threadpoolctl = pytest.importorskip("threadpoolctl")

REFERENCE = {
    "exp": lambda v, w: np.exp(-np.abs(v) / w),
    "sigmoid": lambda v, w: (0.5 * (1.0 + np.tanh(0.5 * v / w))) * (1.0 - 0.5 * (1.0 + np.tanh(0.5 * v / w))) / w,
    "fast_sigmoid": lambda v, w: 1.0 / (1.0 + np.abs(v) / w) ** 2,
}

values = arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 7), st.integers(1, 9)),
                elements=st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, -0.0, 1e-300, -5e-324]))


@settings(max_examples=200, deadline=None)
@given(values, st.sampled_from(T.SURROGATES), st.sampled_from([1.0, 0.7, 0.3, 2.5]))
def test_in_place_surrogate_is_the_reference_bit_for_bit(v, kind, width):
    """Kills: a dropped or reordered operation in train._surrogate_inplace (e.g. the ``/ width``
    left out, ``0.5 *`` applied after ``/ width`` in ``sigmoid``, squaring before adding 1)."""
    expected = REFERENCE[kind](v, width)
    np.testing.assert_array_equal(T.surrogate_grad(v, kind, width), expected)   # the reference itself
    buf = v.copy()
    got = T.surrogate_grad(buf, kind, width, overwrite=True)
    assert got is buf                                       # no new (B, T, N) array
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=150, deadline=None)
@given(values, st.sampled_from(T.SURROGATES), st.sampled_from([1.0, 0.7, 0.3]), st.integers(1, 5),
       st.integers(0, 2 ** 32 - 1))
def test_blocked_surrogate_is_the_reference_bit_for_bit(u, kind, width, rows, seed):
    """``surrogate_at(u, theta)`` (the compiled backward's surrogate, computed a few rows at a
    time) equals the reference expression on ``u - theta`` for any block size.  Kills: a block
    skipped or written twice (the row stride off by one), theta not subtracted, a block computed
    with the wrong surrogate."""
    theta = np.random.default_rng(seed).uniform(0.5, 1.5, u.shape[-1])
    expected = REFERENCE[kind](u - theta, width)
    got = T.surrogate_at(u, theta, kind, width, rows=rows)
    np.testing.assert_array_equal(got, expected)
    assert got.shape == u.shape


def test_in_place_surrogate_only_for_float64_arrays():
    """A non-float64 input is not overwritten (its dtype cannot hold the result): the reference
    path runs and the input keeps its values."""
    v = np.array([[-2, 0, 3]], dtype=np.int64)
    got = T.surrogate_grad(v, "exp", 1.0, overwrite=True)
    np.testing.assert_array_equal(v, [[-2, 0, 3]])
    np.testing.assert_allclose(got, np.exp([[-2.0, 0.0, -3.0]]), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown surrogate"):
        T.surrogate_grad(np.zeros(3), "relu", overwrite=True)


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


class _Probe(np.ndarray):
    """A weight matrix that records the BLAS thread limits in force when it is multiplied."""

    seen: list[list[int]] = []

    def __rmatmul__(self, other):
        _Probe.seen.append(_blas_threads())
        return np.asarray(other) @ np.asarray(self)


@pytest.mark.skipif(K.kernels() is None, reason="numba kernel unavailable")
def test_compiled_backward_runs_its_blas_product_on_one_thread():
    """Kills: ``blas_one_thread`` dropped from train_kernel.layer_backward (the product then runs
    with every BLAS thread, which spin-wait against numba's threads on 2 cores)."""
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        if not before or max(before) < 2:
            pytest.skip("no multi-threaded BLAS to limit")
        rng = np.random.default_rng(0)
        w = rng.normal(0.5, 0.5, (6, 9))
        prm = NeuronParams()
        x = (rng.random((2, 20, 9)) < 0.4).astype(np.float64)
        c = K.layer_forward(K.kernels(), x, w, prm, np.full(6, prm.theta), np.full(6, float(prm.tau_steps)), None)
        c.weight = w.view(_Probe)
        g = rng.normal(0, 1, c.u.shape)
        sg = T.surrogate_grad(c.u - c.theta)
        _Probe.seen.clear()
        _, g_in = K.layer_backward(K.kernels(), c, g, sg, need_input_grad=True, reset_grad=False)
        assert _Probe.seen and all(max(n) == 1 for n in _Probe.seen)
        assert _blas_threads() == before                    # the limit is lifted afterwards
        # the same product without the limit: the same bits
        dz_ref = T.neuron_backward(T.layer_forward(x, w, prm), g)
        np.testing.assert_array_equal(g_in, (dz_ref.reshape(40, 6) @ w).reshape(2, 20, 9))


def test_one_or_two_blas_threads_give_the_same_input_gradient():
    """The premise of the one-thread limit (decision 0018): OpenBLAS splits a GEMM's output, not
    its sums, so dL/ds_in at the reference network's shapes (batch 8 and 32, 300 steps, the
    120- and 11-neuron layers) has the same bits with one thread or two."""
    rng = np.random.default_rng(1)
    for rows, k, n in [(2400, 120, 480), (9600, 120, 480), (2400, 11, 120)]:
        dz = rng.normal(0, 1e-3, (rows, k)) * (rng.random((rows, k)) < 0.5)
        w = rng.normal(0, 1, (k, n))
        with threadpoolctl.threadpool_limits(2, user_api="blas"):
            two = dz @ w
        with K.blas_one_thread():
            one = dz @ w
        np.testing.assert_array_equal(one, two)


@pytest.mark.skipif(K.kernels() is None, reason="numba kernel unavailable")
@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_loading_the_kernels_makes_openmp_waits_passive_by_default(preset, expected):
    """Kills: the ``OMP_WAIT_POLICY`` default removed from train_kernel.kernels (numba's OpenMP
    threads then spin between parallel regions), or overriding a user's explicit choice."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset is not None:
        env["OMP_WAIT_POLICY"] = preset
    code = ("import os; from bench.network import train_kernel as K; "
            "before = os.environ.get('OMP_WAIT_POLICY'); assert K.kernels() is not None; "
            "print(before, os.environ.get('OMP_WAIT_POLICY'), K.status()['omp_wait_policy'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(preset), expected, expected]


@pytest.mark.skipif(K.kernels() is None, reason="numba kernel unavailable")
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 3), st.integers(1, 30), st.sampled_from([0.0, 0.05, 0.4, 1.0]))
def test_bool_spikes_train_like_float_spikes(seed, batch, steps, rate):
    """The data pipeline's bool spikes go into the compiled path without a float64 copy (read as
    bytes): the same spikes, membrane potentials and gradients as the same input given as
    float64 0/1 to the numpy reference.  Kills: the bool branch of train_kernel.layer_forward
    listing the active inputs of anything but the spikes themselves (planted: a time-reversed
    copy)."""
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(2, 20)), int(rng.integers(1, 12)), int(rng.integers(1, 6))]
    from bench.network.model import Dense, InputConfig, Network

    net = Network([Dense(rng.normal(0.5, 1.0, (o, i)), name=f"l{j}") for j, (i, o) in enumerate(zip(sizes, sizes[1:]))],
                  input=InputConfig(sensor_width=sizes[0], sensor_height=1, polarities=1, padding=0, pool=1))
    full = rng.random((batch, steps, 2 * sizes[0])) < rate
    xb = full[:, :, ::2]                      # a non-contiguous bool view, as a batch slice may be
    labels = rng.integers(0, sizes[-1], batch)
    ref = T.network_forward(net, xb.astype(np.float64), kernel="numpy")
    fast = T.network_forward(net, xb, kernel="numba")
    assert isinstance(fast[0], K.FastCache)
    for r, f in zip(ref, fast):
        np.testing.assert_array_equal(f.s, r.s)
        np.testing.assert_array_equal(f.u, r.state.u)
    _, g = T.spike_count_loss(ref[-1].s, labels)
    g_ref = T.network_backward(ref, g)
    g_fast = T.network_backward(fast, g)
    for a, b in zip(g_fast, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-300)
