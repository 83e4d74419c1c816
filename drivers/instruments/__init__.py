"""SMU drivers behind one interface (:class:`~drivers.instruments.base.Smu`).

Models: Keithley 2450 (SCPI), Keysight B2900 series (SCPI, 1-2 channels), Keithley 2600B
series (TSP, ``smua``/``smub``).  Opened through pyvisa's pure-Python backend (``@py``);
resources such as ``TCPIP0::127.0.0.1::5025::SOCKET`` get ``"\\n"`` terminations and Nagle's
algorithm off (VISA's ``VI_ATTR_TCPIP_NODELAY`` default, which pyvisa-py does not apply).

Typical use (the station file names resource, model, rail and per-rail limits)::

    from drivers.instruments import open_smu, safety
    with safety.guard(), open_smu(cfg) as smu:      # cfg: bench.station.SmuConfig-like
        smu.configure(cfg.voltage_v, cfg.current_limit_a, cfg.nplc)   # compliance first
        smu.enable()                                                  # 0 V -> ramp up
        smu.arm_trace(1000, 200e-6); ...; trace = smu.fetch_trace()
    # -> ramped to 0 V and output off, whatever happened
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from drivers.errors import InstrumentError
from drivers.instruments import safety
from drivers.instruments.base import (Adapter, Control, InstrumentRange, ProtocolAdapter, Smu, Trace,
                                      VisaAdapter, control, measurement, resource_manager,
                                      strict_discrete_set, strict_range)
from drivers.instruments.keithley2450 import Keithley2450
from drivers.instruments.keithley2600 import Keithley2600
from drivers.instruments.keysight_b2900 import KeysightB2900

__all__ = [
    "Adapter", "Control", "InstrumentRange", "Keithley2450", "Keithley2600", "KeysightB2900",
    "ProtocolAdapter", "SharedAdapter", "Smu", "Trace", "VisaAdapter", "control", "measurement",
    "open_smu", "open_smus", "resource_manager", "safety", "smu_class", "strict_discrete_set",
    "strict_range",
]


def smu_class(model: str) -> type[Smu]:
    """The driver class for a model name ("2450", "B2901A", "2602B", ...)."""
    m = Smu.normalise_model(model)
    for cls in (Keithley2450, KeysightB2900, Keithley2600):
        if m in cls.ranges:
            return cls
    if re.fullmatch(r"B29\d\d[AB]?", m) or re.fullmatch(r"26\d\dB?", m):
        raise InstrumentError(f"SMU model {model!r}: variant not supported")
    raise InstrumentError(f"unknown SMU model {model!r} (supported: 2450, B2901A/B2902A/B2911A/B2912A, "
                          "2601B/2602B/2604B/2611B/2612B/2614B/2634B/2635B/2636B)")


class SharedAdapter(Adapter):
    """Reference-counted view of one adapter, for two channels of one instrument."""

    def __init__(self, inner: Adapter, refs: dict[str, int]) -> None:
        self.inner = inner
        self.resource_name = inner.resource_name
        self._refs = refs
        self._refs[self.resource_name] = self._refs.get(self.resource_name, 0) + 1
        self._closed = False

    def write(self, message: str) -> None:
        self.inner.write(message)

    def query(self, message: str, timeout_s: float | None = None) -> str:
        return self.inner.query(message, timeout_s=timeout_s)

    def drain(self) -> None:
        self.inner.drain()

    def check_alive(self) -> None:
        self.inner.check_alive()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._refs[self.resource_name] -= 1
        if self._refs[self.resource_name] <= 0:
            self.inner.close()


def _get(cfg: Any, name: str, default: Any = None) -> Any:
    if isinstance(cfg, dict):
        return cfg.get(name, default)
    return getattr(cfg, name, default)


def open_smu(cfg: Any, adapter: Adapter | None = None, timeout_s: float = 5.0, **kwargs: Any) -> Smu:
    """Open one SMU channel from a station ``SmuConfig`` (or a dict with the same keys).

    Checks ``*IDN?`` against ``cfg.model`` and resets the channel; does not configure or
    enable the output.  The channel is registered for safe shutdown until closed.
    """
    cls = smu_class(_get(cfg, "model"))
    max_v = _get(cfg, "max_voltage_v")
    max_i = _get(cfg, "max_current_a")
    if max_v is None or max_i is None:
        raise InstrumentError(f"{_get(cfg, 'resource')}: station limits max_voltage_v/max_current_a are required")
    if adapter is None:
        adapter = VisaAdapter(_get(cfg, "resource"), timeout_s=timeout_s)
    try:
        return cls(adapter, model=_get(cfg, "model"), channel=int(_get(cfg, "channel", 1) or 1),
                   rail=_get(cfg, "rail", "") or "", max_voltage_v=max_v, max_current_a=max_i, **kwargs)
    except BaseException:
        adapter.close()
        raise


def open_smus(cfgs: Iterable[Any], timeout_s: float = 5.0, **kwargs: Any) -> list[Smu]:
    """Open several channels; channels on the same resource share one VISA session.

    On any failure the ones already open are shut down and closed before re-raising.
    """
    inners: dict[str, Adapter] = {}
    refs: dict[str, int] = {}
    opened: list[Smu] = []
    try:
        for cfg in cfgs:
            res = _get(cfg, "resource")
            if res not in inners:
                inners[res] = VisaAdapter(res, timeout_s=timeout_s)
            opened.append(open_smu(cfg, adapter=SharedAdapter(inners[res], refs), **kwargs))
    except BaseException:
        for smu in opened:
            try:
                smu.close()
            except Exception:  # noqa: BLE001
                pass
        for res, inner in inners.items():
            if refs.get(res, 0) <= 0:
                inner.close()
        raise
    return opened
