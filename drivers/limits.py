"""Safety limits for everything the chip driver can send (SI units).

The station file fills these in (``[limits]``); the driver checks every pulse, schedule,
read voltage and register write against them *before* a byte is sent.
"""
from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import LimitError


@dataclass(frozen=True)
class ChipLimits:
    """Safety limits for everything that can reach the chip (SI units)."""

    v_set_max_v: float = 4.0
    """Largest SET bit-line voltage."""
    v_reset_max_v: float = 4.0
    """Largest RESET source-line voltage."""
    v_wl_max_v: float = 3.3
    """Largest word-line (gate) voltage."""
    v_read_max_v: float = 0.5
    """Largest read voltage (reads must not disturb the cells)."""
    v_spike_max_v: float = 0.5
    """Largest input-spike (inference) voltage."""
    pulse_width_min_s: float = 10e-9
    pulse_width_max_s: float = 100e-6
    dt_min_s: float = 10e-9
    """Smallest chip time step."""
    dt_max_s: float = 10e-3
    max_pulses_per_cell: int = 1000

    def check(self, what: str, value: float, limit_name: str, low: float = 0.0) -> None:
        """Raise LimitError unless ``low <= value <= limit``."""
        limit = getattr(self, limit_name)
        if not (value == value) or value < low or value > limit:  # NaN fails too
            raise LimitError(f"{what} = {value:g} is outside the station limit "
                             f"[{low:g}, {limit:g}] ({limit_name}); nothing was sent")

    def check_max(self, what: str, values, limit_name: str, low: float = 0.0) -> None:
        """Raise LimitError naming the first value (in C order) of ``values`` — a number or
        an array of any shape — outside ``[low, limit]``."""
        import numpy as np

        v = np.asarray(values, dtype=float).ravel()
        if v.size == 0:
            return
        bad = ~np.isfinite(v) | (v < low) | (v > getattr(self, limit_name))
        if bad.any():
            self.check(what, float(v[np.argmax(bad)]), limit_name, low)
