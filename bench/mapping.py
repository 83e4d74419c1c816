"""Weight -> conductance mapping for one PE macro (issue 4).

A layer's signed weights ``W`` (rows x neurons, at most 128 x 12) become a conductance
target per cell: neuron ``k`` reads the differential pair G+ on column ``2k`` and G- on
column ``2k+1``, and its effective weight is ``(G+ - G-) / scale_s`` where ``scale_s`` is the
layer's conductance per weight unit.  Each device takes one of the chip's levels
(``info().levels_s``: off + 15 evenly spaced states up to 150 uS).

The layer's weights are first clamped to ``+-clamp`` (the reference output layer trains with
``+-3``).  The scale is then chosen to minimise the mean squared quantisation error of the
clamped weights (a 1-D search over the weight magnitude that maps to the top level, including
the saturation above it); the chosen scale is recorded in :class:`LayerMapping` and in the run
file.  To run the layer with the same normalised input as in software, set the chip's
``G_UNIT`` register to ``scale_s`` (``LayerMapping.g_unit_s``).

Known-bad cells (a map of stuck conductances, NaN where a cell is healthy) can be routed
around: for every pair with a bad device, all level choices for the healthy device(s) are
searched with the bad device held at its stuck value, which covers both *swapping* which
device of the pair carries the weight and *compensating* a stuck partner.  Pairs that
cannot reach their weight within half a level are reported as ``uncorrectable``.

All conductances are SI (siemens).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_LEVELS_S = np.concatenate([[0.0], np.linspace(10e-6, 150e-6, 15)])


class MappingError(ValueError):
    """Weights or levels cannot be mapped (shape, NaN/inf, out of range).  Exit code 2."""

    exit_code = 2


@dataclass
class LayerMapping:
    """A layer mapped onto the array.  ``targets_s`` covers the whole array (rows x columns)."""

    levels_s: np.ndarray
    """The chip's conductance levels (S), ascending."""
    scale_s: float
    """Conductance per weight unit (S): effective weight = (G+ - G-) / scale_s."""
    clamp: float
    """Weights were clamped to +-clamp before mapping (inf: not clamped)."""
    target_levels: np.ndarray
    """Level index per cell (rows x columns, int)."""
    weights: np.ndarray | None = None
    """The layer's weights as given (rows_used x neurons_used); None for a level map."""
    shape: tuple[int, int] = (0, 0)
    """(rows_used, neurons_used) of the layer; the rest of the array is set to level 0."""
    rerouted_pairs: int = 0
    uncorrectable_pairs: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def targets_s(self) -> np.ndarray:
        return self.levels_s[self.target_levels]

    @property
    def g_unit_s(self) -> float:
        """Value for the chip's G_UNIT register so one weight unit = one normalised input unit."""
        return float(self.scale_s)

    @property
    def quantised_weights(self) -> np.ndarray:
        """Effective weights of the targets (rows_used x neurons_used)."""
        r, n = self.shape
        return effective_weights(self.targets_s, self.scale_s)[:r, :n]

    def quantisation_rms(self) -> float:
        """RMS weight error (weight units) of the targets against the clamped weights."""
        if self.weights is None:
            return 0.0
        w = np.clip(self.weights, -self.clamp, self.clamp)
        return float(np.sqrt(np.mean((self.quantised_weights - w) ** 2))) if w.size else 0.0

    def as_attrs(self) -> dict[str, Any]:
        """Scalars for run-file attributes / JSON."""
        return {"scale_s": float(self.scale_s), "g_unit_s": float(self.scale_s),
                "clamp": float(self.clamp), "rows_used": int(self.shape[0]),
                "neurons_used": int(self.shape[1]), "quantisation_rms": self.quantisation_rms(),
                "rerouted_pairs": int(self.rerouted_pairs),
                "uncorrectable_pairs": int(self.uncorrectable_pairs),
                "levels_s": [float(x) for x in self.levels_s], **self.meta}


# --- helpers ----------------------------------------------------------------------------------
def _levels(levels_s) -> np.ndarray:
    lv = np.asarray(levels_s if levels_s is not None else DEFAULT_LEVELS_S, dtype=np.float64).ravel()
    if lv.size < 2 or not np.all(np.isfinite(lv)) or np.any(np.diff(lv) <= 0) or lv[0] < 0:
        raise MappingError("levels must be >= 2 finite, ascending conductances >= 0 S")
    return lv


def nearest_level(g_s: np.ndarray, levels_s: np.ndarray) -> np.ndarray:
    """Index of the nearest level for each conductance (ties go to the lower level)."""
    lv = np.asarray(levels_s)
    g = np.asarray(g_s, dtype=np.float64)
    i = np.clip(np.searchsorted(lv, g), 1, lv.size - 1)
    lower = (g - lv[i - 1]) <= (lv[i] - g)
    return np.where(lower, i - 1, i)


