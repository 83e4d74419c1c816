"""The one documented parameter set of the simulated PE macro (SI units).

Every default carries its source in docs/chip_model.md; the short tag after each field
says where it comes from:  [paper] arXiv 2509.04960 / its training code,  [2nd] a third
party's reading of the full paper,  [NeuRRAM] Wan et al., Nature 2022,  [fit] fits of
NeuRRAM / HfOx data quoted in DESIGN.md section 2,  [model] our own modelling choice,
[cal] calibrated here so that the reference workload reproduces the published figures.

Presets: ``ideal`` (no noise, exact levels, no mismatch, no stuck cells), ``typical``
(the calibrated defaults below), ``worst`` (a stress corner).  Use
``ChipParams.preset("typical", read_noise_rel=0.02)`` for per-parameter overrides; an
unknown name raises ValueError naming the field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import numpy as np

RAILS: dict[str, float] = {"VDDA": 1.8, "VDDD": 1.8, "VDDIO": 3.3}
"""Supply rails and nominal voltages [model: the paper does not state the supplies]."""

COMPONENT_RAIL: dict[str, str] = {
    "tia": "VDDA", "soma": "VDDA", "array": "VDDA", "other": "VDDA",
    "wl": "VDDD", "bl": "VDDD", "sl": "VDDD", "controller": "VDDD",
    "io": "VDDIO",
}
"""Which rail supplies each energy component."""

COMPONENTS = tuple(COMPONENT_RAIL)


@dataclass(frozen=True)
class ChipParams:
    """All physical constants of the chip model.  Frozen; build variants with ``preset``."""

    name: str = "typical"

    # ---- geometry / levels ----------------------------------------------------------------
    g_max_s: float = 150e-6                 # [2nd] top of the 15 evenly spaced levels
    n_levels: int = 16                      # [2nd] off + 15 levels (~4 bit)
    g_stuck_off_s: float = 4e-6             # [2nd] stuck-off limit
    g_cell_max_s: float = 200e-6            # [model] physical upper bound of a cell
    g_min_s: float = 0.3e-6                 # [model] deepest RESET state

    # ---- stuck cells (chip seed) ----------------------------------------------------------
    stuck_on_frac: float = 0.005            # [NeuRRAM] ~1% stuck in total, split on/off [model]
    stuck_off_frac: float = 0.005
    g_stuck_on_lo_s: float = 160e-6         # [model] stuck-on cells sit above the window
    g_stuck_on_hi_s: float = 200e-6

    # ---- SET / RESET pulse response ---------------------------------------------------------
    v_set_th_v: float = 1.35                # [model] SET threshold (cell voltage)
    v_reset_th_v: float = 1.30              # [model] RESET threshold
    v_th_d2d_sigma_v: float = 0.08          # [model] device-to-device threshold spread
    set_gain_s_per_v: float = 18e-6         # [model, cal: NeuRRAM schedule converges] dG/(V-Vth) at 1 us
    reset_gain_s_per_v: float = 22e-6       # [model]
    gain_d2d_sigma_ln: float = 0.25         # [model] lognormal d2d spread of the gains
    c2c_sigma_ln: float = 0.35              # [model] lognormal cycle-to-cycle spread per pulse
    c2c_add_sigma_s: float = 0.3e-6         # [model] additive cycle-to-cycle jitter per effective pulse
    width_ref_s: float = 1e-6               # [NeuRRAM] 1 us reference pulse width
    width_exponent: float = 0.5             # [model] dG ~ (width/1us)^0.5
    v_wl_th_v: float = 0.5                  # [model] access-transistor threshold
    g_comp_s_per_v: float = 250e-6          # [model] SET compliance G_c = k (V_WL - V_t)
    reset_wl_full_v: float = 1.5            # [model] RESET gain saturates above this WL voltage
    pulse_overhead_s: float = 0.2e-6        # [model] driver settling per pulse (chip time)

    # ---- read -----------------------------------------------------------------------------
    read_noise_rel: float = 0.01            # [fit] read noise ~1 % (1 sigma, per read)
    read_noise_floor_s: float = 0.1e-6      # [model] additive floor of one read
    read_time_s: float = 1e-6               # [model] one read (settle + integrate), chip time
    read_disturb_rel: float = 0.0           # [model] optional relative drift per read above 0.3 V
    read_nonlinearity_per_v: float = 0.0    # [model] G(V) = G (1 + nl (V - 0.2 V))

    # ---- relaxation / drift ---------------------------------------------------------------
    relax_sigma_1s_s: float = 1.8e-6        # [fit] sigma 1-2.5 uS after 1 s
    relax_t0_s: float = 1e-4                # [fit] chosen so sigma(1 day) ~ 4 uS
    drift_mean_rel_per_ln: float = -0.00089  # [fit, interpreted] mean shift -0.089 % per ln(t/1 s)

    # ---- endurance (wear) -------------------------------------------------------------------
    endurance_median_pulses: float = 2e6    # [Huang 2013] 1e6 SET/RESET cycles (2 pulses each) for
                                            # 4-level HfOx cells; per-cell limit is lognormal
    endurance_sigma_ln: float = 0.5         # [model] lognormal spread of the per-cell limit
    endurance_stuck_on_frac: float = 0.5    # [Grossi 2019: both modes seen; split model] share of
                                            # worn-out cells that fail stuck-on (filament breakdown)

    # ---- crossbar ---------------------------------------------------------------------------
    ir_drop_rel: float = 0.0                # [model] optional IR-drop: I *= 1 - ir * (row/127)

    # ---- neurons ------------------------------------------------------------------------------
    theta_mismatch_rel: float = 0.02        # [model] per-neuron threshold mismatch (1 sigma)
    tau_mismatch_rel: float = 0.02          # [model] per-neuron leak mismatch (1 sigma)
    neuron_noise_sigma: float = 0.005       # [model] TIA input noise per step, normalised units
    column_noise: bool = True               # aggregated per-column read noise during inference

    # ---- input spikes on the chip's row drivers (issue 15) ----------------------------------
    input_spike_loss: float = 0.0           # [model] probability that an input spike is not driven;
                                            # 0: the FPGA latches each step's row pattern (synchronous)
    input_jitter_frac: float = 0.0          # [model] probability that an input spike lands one step early
                                            # or late (+-1 equally likely); 0: synchronous drive

    # ---- energy: see energy.py; [cal] against 43.83 mW / 1.94 uJ and the 2nd breakdown -----
    e_scale: float = 1.0                    # [model] global multiplier (process corner)
    idle_current_a: tuple = (("VDDA", 2e-6), ("VDDD", 3e-6), ("VDDIO", 1e-6))  # [model] leakage

    # ------------------------------------------------------------------------------------------
    @property
    def noisy(self) -> bool:
        """False only for a fully ideal parameter set (an override that adds any noise,
        variation or stuck cells to ``ideal`` makes it noisy)."""
        if self.name != "ideal":
            return True
        return any(getattr(self, f) != 0 for f in _NOISE_FIELDS) or self.column_noise

    @property
    def levels_s(self) -> np.ndarray:
        return np.concatenate([[0.0], np.linspace(self.g_max_s / (self.n_levels - 1),
                                                  self.g_max_s, self.n_levels - 1)])

    def relax_sigma_s(self, t_s: np.ndarray | float) -> np.ndarray:
        """Spread of the post-programming relaxation after ``t_s`` seconds."""
        t = np.maximum(np.asarray(t_s, dtype=np.float64), 0.0)
        return self.relax_sigma_1s_s * np.log1p(t / self.relax_t0_s) / np.log1p(1.0 / self.relax_t0_s)

    @classmethod
    def preset(cls, name: str = "typical", **overrides) -> "ChipParams":
        """One of ``ideal``, ``typical``, ``worst``, with per-parameter overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown chip fidelity preset {name!r}; choose one of {sorted(PRESETS)}")
        base = PRESETS[name]
        known = {f.name for f in fields(cls)}
        for key in overrides:
            if key not in known:
                raise ValueError(f"unknown chip parameter {key!r} (not a ChipParams field)")
        return dataclasses.replace(base, **overrides)

    def replace(self, **overrides) -> "ChipParams":
        known = {f.name for f in fields(self)}
        for key in overrides:
            if key not in known:
                raise ValueError(f"unknown chip parameter {key!r} (not a ChipParams field)")
        return dataclasses.replace(self, **overrides)


