"""Instrument plumbing: message adapters, strict declarative properties, the SMU interface.

Style of PyMeasure's ``Instrument.control(get_cmd, set_cmd, doc, validator=...)`` but
strict: a validator never clips, an out-of-range value raises
:class:`~drivers.errors.LimitError` *before* anything is written to the instrument.

Commands are format strings; ``{value}`` is the value being set and any other field comes
from the instrument's :meth:`Instrument.fmt` mapping (e.g. ``{ch}`` the channel number,
``{smu}`` the TSP channel name ``smua``), so one declaration serves every channel.
"""
from __future__ import annotations

import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from drivers.errors import InstrumentError, LimitError

# --------------------------------------------------------------------------------------
# Adapters: the message layer.  VisaAdapter is the real one; ProtocolAdapter pins the
# exact dialogue in tests (PyMeasure's ``expected_protocol``).
# --------------------------------------------------------------------------------------


class Adapter(ABC):
    """Sends newline-terminated messages and reads replies."""

    resource_name: str = "<adapter>"

    @abstractmethod
    def write(self, message: str) -> None: ...

    @abstractmethod
    def query(self, message: str, timeout_s: float | None = None) -> str: ...

    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def drain(self) -> None:
        """Discard a reply left over from an interrupted query (if any)."""

    def check_alive(self) -> None:
        """Raise InstrumentError if the link is known to be dead (default: cannot tell)."""


_RM: Any = None


def resource_manager() -> Any:
    """The process-wide pyvisa ResourceManager on the pure-Python ``@py`` backend."""
    global _RM
    if _RM is None:
        import pyvisa

        _RM = pyvisa.ResourceManager("@py")
    return _RM


class VisaAdapter(Adapter):
    """A pyvisa (pyvisa-py) message-based resource, e.g. ``TCPIP0::127.0.0.1::5025::SOCKET``.

    Every VISA failure becomes an :class:`InstrumentError` naming the resource, so the CLI
    prints one line.
    """

    def __init__(self, resource: str, timeout_s: float = 5.0, rm: Any = None) -> None:
        import pyvisa

        self.resource_name = resource
        self.timeout_s = timeout_s
        self._closed = False
        self._dirty = False
        try:
            self._res = (rm or resource_manager()).open_resource(
                resource, read_termination="\n", write_termination="\n",
                timeout=int(timeout_s * 1000))
        except (pyvisa.errors.VisaIOError, OSError) as exc:
            raise InstrumentError(f"{resource}: cannot open instrument ({_visa_reason(exc)})") from None
        except (ValueError, pyvisa.errors.Error) as exc:
            raise InstrumentError(f"{resource}: unknown or unsupported VISA resource ({exc})") from None
        self._set_nodelay()
        if getattr(self._res, "chunk_size", None) is not None:
            self._res.chunk_size = 1 << 20
        # pyvisa-py's socket sessions read 4 KiB per select() by default; bulk buffer reads
        # (100k-point traces) are several times faster with larger reads.
        try:
            session = self._res.visalib.sessions[self._res.session]
            if getattr(session, "max_recv_size", None) is not None:
                session.max_recv_size = 1 << 16
        except Exception:  # noqa: BLE001 - another backend: keep its defaults
            pass

    def _set_nodelay(self) -> None:
        """Nagle's algorithm off on a raw TCP socket resource (``VI_ATTR_TCPIP_NODELAY``).

        VISA's default for this attribute is VI_TRUE (VPP-4.3, VI_ATTR_TCPIP_NODELAY; NI-VISA
        and Keysight IO Libraries honour it), but pyvisa-py 0.8 leaves the socket at the OS
        default (Nagle on) and rejects setting the attribute (UnknownAttribute).  With Nagle
        on, the second of two back-to-back writes (``:SOUR:VOLT 1.2`` then ``:SYST:ERR?``)
        waits in the kernel until the instrument ACKs the first -- which the instrument's
        stack delays by 40-200 ms, because a set command has no reply to carry the ACK.
        Every write-then-query exchange then costs a delayed-ACK timeout (measured: 41-44 ms
        per query on Linux loopback, docs/BENCHMARKS.md "simulated SMU query latency").
        Each message is one ``send`` (pyvisa writes a message with its termination at once),
        so with Nagle off every command leaves at once as one segment.
        """
        import socket

        from pyvisa import constants

        try:
            self._res.set_visa_attribute(constants.ResourceAttribute.tcpip_nodelay, constants.VisaBoolean.true)
        except Exception:  # noqa: BLE001 - pyvisa-py: UnknownAttribute; GPIB/USB/serial: not applicable
            pass
        sock = self._socket()
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6) \
                and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _socket(self) -> Any:
        try:
            return self._res.visalib.sessions[self._res.session].interface
        except Exception:  # noqa: BLE001 - not a socket session (GPIB, USB): no check
            return None

    def check_alive(self) -> None:
        """Raise at once if the peer closed the connection (pyvisa-py would wait for its
        timeout: a closed TCP socket reads as "no data yet")."""
        import select
        import socket

        sock = self._socket()
        if not isinstance(sock, socket.socket):
            return
        try:
            sock.getpeername()
        except OSError:
            return            # never connected: the query itself reports why
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable and sock.recv(1, socket.MSG_PEEK) == b"":
                raise InstrumentError(f"{self.resource_name}: connection lost (the instrument closed the link)")
        except (OSError, ValueError):
            raise InstrumentError(f"{self.resource_name}: connection lost") from None

    def _fail(self, what: str, message: str, exc: BaseException) -> InstrumentError:
        return InstrumentError(f"{self.resource_name}: {what} {message!r} failed ({_visa_reason(exc)})")

    def write(self, message: str) -> None:
        import pyvisa

        if self._closed:
            raise InstrumentError(f"{self.resource_name}: instrument is closed")
        self.check_alive()
        try:
            self._res.write(message)
        except (pyvisa.errors.VisaIOError, OSError) as exc:
            raise self._fail("write", message, exc) from None

    def query(self, message: str, timeout_s: float | None = None) -> str:
        import pyvisa

        if self._closed:
            raise InstrumentError(f"{self.resource_name}: instrument is closed")
        self.check_alive()
        old = None
        try:
            if timeout_s is not None:
                old = self._res.timeout
                self._res.timeout = int(timeout_s * 1000)
            self._dirty = True
            reply = self._res.query(message).strip()
            self._dirty = False
            return reply
        except (pyvisa.errors.VisaIOError, OSError) as exc:
            raise self._fail("query", message, exc) from None
        except UnicodeDecodeError:
            raise InstrumentError(f"{self.resource_name}: reply to {message!r} is not text") from None
        finally:
            if old is not None:
                try:
                    self._res.timeout = old
                except Exception:  # noqa: BLE001 - the session may be gone already
                    pass

    def drain(self) -> None:
        if not self._dirty or self._closed:
            return
        old = self._res.timeout
        try:
            self._res.timeout = 200
            for _ in range(64):
                self._res.read_raw()
        except Exception:  # noqa: BLE001 - a timeout here means the line is clean
            pass
        finally:
            self._dirty = False
            try:
                self._res.timeout = old
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._res.close()
        except Exception:  # noqa: BLE001 - closing a dead link must not mask the real error
            pass


