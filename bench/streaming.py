"""Dataset time -> chip time, and streaming spike trains through the chip.

Two clocks (DESIGN.md section 4): *dataset time* is the recording's microsecond timestamps;
*chip time* counts chip steps of ``dt``.  An acceleration factor ``k`` maps one to the other:
a dataset interval ``d`` lasts ``d / k`` on the chip, and a ``bin_us`` dataset bin becomes a
chip step ``dt = bin_us / k``.  Default: 5 ms bins, k = 50,000 -> dt = 100 ns, 300 steps =
30 us per sample (plus the chip's circuit latency, 14.31 us).

All arithmetic is exact (integers and :class:`fractions.Fraction`): an event at dataset time
``t`` (sample start ``t0``) lands in chip step ``floor(((t - t0) / k) / (bin_us / k))``,
computed as ``((t - t0) * q) // (bin_us * q)`` with ``k = p / q`` in lowest terms, which is
``(t - t0) // bin_us`` for *every* factor: order and step indices do not depend on ``k``
(property-tested).  Floats appear only at the edges (register values, reports).

:class:`ChipStreamer` sets the chip's TIME_STEP / N_STEPS (and neuron) registers, uploads
many samples into board memory in chunks (dense bitmap or AER per sample, chosen by size in
``firmware_iface.spikes``), RUNs them back to back and reads the per-neuron output spikes
back, recording chip seconds (chip clock), host wall seconds and link traffic.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from numbers import Rational
from typing import Any

import numpy as np

from bench.errors import ConfigError, UsageError

DEFAULT_ACCELERATION = 50_000
DEFAULT_BIN_US = 5_000
DEFAULT_STEPS = 300


def as_factor(value: Any) -> Fraction:
    """An acceleration factor as an exact positive :class:`Fraction`.

    Accepts ints, Fractions, decimal strings ("50000", "1e4", "2.5") and floats (taken by
    their shortest decimal representation, so 0.1 means 1/10, not the binary double).
    """
    try:
        if isinstance(value, Rational):
            f = Fraction(value)
        elif isinstance(value, float):
            if not np.isfinite(value):
                raise ValueError
            f = Fraction(repr(value))
        else:
            f = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError, TypeError):
        raise UsageError(f"acceleration factor {value!r} is not a finite number") from None
    if f <= 0:
        raise UsageError(f"acceleration factor must be > 0, got {value!r}")
    return f


@dataclass(frozen=True)
class TimeBase:
    """The mapping between dataset time (us) and chip time (steps of ``dt``)."""

    acceleration: Fraction = Fraction(DEFAULT_ACCELERATION)
    bin_us: int = DEFAULT_BIN_US
    """Dataset time per step, integer microseconds."""
    steps: int = DEFAULT_STEPS
    """Steps per sample."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "acceleration", as_factor(self.acceleration))
        if not isinstance(self.bin_us, (int, np.integer)) or self.bin_us <= 0:
            raise ConfigError(f"time base: bin_us={self.bin_us!r} must be a positive integer")
        if not isinstance(self.steps, (int, np.integer)) or self.steps <= 0:
            raise ConfigError(f"time base: steps={self.steps!r} must be a positive integer")
        object.__setattr__(self, "bin_us", int(self.bin_us))
        object.__setattr__(self, "steps", int(self.steps))

    @classmethod
    def for_network(cls, net, acceleration: Any | None = None) -> "TimeBase":
        """The time base of a :class:`bench.network.model.Network` (its input bin and steps)."""
        bin_us = Fraction(repr(float(net.input.bin_s))) * 1_000_000
        if bin_us.denominator != 1:
            raise ConfigError(f"network input bin {net.input.bin_s} s is not a whole number of us")
        acc = net.acceleration if acceleration is None else acceleration
        return cls(acceleration=as_factor(acc), bin_us=int(bin_us), steps=int(net.input.steps))

    # --- exact quantities -----------------------------------------------------------
    @property
    def dt(self) -> Fraction:
        """Chip step in seconds, exact."""
        return Fraction(self.bin_us, 1_000_000) / self.acceleration

    @property
    def dt_s(self) -> float:
        return float(self.dt)

    @property
    def sample_dataset_s(self) -> Fraction:
        return Fraction(self.bin_us * self.steps, 1_000_000)

    @property
    def sample_chip_s(self) -> Fraction:
        """Chip time of one sample's spike train (without circuit latency), exact."""
        return self.dt * self.steps

    def chip_seconds(self, dataset_s: Any) -> Fraction:
        """Chip duration of a dataset duration (exact)."""
        return Fraction(dataset_s) / self.acceleration

    def dataset_seconds(self, chip_s: Any) -> Fraction:
        return Fraction(chip_s) * self.acceleration

    def as_dict(self) -> dict[str, Any]:
        return {"acceleration": str(self.acceleration), "acceleration_float": float(self.acceleration),
                "bin_us": self.bin_us, "steps": self.steps, "dt_s": self.dt_s,
                "dt_exact_s": str(self.dt), "sample_dataset_s": float(self.sample_dataset_s),
                "sample_chip_s": float(self.sample_chip_s)}

    # --- event mapping ---------------------------------------------------------------
    def chip_time_units(self, t_us: np.ndarray, start_us: int | np.ndarray = 0) -> tuple[np.ndarray, int]:
        """Exact chip times of events as integers ``n`` with chip time ``n / (p * 1e6)`` s.

        ``k = p / q`` in lowest terms; chip time of ``t`` is ``(t - start) * q / p`` us, so
        ``n = (t - start) * q`` in units of ``1 / p`` us.  Returns ``(n, p)``.
        """
        p, q = self.acceleration.numerator, self.acceleration.denominator
        d = np.asarray(t_us, dtype=np.int64) - np.asarray(start_us, dtype=np.int64)
        return _mul_exact(d, q), p

    def steps_of(self, t_us: np.ndarray, start_us: int | np.ndarray = 0) -> np.ndarray:
        """Chip step index of each event (int64), computed in chip time with exact integers.

        ``floor(chip_time / dt)`` with chip time ``(t - start) * q / p`` and
        ``dt = bin_us * q / p`` (both in us), i.e. ``((t - start) * q) // (bin_us * q)``.
        """
        n, _p = self.chip_time_units(t_us, start_us)
        dt_units = self.bin_us * self.acceleration.denominator  # dt in units of 1/p us
        return n // dt_units

    def chip_time_s(self, t_us: np.ndarray, start_us: int | np.ndarray = 0) -> np.ndarray:
        """Chip times of events in seconds (float64, for records and plots)."""
        n, p = self.chip_time_units(t_us, start_us)
        return np.asarray(n, dtype=np.float64) / (float(p) * 1e6)

    def events_to_steps(self, events: np.ndarray, start_us: int) -> tuple[np.ndarray, np.ndarray]:
        """(order, steps): events inside the sample window, stably in dataset-time order.

        ``order`` indexes ``events``; ``steps`` are their chip steps (0..steps-1).  Events
        with equal timestamps keep their recorded order.
        """
        t = np.asarray(events["t"], dtype=np.int64)
        order = np.argsort(t, kind="stable")
        st = self.steps_of(t[order], start_us)
        keep = (st >= 0) & (st < self.steps)
        return order[keep], st[keep]


