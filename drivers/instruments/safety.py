"""Safe-shutdown registry: every open SMU registers here until it is closed.

``shutdown_all()`` ramps every registered output to 0 V and switches it off (best effort,
each instrument independently).  :func:`guard` is what a CLI command wraps its work in::

    with safety.guard():
        ...   # open SMUs, measure

On leaving the block -- normally, on any exception, on Ctrl-C (SIGINT) or SIGTERM -- every
SMU still registered is shut down.  During the shutdown itself SIGINT is ignored, so a
second Ctrl-C cannot interrupt the ramp-down.  An ``atexit`` hook covers interpreters that
exit without unwinding the block.
"""
from __future__ import annotations

import atexit
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.RLock()
_registry: dict[int, Any] = {}
_unconfirmed: list[tuple[str, float, str]] = []


def report_unconfirmed(rail: str, level_v: float, reason: str) -> None:
    """Record a rail whose output could not be confirmed off at 0 V (``Smu.close`` does)."""
    with _lock:
        _unconfirmed.append((rail, float(level_v), reason))


def unconfirmed() -> list[str]:
    """One line per rail not confirmed off, for the last lines of a command's stderr:
    ``VDDA (2450 at RESOURCE) could not be confirmed off — it may still be at 1.8 V``."""
    with _lock:
        seen: dict[str, float] = {}
        for rail, level, _ in _unconfirmed:
            seen[rail] = max(level, seen.get(rail, 0.0))
        return [f"{rail} could not be confirmed off \u2014 it may still be at {level:g} V"
                for rail, level in seen.items()]


def clear_unconfirmed() -> None:
    with _lock:
        _unconfirmed.clear()


def register(smu: Any) -> None:
    with _lock:
        _registry[id(smu)] = smu


def unregister(smu: Any) -> None:
    with _lock:
        _registry.pop(id(smu), None)


def registered() -> list[Any]:
    with _lock:
        return list(_registry.values())


def shutdown_all() -> list[str]:
    """Shut down (0 V, output off) and close every registered SMU.  Returns error texts."""
    errors: list[str] = []
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        for smu in registered():
            try:
                smu.close()
            except Exception as exc:  # noqa: BLE001 - keep going: other rails must still go off
                errors.append(f"{getattr(smu, 'label', smu)}: {exc}")
                unregister(smu)
    finally:
        if main and old is not None:
            signal.signal(signal.SIGINT, old)
    return errors


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM inside :func:`guard` (unwinds like Ctrl-C)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated(f"signal {signum}")


@contextmanager
def guard() -> Iterator[None]:
    """Shut every registered SMU down when the block is left, however it is left."""
    main = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    old_int = None
    if main and signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):
        old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        errors = shutdown_all()
        if main:
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
            if old_int is not None:
                signal.signal(signal.SIGINT, old_int)
        for e in errors:
            print(f"snnbench: warning: safe shutdown: {e}", file=sys.stderr)
        # the rails themselves are named last by the CLI (``unconfirmed()``)


atexit.register(shutdown_all)