def _visa_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if "VI_ERROR_TMO" in text or "Timeout" in text:
        return "timeout: no reply"
    if "VI_ERROR_RSRC_NFOUND" in text or "ConnectionRefused" in text or "Connection refused" in text:
        return "connection refused / resource not found"
    if "VI_ERROR_CONN_LOST" in text or "reset" in text.lower() or "Broken pipe" in text:
        return "connection lost"
    return text or type(exc).__name__


class ProtocolAdapter(Adapter):
    """Test adapter: ``[(sent, reply-or-None), ...]`` must be exactly the dialogue.

    ``write(m)`` must match an entry whose reply is ``None``; ``query(m)`` must match an entry
    with a reply.  Any mismatch raises ``AssertionError`` naming the step.
    """

    resource_name = "<expected-protocol>"

    def __init__(self, dialogue: Sequence[tuple[str, str | None]]) -> None:
        self.dialogue = list(dialogue)
        self.position = 0
        self.sent: list[str] = []

    def _next(self, message: str, want_reply: bool) -> str | None:
        self.sent.append(message)
        if self.position >= len(self.dialogue):
            raise AssertionError(f"unexpected extra message #{self.position}: {message!r}")
        expected, reply = self.dialogue[self.position]
        if message != expected:
            raise AssertionError(f"message #{self.position}: sent {message!r}, expected {expected!r}")
        if want_reply != (reply is not None):
            kind = "query" if want_reply else "write"
            raise AssertionError(f"message #{self.position} {message!r} was a {kind}, dialogue says otherwise")
        self.position += 1
        return reply

    def write(self, message: str) -> None:
        self._next(message, False)

    def query(self, message: str, timeout_s: float | None = None) -> str:
        return self._next(message, True) or ""

    def assert_done(self) -> None:
        if self.position != len(self.dialogue):
            raise AssertionError(f"dialogue not finished: next expected {self.dialogue[self.position]!r}")


