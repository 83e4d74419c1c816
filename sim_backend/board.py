"""Build a virtual board: a world (chip model + rail timeline shared with the simulated
instruments) and the firmware that drives its chip."""
from __future__ import annotations

from typing import TYPE_CHECKING

from sim_backend.firmware import VirtualFirmware
from sim_backend.world import SimWorld

if TYPE_CHECKING:  # the die module (h5py) is imported only by simulators that use a die file
    from sim_backend.die import OpenDie

FRESH_DIE_INFO: dict = {"file": None, "persisted": False, "summary": "fresh die (not persisted)"}
"""What ``chip info`` shows for a simulator that has no die file."""


def make_board(chip_seed: int = 1, run_seed: int = 0, fidelity: str = "typical",
               die: OpenDie | None = None, params: dict | None = None) -> VirtualFirmware:
    """A virtual firmware driving a virtual chip; ``.world`` is what instruments couple to.

    Without ``die`` the chip is a fresh die (not persisted); with an open die file the chip is
    the die's, and the die saves after every command that changes it.  ``params``: per-field
    overrides of the fidelity preset (``ChipParams.preset(fidelity, **params)``; fresh die only)."""
    if die is not None and params:
        raise ValueError("parameter overrides need a fresh die (a die keeps its own parameter set)")
    world = SimWorld(chip=die.chip) if die is not None else SimWorld(
        chip_seed=chip_seed, run_seed=run_seed, fidelity=fidelity, **(params or {}))
    fw = VirtualFirmware(world.chip, lock=world.lock)
    fw.world = world
    fw.queries["energy_j"] = lambda: {r: world.energy_j(r) for r in world.rails}
    if die is not None:
        die.attach(fw)
    else:
        fw.queries["die"] = lambda: dict(FRESH_DIE_INFO, seed=world.chip.chip_seed,
                                         fidelity=world.chip.fidelity)
    return fw
