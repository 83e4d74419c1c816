"""The world on the far side of the wire, simulated: virtual firmware, chip physics, link
model and instrument simulators.

Public API (what ``bench`` may use; see docs/decisions/0001-sim-backend-boundary.md):
- importing this package registers the ``pesim://`` pyserial URL scheme;
- ``sim_backend.physics`` — the plain-numpy physics (shared neuron model, parameters);
- ``sim_backend.server.serve`` / ``python -m sim_backend serve`` — the simulated bench.
"""
import serial

if "sim_backend.urlhandler" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("sim_backend.urlhandler")