# --------------------------------------------------------------------------------------
# Validators (strict) and the control descriptor
# --------------------------------------------------------------------------------------

Bound = float | str | Callable[[Any], float]
Validator = Callable[[Any, Any], Any]


def _bound(instrument: Any, b: Bound) -> float:
    if callable(b):
        return float(b(instrument))
    if isinstance(b, str):
        return float(getattr(instrument, b))
    return float(b)


def strict_range(low: Bound, high: Bound, *, what: str = "value", unit: str = "") -> Validator:
    """Accept a finite number in ``[low, high]`` (bounds may be attribute names or callables)."""

    def validate(instrument: Any, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise LimitError(f"{_who(instrument)}: {what} must be a number, got {value!r}")
        v = float(value)
        lo, hi = _bound(instrument, low), _bound(instrument, high)
        if not math.isfinite(v) or v < lo or v > hi:
            raise LimitError(f"{_who(instrument)}: {what} {v:g}{unit} outside the allowed range "
                             f"[{lo:g}, {hi:g}]{unit}; nothing was sent")
        return v

    return validate


def strict_discrete_set(values: Iterable[Any], *, what: str = "value") -> Validator:
    allowed = tuple(values)

    def validate(instrument: Any, value: Any) -> Any:
        if value not in allowed:
            raise LimitError(f"{_who(instrument)}: {what} {value!r} not one of {allowed!r}; nothing was sent")
        return value

    return validate


def _who(instrument: Any) -> str:
    name = getattr(instrument, "label", None)
    return name or type(instrument).__name__


class Control:
    """A validated instrument property (see module docstring).

    ``get_cmd``/``set_cmd`` are format strings (``None`` = write-only / read-only);
    ``validator(instrument, value)`` returns the value to send or raises LimitError;
    ``map_values`` maps Python values to instrument tokens (e.g. ``{True: "ON"}``) and back;
    ``get_process`` parses the reply; ``set_format`` formats the value for the command.
    """

    def __init__(self, get_cmd: str | None, set_cmd: str | None, doc: str, *,
                 validator: Validator | None = None, map_values: dict[Any, str] | None = None,
                 get_process: Callable[[str], Any] | None = None,
                 set_format: str = "{:.9g}", on_set: Callable[[Any, Any], None] | None = None) -> None:
        self.get_cmd = get_cmd
        self.set_cmd = set_cmd
        self.__doc__ = doc
        self.validator = validator
        self.map_values = map_values
        self.get_process = get_process
        self.set_format = set_format
        self.on_set = on_set
        self.name = "<control>"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instrument: Any, owner: type | None = None) -> Any:
        if instrument is None:
            return self
        if self.get_cmd is None:
            raise AttributeError(f"{self.name} is write-only")
        reply = instrument.ask(self.get_cmd.format(**instrument.fmt()))
        if self.get_process is None and self.map_values is not None:
            token = reply.strip().strip('"').upper()
            for py, tok in self.map_values.items():
                if tok.upper() == token:
                    return py
            # numeric tokens (e.g. TSP prints 1.00000e+00 for an enum)
            try:
                num = float(token)
                for py, tok in self.map_values.items():
                    try:
                        if float(tok) == num:
                            return py
                    except ValueError:
                        continue
            except ValueError:
                pass
            raise InstrumentError(f"{_who(instrument)}: unparsable reply {reply!r} to {self.get_cmd!r}")
        process = self.get_process or parse_float
        try:
            return process(reply)
        except (ValueError, IndexError):
            raise InstrumentError(f"{_who(instrument)}: unparsable reply {reply!r} to "
                                  f"{self.get_cmd.format(**instrument.fmt())!r}") from None

    def __set__(self, instrument: Any, value: Any) -> None:
        if self.set_cmd is None:
            raise AttributeError(f"{self.name} is read-only")
        if self.validator is not None:
            value = self.validator(instrument, value)
        if self.map_values is not None:
            if value not in self.map_values:
                raise LimitError(f"{_who(instrument)}: {self.name} {value!r} not one of "
                                 f"{tuple(self.map_values)!r}; nothing was sent")
            token = self.map_values[value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            token = self.set_format.format(value)
        else:
            token = str(value)
        instrument.write(self.set_cmd.format(value=token, **instrument.fmt()))
        if self.on_set is not None:
            self.on_set(instrument, value)


def control(get_cmd: str | None, set_cmd: str | None, doc: str, **kwargs: Any) -> Any:
    """Declare a validated instrument property (PyMeasure style, strict)."""
    return Control(get_cmd, set_cmd, doc, **kwargs)


def measurement(get_cmd: str, doc: str, **kwargs: Any) -> Any:
    """A read-only :func:`control`."""
    return Control(get_cmd, None, doc, **kwargs)


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_float(reply: str) -> float:
    text = reply.strip().split(",")[0].split("\t")[0].strip()
    if not _FLOAT.match(text):
        raise ValueError(reply)
    return float(text)


def parse_bool(reply: str) -> bool:
    token = reply.strip().strip('"').upper()
    if token in ("ON", "TRUE"):
        return True
    if token in ("OFF", "FALSE"):
        return False
    return parse_float(token) != 0.0


def parse_floats(reply: str) -> np.ndarray:
    """Parse a comma (and/or whitespace) separated list of numbers."""
    text = reply.strip()
    if not text:
        return np.zeros(0)
    try:  # fast path: numpy parses the tokens in C (surrounding blanks are allowed)
        return np.array(text.replace("\t", ",").split(","), dtype=np.float64)
    except ValueError:
        pass
    try:
        return np.array([float(t) for t in re.split(r"[,\s]+", text) if t], dtype=np.float64)
    except ValueError:
        raise ValueError(reply[:80]) from None


# --------------------------------------------------------------------------------------
# Instrument and SMU interface
# --------------------------------------------------------------------------------------


class Instrument:
    """Owns one adapter.  Not thread-safe by design: give each link one owner."""

    def __init__(self, adapter: Adapter, label: str = "") -> None:
        self.adapter = adapter
        self.label = label or adapter.resource_name

    def fmt(self) -> dict[str, Any]:
        return {}

    def _relabel(self, exc: InstrumentError) -> InstrumentError:
        text = str(exc)
        prefix = f"{self.adapter.resource_name}: "
        if text.startswith(prefix) and self.label != self.adapter.resource_name:
            return InstrumentError(f"{self.label}: {text[len(prefix):]}")
        return exc

    def write(self, message: str) -> None:
        try:
            self.adapter.write(message)
        except InstrumentError as exc:
            raise self._relabel(exc) from None

    def ask(self, message: str, timeout_s: float | None = None) -> str:
        try:
            return self.adapter.query(message, timeout_s=timeout_s)
        except InstrumentError as exc:
            raise self._relabel(exc) from None

    def check_alive(self) -> None:
        """Raise (naming this instrument) if its link is known to be dead."""
        try:
            self.adapter.check_alive()
        except InstrumentError as exc:
            raise self._relabel(exc) from None


@dataclass
class Trace:
    """A fetched buffered acquisition (SI units).

    Point ``k`` is the mean current over ``[time_s[k], time_s[k] + aperture_s]``, with
    ``time_s`` taken from the instrument's own timestamps (never a nominal period) and made
    relative to the trigger (the first reading starts at the trigger on every model).
    """

    current_a: np.ndarray
    time_s: np.ndarray
    """Start of each point relative to the trigger (s), from the instrument's timestamps."""
    voltage_v: float
    """Programmed source level during the trace."""
    period_s: float
    """The requested (timer / loop) interval between points (s)."""
    aperture_s: float
    meta: dict[str, Any] = field(default_factory=dict)
    compliance: np.ndarray | None = None
    """Per point: the source was in its current limit (the reading is clamped, not the load)."""

    def __post_init__(self) -> None:
        if self.compliance is None:
            self.compliance = np.zeros(len(self.current_a), dtype=bool)

    @property
    def duration_s(self) -> float:
        """Span the trace integrates over: first point's start to the last point's end (s)."""
        if len(self.time_s) == 0:
            return 0.0
        return float(self.time_s[-1] - self.time_s[0] + self.aperture_s)

    def energy_j(self) -> float:
        """Energy over :attr:`duration_s`, on the instrument's own timestamps: each aperture
        counts what it measured (mean current x aperture); each gap between one aperture's end
        and the next reading's start -- the per-reading overhead, or whole lost timer ticks --
        is bridged by the trapezoid of its two neighbours.  Exact for a steady current and for
        activity inside one aperture; a step inside a gap is off by at most gap x step / 2."""
        i = np.asarray(self.current_a, dtype=np.float64)
        if i.size == 0:
            return 0.0
        t = np.asarray(self.time_s, dtype=np.float64)
        gaps = np.clip(np.diff(t) - self.aperture_s, 0.0, None)
        charge = float(np.sum(i)) * self.aperture_s + float(np.sum(gaps * (i[1:] + i[:-1]) / 2))
        return charge * self.voltage_v

    @property
    def lost_points(self) -> int:
        """Timer ticks with no reading: spacings of more than 1.5 requested intervals count
        ``round(spacing / interval) - 1`` lost points each."""
        if len(self.time_s) < 2 or self.period_s <= 0:
            return 0
        d = np.diff(np.asarray(self.time_s, dtype=np.float64)) / self.period_s
        return int(np.sum(np.where(d > 1.5, np.rint(d) - 1, 0)))

    @property
    def covered_fraction(self) -> float:
        """Fraction of :attr:`duration_s` actually integrated by the points' apertures."""
        t = np.asarray(self.time_s, dtype=np.float64)
        if t.size == 0:
            return 0.0
        ends = np.minimum(t[:-1] + self.aperture_s, t[1:])     # overlapping apertures count once
        covered = float(np.sum(ends - t[:-1])) + self.aperture_s
        return min(1.0, covered / self.duration_s)

    @property
    def compliance_fraction(self) -> float:
        c = np.asarray(self.compliance, dtype=bool)
        return float(c.mean()) if c.size else 0.0


@dataclass(frozen=True)
class Reading:
    """One single reading and whether the source was in its current limit meanwhile."""

    value: float
    compliance: bool


@dataclass(frozen=True)
class InstrumentRange:
    """The instrument's own capabilities (not the station's limits)."""

    max_voltage_v: float
    max_current_a: float
    min_current_limit_a: float
    nplc_min: float
    nplc_max: float
    buffer_points: int
    min_interval_s: float
    channels: int = 1
    max_interval_s: float = 1e3
    trigger_lines: int = 0
    """Hardware trigger inputs usable by ``arm_trace(trigger_line=...)``: lines 1..trigger_lines."""
    overhead_s: float = 0.0
    """Time one buffered reading takes beyond its aperture (A/D, auto-zero, data handling) (s):
    the shortest point spacing is ``aperture + overhead_s`` (see each driver for the source)."""


class Smu(Instrument, ABC):
    """One SMU channel powering one rail.

    Safety: every setpoint is validated against the *station* limits
    (``max_voltage_v``/``max_current_a``) and the instrument's range before a byte is sent;
    the output can only turn on after a current limit was set in this session; close, any
    exception inside ``with``, and the shutdown registry ramp to 0 V and switch off.
    """

    family: ClassVar[str] = "SMU"
    makers: ClassVar[tuple[str, ...]] = ()
    """Maker names accepted in the first field of an *IDN? reply (upper case)."""
    ranges: ClassVar[dict[str, InstrumentRange]] = {}

    def __init__(self, adapter: Adapter, *, model: str | None = None, max_voltage_v: float, max_current_a: float,
                 channel: int = 1, rail: str = "", label: str = "", check_idn: bool = True,
                 reset: bool = True, line_frequency_hz: float | None = None,
                 ramp_step_v: float = 0.25, ramp_dwell_s: float = 0.0) -> None:
        if model is None:
            if len(self.ranges) != 1:
                raise InstrumentError(f"{self.family}: say which model ({', '.join(sorted(self.ranges))})")
            model = next(iter(self.ranges))
        super().__init__(adapter, label or f"SMU {self.normalise_model(model)} ch{channel}"
                         + (f" ({rail})" if rail else "") + f" at {adapter.resource_name}")
        self.model = self.normalise_model(model)
        if self.model not in self.ranges:
            raise InstrumentError(f"{self.label}: model {model!r} is not a {self.family} "
                                  f"(known: {', '.join(sorted(self.ranges))})")
        self.range = self.ranges[self.model]
        if not 1 <= channel <= self.range.channels:
            raise InstrumentError(f"{self.label}: channel {channel} does not exist on a {self.model} "
                                  f"(channels 1..{self.range.channels})")
        self.channel = channel
        self.rail = rail
        self.max_voltage_v = min(float(max_voltage_v), self.range.max_voltage_v)
        self.max_current_a = min(float(max_current_a), self.range.max_current_a)
        self.ramp_step_v = ramp_step_v
        self.ramp_dwell_s = ramp_dwell_s
        self._limit_set = False
        self._level_v = 0.0
        self._nplc = None  # type: float | None
        self._armed: tuple[int, float, float] | None = None
        self.powered: tuple[float, float, float | None] | None = None
        """(voltage, limit, nplc) a procedure powered this rail up with; None when off."""
        self.identity = ""
        self._closed = False
        if check_idn:
            self.identity = self.check_identity()
        if reset:
            self.reset()
        self.line_frequency_hz = (float(line_frequency_hz) if line_frequency_hz
                                  else self.query_line_frequency())
        from drivers.instruments import safety

        safety.register(self)

    # ---- identity --------------------------------------------------------------------
    @classmethod
    def normalise_model(cls, model: str) -> str:
        return model.strip().upper().removeprefix("MODEL").strip()

    @classmethod
    def model_from_idn(cls, idn: str) -> str:
        """The model named in an ``*IDN?`` reply ("MAKER,MODEL,SERIAL,FW"); ValueError when
        the reply is unparsable or names a maker not in :attr:`makers`."""
        maker, model = idn.split(",")[:2]
        if not any(m in maker.upper() for m in cls.makers):
            raise ValueError(idn)
        return model

    def check_identity(self) -> str:
        idn = self.ask("*IDN?")
        try:
            found = self.normalise_model(self.model_from_idn(idn))
        except (ValueError, IndexError):
            if idn.count(",") >= 2:   # a well-formed identity of some other instrument
                raise InstrumentError(f"{self.label}: wrong instrument: expected a {self.family} "
                                      f"({self.model}), *IDN? says {idn!r}") from None
            raise InstrumentError(f"{self.label}: unparsable *IDN? reply {idn!r}") from None
        if found != self.model:
            raise InstrumentError(f"{self.label}: wrong instrument: expected a {self.model}, "
                                  f"*IDN? says {idn!r}")
        return idn

    # ---- per-model hooks ---------------------------------------------------------------
    @abstractmethod
    def reset(self) -> None:
        """Return to a known state (output off, 0 V) and clear the error queue."""

    @abstractmethod
    def query_line_frequency(self) -> float: ...

    @abstractmethod
    def next_error(self) -> tuple[int, str]:
        """Pop one entry of the error queue: ``(0, "No error")`` when empty."""

    @abstractmethod
    def _write_output(self, on: bool) -> None: ...

    @abstractmethod
    def _arm(self, n_points: int, interval_s: float, trigger_line: int | None) -> None:
        """Configure and start a buffered current acquisition: immediately, or -- with
        ``trigger_line`` -- on the first rising edge at that hardware trigger input."""

    @abstractmethod
    def _fetch(self, n_points: int, timeout_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(currents, timestamps as the instrument gives them, in-compliance flags)."""

    @abstractmethod
    def _acquired(self) -> int:
        """Readings of the armed acquisition taken so far (answered while acquiring)."""

    @abstractmethod
    def in_compliance(self) -> bool:
        """Whether the source is in (or has tripped) its current limit now."""

    @abstractmethod
    def measure_current(self) -> float: ...

    @abstractmethod
    def measure_voltage(self) -> float: ...

    def measure_power(self) -> float:
        return self.measure_voltage() * self.measure_current()

    # Subclasses declare these as controls.
    source_voltage: Any
    current_limit: Any
    nplc: Any
    output_enabled: Any

    # ---- validators shared by subclasses ------------------------------------------------
    @staticmethod
    def _voltage_validator() -> Validator:
        return strict_range(0.0, "max_voltage_v", what="source voltage", unit=" V")

    @staticmethod
    def _current_validator() -> Validator:
        return strict_range(lambda s: s.range.min_current_limit_a, "max_current_a",
                            what="current limit", unit=" A")

    @staticmethod
    def _nplc_validator() -> Validator:
        return strict_range(lambda s: s.range.nplc_min, lambda s: s.range.nplc_max, what="NPLC")

    def _on_voltage(self, v: float) -> None:
        self._level_v = v

    def _on_limit(self, _v: float) -> None:
        self._limit_set = True

    def _on_nplc(self, v: float) -> None:
        self._nplc = v

    # ---- errors --------------------------------------------------------------------------
    def check_errors(self, context: str = "") -> None:
        """Drain the error queue; raise InstrumentError listing every entry, if any."""
        errors = []
        for _ in range(32):
            code, msg = self.next_error()
            if code == 0:
                break
            errors.append(f"{code} {msg}")
        if errors:
            where = f" after {context}" if context else ""
            raise InstrumentError(f"{self.label}: instrument reported error(s){where}: " + "; ".join(errors))

    # ---- high level -------------------------------------------------------------------
    @property
    def aperture_s(self) -> float:
        nplc = self._nplc if self._nplc is not None else self.nplc
        return nplc / self.line_frequency_hz

    def configure(self, voltage_v: float, current_limit_a: float, nplc: float | None = None) -> None:
        """Voltage source, compliance, integration time; then check the error queue.

        Everything is validated first, so a bad value sends nothing at all.
        """
        self._voltage_validator()(self, voltage_v)
        self._current_validator()(self, current_limit_a)
        if nplc is not None:
            self._nplc_validator()(self, nplc)
        self._configure_source()
        self.current_limit = current_limit_a
        if nplc is not None:
            self.nplc = nplc
        self._target_v = float(voltage_v)
        self.check_errors("configuration")

    def _configure_source(self) -> None:
        """Select the voltage-source / current-measure functions (per model)."""

    def enable(self, voltage_v: float | None = None) -> None:
        """Turn the output on at 0 V and ramp to ``voltage_v`` (default: the configured one)."""
        if not self._limit_set:
            raise LimitError(f"{self.label}: refusing to turn the output on before a current "
                             "limit was set (call configure first)")
        target = getattr(self, "_target_v", 0.0) if voltage_v is None else voltage_v
        self._voltage_validator()(self, target)
        self.source_voltage = 0.0
        self._write_output(True)
        self.ramp_to(target)
        self.check_errors("output on")

    def ramp_to(self, voltage_v: float) -> None:
        """Step the source level to ``voltage_v`` in ``ramp_step_v`` steps."""
        self._voltage_validator()(self, voltage_v)
        start = self._level_v
        steps = max(1, math.ceil(abs(voltage_v - start) / self.ramp_step_v))
        for k in range(1, steps + 1):
            self.source_voltage = start + (voltage_v - start) * k / steps
            if self.ramp_dwell_s:
                time.sleep(self.ramp_dwell_s)

    def disable(self) -> None:
        self.powered = None
        self._write_output(False)

    def min_interval_s(self, aperture_s: float | None = None) -> float:
        """Shortest spacing of buffered points: aperture + the model's per-reading overhead."""
        ap = self.aperture_s if aperture_s is None else aperture_s
        return max(ap + self.range.overhead_s, self.range.min_interval_s)

    def arm_trace(self, n_points: int, interval_s: float, *, trigger_line: int | None = None,
                  adjust: bool = False) -> float:
        """Arm a buffered acquisition of ``n_points`` at ``interval_s``; returns the interval used.

        It starts now, or with ``trigger_line`` on the first rising edge at that hardware
        trigger input.  One reading takes the aperture plus the model's overhead
        (:meth:`min_interval_s`); a shorter interval would lose timer ticks, so it is refused
        with both figures named -- or, with ``adjust``, moved up to that minimum.
        """
        if not isinstance(n_points, (int, np.integer)) or not 1 <= n_points <= self.range.buffer_points:
            raise LimitError(f"{self.label}: trace of {n_points!r} points outside 1..{self.range.buffer_points}")
        need = self.min_interval_s()
        if not (isinstance(interval_s, (int, float, np.floating)) and math.isfinite(float(interval_s))):
            raise LimitError(f"{self.label}: sample interval {interval_s!r} is not a number")
        if float(interval_s) < need * (1 - 1e-9):
            if not adjust:
                raise LimitError(
                    f"{self.label}: sample interval {float(interval_s) * 1e6:.6g} us is shorter than one "
                    f"reading takes on a {self.model} ({need * 1e6:.6g} us = aperture "
                    f"{self.aperture_s * 1e6:.6g} us + overhead {self.range.overhead_s * 1e6:.6g} us); "
                    "points would be lost; nothing was sent")
            interval_s = need
        strict_range(need * (1 - 1e-9), self.range.max_interval_s, what="sample interval", unit=" s")(self, interval_s)
        if trigger_line is not None and not (isinstance(trigger_line, int)
                                             and 1 <= trigger_line <= self.range.trigger_lines):
            raise LimitError(f"{self.label}: trigger line {trigger_line!r} outside the {self.model}'s "
                             f"trigger inputs 1..{self.range.trigger_lines}; nothing was sent")
        self._arm(int(n_points), float(interval_s), trigger_line)
        self._armed = (int(n_points), float(interval_s), self._level_v)
        self._armed_at = time.monotonic()
        self._armed_line = trigger_line
        # A query after the trigger command returns only once the instrument has parsed it,
        # so the acquisition is known to be running when this returns.
        self.check_errors("arming the trace")
        return float(interval_s)

    poll_s: ClassVar[float] = 0.5
    """Longest wait between liveness probes while an acquisition runs (s)."""
    probe_timeout_s: ClassVar[float] = 2.0
    """Timeout of each probe and of the final read-out queries (s) beyond the data size."""

    def fetch_trace(self, timeout_s: float = 30.0) -> Trace:
        """Wait for the armed acquisition to complete and read it out.

        Never one long blocking query: the driver polls the instrument's reading count every
        :attr:`poll_s` (or every interval, if shorter) with a short timeout until all points
        are in; then the completion query and the read-out get a timeout of
        :attr:`probe_timeout_s` plus what the data size needs.  A dead link is so noticed
        within a few seconds, not after ``timeout_s`` (the ceiling for the acquisition itself);
        no progress for ``max(2 x probe timeout, 3 intervals)`` fails naming the cause.
        """
        if self._armed is None:
            raise InstrumentError(f"{self.label}: fetch_trace without arm_trace")
        n, interval, level = self._armed
        expected_s = n * interval
        start = time.monotonic()
        if expected_s > timeout_s:
            raise InstrumentError(f"{self.label}: a {n}-point trace at {interval:g} s takes {expected_s:g} s, "
                                  f"longer than the {timeout_s:g} s allowed")
        # armed on a hardware trigger, the acquisition starts at the trigger -- which came before
        # this call (the caller ran the action that raises it), so it ends by now + the duration
        # poll the reading count with short timeouts: progress is seen at least every interval
        # once the acquisition runs (it started at arming, or at the trigger the caller's action
        # raised); no progress for a while means no trigger or a stalled instrument
        stall_s = max(2 * self.probe_timeout_s, 3 * interval)
        last, last_change = -1, time.monotonic()
        while True:
            self.check_alive()
            got = self._acquired()
            now = time.monotonic()
            if got >= n:
                break
            if got != last:
                last, last_change = got, now
            elif now - last_change > stall_s:
                why = (f"nothing acquired: no trigger reached input {self._armed_line}" if got == 0
                       and self._armed_line is not None else f"{got} of {n} readings, no progress")
                raise InstrumentError(f"{self.label}: trace stalled for {stall_s:g} s ({why})")
            if now - start > timeout_s:
                raise InstrumentError(f"{self.label}: trace not complete after {timeout_s:g} s ({got} of {n})")
            time.sleep(min(self.poll_s, max(interval, 0.005)))
        # completion + read-out: the probe timeout, as long again as the acquisition (a reading
        # slower than the model's overhead says), ~20 us per value over the link
        read_timeout = self.probe_timeout_s + expected_s + n * 2e-5
        try:
            current, stamps, comp = self._fetch(n, read_timeout)
        except InstrumentError as exc:
            if self._armed_line is None:
                raise
            raise InstrumentError(f"{exc} (the trace was armed on trigger input {self._armed_line}: "
                                  "did the board's trigger reach it?)") from None
        self._armed = None
        if current.shape != (n,) or stamps.shape != (n,):
            raise InstrumentError(f"{self.label}: expected {n} buffered readings, got {current.size}")
        return Trace(current_a=current, time_s=stamps - stamps[0], voltage_v=level, period_s=interval,
                     aperture_s=self.aperture_s, compliance=np.asarray(comp, dtype=bool),
                     meta={"model": self.model, "rail": self.rail, "identity": self.identity,
                           "trigger_line": self._armed_line, "stamps_t0_s": float(stamps[0])})

    def read_current(self) -> Reading:
        """One current reading with the instrument's in-compliance state."""
        value = self.measure_current()
        return Reading(value, self.in_compliance())

    def read_voltage(self) -> Reading:
        value = self.measure_voltage()
        return Reading(value, self.in_compliance())

    # ---- shutdown ------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Ramp to 0 V, switch the output off, and confirm it is off.

        A reply left over from a query interrupted half-way (Ctrl-C) is drained first.
        """
        self.adapter.drain()
        self.powered = None
        try:
            self.ramp_to(0.0)
        finally:
            self._write_output(False)
        if self.output_enabled:
            raise InstrumentError(f"{self.label}: output still reported on after switching it off")

    def describe_rail(self) -> str:
        """'VDDA (2450 at TCPIP0::...)' -- how shutdown reports name this channel."""
        return f"{self.rail or f'ch{self.channel}'} ({self.model} at {self.adapter.resource_name})"

    def close(self) -> None:
        """Shut down (0 V, output off, confirmed) and close; raises if that cannot be confirmed,
        after recording the rail with :func:`safety.report_unconfirmed`."""
        if self._closed:
            return
        from drivers.instruments import safety

        level = self._level_v
        try:
            self.shutdown()
        except BaseException as exc:
            safety.report_unconfirmed(self.describe_rail(), level, str(exc))
            raise
        finally:
            self._closed = True
            safety.unregister(self)
            self.adapter.close()

    def __enter__(self) -> "Smu":
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.close()
        except Exception:
            if et is None:
                raise
