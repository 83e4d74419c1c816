"""Build a virtual board: a world (chip model + rail timeline shared with the simulated
instruments) and the firmware that drives its chip."""
from __future__ import annotations

from sim_backend.firmware import VirtualFirmware
from sim_backend.world import SimWorld


def make_board(chip_seed: int = 1, run_seed: int = 0, fidelity: str = "typical") -> VirtualFirmware:
    """A virtual firmware driving a fresh virtual chip; ``.world`` is what instruments couple to."""
    world = SimWorld(chip_seed=chip_seed, run_seed=run_seed, fidelity=fidelity)
    fw = VirtualFirmware(world.chip, lock=world.lock)
    fw.world = world
    fw.queries["energy_j"] = lambda: {r: world.energy_j(r) for r in world.rails}
    return fw
