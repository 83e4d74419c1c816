"""Simulated SMUs coupled to the virtual chip: SCPI / TSP servers on 127.0.0.1.

``serve_instruments(world)`` starts the default bench -- a Keithley 2450 on VDDA, a
Keysight B2901A on VDDD and a Keithley 2601B on VDDIO -- each on an ephemeral port, and
returns their descriptors (for ``snnbench sim serve``'s first JSON line) and a stop
function.  Drivers reach them through pyvisa-py exactly like lab instruments.

The world is any object with ``rails``, ``lock``, ``clock_s()``, ``advance_to(t)`` and
``mean_current_a(rail, t0, t1)`` (``sim_backend.world.SimWorld``, or
:class:`~sim_backend.instruments.stub_world.StubWorld` in tests).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim_backend.instruments.channel import Acquisition, SimChannel
from sim_backend.instruments.scpi_smus import Keithley2450Server, KeysightB2900Server
from sim_backend.instruments.server import ErrorQueue, InstrumentServer
from sim_backend.instruments.stub_world import StubWorld
from sim_backend.instruments.tsp_smus import Keithley2600Server

__all__ = ["Acquisition", "ErrorQueue", "InstrumentServer", "Keithley2450Server", "Keithley2600Server",
           "KeysightB2900Server", "SimChannel", "StubWorld", "DEFAULT_BENCH", "make_server",
           "serve_instruments"]

DEFAULT_BENCH: tuple[tuple[str, str, int], ...] = (("2450", "VDDA", 1), ("B2901A", "VDDD", 1),
                                                   ("2601B", "VDDIO", 1))
"""(model, rail, channel) of the default simulated SMUs."""
SIM_TRIGGER_LINE = 1
"""The trigger input each simulated SMU has wired to the board's trigger output."""


def make_server(model: str, world: Any, rails: dict[int, str], host: str = "127.0.0.1",
                port: int = 0) -> InstrumentServer:
    """A (not yet started) simulated SMU of ``model`` with ``{channel: rail}`` wiring."""
    m = model.strip().upper()
    if m == "2450":
        return Keithley2450Server(world, rails[1], host, port)
    if m.startswith("B29"):
        return KeysightB2900Server(world, rails, model=m, host=host, port=port)
    if m.startswith("26"):
        return Keithley2600Server(world, rails, model=m, host=host, port=port)
    raise ValueError(f"no simulator for SMU model {model!r}")


def serve_instruments(world: Any, host: str = "127.0.0.1",
                      bench: tuple[tuple[str, str, int], ...] = DEFAULT_BENCH,
                      ) -> tuple[list[dict[str, Any]], Callable[[], None]]:
    """Start the simulated SMUs; return ``(descriptors, stop)``.

    Each descriptor: ``{"resource": "TCPIP0::127.0.0.1::PORT::SOCKET", "model": "2450",
    "rail": "VDDA", "channel": 1, "voltage_v": 1.8, "trigger_line": 1}``: every simulated SMU's
    trigger input (line 1) is wired to the board's trigger output (``world.trigger``).
    """
    servers: list[InstrumentServer] = []
    descriptors: list[dict[str, Any]] = []
    try:
        for model, rail, channel in bench:
            srv = make_server(model, world, {channel: rail}, host).start()
            servers.append(srv)
            descriptors.append({"resource": srv.resource, "model": model, "rail": rail,
                                "channel": channel, "voltage_v": float(world.rails[rail]),
                                "trigger_line": SIM_TRIGGER_LINE})
    except BaseException:
        for s in servers:
            s.stop()
        raise

    def stop() -> None:
        for s in servers:
            s.stop()

    stop.servers = servers  # type: ignore[attr-defined]
    return descriptors, stop
