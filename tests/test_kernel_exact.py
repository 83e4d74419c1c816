"""Issue 17 must-holds for the simulated chip's compiled path (decision 0015):

* the numba kernel gives spikes, per-row input counts and output-spike counts identical to the
  pure-numpy reference on random layers and inputs, at ideal (no noise) and with a fixed noise
  key at typical, and the chip's energy counters are identical on both paths;
* the kernel loads and runs with no C compiler present (CC pointing at a missing program, PATH
  without gcc/cc), and ``snnbench --version --json`` reports the path in use.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sim_backend.chip import VirtualChip
from sim_backend.physics import fastpath, jit
from sim_backend.physics.energy import reference_workload
from sim_backend.physics.neuron import NeuronParams, srm_forward

pytestmark = pytest.mark.skipif(not fastpath.have_kernel(), reason=f"numba path off: {jit.reason()}")


@st.composite
def layers(draw):
    b = draw(st.integers(1, 3))
    t = draw(st.integers(1, 40))
    r = draw(st.integers(1, 140))            # also rows that are not whole 8-row words
    n = draw(st.integers(1, 20))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rate = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    rng = np.random.default_rng(seed)
    spikes = rng.random((b, t, r)) < rate
    wd = rng.normal(0.0, draw(st.sampled_from([0.1, 1.0, 3.0])), (r, n))
    wd[rng.random((r, n)) < 0.1] = 0.0       # exact zeros and repeated values
    var = (draw(st.sampled_from([0.0, 0.02, 0.3])) * wd) ** 2
    var0 = np.full(n, draw(st.sampled_from([0.0, 1e-4, 0.05])))
    theta = 1.0 + 0.05 * rng.standard_normal(n)
    tau = draw(st.sampled_from([1.0, 2.5, 10.0])) * (1.0 + 0.03 * rng.standard_normal(n))
    params = NeuronParams(tau_steps=10.0, theta=1.0, ref_scale=draw(st.sampled_from([0.5, 10.0])),
                          clamp_low=draw(st.sampled_from([0.0, -1.0])), clamp_high=5.0)
    return spikes, wd, var, var0, theta, tau, params


def _both(spikes, wd, var, key, var0, params, theta, tau):
    fast = fastpath.layer_forward(spikes, wd, var, key, var0, params, theta=theta, tau_steps=tau)
    ref = fastpath.layer_forward(spikes, wd, var, key, var0, params, theta=theta, tau_steps=tau,
                                 use_kernel=False)
    return fast, ref


def _same(fast, ref):
    s1, rc1, n1 = fast
    s2, rc2, n2 = ref
    assert s1.dtype == bool and s1.shape == s2.shape
    assert np.array_equal(s1, s2)
    assert rc1.dtype == np.int64 and np.array_equal(rc1, rc2)
    assert n1 == n2 == int(s2.sum())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer=layers())
def test_layer_kernel_equals_numpy_reference_ideal(layer):
    spikes, wd, var, var0, theta, tau, params = layer
    _same(*_both(spikes, wd, None, None, None, params, theta, tau))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer=layers(), key=st.integers(0, 2 ** 64 - 1))
def test_layer_kernel_equals_numpy_reference_with_fixed_noise_key(layer, key):
    spikes, wd, var, var0, theta, tau, params = layer
    _same(*_both(spikes, wd, var, key, var0, params, theta, tau))


def test_reference_agreement_is_not_vacuous():
    """The chip-sized case the benchmark runs: many spikes, noise that flips some of them
    (so a noise-stream or summation-order slip would show), counts equal."""
    spikes, g = reference_workload(24, seed=3)
    rng = np.random.default_rng(0)
    wd = (g[:, 0::2] - g[:, 1::2]) / 10e-6
    var = ((0.05 * g[:, 0::2]) ** 2 + (0.05 * g[:, 1::2]) ** 2) / 10e-6 ** 2
    theta = 1 + 0.02 * rng.standard_normal(12)
    fast, ref = _both(spikes, wd, var, 987654321987654321, np.full(12, 1e-3), NeuronParams(), theta, None)
    _same(fast, ref)
    quiet = fastpath.layer_forward(spikes, wd, var, None, None, NeuronParams(), theta=theta)[0]
    assert fast[2] > 1000                                   # plenty of output spikes
    assert 0 < np.count_nonzero(fast[0] != quiet) < fast[2]  # the noise matters, a little


def test_srm_kernel_equals_srm_forward_on_clamp_edges():
    rng = np.random.default_rng(7)
    z = rng.choice([-1.0, 0.0, 0.1, 0.5, 0.95, 1.0, 4.999, 5.0, 7.0, 10.0 / 3], (4, 200, 13))
    th = 1 + 0.03 * rng.standard_normal(13)
    ref = srm_forward(z, theta=th).astype(bool)
    assert ref.sum() > 100
    assert np.array_equal(fastpath.srm_spikes(z, theta=th), ref)


def test_chip_energy_counters_identical_on_both_paths(monkeypatch):
    spikes, g = reference_workload(16, seed=1)

    def run():
        chip = VirtualChip(chip_seed=2, run_seed=5, fidelity="typical")
        chip.set_conductances(g)
        outs = [chip.run(spikes[:9]), chip.run(spikes[9:])]
        return chip, np.concatenate(outs)

    monkeypatch.delenv(jit.ENV, raising=False)
    fast_chip, fast_out = run()
    monkeypatch.setenv(jit.ENV, "numpy")
    assert not fastpath.have_kernel()
    ref_chip, ref_out = run()
    assert np.array_equal(fast_out, ref_out) and ref_out.sum() > 0
    assert fast_chip.counters == ref_chip.counters
    fa, ra = fast_chip.last_run["activity"], ref_chip.last_run["activity"]
    assert (fa.in_events, fa.out_events, fa.charge_c) == (ra.in_events, ra.out_events, ra.charge_c)
    assert fast_chip.last_run["energy_j"] == ref_chip.last_run["energy_j"]


def _no_compiler_env(tmp_path: Path) -> dict:
    """PATH naming only an empty directory (no gcc, cc, clang) and CC naming a program that does
    not exist; a fresh numba cache, so the kernel is compiled here."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (jit.ENV, "NUMBA_CACHE_DIR")}
    env.update(PATH=str(bindir), CC=str(tmp_path / "no-such-cc"), CXX=str(tmp_path / "no-such-c++"),
               SNNBENCH_CACHE=str(tmp_path / "cache"))
    return env


