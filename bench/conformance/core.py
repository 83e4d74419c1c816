"""The conformance suite's machinery: checks, outcomes, the per-check context and the runner.

A check is a function registered with :func:`check` under a section of docs/protocol.md
(the ids in brackets there).  Its id is ``<section>/<n>`` (n counts within the section in
registration order) and it carries the requirement it verifies, quoted from the spec.
Outcomes: ``pass``; ``fail`` (the board broke the requirement: expected vs actual, a missing
reply counts here); ``skip`` (a precondition is missing, e.g. a deterministic chip); ``error``
(the check itself could not run: the link broke, or a bug).  Every check gets a fresh link and
a freshly reset board.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from bench.conformance.rawlink import NoReply, RawLink
from drivers.errors import ChipTimeout, DriverError, ProtocolError
from drivers.limits import ChipLimits
from drivers.pechip import PEChip
from firmware_iface import messages as msg
from firmware_iface.spec import Opcode, ReadMode, Status

SUITE_VERSION = "1.0"


class Fail(AssertionError):
    """The board does not meet the requirement."""

    def __init__(self, message: str, expected: object = None, actual: object = None) -> None:
        super().__init__(message)
        self.expected, self.actual = expected, actual


class Skip(Exception):
    """A precondition of the check is missing; it neither passes nor fails."""


@dataclass(frozen=True)
class Check:
    id: str
    section: str
    requirement: str
    func: Callable[["Context"], None]
    level: str = "MUST"


CHECKS: list[Check] = []


def check(section: str, requirement: str, level: str = "MUST") -> Callable:
    """Register a check of ``section`` verifying ``requirement`` (quoted from the spec)."""
    def deco(fn: Callable[["Context"], None]) -> Callable[["Context"], None]:
        n = sum(c.section == section for c in CHECKS) + 1
        CHECKS.append(Check(f"{section}/{n}", section, requirement, fn, level))
        return fn
    return deco


def expect(cond: bool, message: str, expected: object = None, actual: object = None) -> None:
    if not cond:
        raise Fail(message, expected, actual)


def expect_status(reply, status: Status, what: str) -> None:
    expect(reply.status == status, f"{what}: status {reply.status_name}",
           expected=status.name, actual=reply.status_name)


@dataclass
class Sandbox:
    """What the suite may touch: these rows (all columns) and these pulse settings (SI)."""

    rows: range
    columns: int
    v_set_v: float
    v_reset_v: float
    v_wl_v: float
    width_s: float
    v_read_v: float

    @classmethod
    def for_limits(cls, limits: ChipLimits, rows: range, columns: int = 24) -> "Sandbox":
        return cls(rows=rows, columns=columns, v_set_v=min(2.0, limits.v_set_max_v),
                   v_reset_v=min(2.0, limits.v_reset_max_v), v_wl_v=min(1.8, limits.v_wl_max_v),
                   width_s=min(max(1e-6, limits.pulse_width_min_s), limits.pulse_width_max_s),
                   v_read_v=min(0.2, limits.v_read_max_v))

    def cells(self, n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` sandbox cells (row-major) starting at ``offset``."""
        total = len(self.rows) * self.columns
        if offset + n > total:
            raise Skip(f"the sandbox of {total} cells is too small for this check")
        idx = np.arange(offset, offset + n)
        return np.asarray(self.rows)[idx // self.columns], idx % self.columns

    def describe(self) -> str:
        return (f"RESET before every check (registers to defaults, sample memory cleared; array kept); "
                f"reads of any cell at <= {self.v_read_v:g} V; pulses and write-verify only on rows "
                f"{self.rows.start}..{self.rows.stop - 1} (all {self.columns} columns) at SET <= "
                f"{self.v_set_v:g} V, RESET <= {self.v_reset_v:g} V, word line <= {self.v_wl_v:g} V, "
                f"width {self.width_s * 1e6:g} us; register writes inside their ranges (voltage "
                f"registers inside the station limits); WAITs of at most 1 ms chip time")


@dataclass
class Context:
    """What a check works with; everything opened through it is closed after the check."""

    url: str
    limits: ChipLimits
    sandbox: Sandbox
    timeout_s: float = 2.0
    deadline_scale: float = 1.0
    """Factor on every job deadline the checks wait for (docs/protocol.md [busy]: a job's final
    reply is due within its computed duration + SLACK_S, 1 s).  1.0, the spec's deadlines, is
    the only value for a board under test; the suite's own tests shorten it to check a board
    that never ends a job without waiting out ~1-2 s per job."""
    _stack: ExitStack = field(default_factory=ExitStack)

    def raw(self) -> RawLink:
        """A fresh link with no session."""
        link = RawLink(self.url, self.timeout_s, self.deadline_scale)
        self._stack.callback(link.close)
        return link

    def link(self, reset: bool = True) -> RawLink:
        """A fresh link with its own session, the board reset (RESET) first."""
        link = self.raw()
        link.open_session()
        if reset:
            link.ok(Opcode.RESET)
        return link

    def chip(self, **kw) -> PEChip:
        """The real driver on a fresh link (for checks that need whole procedures)."""
        chip = PEChip(self.url, timeout_s=self.timeout_s, limits=self.limits, **kw)
        self._stack.callback(chip.close)
        return chip

    # --- helpers shared by sections ------------------------------------------------------
    def read(self, link: RawLink, rows, cols, averages: int = 4) -> np.ndarray:
        req = msg.ReadRequest(ReadMode.LIST, int(round(self.sandbox.v_read_v * 1e6)), averages, 0,
                              np.asarray(rows), np.asarray(cols))
        return msg.decode_conductances(link.ok(Opcode.READ_CELLS, msg.encode_read(req)))

    def pulses(self, rows, cols, kind: int = 1) -> bytes:
        """PULSE payload: one pulse per cell, SET (1) or RESET (2), at the sandbox settings."""
        s = self.sandbox
        n = np.size(rows)
        p = msg.pulse_records(np.full(n, kind), rows, cols, s.v_set_v if kind == 1 else 0.0, s.v_wl_v,
                              s.v_reset_v if kind == 2 else 0.0, s.width_s)
        return msg.encode_pulses(p)

    def status(self, link: RawLink) -> dict[str, int]:
        return msg.decode_status(link.ok(Opcode.STATUS))

    def floor(self, link: RawLink, rows, cols, below_s: float = 1e-6, rounds: int = 16) -> np.ndarray:
        """Bring cells towards the off state with RESET pulses (4 per cell per round) until they
        read below ``below_s`` or stop falling; returns their reads."""
        rows, cols = np.asarray(rows), np.asarray(cols)
        g = self.read(link, rows, cols)
        for _ in range(rounds):
            high = g > below_s
            if not high.any():
                break
            r, c = np.repeat(rows[high], 4), np.repeat(cols[high], 4)
            link.ok(Opcode.PULSE, self.pulses(r, c, kind=2))
            g_new = self.read(link, rows, cols)
            if np.all(g_new[high] >= g[high] - 0.2e-6):
                g = g_new
                break
            g = g_new
        return g

    def acted_once(self, link: RawLink, deterministic: bool, x_rows, x_cols, g0_x, g_x, g0_y, g_y,
                   what: str) -> None:
        """X got one SET pulse per cell through the frame under test (sent more than once), Y the
        same pulses once.  A deterministic chip must leave X and Y identical.  On other chips the
        cells of X are their own reference (device variation cancels): one more single SET pulse
        on X must move them about as far as the frame under test did, not half as far."""
        if deterministic:
            expect(np.array_equal(g_x, g_y), f"{what}: the duplicated command acted again (twin cells differ)",
                   np.asarray(g_y) * 1e6, np.asarray(g_x) * 1e6)
            return
        link.ok(Opcode.PULSE, self.pulses(x_rows, x_cols))
        g2 = self.read(link, x_rows, x_cols)
        d1, d2 = float(np.sum(np.asarray(g_x) - g0_x)), float(np.sum(g2 - np.asarray(g_x)))
        expect(d2 > 0, f"{what}: a single SET pulse did not move the cells", "> 0 S", d2)
        ratio = d1 / d2
        expect(ratio < 1.5, f"{what}: the cells moved {ratio:.2f}x as far as under one more single pulse",
               "about 1x (one pulse)", f"{ratio:.2f}x")

    def deterministic(self, link: RawLink) -> bool:
        """Whether repeated reads of the sandbox give identical values (a noise-free chip)."""
        rows, cols = self.sandbox.cells(len(self.sandbox.rows) * self.sandbox.columns)
        a, b = self.read(link, rows, cols), self.read(link, rows, cols)
        return bool(np.array_equal(a, b))

    def close(self) -> None:
        self._stack.close()


@dataclass
class Outcome:
    check: Check
    outcome: str
    message: str = ""
    expected: object = None
    actual: object = None
    duration_s: float = 0.0

    def as_dict(self) -> dict:
        d = {"id": self.check.id, "section": self.check.section, "requirement": self.check.requirement,
             "level": self.check.level, "outcome": self.outcome, "message": self.message,
             "duration_s": round(self.duration_s, 4)}
        if self.outcome == "fail":
            d["expected"], d["actual"] = _plain(self.expected), _plain(self.actual)
        return d


def _plain(v: object) -> object:
    if isinstance(v, (str, int, bool)) or v is None:
        return v
    if isinstance(v, float):
        return v if np.isfinite(v) else str(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in np.asarray(v, dtype=object).ravel().tolist()][:64]
    return str(v)


def select(only: list[str] | None) -> list[Check]:
    """Checks whose id or section equals, or starts with, one of ``only`` (all when empty)."""
    if not only:
        return list(CHECKS)
    def hit(c: Check, sel: str) -> bool:
        return c.id == sel or c.section == sel or c.section.startswith(sel.rstrip(".") + ".") \
            or c.section.startswith(sel)
    chosen = [c for c in CHECKS if any(hit(c, s) for s in only)]
    return chosen


def run_one(c: Check, make_context: Callable[[], Context]) -> Outcome:
    t0 = time.monotonic()
    ctx = make_context()
    try:
        c.func(ctx)
        out = Outcome(c, "pass")
    except Skip as exc:
        out = Outcome(c, "skip", str(exc))
    except Fail as exc:
        out = Outcome(c, "fail", str(exc), exc.expected, exc.actual)
    except (NoReply, ChipTimeout) as exc:
        out = Outcome(c, "fail", f"no reply: {exc}", "a reply within the deadline", "none")
    except ProtocolError as exc:
        out = Outcome(c, "fail", f"protocol violation seen by the driver: {exc}")
    except AssertionError as exc:
        out = Outcome(c, "fail", str(exc))
    except DriverError as exc:
        out = Outcome(c, "error", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a crashing check is reported, the suite goes on
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        out = Outcome(c, "error", f"{type(exc).__name__}: {exc} ({tb.filename.rsplit('/', 1)[-1]}:{tb.lineno})")
    finally:
        try:
            ctx.close()
        except Exception:  # noqa: BLE001
            pass
    out.duration_s = time.monotonic() - t0
    return out


def run(checks: list[Check], make_context: Callable[[], Context]) -> Iterator[Outcome]:
    for c in checks:
        yield run_one(c, make_context)
