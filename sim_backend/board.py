"""Build a virtual board: chip model + firmware (+ the world that instruments share)."""
from __future__ import annotations

import threading

from sim_backend.chip import VirtualChip
from sim_backend.firmware import VirtualFirmware


def make_board(chip_seed: int = 1, run_seed: int = 0, fidelity: str = "typical",
               lock: threading.RLock | None = None) -> VirtualFirmware:
    """A virtual firmware driving a fresh virtual chip."""
    chip = VirtualChip(chip_seed=chip_seed, run_seed=run_seed, fidelity=fidelity)
    return VirtualFirmware(chip, lock=lock)