def effective_weights(g_s: np.ndarray, scale_s: float) -> np.ndarray:
    """Inverse mapping: conductance map (rows x 2N) -> effective weights (rows x N)."""
    g = np.asarray(g_s, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] % 2:
        raise MappingError(f"conductance map must be (rows, 2*neurons), got shape {g.shape}")
    if not np.isfinite(scale_s) or scale_s <= 0:
        raise MappingError(f"scale must be a finite conductance > 0 S, got {scale_s!r}")
    return (g[:, 0::2] - g[:, 1::2]) / scale_s


def _magnitude_levels(mag_s: np.ndarray, levels_s: np.ndarray) -> np.ndarray:
    return nearest_level(np.minimum(mag_s, levels_s[-1]), levels_s)


def quantisation_mse(w: np.ndarray, scale_s: float, levels_s: np.ndarray) -> float:
    """Mean squared weight error of single-device mapping at ``scale_s``."""
    q = levels_s[_magnitude_levels(np.abs(w) * scale_s, levels_s)] / scale_s
    return float(np.mean((q - np.abs(w)) ** 2))


def best_scale(w: np.ndarray, levels_s: np.ndarray, clamp: float, n_grid: int = 256,
               bounds_s: tuple[float, float] | None = None) -> float:
    """Scale (S per weight unit) minimising the quantisation MSE of clamped weights ``w``,
    optionally restricted to ``bounds_s`` (e.g. what the G_UNIT register can hold)."""
    a = np.abs(np.asarray(w, dtype=np.float64)).ravel()
    a = a[a > 0]
    g_top = float(levels_s[-1])
    lo_s, hi_s = bounds_s if bounds_s is not None else (0.0, np.inf)
    if a.size == 0:
        return float(np.clip(g_top / (clamp if np.isfinite(clamp) else 1.0), lo_s, hi_s))
    hi = min(float(a.max()), clamp)
    lo = max(hi * 0.05, 1e-12)
    # candidate magnitudes mapped onto the top level: a log grid plus the data's quantiles
    cand = np.unique(np.concatenate([np.geomspace(lo, hi, n_grid),
                                     np.quantile(a, np.linspace(0.5, 1.0, 64))]))
    cand = cand[(cand > 0) & (cand <= hi)]
    if bounds_s is not None:
        cand = np.clip(cand, g_top / hi_s if hi_s > 0 else 0.0, g_top / lo_s if lo_s > 0 else np.inf)
        cand = np.unique(cand)
    with np.errstate(divide="ignore", over="ignore"):
        cand = cand[np.isfinite(g_top / cand)]   # subnormal weights: no finite scale maps them to the top
    if cand.size == 0:
        return float(np.clip(g_top / (clamp if np.isfinite(clamp) else 1.0), lo_s, hi_s))
    if a.size > 20000:  # subsample for speed; the MSE is an average
        a = np.random.default_rng(0).choice(a, 20000, replace=False)
    errs = [quantisation_mse(a, g_top / c, levels_s) for c in cand]
    return float(np.clip(g_top / float(cand[int(np.argmin(errs))]), lo_s, hi_s))


# --- forward mapping ---------------------------------------------------------------------------
def map_weights(weights: np.ndarray, *, levels_s=None, rows: int = 128, columns: int = 24,
                clamp: float = 3.0, scale_s: float | None = None,
                bad_cells_s: np.ndarray | None = None,
                scale_bounds_s: tuple[float, float] | None = None) -> LayerMapping:
    """Map signed weights (rows_used x neurons_used) onto the array.

    ``clamp``: the layer's weight clamp (weights beyond are clipped first; ``inf`` for none).
    ``scale_s``: force a scale instead of the MSE-optimal one.
    ``scale_bounds_s``: restrict the search, e.g. ``(1e-6, 150e-6)`` for the G_UNIT register.
    ``bad_cells_s``: (rows x columns) stuck conductance of known-bad cells, NaN elsewhere;
    pairs containing one are re-optimised around them (see module docstring).
    """
    lv = _levels(levels_s)
    w = np.asarray(weights)
    if w.ndim == 1:
        w = w[:, None]
    if w.ndim != 2 or w.size == 0:
        raise MappingError(f"weights must be a 2-D (rows, neurons) matrix, got shape {np.shape(weights)}")
    if not np.issubdtype(w.dtype, np.number) or np.iscomplexobj(w):
        raise MappingError(f"weights must be real numbers, got dtype {w.dtype}")
    w = w.astype(np.float64)
    neurons = columns // 2
    if w.shape[0] > rows or w.shape[1] > neurons:
        raise MappingError(f"weights of shape {w.shape} do not fit the {rows} rows x {neurons} neurons array")
    if not np.all(np.isfinite(w)):
        raise MappingError("weights contain NaN or inf")
    if not (clamp > 0):
        raise MappingError(f"clamp must be > 0, got {clamp!r}")
    wc = np.clip(w, -clamp, clamp)
    if scale_s is None:
        scale_s = best_scale(wc, lv, clamp, bounds_s=scale_bounds_s)
    elif not np.isfinite(scale_s) or scale_s <= 0:
        raise MappingError(f"scale must be a finite conductance > 0 S, got {scale_s!r}")
    mag = _magnitude_levels(np.abs(wc) * scale_s, lv)
    lev = np.zeros((rows, columns), dtype=np.int64)
    r, n = w.shape
    lev[:r, 0:2 * n:2] = np.where(wc > 0, mag, 0)
    lev[:r, 1:2 * n:2] = np.where(wc < 0, mag, 0)
    m = LayerMapping(levels_s=lv, scale_s=float(scale_s), clamp=float(clamp), target_levels=lev,
                     weights=w, shape=(r, n), meta={"source": "weights"})
    if bad_cells_s is not None:
        route_around(m, bad_cells_s)
    return m


