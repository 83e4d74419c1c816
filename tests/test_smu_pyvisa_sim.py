"""Fixed dialogues through pyvisa-sim (static replies; see tests/fixtures/smu_pyvisa_sim.yaml)."""
from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import InstrumentError
from drivers.instruments import Keithley2450, KeysightB2900, VisaAdapter, safety

pytest.importorskip("pyvisa_sim")
import pyvisa  # noqa: E402

YAML = Path(__file__).parent / "fixtures" / "smu_pyvisa_sim.yaml"


@pytest.fixture(scope="module")
def rm():
    r = pyvisa.ResourceManager(f"{YAML}@sim")
    yield r
    r.close()


def test_identity_line_frequency_and_unparsable_reply(rm):
    ad = VisaAdapter("TCPIP0::192.0.2.10::5025::SOCKET", rm=rm)
    smu = Keithley2450(ad, max_voltage_v=3.6, max_current_a=0.1)
    safety.unregister(smu)
    assert smu.identity.startswith("KEITHLEY") and smu.line_frequency_hz == 60.0
    smu._nplc = 0.06
    assert smu.aperture_s == pytest.approx(1e-3)
    smu.check_errors()
    with pytest.raises(InstrumentError, match="unparsable reply 'not-a-number'"):
        smu.measure_current()
    ad.close()


def test_unparsable_error_queue_is_a_clear_error(rm):
    ad = VisaAdapter("TCPIP0::192.0.2.11::5025::SOCKET", rm=rm)
    smu = KeysightB2900(ad, model="B2901A", max_voltage_v=3.6, max_current_a=0.1)
    safety.unregister(smu)
    with pytest.raises(InstrumentError, match="unparsable error-queue reply 'garbage'"):
        smu.configure(1.8, 0.05)
    ad.close()


def test_not_an_smu(rm):
    ad = VisaAdapter("TCPIP0::192.0.2.12::5025::SOCKET", rm=rm)
    with pytest.raises(InstrumentError, match=r"wrong instrument: expected a Keithley 2450 \(2450\)"):
        Keithley2450(ad, max_voltage_v=3.6, max_current_a=0.1)
    ad.close()
