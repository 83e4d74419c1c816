"""``pesim://`` — the virtual board in-process, behind pyserial's URL mechanism.

``serial.serial_for_url("pesim://?seed=1&fidelity=typical&ber=1e-5&drop=0.005")`` gives a
port whose far side is a :class:`~sim_backend.firmware.VirtualFirmware`.  Query fields:
``seed`` (chip seed), ``run_seed``, ``fidelity`` (ideal/typical/worst), ``die`` (a die file:
the chip's state is loaded from it, saved to it after every command that changes it, and the
file is locked while the port is open; made from ``seed``/``fidelity`` if missing), ``freeze``
(1: no wall time passes between sessions on the die), ``ack_ms`` (long jobs still running after
this many ms are acknowledged BUSY, docs/protocol.md [busy]) and the link-model faults of
:class:`~sim_backend.link.LinkModel` (``ber``, ``drop``, ``dup``, ``stall``, ``reorder``, ``board_reset``,
``link_seed``).  Without ``die`` the chip is a fresh die that is not persisted.
``p.<field>=<value>`` overrides one field of the chip's parameter set on top of ``fidelity``
(``ChipParams.preset(fidelity, field=value)``, docs/chip_model.md), e.g.
``pesim://?fidelity=ideal&p.read_noise_rel=0.01`` — numbers and booleans (0/1/true/false) only;
not with ``die`` (a die keeps its own parameter set).  The error budget (``snnbench budget``)
switches the chip's non-idealities on one at a time this way.

The board answers synchronously inside ``write``; a ``read`` that finds nothing buffered
returns at once, as a port whose timeout has elapsed would (nothing more can arrive).
"""
from __future__ import annotations

import urllib.parse

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from sim_backend.board import make_board
from sim_backend.link import TO_BOARD, TO_HOST, LinkModel

_KNOWN = {"seed", "run_seed", "fidelity", "ber", "drop", "dup", "stall", "reorder", "board_reset",
          "link_seed", "baud", "latency_s", "latency_ms", "die", "freeze", "ack_ms"}


class Serial(SerialBase):
    """A serial port whose far side is the virtual board."""

    synchronous = True
    """Replies are complete when write() returns: an empty read means nothing will come."""

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        parts = urllib.parse.urlsplit(self._port)
        if parts.scheme != "pesim":
            raise SerialException(f"expected a pesim:// URL, got {self._port!r}")
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        unknown = sorted(k for k in set(q) - _KNOWN if not k.startswith("p."))
        if unknown:
            raise SerialException(f"pesim:// unknown option(s) {', '.join(unknown)} "
                                  f"(known: {', '.join(sorted(_KNOWN))})")
        self.die = None
        try:
            seed, run_seed = int(q.get("seed", 1)), int(q.get("run_seed", 0))
            freeze = q.get("freeze", "0")
            if freeze not in ("0", "1"):
                raise ValueError(f"freeze must be 0 or 1, got {freeze!r}")
            if freeze == "1" and not q.get("die"):
                raise ValueError("freeze=1 needs die=FILE")
            self.link = LinkModel.from_query(parts.query, seed=run_seed + 7919)
            fidelity = q.get("fidelity", "typical")
            overrides = param_overrides(q)
            if overrides and q.get("die"):
                raise ValueError("p.* parameter overrides need a fresh die (a die keeps its own parameter set)")
            if q.get("die"):
                from sim_backend.die import OpenDie

                self.die = OpenDie(q["die"], freeze=freeze == "1", seed=seed, fidelity=fidelity,
                                   run_seed=run_seed)
            try:
                self.firmware = make_board(seed, run_seed, fidelity, die=self.die, params=overrides)
            except BaseException:
                self._close_die()
                raise
            if "ack_ms" in q:
                self.firmware.ack_s = float(q["ack_ms"]) * 1e-3
        except ValueError as exc:
            raise SerialException(f"pesim:// bad option: {exc}") from None
        self._rx = bytearray()
        self.is_open = True

    def close(self) -> None:
        self.is_open = False
        self._close_die()

    def _close_die(self) -> None:
        die, self.die = getattr(self, "die", None), None
        if die is not None:
            die.close()

    def _reconfigure_port(self) -> None:
        pass

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        data = bytes(self._rx[:size])
        del self._rx[:size]
        return data

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        data = bytes(data)
        if self.link.want_board_reset():
            self.firmware.reboot()
        reply = self.firmware.feed(self.link.corrupt(data, TO_BOARD))
        self._rx += self.link.corrupt(reply, TO_HOST)
        return len(data)

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        self._rx.clear()

    def reset_output_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

    @property
    def out_waiting(self) -> int:
        return 0

    def _update_break_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True


def param_overrides(q: dict[str, str]) -> dict[str, float | int | bool]:
    """``p.<field>`` query fields -> ChipParams overrides, typed like the field's default."""
    import dataclasses

    from sim_backend.physics.params import ChipParams

    types = {f.name: type(f.default) for f in dataclasses.fields(ChipParams)}
    out: dict[str, float | int | bool] = {}
    for key, text in q.items():
        if not key.startswith("p."):
            continue
        name = key[2:]
        kind = types.get(name)
        if kind not in (float, int, bool):
            raise ValueError(f"{key}: not a numeric chip parameter (ChipParams field)"
                             if kind is None or name == "name" else f"{key}: cannot be set from a URL")
        if kind is bool:
            if text.lower() not in ("0", "1", "true", "false"):
                raise ValueError(f"{key} must be 0, 1, true or false, got {text!r}")
            out[name] = text.lower() in ("1", "true")
        else:
            try:
                out[name] = kind(text) if kind is int else float(text)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {text!r}") from None
    return out
