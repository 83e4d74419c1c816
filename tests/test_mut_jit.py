"""The numba plumbing (sim_backend/physics/jit.py) in-process, where the mutation run can see it
(issue 18): tests/test_kernel_jit.py checks the same behaviour through subprocesses, which
mutmut's per-test tracing cannot attribute to these functions.

Expected values come from decision 0015 and the module docstring: the report's exact fields,
the default cache directory ``~/.cache/snnbench/numba``, the reason text of a failed import,
and the compile options (numpy error model: x / 0 gives inf; nogil; no bounds checks; cached
unless no cache directory can be written).  Each test restores the module's import state and
numba's cache directory.
"""
from __future__ import annotations

import sys

import llvmlite
import numba
import numpy as np
import pytest

from sim_backend.physics import jit


@pytest.fixture
def iso(monkeypatch, tmp_path):
    """A fresh import attempt with SNNBENCH_CACHE under tmp_path; restores everything after."""
    saved = (jit._NUMBA, jit._REASON, jit._TRIED, numba.config.CACHE_DIR)
    for k in (jit.ENV, "NUMBA_CACHE_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SNNBENCH_CACHE", str(tmp_path / "c"))
    jit._reset_for_tests()
    yield monkeypatch
    jit._NUMBA, jit._REASON, jit._TRIED, numba.config.CACHE_DIR = saved


