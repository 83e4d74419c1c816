"""The die file: a simulated chip's whole persistent state in one HDF5 file.

Non-volatile RRAM keeps its conductances when the host program ends; the simulated chip does
the same by living in a *die file*.  A simulator that is given one (``sim serve --die F``,
``pesim://?die=F``, the default station's per-user die) loads it at start, saves it after
every command that changed it, and holds an advisory lock on it while it runs, so a second
simulator on the same die is refused (:class:`DieLockedError`, exit code 2) instead of two
histories being silently merged.

What the file holds (layout in docs/chip_model.md, "Die file"):
    the chip seed (device-to-device map) and run seed, the whole parameter set, the chip
    clock, every per-cell array of ``RRAMArray.STATE_FIELDS`` (conductance state, relaxation
    state, stuck cells, pulse counts = wear, endurance limits, d2d map), neuron mismatch,
    the board's register codes (the FPGA keeps them across host sessions), counters and energy
    totals, and the wall-clock time of the save (UTC).

Saving is atomic: the file is built in memory, written to a temporary file in the same
directory, fsync'ed, and renamed over the die with ``os.replace``, so a simulator killed at
any instant leaves either the old or the new die.

Time passes between sessions: on load, the wall-clock time since the save is added to the
chip clock, so relaxation and drift act as in a retention measurement; ``freeze=True`` keeps
the clock still and the session's noise stream seeded by the run seed alone, so a frozen die
reads bit-identically every time it is opened.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock
import h5py
import numpy as np

from sim_backend.chip import VirtualChip

FORMAT = "snnbench-die"
FORMAT_VERSION = 1

_CELL_UNITS = {"g_prog": "S", "t_prog": "s", "xi": "1", "pulse_count": "pulses", "fab_stuck_on": "bool",
               "fab_stuck_off": "bool", "g_fab_stuck": "S", "v_set_th": "V", "v_reset_th": "V",
               "gain_set": "S/V", "gain_reset": "S/V", "endurance_pulses": "pulses",
               "wear_stuck_on": "bool", "g_worn": "S"}


class DieError(Exception):
    """A die file cannot be used (names the file and the problem).  Exit code 2."""

    exit_code = 2


class DieLockedError(DieError):
    """Another simulator holds the die file."""


class DieFormatError(DieError):
    """The file is missing, not a die file, or damaged."""


def _utc_iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- file format -------------------------------------------------------------------------
def encode_die(state: dict, board_registers: dict[str, int], *, saved_utc: float,
               created_utc: float) -> bytes:
    """The bytes of a die file holding ``VirtualChip.state()`` plus the board's registers."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        a = h5.attrs
        a["format"] = FORMAT
        a["format_version"] = FORMAT_VERSION
        a["chip_seed"] = int(state["chip_seed"])
        a["run_seed"] = int(state["run_seed"])
        a["fidelity"] = str(state["params"]["name"])
        a["params_json"] = json.dumps(state["params"])
        a["clock_s"] = float(state["clock_s"])
        a["saved_utc"] = float(saved_utc)
        a["saved_utc_iso"] = _utc_iso(saved_utc)
        a["created_utc"] = float(created_utc)
        a["regs_json"] = json.dumps(state["regs"])
        a["board_registers_json"] = json.dumps({str(k): int(v) for k, v in board_registers.items()})
        a["counters_json"] = json.dumps(state["counters"])
        a["energy_j_json"] = json.dumps(state["energy_j"])
        a["rail_energy_j_json"] = json.dumps(state["rail_energy_j"])
        cells = h5.create_group("cells")
        for k, v in state["cells"].items():
            ds = cells.create_dataset(k, data=np.asarray(v))
            ds.attrs["units"] = _CELL_UNITS.get(k, "")
        neurons = h5.create_group("neurons")
        for k in ("theta_mismatch", "tau_mismatch"):
            neurons.create_dataset(k, data=np.asarray(state[k], dtype=np.float64)).attrs["units"] = "1"
    return buf.getvalue()