def _mul_exact(d: np.ndarray, q: int) -> np.ndarray:
    """d * q without silent int64 overflow (falls back to Python ints)."""
    if q == 1:
        return d
    lim = np.iinfo(np.int64).max // q
    if d.size == 0 or int(np.abs(d).max()) <= lim:
        return d * np.int64(q)
    return np.array([int(x) * q for x in d.ravel()], dtype=object).reshape(d.shape)


# --- streaming ------------------------------------------------------------------------
@dataclass
class RegisterSetting:
    name: str
    requested: float
    in_force: float

    @property
    def exact(self) -> bool:
        return bool(np.isclose(self.requested, self.in_force, rtol=1e-9, atol=0.0))


@dataclass
class StreamResult:
    """Outputs of streaming ``n`` samples through the chip, with both clocks."""

    spikes: np.ndarray
    """(n, steps, neurons) bool output spikes."""
    counts: np.ndarray
    """(n, neurons) int64 spike counts."""
    chip_seconds: float = 0.0
    """Chip clock: time the board reports for the RUNs (spike trains + circuit latency)."""
    wall_seconds: float = 0.0
    """Host clock: wall time of upload + run + readout."""
    upload_seconds: float = 0.0
    run_seconds: float = 0.0
    readout_seconds: float = 0.0
    bytes_uploaded: int = 0
    bytes_tx: int = 0
    bytes_rx: int = 0
    round_trips: int = 0
    chunks: int = 0
    link_modelled_seconds: float = 0.0
    """Wall time this traffic would take on the station's modelled UART link."""

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("spikes", "counts")}
        d["samples"] = int(self.spikes.shape[0])
        return d