_NOISE_FIELDS = ("stuck_on_frac", "stuck_off_frac", "v_th_d2d_sigma_v", "gain_d2d_sigma_ln",
                 "c2c_sigma_ln", "c2c_add_sigma_s", "read_noise_rel", "read_noise_floor_s",
                 "relax_sigma_1s_s", "drift_mean_rel_per_ln", "theta_mismatch_rel",
                 "tau_mismatch_rel", "neuron_noise_sigma")
# (ir_drop_rel, read_disturb_rel, read_nonlinearity_per_v and the input-spike fields act whether
# or not the set is "noisy": they need no random device state.)

_TYPICAL = ChipParams()
PRESETS: dict[str, ChipParams] = {
    "typical": _TYPICAL,
    "ideal": dataclasses.replace(
        _TYPICAL, name="ideal", stuck_on_frac=0.0, stuck_off_frac=0.0, v_th_d2d_sigma_v=0.0,
        gain_d2d_sigma_ln=0.0, c2c_sigma_ln=0.0, c2c_add_sigma_s=0.0, read_noise_rel=0.0,
        read_noise_floor_s=0.0, relax_sigma_1s_s=0.0, drift_mean_rel_per_ln=0.0,
        theta_mismatch_rel=0.0, tau_mismatch_rel=0.0, neuron_noise_sigma=0.0, column_noise=False,
        endurance_median_pulses=float("inf")),
    "worst": dataclasses.replace(
        _TYPICAL, name="worst", stuck_on_frac=0.01, stuck_off_frac=0.01, v_th_d2d_sigma_v=0.15,
        gain_d2d_sigma_ln=0.45, c2c_sigma_ln=0.6, c2c_add_sigma_s=0.8e-6, read_noise_rel=0.025,
        read_noise_floor_s=0.3e-6, relax_sigma_1s_s=2.5e-6, drift_mean_rel_per_ln=-0.003,
        theta_mismatch_rel=0.06, tau_mismatch_rel=0.06, neuron_noise_sigma=0.02, ir_drop_rel=0.03,
        read_disturb_rel=1e-5, e_scale=1.1, endurance_median_pulses=2e5,
        input_spike_loss=1e-3, input_jitter_frac=1e-2),
}