def read_die(path: str | os.PathLike) -> tuple[dict, dict[str, int], dict[str, Any]]:
    """(chip state, board register codes, metadata) of a die file; DieFormatError if it is not one."""
    p = Path(path)
    try:
        with h5py.File(p, "r") as h5:
            a = h5.attrs
            if a.get("format") != FORMAT:
                raise DieFormatError(f"{p}: not a die file (no format={FORMAT!r} attribute)")
            if int(a["format_version"]) > FORMAT_VERSION:
                raise DieFormatError(f"{p}: die format version {int(a['format_version'])} is newer than "
                                     f"this snnbench reads ({FORMAT_VERSION})")
            state = {
                "chip_seed": int(a["chip_seed"]), "run_seed": int(a["run_seed"]),
                "params": json.loads(a["params_json"]), "clock_s": float(a["clock_s"]),
                "regs": json.loads(a["regs_json"]), "counters": json.loads(a["counters_json"]),
                "energy_j": json.loads(a["energy_j_json"]),
                "rail_energy_j": json.loads(a["rail_energy_j_json"]),
                "cells": {k: ds[()] for k, ds in h5["cells"].items()},
                "theta_mismatch": h5["neurons/theta_mismatch"][()],
                "tau_mismatch": h5["neurons/tau_mismatch"][()],
            }
            board = {k: int(v) for k, v in json.loads(a["board_registers_json"]).items()}
            meta = {"saved_utc": float(a["saved_utc"]), "created_utc": float(a["created_utc"])}
    except DieFormatError:
        raise
    except FileNotFoundError:
        raise DieFormatError(f"{p}: no such die file") from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DieFormatError(f"{p}: not a readable die file ({' '.join(str(exc).split())})") from None
    return state, board, meta


def write_die_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: temporary file in the same directory, fsync,
    ``os.replace``.  The directory is not fsync'ed: after a power loss the rename may be lost,
    which leaves the previous die, whole (before-or-after holds either way)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
    try:
        try:
            if hasattr(os, "fchmod"):     # mkstemp makes 0600; a die is an ordinary file
                try:
                    mode = p.stat().st_mode & 0o777
                except OSError:
                    mode = _DEFAULT_MODE
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_DEFAULT_MODE = _umask_mode()


