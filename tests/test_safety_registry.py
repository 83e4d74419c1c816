"""The safe-shutdown registry on its own, with stand-in SMUs: every registered output is closed
however the guarded block is left, one failing rail does not stop the others, Ctrl-C cannot
interrupt the shutdown, and the rails not confirmed off are named."""
from __future__ import annotations

import os
import signal

import pytest

from drivers.instruments import safety


class FakeSmu:
    def __init__(self, label: str, fail: bool = False, log: list | None = None) -> None:
        self.label, self.fail, self.log = label, fail, log if log is not None else []
        safety.register(self)

    def close(self) -> None:
        self.log.append((self.label, signal.getsignal(signal.SIGINT)))
        if self.fail:
            raise RuntimeError("boom")
        safety.unregister(self)


@pytest.fixture(autouse=True)
def clean_registry():
    for smu in safety.registered():
        safety.unregister(smu)
    safety.clear_unconfirmed()
    yield
    for smu in safety.registered():
        safety.unregister(smu)
    safety.clear_unconfirmed()


def test_shutdown_closes_every_smu_ignoring_ctrl_c_and_reports_failures():
    log: list = []
    a, bad, c = FakeSmu("VDDA", log=log), FakeSmu("VDDD", fail=True, log=log), FakeSmu("VDDIO", log=log)
    assert safety.registered() == [a, bad, c]
    before = signal.getsignal(signal.SIGINT)
    errors = safety.shutdown_all()
    assert errors == ["VDDD: boom"]
    assert [label for label, _ in log] == ["VDDA", "VDDD", "VDDIO"]       # the failure did not stop VDDIO
    assert all(handler == signal.SIG_IGN for _, handler in log)            # Ctrl-C ignored meanwhile
    assert signal.getsignal(signal.SIGINT) == before                        # and restored
    assert safety.registered() == []                                        # the failed one too
    assert safety.shutdown_all() == []


def test_registry_is_keyed_by_instrument_and_returns_a_copy():
    a = FakeSmu("VDDA")
    safety.register(a)                       # twice: still one entry
    listed = safety.registered()
    listed.clear()
    assert safety.registered() == [a]
    safety.unregister(a)
    safety.unregister(a)                     # unknown: no error
    assert safety.registered() == []


def test_guard_shuts_down_on_an_exception_and_warns(capsys):
    log: list = []
    with pytest.raises(ZeroDivisionError):
        with safety.guard():
            FakeSmu("VDDA", log=log)
            FakeSmu("VDDD", fail=True, log=log)
            1 / 0
    assert [label for label, _ in log] == ["VDDA", "VDDD"]
    assert capsys.readouterr().err.strip() == "snnbench: warning: safe shutdown: VDDD: boom"


def test_guard_turns_sigterm_into_terminated_and_restores_the_handlers():
    log: list = []
    term_before, int_before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(safety.Terminated):
        with safety.guard():
            FakeSmu("VDDA", log=log)
            assert signal.getsignal(signal.SIGTERM) is safety._on_sigterm
            os.kill(os.getpid(), signal.SIGTERM)     # the handler runs as os.kill returns
            pytest.fail("SIGTERM did not unwind the guarded block")
    assert log and log[0][0] == "VDDA"
    assert signal.getsignal(signal.SIGTERM) == term_before
    assert signal.getsignal(signal.SIGINT) == int_before


def test_guard_makes_ctrl_c_raise_when_it_was_ignored():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with safety.guard():
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


def test_unconfirmed_rails_are_named_once_at_their_highest_level():
    safety.report_unconfirmed("VDDA (2450 at X)", 1.8, "timeout")
    safety.report_unconfirmed("VDDIO (B2900 at Y)", 3.3, "lost")
    safety.report_unconfirmed("VDDA (2450 at X)", 0.9, "timeout")
    assert safety.unconfirmed() == [
        "VDDA (2450 at X) could not be confirmed off \u2014 it may still be at 1.8 V",
        "VDDIO (B2900 at Y) could not be confirmed off \u2014 it may still be at 3.3 V"]
    safety.clear_unconfirmed()
    assert safety.unconfirmed() == []


def test_terminated_names_the_signal():
    with pytest.raises(safety.Terminated, match="^signal 15$"):
        safety._on_sigterm(signal.SIGTERM, None)
    assert issubclass(safety.Terminated, KeyboardInterrupt)