@pytest.fixture
def no_numba(iso, tmp_path):
    """numba not importable: a shadowing module whose import raises (as a broken llvmlite
    would), with a message spread over lines."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "numba.py").write_text("raise ImportError('no LLVM\\n   here')\n")
    iso.syspath_prepend(str(shadow))
    iso.delitem(sys.modules, "numba")
    yield iso


REASON = "numba cannot be imported: ImportError: no LLVM here"


def test_report_of_the_numba_path_in_full(iso, tmp_path):
    """Kills jit.report mutants on the numba branch (_11 nb=None, _12 cdir=None, _14-_21 the
    keys and the "numba" path, _25 cache_dir str(None), _29/_30 cache_writable) and
    jit.numba_module _7-_9 (cache directory not configured, or configured as None/"None"):
    after a fresh import the cache is $SNNBENCH_CACHE/numba and writable."""
    want_dir = tmp_path / "c" / "numba"
    assert jit.numba_module() is numba
    assert numba.config.CACHE_DIR == str(want_dir)
    assert jit.report() == {
        "path": "numba", "numba": numba.__version__, "llvmlite": llvmlite.__version__,
        "requested": "auto", "cache_dir": str(want_dir), "cache_writable": True,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    iso.setenv(jit.ENV, "numba")
    assert jit.report()["requested"] == "numba"
    assert jit.enabled() is True


def test_report_says_the_cache_is_not_where_it_points_after_a_change(iso, tmp_path):
    """Kills jit.report mutant _28 (`bool(CACHE_DIR) or Path(CACHE_DIR) == cdir`): numba was
    configured with one cache directory; SNNBENCH_CACHE now names another, so the cache the
    report names is not the one in use."""
    jit.numba_module()
    iso.setenv("SNNBENCH_CACHE", str(tmp_path / "other"))
    r = jit.report()
    assert r["cache_dir"] == str(tmp_path / "other" / "numba")
    assert r["cache_writable"] is False


def test_unwritable_cache_leaves_numba_without_a_cache_dir(iso, tmp_path):
    """A cache directory that cannot be created (its parent is a file) is not given to numba:
    the report says not writable, and njit compiles in memory (kills jit.njit mutants _19 and
    _25: caching left on with no directory)."""
    (tmp_path / "file").write_text("")
    iso.setenv("SNNBENCH_CACHE", str(tmp_path / "file"))
    numba.config.CACHE_DIR = ""
    assert jit.numba_module() is numba
    assert numba.config.CACHE_DIR == ""
    assert jit.report()["cache_writable"] is False

    @jit.njit
    def twice(x):
        return 2.0 * x

    assert twice(1.5) == 3.0
    assert type(twice._cache).__name__ == "NullCache"


def test_report_of_the_forced_numpy_path(iso):
    """Kills jit.report mutants _1 (requested None) and _4-_10 (keys and path of the numpy
    branch)."""
    iso.setenv(jit.ENV, "numpy")
    assert jit.report() == {"path": "numpy", "reason": "forced by SNNBENCH_KERNEL=numpy",
                            "requested": "numpy"}


def test_failed_import_is_reported_once_with_its_reason(no_numba):
    """Kills jit.numba_module mutants _1/_2/_4/_5 (the reason text: exception type and its
    message with the whitespace collapsed), jit.enabled _6/_7/_10/_13 (auto falls back to
    numpy; SNNBENCH_KERNEL=numba raises naming the reason) and jit.njit _9 (its error names the
    reason)."""
    assert jit.numba_module() is None
    assert jit.reason() == REASON
    assert jit.enabled() is False
    assert jit.report() == {"path": "numpy", "reason": REASON, "requested": "auto"}
    with pytest.raises(jit.KernelUnavailable, match=r"^numba cannot be imported: ImportError: no LLVM here$"):
        jit.njit(lambda x: x)
    no_numba.setenv(jit.ENV, "numba")
    with pytest.raises(jit.KernelUnavailable) as e:
        jit.enabled()
    assert str(e.value) == "SNNBENCH_KERNEL=numba but " + REASON
    assert e.value.exit_code == 2


def test_enabled_is_true_on_the_auto_path(iso):
    """Kills jit.enabled mutants _1 (choice ignored), _3-_5 (numpy switch), _6/_7 (the import
    result ignored or inverted): auto with numba importable is True (exactly), numpy False."""
    assert jit.enabled() is True
    assert jit.reason() is None
    iso.setenv(jit.ENV, "numpy")
    assert jit.enabled() is False
    iso.setenv(jit.ENV, " NUMBA ")
    assert jit.choice() == "numba" and jit.enabled() is True


def test_default_cache_dir_is_under_the_home_cache(iso, tmp_path):
    """Kills jit.cache_dir mutants _14 ('.cache' * 'snnbench') and _16 (another directory name):
    with neither NUMBA_CACHE_DIR nor SNNBENCH_CACHE set the cache is ~/.cache/snnbench/numba."""
    iso.delenv("SNNBENCH_CACHE")
    iso.setenv("HOME", str(tmp_path / "home"))
    assert jit.cache_dir() == tmp_path / "home" / ".cache" / "snnbench" / "numba"
    iso.setenv("SNNBENCH_CACHE", "")                   # empty: also the default
    assert jit.cache_dir() == tmp_path / "home" / ".cache" / "snnbench" / "numba"


def test_njit_applies_the_project_options(iso):
    """Kills jit.njit mutants _13/_15 (the project options dropped), _17 (caching turned off
    although a cache directory is configured), _24 (an unknown "CACHE" option), _26/_27 (the
    bare-decorator form broken): a kernel divides by zero like numpy (inf, no exception), runs
    without the GIL and without bounds checks, and is cached on disk."""
    jit.numba_module()

    @jit.njit
    def ratio(a, b):
        return a / b

    assert ratio(1.0, 0.0) == np.inf
    assert ratio.targetoptions["nogil"] is True
    assert ratio.targetoptions["boundscheck"] is False
    assert ratio.targetoptions["error_model"] == "numpy"
    assert type(ratio._cache).__name__ == "FunctionCache"

    @jit.njit(nogil=False, cache=False)
    def plus(a, b):
        return a + b

    assert plus(2.0, 3.0) == 5.0
    assert plus.targetoptions["nogil"] is False and plus.targetoptions["error_model"] == "numpy"
    assert type(plus._cache).__name__ == "NullCache"


def test_njit_refuses_fastmath_with_its_reason():
    """Kills jit.njit mutants _4/_5 (the refusal's message)."""
    with pytest.raises(ValueError, match=r"^fastmath would break bit-identity with the numpy reference$"):
        jit.njit(fastmath=True)