def _json_of(args: list, env: dict) -> dict:
    """Run ``python ARGS`` in ``env``; it must succeed and print one JSON object."""
    p = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_kernel_loads_and_runs_without_a_c_compiler(tmp_path):
    env = _no_compiler_env(tmp_path)
    assert all(shutil.which(c, path=env["PATH"]) is None for c in ("gcc", "cc", "clang", "g++"))
    code = (
        "import json, numpy as np\n"
        "from sim_backend.physics import fastpath, jit\n"
        "rng = np.random.default_rng(1)\n"
        "x = rng.random((3, 50, 128)) < 0.1\n"
        "w = rng.normal(0, 1, (128, 12)); v = (0.05 * w) ** 2\n"
        "a = fastpath.layer_forward(x, w, v, 42, np.full(12, 1e-3))\n"
        "b = fastpath.layer_forward(x, w, v, 42, np.full(12, 1e-3), use_kernel=False)\n"
        "print(json.dumps({'report': jit.report(), 'same': bool(np.array_equal(a[0], b[0])),\n"
        "                  'spikes': int(a[2])}))\n")
    d = _json_of(["-c", code], env)
    assert d["report"]["path"] == "numba" and d["same"] and d["spikes"] > 0
    # the machine code went to the numba cache under SNNBENCH_CACHE
    assert list((tmp_path / "cache" / "numba").rglob("*.nbc"))
    assert _json_of(["-m", "bench", "--version", "--json"], env)["kernel"]["path"] == "numba"


def test_forced_numpy_fallback_is_reported_and_used(tmp_path):
    env = dict(_no_compiler_env(tmp_path), **{jit.ENV: "numpy"})
    code = (
        "import json, sys, numpy as np\n"
        "from sim_backend.chip import VirtualChip\n"
        "from sim_backend.physics import fastpath\n"
        "chip = VirtualChip(chip_seed=0, run_seed=0, fidelity='typical')\n"
        "chip.run(np.random.default_rng(0).random((2, 30, 128)) < 0.1)\n"
        "print(json.dumps({'kernel': fastpath.have_kernel(), 'numba': 'numba' in sys.modules}))\n")
    assert _json_of(["-c", code], env) == {"kernel": False, "numba": False}   # numba never imported
    k = _json_of(["-m", "bench", "--version", "--json"], env)["kernel"]
    assert k["path"] == "numpy" and k["reason"] == "forced by SNNBENCH_KERNEL=numpy"


def test_row_counts_of_long_dense_runs():
    """Every row active at every step for 2 x 300 steps: each row count is exactly 600
    (hand count; the kernel's byte-wide counters must be flushed before they wrap at 256)."""
    spikes = np.ones((2, 300, 20), dtype=bool)
    spikes[:, :, 7] = False
    wd = np.full((20, 3), 0.01)
    s, rc, n = fastpath.layer_forward(spikes, wd, None, None, None)
    assert rc.tolist() == [600] * 7 + [0] + [600] * 12
    assert n == int(s.sum())


@pytest.mark.parametrize("use_kernel", [True, False])
def test_spike_at_exact_threshold_hand_case(use_kernel):
    """tau = 1 step: p[0] = x[0] / 1 = 1.0 = theta exactly, so u >= theta fires at step 0;
    the refractory kernel (-10 theta) then holds the neuron below threshold at step 1
    (p = e^-1 + 1, r = -10 e^-1 -> u < 0).  Hand-derived from the definition in neuron.py."""
    params = NeuronParams(tau_steps=1.0, theta=1.0)
    z = np.array([[[1.0], [1.0]]])
    assert fastpath.srm_spikes(z, params, use_kernel=use_kernel)[0, :, 0].tolist() == [True, False]
    s, rc, n = fastpath.layer_forward(np.ones((1, 2, 9), bool), np.r_[np.full(8, 0.0), 1.0][:, None],
                                      None, None, None, params, use_kernel=use_kernel)
    assert s[0, :, 0].tolist() == [True, False] and rc.tolist() == [2] * 9 and n == 1