@dataclass
class ChipStreamer:
    """Streams spike trains through one PE macro: registers, chunked upload, RUN, readout.

    ``chip`` is a :class:`drivers.pechip.PEChip`.  ``chunk`` bounds samples per
    upload/run/readout cycle (board memory and reply size); ``None`` = the board's
    sample slots, capped at 4096.
    """

    chip: Any
    timebase: TimeBase = field(default_factory=TimeBase)
    chunk: int | None = None
    encoding: str = "auto"
    baud: float = 3_000_000.0
    latency_s: float = 1e-3
    registers: list[RegisterSetting] = field(default_factory=list)

    def configure(self, neuron=None) -> list[RegisterSetting]:
        """Set TIME_STEP and N_STEPS (and THRESHOLD / TAU / REFRACTORY from ``neuron``).

        Checks the time base against the chip's limits first; returns what is in force.
        """
        info = self.chip.info()
        tb = self.timebase
        if not info.dt_min_s * (1 - 1e-9) <= tb.dt_s <= info.dt_max_s * (1 + 1e-9):
            raise UsageError(
                f"acceleration {float(tb.acceleration):g} gives a chip step of {tb.dt_s:g} s, outside "
                f"the chip's [{info.dt_min_s:g}, {info.dt_max_s:g}] s")
        if tb.steps > info.max_steps:
            raise UsageError(f"{tb.steps} steps per sample exceed the board's {info.max_steps}")
        wanted = [("TIME_STEP", tb.dt_s), ("N_STEPS", float(tb.steps))]
        if neuron is not None:
            wanted += [("THRESHOLD", float(neuron.theta)), ("TAU", float(neuron.tau_steps)),
                       ("REFRACTORY", float(neuron.ref_scale))]
        self.registers = [RegisterSetting(n, v, self.chip.write_register(n, v)) for n, v in wanted]
        return self.registers

    def _chunk(self) -> int:
        info = self.chip.info()
        c = self.chunk if self.chunk is not None else min(4096, info.sample_slots)
        return max(1, min(int(c), int(info.sample_slots)))

    def _read_chunk(self, steps: int) -> int:
        """Samples per READ_OUTPUT such that even all-spiking outputs fit one reply."""
        info = self.chip.info()
        worst = 2 * info.neurons + 4 * steps * info.neurons
        return max(1, (int(info.max_payload) - 64) // worst)

    def stream(self, spikes: np.ndarray) -> StreamResult:
        """Run spike trains (n, steps, rows<=chip rows) bool; rows are zero-padded to the array."""
        info = self.chip.info()
        spikes = np.asarray(spikes)
        if spikes.ndim != 3:
            raise ValueError(f"spikes must be (n, steps, rows), got shape {spikes.shape}")
        n, steps, rows = spikes.shape
        if rows > info.rows:
            raise ValueError(f"{rows} input rows exceed the array's {info.rows}")
        if steps != self.timebase.steps:
            raise ValueError(f"spike trains have {steps} steps, the time base says {self.timebase.steps}")
        before = self.chip.stats.snapshot()
        out = np.zeros((n, steps, info.neurons), dtype=bool)
        res = StreamResult(spikes=out, counts=np.zeros((n, info.neurons), np.int64))
        chunk = self._chunk()
        t_start = time.perf_counter()
        for i in range(0, n, chunk):
            part = spikes[i:i + chunk]
            if rows < info.rows:
                full = np.zeros((part.shape[0], steps, info.rows), dtype=bool)
                full[:, :, :rows] = part
                part = full
            t0 = time.perf_counter()
            res.bytes_uploaded += self.chip.upload_spikes(part, slot=0, encoding=self.encoding)
            t1 = time.perf_counter()
            res.chip_seconds += self.chip.run(part.shape[0], slot=0)
            t2 = time.perf_counter()
            rc = self._read_chunk(steps)
            for j in range(0, part.shape[0], rc):
                m = min(rc, part.shape[0] - j)
                counts, sp = self.chip.read_outputs(m, slot=j)
                out[i + j:i + j + m] = sp
                res.counts[i + j:i + j + m] = counts
            t3 = time.perf_counter()
            res.upload_seconds += t1 - t0
            res.run_seconds += t2 - t1
            res.readout_seconds += t3 - t2
            res.chunks += 1
        res.wall_seconds = time.perf_counter() - t_start
        d = self.chip.stats.since(before)
        res.bytes_tx, res.bytes_rx, res.round_trips = d.bytes_tx, d.bytes_rx, d.round_trips
        res.link_modelled_seconds = d.modelled_seconds(self.baud, self.latency_s) - d.chip_seconds
        return res

    def clocks(self, result: StreamResult) -> dict[str, Any]:
        """Both clocks of a streamed batch, for run files and reports."""
        tb = self.timebase
        n = int(result.spikes.shape[0])
        info = self.chip.info()
        return {
            "dataset_seconds": float(tb.sample_dataset_s) * n,
            "chip_seconds": result.chip_seconds,
            "chip_seconds_per_sample": result.chip_seconds / n if n else 0.0,
            "chip_latency_s": float(info.latency_s),
            "host_wall_seconds": result.wall_seconds,
            **{f"timebase_{k}": v for k, v in tb.as_dict().items()},
            "registers": {r.name: {"requested": r.requested, "in_force": r.in_force} for r in self.registers},
        }
