"""Safety interlocks: strict validators (property test) and SIGINT / SIGTERM in a real process."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import LimitError
from drivers.instruments import Keithley2450, ProtocolAdapter, safety
from sim_backend.instruments import Keithley2450Server, StubWorld

ROOT = Path(__file__).resolve().parents[1]


def _smu(max_v: float, max_i: float) -> tuple[Keithley2450, ProtocolAdapter]:
    ad = ProtocolAdapter([("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,1,1"), ("*RST", None), ("*CLS", None),
                          (":SYST:LFR?", "50")])
    smu = Keithley2450(ad, max_voltage_v=max_v, max_current_a=max_i)
    safety.unregister(smu)
    return smu, ad


@settings(max_examples=200, deadline=None)
@given(max_v=st.floats(0.1, 5.0), max_i=st.floats(1e-3, 0.5),
       v=st.floats(allow_nan=True, allow_infinity=True), i=st.floats(allow_nan=True, allow_infinity=True))
def test_setpoints_are_sent_exactly_or_refused_never_clipped(max_v, max_i, v, i):
    smu, ad = _smu(max_v, max_i)
    ok_v = math.isfinite(v) and 0.0 <= v <= max_v
    if ok_v:
        ad.dialogue.append((f":SOUR:VOLT {v:.9g}", None))
        smu.source_voltage = v
        assert ad.sent[-1] == f":SOUR:VOLT {v:.9g}"
    else:
        n = len(ad.sent)
        with pytest.raises(LimitError):
            smu.source_voltage = v
        assert len(ad.sent) == n
    ok_i = math.isfinite(i) and 1e-9 <= i <= max_i
    n = len(ad.sent)
    if ok_i:
        ad.dialogue.append((f":SOUR:VOLT:ILIM {i:.9g}", None))
        smu.current_limit = i
        assert ad.sent[-1] == f":SOUR:VOLT:ILIM {i:.9g}"
    else:
        with pytest.raises(LimitError):
            smu.current_limit = i
        assert len(ad.sent) == n


_CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from drivers.instruments import open_smu, safety
    cfg = {{"resource": {res!r}, "model": "2450", "rail": "VDDA", "max_voltage_v": 3.6, "max_current_a": 0.2}}
    try:
        with safety.guard():
            smu = open_smu(cfg)
            smu.configure(1.8, 0.1, 0.01)
            smu.enable()
            smu.arm_trace(100000, 1.0)          # a long acquisition: fetch blocks, like a real run
            print("ready", flush=True)
            time.sleep(60)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ramps_down_and_switches_off(sig):
    world = StubWorld()
    srv = Keithley2450Server(world, "VDDA").start()
    try:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD.format(root=str(ROOT), res=srv.resource)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        assert srv.state()["output"] is True and srv.state()["level_v"] == pytest.approx(1.8)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        deadline = time.time() + 5
        while srv.state()["output"] and time.time() < deadline:
            time.sleep(0.05)
        st_ = srv.state()
        assert st_["output"] is False and st_["level_v"] == 0.0
        levels = [line for line in srv.log if line.startswith(":SOUR:VOLT ")]
        assert levels[-1] == ":SOUR:VOLT 0" and len(levels) > 2       # ramped, not dropped
    finally:
        srv.stop()