def map_levels(levels: np.ndarray, *, levels_s=None, rows: int = 128, columns: int = 24) -> LayerMapping:
    """A level-index map (rows x columns ints in [0, len(levels)-1]) as a mapping."""
    lv = _levels(levels_s)
    a = np.asarray(levels)
    if a.shape != (rows, columns):
        raise MappingError(f"level map must have shape ({rows}, {columns}), got {a.shape}")
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise MappingError("level map contains NaN or inf")
        if not np.all(a == np.round(a)):
            raise MappingError("level map must hold integer level indices")
    elif not np.issubdtype(a.dtype, np.integer):
        raise MappingError(f"level map must hold integers, got dtype {a.dtype}")
    if a.min() < 0 or a.max() > lv.size - 1:
        raise MappingError(f"levels must be in [0, {lv.size - 1}], found [{a.min():g}, {a.max():g}]")
    return LayerMapping(levels_s=lv, scale_s=float(lv[-1] / 3.0), clamp=float("inf"),
                        target_levels=a.astype(np.int64), weights=None, shape=(rows, columns // 2),
                        meta={"source": "levels"})


def route_around(m: LayerMapping, bad_cells_s: np.ndarray) -> LayerMapping:
    """Re-optimise pairs with known-bad devices in place (see module docstring)."""
    rows, columns = m.target_levels.shape
    bad = np.asarray(bad_cells_s, dtype=np.float64)
    if bad.shape != (rows, columns):
        raise MappingError(f"bad-cell map must have shape ({rows}, {columns}), got {bad.shape}")
    lv = m.levels_s
    r_used, n_used = m.shape
    want = np.zeros((rows, columns // 2))
    if m.weights is not None:
        want[:r_used, :n_used] = np.clip(m.weights, -m.clamp, m.clamp) * m.scale_s
    else:
        want = lv[m.target_levels[:, 0::2]] - lv[m.target_levels[:, 1::2]]
    gp_all, gm_all = np.meshgrid(lv, lv, indexing="ij")   # candidate (G+, G-) level pairs
    rerouted = uncorrectable = 0
    half = (lv[-1] - lv[-2]) / 2
    for r, k in zip(*np.nonzero(np.isfinite(bad[:, 0::2]) | np.isfinite(bad[:, 1::2]))):
        bp, bm = bad[r, 2 * k], bad[r, 2 * k + 1]
        gp = np.full_like(gp_all, bp) if np.isfinite(bp) else gp_all
        gm = np.full_like(gm_all, bm) if np.isfinite(bm) else gm_all
        err = np.abs((gp - gm) - want[r, k])
        # prefer the smallest total conductance among equally good choices (less read current)
        cost = err + 1e-9 * (gp_all + gm_all)
        i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
        m.target_levels[r, 2 * k] = i if not np.isfinite(bp) else nearest_level(bp, lv)
        m.target_levels[r, 2 * k + 1] = j if not np.isfinite(bm) else nearest_level(bm, lv)
        rerouted += 1
        uncorrectable += int(err[i, j] > half)
    m.rerouted_pairs, m.uncorrectable_pairs = rerouted, uncorrectable
    return m


def bad_cells_map(stuck: np.ndarray, g_s: np.ndarray) -> np.ndarray:
    """Known-bad-cell map for ``bad_cells_s``: the measured conductance where ``stuck``, NaN elsewhere."""
    st = np.asarray(stuck, dtype=bool)
    g = np.asarray(g_s, dtype=np.float64)
    if st.shape != g.shape:
        raise MappingError(f"stuck map {st.shape} and conductance map {g.shape} differ in shape")
    return np.where(st, g, np.nan)


def random_levels(seed: int, rows: int = 128, columns: int = 24, n_levels: int = 16) -> np.ndarray:
    """A random level map (the issue's benchmark / must-hold target)."""
    return np.random.default_rng(seed).integers(0, n_levels, size=(rows, columns))
