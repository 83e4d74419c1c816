"""Safe-shutdown registry details the mutation run found unchecked (issue 18): an SMU without a
label is still named in the error list, and a shutdown from a worker thread (which may not
touch signal handlers) still closes every rail."""
from __future__ import annotations

import signal
import threading

import pytest

from drivers.instruments import safety


@pytest.fixture(autouse=True)
def clean_registry():
    for smu in safety.registered():
        safety.unregister(smu)
    yield
    for smu in safety.registered():
        safety.unregister(smu)


class _Unlabelled:
    def __repr__(self) -> str:
        return "<rail X>"

    def close(self) -> None:
        raise RuntimeError("stuck")


class _Closes:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True
        safety.unregister(self)


def test_a_failing_smu_without_a_label_is_named_by_itself():
    safety.register(_Unlabelled())
    assert safety.shutdown_all() == ["<rail X>: stuck"]


def test_shutdown_from_a_worker_thread_closes_everything_and_leaves_signals_alone():
    before = signal.getsignal(signal.SIGINT)
    smu = _Closes()
    safety.register(smu)
    out: list = []
    t = threading.Thread(target=lambda: out.append(safety.shutdown_all()))
    t.start()
    t.join(10)
    assert out == [[]]                       # no error (signal.signal may not run off the main thread)
    assert smu.closed and safety.registered() == []
    assert signal.getsignal(signal.SIGINT) is before


def test_an_unconfirmed_rail_below_one_volt_is_named_at_its_own_level():
    safety.clear_unconfirmed()
    try:
        safety.report_unconfirmed("VDDIO", 0.5, "timeout")
        assert safety.unconfirmed() == ["VDDIO could not be confirmed off \u2014 it may still be at 0.5 V"]
    finally:
        safety.clear_unconfirmed()


def test_shutdown_puts_back_the_ctrl_c_handler_it_found():
    """Whatever handler was installed before (here one of the test's own) is back afterwards:
    SIGINT is ignored only during the shutdown."""
    def mine(signum, frame):  # pragma: no cover - never called
        pass

    saved = signal.signal(signal.SIGINT, mine)
    try:
        seen = []
        smu = _Closes()
        smu.close = lambda: (seen.append(signal.getsignal(signal.SIGINT)), safety.unregister(smu))
        safety.register(smu)
        assert safety.shutdown_all() == []
        assert seen == [signal.SIG_IGN]
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, saved)
