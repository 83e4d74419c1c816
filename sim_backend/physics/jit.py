"""Shared numba plumbing for every compiled fast path (decision 0015).

One switch, one cache and one report for the simulated chip's kernel
(``sim_backend.physics.fastpath``), the software network and training (``bench.network``):

* ``SNNBENCH_KERNEL`` selects the path: ``auto`` (default: numba when it imports, else the
  pure-numpy reference), ``numba`` (numba required: :func:`enabled` raises
  :class:`KernelUnavailable` naming the reason when it does not import) or ``numpy`` (the
  reference, forced).  Any other value is a one-line configuration error.
* numba is imported lazily, only by :func:`numba_module` (never at package import), so a CLI
  command that runs no kernel, ``snnbench --help`` included, never pays for it.
* Compiled machine code is cached on disk under ``$SNNBENCH_CACHE/numba`` (default
  ``~/.cache/snnbench/numba``): the package directory may be read-only for its users.  An
  explicit ``NUMBA_CACHE_DIR`` wins.  If the directory cannot be written, kernels still compile
  (in memory, on every process start) instead of failing.
* :func:`njit` applies the project's compile options: ``cache=True``, ``error_model="numpy"``
  (x / 0 gives inf like numpy, no exception branch), ``nogil=True`` and **no fastmath**, so
  LLVM neither reassociates sums nor contracts ``a * b + c`` into an FMA: compiled code does
  the same IEEE-754 operations in the same order as its numpy reference, bit for bit.

Usage in a kernel module (imported only once :func:`enabled` is true)::

    from sim_backend.physics.jit import njit

    @njit
    def step(x, y): ...

and at the call site::

    from sim_backend.physics import jit
    if jit.enabled():
        from . import _mykernels      # imports numba, defines the @njit functions
        _mykernels.step(x, y)
    else:
        ...                           # numpy reference
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "SNNBENCH_KERNEL"
"""Environment variable selecting the kernel path: auto | numba | numpy."""
CHOICES = ("auto", "numba", "numpy")

_NUMBA: Any = None
_REASON: str | None = None      # why numba is not in use (None: not tried yet or in use)
_TRIED = False
_LOCK = threading.Lock()      # first use may come from several threads (bench.hybrid)


class KernelUnavailable(RuntimeError):
    """``SNNBENCH_KERNEL=numba`` but numba cannot be imported (configuration error, exit 2)."""

    exit_code = 2


def choice() -> str:
    """The requested path from ``SNNBENCH_KERNEL`` (``auto`` when unset or empty)."""
    raw = os.environ.get(ENV, "").strip().lower() or "auto"
    if raw not in CHOICES:
        raise ValueError(f"{ENV}={os.environ.get(ENV)!r} is not one of {', '.join(CHOICES)}")
    return raw


def cache_dir() -> Path:
    """Directory for numba's on-disk cache: ``$NUMBA_CACHE_DIR`` if set, else
    ``$SNNBENCH_CACHE/numba`` (default ``~/.cache/snnbench/numba``)."""
    explicit = os.environ.get("NUMBA_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("SNNBENCH_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "snnbench") / "numba"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


def numba_module() -> Any | None:
    """The numba module (imported on first call, with the cache directory configured), or
    None when it cannot be imported; :func:`reason` then says why."""
    global _NUMBA, _REASON, _TRIED
    if _TRIED:
        return _NUMBA
    with _LOCK:
        if _TRIED:
            return _NUMBA
        try:
            import numba
        except Exception as exc:  # noqa: BLE001 - ImportError, or llvmlite failing to load its library
            _REASON = f"numba cannot be imported: {type(exc).__name__}: {' '.join(str(exc).split())}"
        else:
            d = cache_dir()
            if _writable(d):
                numba.config.CACHE_DIR = str(d)
            _NUMBA = numba
        _TRIED = True
    return _NUMBA


def enabled() -> bool:
    """True when the numba fast path is to be used (imports numba on the first call unless
    ``SNNBENCH_KERNEL=numpy``).  Raises :class:`KernelUnavailable` when numba is required
    (``SNNBENCH_KERNEL=numba``) but missing, ValueError on an unknown ``SNNBENCH_KERNEL``."""
    c = choice()
    if c == "numpy":
        return False
    ok = numba_module() is not None
    if not ok and c == "numba":
        raise KernelUnavailable(f"{ENV}=numba but {_REASON}")
    return ok


def reason() -> str | None:
    """Why the numpy reference is in use, or None when the numba path is (ValueError on an
    unknown ``SNNBENCH_KERNEL``)."""
    if choice() == "numpy":
        return f"forced by {ENV}=numpy"
    if numba_module() is None:
        return _REASON
    return None


def report() -> dict[str, Any]:
    """Which kernel path is in use and why, for ``snnbench --version --json``:
    ``{"path": "numba", "numba": "0.68.1", "llvmlite": ..., "cache_dir": ..., "cache_writable": ...}``
    or ``{"path": "numpy", "reason": "..."}``."""
    requested = choice()
    if not enabled():            # raises when numba is required but missing
        return {"path": "numpy", "reason": reason(), "requested": requested}
    nb = numba_module()
    import llvmlite

    cdir = cache_dir()
    return {"path": "numba", "numba": nb.__version__, "llvmlite": llvmlite.__version__,
            "requested": requested, "cache_dir": str(cdir),
            "cache_writable": bool(nb.config.CACHE_DIR) and Path(nb.config.CACHE_DIR) == cdir,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}"}


OPTIONS: dict[str, Any] = {"cache": True, "error_model": "numpy", "nogil": True, "fastmath": False,
                           "boundscheck": False}
"""numba.njit options of every project kernel (see the module docstring)."""


def njit(fn: Callable | None = None, **overrides: Any) -> Any:
    """``numba.njit`` with :data:`OPTIONS` (``overrides`` may change them, except fastmath).

    Use as ``@njit`` or ``@njit(inline="always")``.  Imports numba: call it only from a kernel
    module that is itself imported once :func:`enabled` returned True."""
    if overrides.get("fastmath"):
        raise ValueError("fastmath would break bit-identity with the numpy reference")
    nb = numba_module()
    if nb is None:
        raise KernelUnavailable(_REASON or "numba is not available")
    opts = dict(OPTIONS, **overrides)
    if opts.get("cache") and not nb.config.CACHE_DIR:
        opts["cache"] = False        # no writable cache directory: compile in memory
    if fn is None:
        return nb.njit(**opts)
    return nb.njit(**opts)(fn)


def _reset_for_tests() -> None:
    """Forget the import attempt (tests that change the environment in-process)."""
    global _NUMBA, _REASON, _TRIED
    _NUMBA, _REASON, _TRIED = None, None, False
