"""The shared numba plumbing (sim_backend/physics/jit.py, decision 0015): the path switch,
the on-disk cache under SNNBENCH_CACHE, the lazy import and the ``--version --json`` report."""
import json
import os
import subprocess
import sys

import pytest

from sim_backend.physics import jit


def run_py(code: str, env_extra: dict, *, drop=()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)


def run_cli(args, env_extra: dict, *, drop=()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture
def fresh(monkeypatch):
    jit._reset_for_tests()
    yield monkeypatch
    jit._reset_for_tests()


def test_switch_values(fresh):
    fresh.delenv(jit.ENV, raising=False)
    assert jit.choice() == "auto"
    fresh.setenv(jit.ENV, "NumPy")
    assert jit.choice() == "numpy" and jit.enabled() is False
    assert jit.reason() == "forced by SNNBENCH_KERNEL=numpy"
    fresh.setenv(jit.ENV, "cuda")
    with pytest.raises(ValueError, match="SNNBENCH_KERNEL='cuda' is not one of auto, numba, numpy"):
        jit.enabled()


def test_cache_dir_follows_snnbench_cache(fresh, tmp_path):
    fresh.delenv("NUMBA_CACHE_DIR", raising=False)
    fresh.setenv("SNNBENCH_CACHE", str(tmp_path))
    assert jit.cache_dir() == tmp_path / "numba"
    fresh.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert jit.cache_dir() == tmp_path / "mine"


def test_njit_refuses_fastmath():
    with pytest.raises(ValueError, match="fastmath"):
        jit.njit(fastmath=True)


def test_kernel_cache_lands_under_snnbench_cache(tmp_path):
    """A cached kernel writes its index and object files in $SNNBENCH_CACHE/numba, nowhere near
    the (possibly read-only) package directory."""
    code = ("from sim_backend.physics.jit import njit\n"
            "import numpy as np\n"
            "@njit\n"
            "def f(x):\n"
            "    return x * 2.0 + 1.0\n"
            "print(f(np.float64(3.0)))\n")
    mod = tmp_path / "kmod.py"
    mod.write_text(code)
    p = run_py(f"import runpy; runpy.run_path({str(mod)!r})",
               {"SNNBENCH_CACHE": str(tmp_path / "c"), jit.ENV: "numba"}, drop=("NUMBA_CACHE_DIR",))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "7.0"
    files = [f.name for f in (tmp_path / "c" / "numba").rglob("*") if f.is_file()]
    assert any(f.endswith(".nbi") for f in files) and any(f.endswith(".nbc") for f in files), files


def test_help_does_not_import_numba():
    p = run_py("import sys\nfrom bench.cli import main\n"
               "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
               "print('NUMBA' if 'numba' in sys.modules else 'NO-NUMBA')", {})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("NO-NUMBA")


def test_version_json_reports_numba_path():
    p = run_cli(["--version", "--json"], {}, drop=(jit.ENV,))
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    import numba

    assert d["kernel"]["path"] == "numba"
    assert d["kernel"]["numba"] == numba.__version__
    assert p.stdout.count("\n") == 1


def test_version_json_reports_forced_numpy_fallback():
    p = run_cli(["--version", "--json"], {jit.ENV: "numpy"})
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["kernel"] == {"path": "numpy", "reason": "forced by SNNBENCH_KERNEL=numpy",
                           "requested": "numpy"}


def test_version_reports_missing_numba(tmp_path):
    """numba not importable (a shadowing module that raises, as a broken llvmlite would): the
    numpy path is reported with the reason; requiring numba is then a one-line exit-2 error."""
    (tmp_path / "numba.py").write_text("raise ImportError('no LLVM here')\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    p = run_cli(["--version", "--json"], env, drop=(jit.ENV,))
    assert p.returncode == 0, p.stderr
    k = json.loads(p.stdout)["kernel"]
    assert k["path"] == "numpy"
    assert k["reason"] == "numba cannot be imported: ImportError: no LLVM here"
    p = run_cli(["--version", "--json"], dict(env, **{jit.ENV: "numba"}))
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip() == ("snnbench: error: SNNBENCH_KERNEL=numba but numba cannot be imported: "
                                "ImportError: no LLVM here")


def test_bad_switch_value_is_a_usage_error():
    p = run_cli(["--version", "--json"], {jit.ENV: "gpu"})
    assert p.returncode == 2 and p.stdout == ""
    assert "SNNBENCH_KERNEL='gpu' is not one of auto, numba, numpy" in p.stderr
