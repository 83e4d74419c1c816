"""Instrument errors say what happened in words a person can act on, and the expected-protocol
test adapter names the step that went wrong."""
from __future__ import annotations

import pytest

from drivers.instruments.base import ProtocolAdapter, _visa_reason


@pytest.mark.parametrize("text, reason", [
    ("VI_ERROR_TMO (-1073807339): Timeout expired before operation completed.", "timeout: no reply"),
    ("Timeout", "timeout: no reply"),
    ("VI_ERROR_RSRC_NFOUND (-1073807343): Insufficient location information", "connection refused / resource not found"),
    ("[Errno 111] Connection refused", "connection refused / resource not found"),
    ("ConnectionRefusedError", "connection refused / resource not found"),
    ("VI_ERROR_CONN_LOST (-1073807194): The connection for the given session has been lost.", "connection lost"),
    ("[Errno 104] Connection reset by peer", "connection lost"),
    ("[Errno 32] Broken pipe", "connection lost"),
    ("something   else\n entirely", "something else entirely"),
])
def test_visa_failure_reasons(text, reason):
    assert _visa_reason(OSError(text) if "Errno" in text else RuntimeError(text)) == reason


def test_visa_failure_without_text_names_the_exception():
    assert _visa_reason(TimeoutError()) == "TimeoutError"


def test_protocol_adapter_names_the_step_that_went_wrong():
    a = ProtocolAdapter([("*IDN?", "X,Y,1,2"), (":OUTP ON", None)])
    assert a.query("*IDN?") == "X,Y,1,2"
    with pytest.raises(AssertionError, match=r"^dialogue not finished: next expected \(':OUTP ON', None\)$"):
        a.assert_done()
    with pytest.raises(AssertionError, match=r"^message #1 ':OUTP ON' was a query, dialogue says otherwise$"):
        a.query(":OUTP ON")
    b = ProtocolAdapter([(":OUTP OFF", None)])
    with pytest.raises(AssertionError, match=r"^message #0: sent ':OUTP ON', expected ':OUTP OFF'$"):
        b.write(":OUTP ON")
    c = ProtocolAdapter([])
    with pytest.raises(AssertionError, match=r"^unexpected extra message #0: '\*RST'$"):
        c.write("*RST")
    assert c.sent == ["*RST"]


def test_a_declared_control_reads_and_writes_exactly_its_commands():
    """control(get, set, doc): reading sends the query and parses it, writing sends the set
    command with the value formatted; measurement() is read-only."""
    from drivers.instruments.base import Instrument, control, measurement

    class Box(Instrument):
        level = control(":LEV?", ":LEV {value}", "Level (V).")
        temp = measurement(":TEMP?", "Temperature (K).")

    a = ProtocolAdapter([(":LEV?", "1.25"), (":LEV 0.5", None), (":TEMP?", "300")])
    box = Box(a)
    assert box.level == 1.25
    box.level = 0.5
    assert box.temp == 300.0
    with pytest.raises(AttributeError, match="^temp is read-only$"):
        box.temp = 1.0
    a.assert_done()
    assert Box.level.__doc__ == "Level (V)."


def test_a_write_where_a_query_was_expected_is_named():
    a = ProtocolAdapter([("*IDN?", "X")])
    with pytest.raises(AssertionError, match=r"^message #0 '\*IDN\?' was a write, dialogue says otherwise$"):
        a.write("*IDN?")