def _remove_stale_temps(p: Path) -> None:
    """Temporary files a killed simulator left beside the die (we hold the lock: none is live)."""
    for stale in p.parent.glob(f".{p.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def last_programmed_s(cells: dict) -> float | None:
    """Chip time (s) of the most recent effective programming of any cell, None if never."""
    touched = (np.asarray(cells["pulse_count"]) > 0) | (np.asarray(cells["t_prog"]) > 0)
    if not touched.any():
        return None
    return float(np.max(np.asarray(cells["t_prog"])[touched]))


def summarize(state: dict, meta: dict, path: str | os.PathLike, *, now_utc: float | None = None,
              frozen: bool = False) -> dict[str, Any]:
    """What ``sim die info`` / ``chip info`` report about a die (SI units; ages as they are now:
    the wall time since the save counts as chip time unless ``frozen``)."""
    now = time.time() if now_utc is None else now_utc
    elapsed = 0.0 if frozen else max(now - meta["saved_utc"], 0.0)
    clock = state["clock_s"] + elapsed
    cells = state["cells"]
    prog = last_programmed_s(cells)
    pulse_count = np.asarray(cells["pulse_count"])
    worn = pulse_count >= np.asarray(cells["endurance_pulses"])
    fab = np.asarray(cells["fab_stuck_on"]) | np.asarray(cells["fab_stuck_off"])
    return {
        "file": str(Path(path).resolve()), "persisted": True, "frozen": bool(frozen),
        "seed": int(state["chip_seed"]), "run_seed": int(state["run_seed"]),
        "fidelity": str(state["params"]["name"]), "chip_clock_s": float(clock),
        "age_since_programming_s": None if prog is None else float(clock - prog),
        "programmed": prog is not None,
        "total_pulses": int(pulse_count.sum()), "max_cell_pulses": int(pulse_count.max()),
        "worn_out_cells": int((worn & ~fab).sum()), "stuck_cells": int((fab | worn).sum()),
        "saved_utc": _utc_iso(meta["saved_utc"]), "created_utc": _utc_iso(meta["created_utc"]),
    }


def die_info(path: str | os.PathLike) -> dict[str, Any]:
    """Summary of the die file at ``path`` (read-only; works while a simulator holds it)."""
    state, _board, meta = read_die(path)
    return summarize(state, meta, path)


def create_die(path: str | os.PathLike, chip_seed: int = 1, fidelity: str = "typical",
               run_seed: int = 0, *, overwrite: bool = False) -> dict[str, Any]:
    """Write a fresh die (as fabricated: nothing programmed, no wear) to ``path``.

    Refuses an existing file unless ``overwrite``; refuses a die a simulator holds."""
    p = Path(path)
    with DieLock(p):
        if p.exists() and not overwrite:
            raise DieError(f"{p}: die file exists (use --force to replace it)")
        chip = VirtualChip(chip_seed=chip_seed, run_seed=run_seed, fidelity=fidelity)
        now = time.time()
        write_die_atomic(p, encode_die(chip.state(), {}, saved_utc=now, created_utc=now))
    return die_info(p)


def reset_die(path: str | os.PathLike) -> dict[str, Any]:
    """Make the die at ``path`` fresh again (as fabricated): same seed, run seed and parameter
    set, nothing programmed, no wear, clock at zero.  Refuses a die a simulator holds."""
    p = Path(path)
    with DieLock(p):
        state, _board, _meta = read_die(p)
        chip = VirtualChip.from_state(state)
        fresh = VirtualChip(chip_seed=chip.chip_seed, run_seed=chip.run_seed, fidelity=chip.params)
        now = time.time()
        write_die_atomic(p, encode_die(fresh.state(), {}, saved_utc=now, created_utc=now))
    return die_info(p)


# --- lock ----------------------------------------------------------------------------------
class DieLock:
    """Advisory lock on a die: ``F.lock`` beside ``F`` (flock on POSIX, msvcrt on Windows, via
    the ``filelock`` package); held by the simulator for as long as it uses the die."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock = filelock.FileLock(str(self.path) + ".lock", timeout=0)

    def acquire(self) -> "DieLock":
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            raise DieLockedError(f"die file {self.path} is in use by another simulator "
                                 f"(lock {self.path}.lock held); stop it or use another die") from None
        except OSError as exc:
            raise DieError(f"die file {self.path}: cannot create its lock file "
                           f"({exc.strerror or exc})") from None
        return self

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> "DieLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# --- a die in use by a simulator -------------------------------------------------------------
class OpenDie:
    """A die file opened by a simulator: locked, loaded into ``chip``, saved on change.

    If ``path`` does not exist a fresh die is made from ``seed`` / ``fidelity``; for an
    existing die those are the die's own (reported in ``info()``).  Call :meth:`attach` with
    the board's firmware so register codes are restored and every command that changes the
    die saves it; :meth:`close` saves a last time and releases the lock.
    """

    def __init__(self, path: str | os.PathLike, *, freeze: bool = False, seed: int = 1,
                 fidelity: str = "typical", run_seed: int = 0, now_utc: float | None = None) -> None:
        self.path = Path(path)
        self.freeze = bool(freeze)
        if self.path.is_dir():
            raise DieError(f"{self.path}: is a directory, not a die file")
        if not self.path.parent.is_dir():
            raise DieError(f"{self.path}: directory {self.path.parent} does not exist")
        self._lock = DieLock(self.path).acquire()
        try:
            _remove_stale_temps(self.path)
            now = time.time() if now_utc is None else float(now_utc)
            if self.path.exists():
                state, self._board, meta = read_die(self.path)
                self.created_utc = meta["created_utc"]
                self.elapsed_s = 0.0 if self.freeze else max(now - meta["saved_utc"], 0.0)
                self.created_now = False
            else:
                state = VirtualChip(chip_seed=seed, run_seed=run_seed, fidelity=fidelity).state()
                self._board, self.created_utc, self.elapsed_s, self.created_now = {}, now, 0.0, True
            try:
                self.chip = VirtualChip.from_state(state, run_seed=run_seed)
            except (KeyError, TypeError, ValueError) as exc:
                raise DieFormatError(f"{self.path}: die state does not fit this chip model "
                                     f"({' '.join(str(exc).split())})") from None
            # Time passes between sessions (the die sat on the shelf, unpowered: no leakage).
            self.chip.clock_s += self.elapsed_s
            if not self.freeze:   # a new session: fresh cycle-to-cycle / read noise
                self.chip.rng = np.random.default_rng([run_seed, 0x52554E, time.time_ns()])
            self.fw: Any = None
            self._saved_rev = -1 if self.created_now else self.chip.revision
            self._saved_regs: dict[str, int] = {}
            self.saves = 0
            if self.created_now:
                self.save(now_utc=now)
        except BaseException:
            self._lock.release()
            raise

    # --- board coupling --------------------------------------------------------------------
    def attach(self, fw: Any) -> None:
        """Restore the board's register codes into ``fw`` and save after its commands."""
        from firmware_iface.spec import REGISTER_BY_NAME

        with fw.lock:
            self.fw = fw
            known = {name: REGISTER_BY_NAME[name] for name in self._board if name in REGISTER_BY_NAME}
            for name, spec in known.items():
                if spec.writable and spec.min_code <= self._board[name] <= spec.max_code:
                    fw.regs[spec.id] = self._board[name]
            fw._apply_registers()
            self._saved_regs = self._board_registers()
            fw.add_command_hook(self._after_command)
            fw.queries["die"] = self.info

    def _board_registers(self) -> dict[str, int]:
        if self.fw is None:
            return dict(self._board)
        from firmware_iface.spec import REGISTER_BY_ID

        return {REGISTER_BY_ID[rid].name: int(code) for rid, code in self.fw.regs.items()
                if rid in REGISTER_BY_ID and REGISTER_BY_ID[rid].writable}

    @property
    def dirty(self) -> bool:
        return self.chip.revision != self._saved_rev or self._board_registers() != self._saved_regs

    def _after_command(self, _opcode: int) -> None:
        if self._lock is not None and self.dirty:    # after close() the die is no longer ours
            self.save()

    # --- persistence -----------------------------------------------------------------------
    def save(self, now_utc: float | None = None) -> None:
        """Write the die now (atomically), whatever changed."""
        lock = self.fw.lock if self.fw is not None else contextlib.nullcontext()
        with lock:
            regs = self._board_registers()
            rev = self.chip.revision
            data = encode_die(self.chip.state(), regs, created_utc=self.created_utc,
                              saved_utc=time.time() if now_utc is None else now_utc)
            try:
                write_die_atomic(self.path, data)
            except OSError as exc:
                raise DieError(f"{self.path}: cannot save the die ({exc.strerror or exc})") from None
            self._saved_rev, self._saved_regs = rev, regs
            self.saves += 1

    def info(self) -> dict[str, Any]:
        """The die summary as of now (file, seed, age since programming, total pulses...)."""
        lock = self.fw.lock if self.fw is not None else contextlib.nullcontext()
        with lock:
            state = self.chip.state()
        meta = {"saved_utc": time.time(), "created_utc": self.created_utc}
        out = summarize(state, meta, self.path, frozen=True)
        out["frozen"] = self.freeze
        out["elapsed_on_load_s"] = self.elapsed_s
        return out

    def close(self) -> None:
        """Save if anything changed, then release the lock.  Idempotent."""
        if self._lock is None:
            return
        with self.fw.lock if self.fw is not None else contextlib.nullcontext():
            try:
                if self.dirty:
                    self.save()
            finally:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> "OpenDie":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

