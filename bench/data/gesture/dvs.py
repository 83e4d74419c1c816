"""DVS pixel model: log-intensity change against per-pixel contrast thresholds.

Each pixel (after v2e, Hu et al. 2021, and the DVS128 paper, Lichtsteiner et al. 2008):

* a photoreceptor giving ``L = ln(level * I + dark)`` (``dark`` makes it lin-log near black),
  low-pass filtered with a time constant inversely proportional to the photocurrent
  (``tau = tau_bright / (level * I)``): dim pixels lag and blur;
* a memorised reference ``Lref``; an ON event each time ``Lf - Lref`` reaches ``+C_on``,
  an OFF event each time it reaches ``-C_off`` (several per step if the change is large,
  their times interpolated inside the step), ``Lref`` moving by ``C`` per event;
* thresholds with pixel-to-pixel mismatch (Gaussian, ``sigma_c``), OFF slightly higher than
  ON (DVS128 biases); a refractory period (events closer than it to the previous one of the
  same pixel are lost; more crossings in one step than the refractory period allows reset
  ``Lref`` to the current level);
* event latency jitter growing as the light dims;
* background activity (shot noise, rate ~ 1/light level, per-pixel rates log-normal), ON
  leak events, and a few hot pixels firing at tens to hundreds of Hz.

Lighting: a level and a temporal modulation of the illumination (mains flicker at twice the
mains frequency for fluorescent tubes, a slow drift for daylight, none for LEDs driven by DC).

:class:`Sensor` keeps the per-pixel state over a recording and turns blocks of rendered
frames into events; only pixels that change (or are still settling) in a block are stepped.
Times are integer microseconds (dataset time); intensities relative.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Lighting:
    """Illumination of one recording.

    ``level``: illuminance relative to a lit office (1); ``flicker_depth``: relative
    modulation at ``flicker_hz`` (after the photoreceptor's own smoothing of a tube's
    light); ``drift_depth``: slow (< 0.3 Hz) relative variation (daylight, clouds).
    """

    name: str
    level: float
    flicker_hz: float = 0.0
    flicker_depth: float = 0.0
    drift_depth: float = 0.0


def lighting(name: str, rng: np.random.Generator) -> Lighting:
    """The lighting of a release condition name, with its per-recording variation."""
    mains = 100.0 if rng.random() < 0.5 else 120.0
    if name == "fluorescent":
        return Lighting(name, float(rng.uniform(0.8, 1.1)), mains, float(rng.uniform(0.04, 0.09)))
    if name == "fluorescent_led":
        return Lighting(name, float(rng.uniform(0.8, 1.2)), mains, float(rng.uniform(0.015, 0.04)))
    if name == "led":
        return Lighting(name, float(rng.uniform(0.6, 1.0)))
    if name == "natural":
        return Lighting(name, float(rng.uniform(1.2, 2.5)), drift_depth=float(rng.uniform(0.02, 0.08)))
    if name == "lab":  # the dim condition
        return Lighting(name, float(rng.uniform(0.12, 0.3)), mains, float(rng.uniform(0.0, 0.03)))
    raise ValueError(f"unknown lighting {name!r}")


@dataclass(frozen=True)
class PixelParams:
    """DVS128-like pixel parameters (log-intensity units, seconds, Hz per pixel)."""

    c_on: float = 0.15
    c_off: float = 0.17
    sigma_c: float = 0.021
    refractory_s: float = 300e-6
    tau_bright_s: float = 0.5e-3
    dark: float = 0.01
    latency_bright_s: float = 50e-6
    ba_hz: float = 0.08  # shot-noise rate per pixel at level 1 (rises as 1/level)
    ba_spread_decades: float = 0.5
    leak_hz: float = 0.03
    hot_pixels: tuple[int, int] = (1, 6)
    hot_hz: tuple[float, float] = (20.0, 300.0)


class Sensor:
    """Per-pixel state of one recording on a ``(H, W)`` sensor."""

    def __init__(self, params: PixelParams, light: Lighting, rng: np.random.Generator,
                 shape: tuple[int, int] = (128, 128), dt_us: int = 1000):
        self.p = params
        self.light = light
        self.rng = rng
        self.shape = shape
        self.dt_us = int(dt_us)
        n = shape[0] * shape[1]
        self.c_on = np.clip(rng.normal(params.c_on, params.sigma_c, n), 0.05, None).astype(np.float32)
        self.c_off = np.clip(rng.normal(params.c_off, params.sigma_c, n), 0.05, None).astype(np.float32)
        self.refr_us = np.maximum(rng.normal(params.refractory_s, 0.1 * params.refractory_s, n), 0.0) * 1e6
        self.cap = np.maximum(1, np.floor(self.dt_us / np.maximum(self.refr_us, 1.0))).astype(np.int32)
        self.lref = np.zeros(n, np.float32)
        self.lf = np.zeros(n, np.float32)
        self.t_last = np.full(n, -(1 << 40), np.int64)
        self.prev_box: tuple[int, int, int, int] | None = None
        self._ev: list[tuple[np.ndarray, ...]] = []
        self._mod_bound = float(abs(math.log(1.0 - light.flicker_depth - light.drift_depth)))

    # -- illumination -------------------------------------------------------------------
    def modulation(self, t_us: np.ndarray) -> np.ndarray:
        """Relative illumination factor at times ``t_us`` (flicker and drift)."""
        L = self.light
        t = t_us * 1e-6
        m = np.ones_like(t, dtype=np.float64)
        if L.flicker_depth:
            m = m * (1.0 + L.flicker_depth * np.sin(2 * math.pi * L.flicker_hz * t))
        if L.drift_depth:
            m = m * (1.0 + L.drift_depth * np.sin(2 * math.pi * 0.11 * t + 1.3)
                     * np.sin(2 * math.pi * 0.037 * t))
        return m

    def log_intensity(self, frames: np.ndarray) -> np.ndarray:
        return np.log(np.float32(self.light.level) * frames + np.float32(self.p.dark))

    def start(self, frame: np.ndarray, t_us: int) -> None:
        """Initial state from the full first frame (H, W): references at a random phase."""
        L = self.log_intensity(frame.astype(np.float32)).ravel() + np.float32(np.log(self.modulation(np.array([t_us]))[0]))
        self.lf[:] = L
        u = self.rng.random(L.shape[0]).astype(np.float32)
        self.lref[:] = L - self.c_on + u * (self.c_on + self.c_off)

    # -- events from a block of frames ---------------------------------------------------
    def step_block(self, frames: np.ndarray, box: tuple[int, int, int, int], t0_us: int) -> None:
        """Advance the pixels over frames (T, h, w) at ``t0_us + k * dt_us``, box (y0, y1, x0, x1).

        The pixels of the previous block's box are stepped too (static there now), so a
        pixel a moving part just left still settles and fires its trailing events.
        """
        H, W = self.shape
        if self.prev_box is not None and frames.size:
            y0, y1, x0, x1 = box
            py0, py1, px0, px1 = self.prev_box
            ny0, ny1, nx0, nx1 = min(y0, py0), max(y1, py1), min(x0, px0), max(x1, px1)
            if (ny0, ny1, nx0, nx1) != box:
                # grow the frames to the union box with the previous frame's static background
                grown = np.empty((frames.shape[0], ny1 - ny0, nx1 - nx0), np.float32)
                grown[:] = self._bg[ny0:ny1, nx0:nx1]
                grown[:, y0 - ny0:y1 - ny0, x0 - nx0:x1 - nx0] = frames
                frames, box = grown, (ny0, ny1, nx0, nx1)
        self.prev_box = box if frames.size else self.prev_box
        if not frames.size:
            return
        y0, y1, x0, x1 = box
        T, h, w = frames.shape
        gidx = ((np.arange(y0, y1) * W)[:, None] + np.arange(x0, x1)[None, :]).ravel()
        F = frames.reshape(T, h * w)
        # a pixel whose target levels over the block and filtered level, widened by the
        # lighting's modulation, stay inside its threshold band cannot fire (the low-pass output
        # is a convex combination of them): skip it. log is monotonic, so the extremes of L
        # over the block are the logs of the intensity extremes.
        Lmax = self.log_intensity(F.max(0))
        Lmin = self.log_intensity(F.min(0))
        lf_b, lr_b = self.lf[gidx], self.lref[gidx]
        fl = np.float32(self._mod_bound)
        quiet = (np.maximum(Lmax, lf_b) + fl - lr_b < self.c_on[gidx]) \
            & (lr_b - np.minimum(Lmin, lf_b) + fl < self.c_off[gidx])
        t_steps = t0_us + np.arange(T, dtype=np.int64) * self.dt_us
        logmod = np.log(self.modulation(t_steps))
        # a quiet pixel's filtered level follows its (slowly changing) target: set it there
        qi = np.flatnonzero(quiet & (Lmax > Lmin))
        if len(qi):
            self.lf[gidx[qi]] = self.log_intensity(F[-1, qi]) + np.float32(logmod[-1])
        sel = np.flatnonzero(~quiet)
        if not len(sel):
            return
        g = gidx[sel]
        photo = np.float32(self.light.level) * F[:, sel] + np.float32(self.p.dark)
        Ls = np.log(photo)
        Ls += logmod.astype(np.float32)[:, None]
        # photoreceptor low-pass y_k = y_{k-1} + a_k (x_k - y_{k-1}), a_k = 1 - exp(-dt / tau_k),
        # tau_k = tau_bright / photocurrent
        a = np.exp(np.float32(-(self.dt_us * 1e-6 / self.p.tau_bright_s)) * photo)
        np.subtract(np.float32(1.0), a, out=a)
        np.minimum(a, np.float32(0.98), out=a)
        lf0 = self.lf[g]
        Y = np.empty_like(Ls)
        y = lf0.copy()
        tmp = np.empty_like(y)
        for k in range(T):
            np.subtract(Ls[k], y, out=tmp)
            tmp *= a[k]
            y += tmp
            Y[k] = y
        self.lf[g] = Y[-1]
        # only pixels whose filtered level leaves the threshold band can fire: step those
        lr_all = self.lref[g]
        fire = (Y.max(0) - lr_all >= self.c_on[g]) | (lr_all - Y.min(0) >= self.c_off[g])
        if not fire.any():
            return
        sub = np.flatnonzero(fire)
        g, Y, photo = g[sub], Y[:, sub], photo[:, sub]
        prev = np.vstack([lf0[sub][None, :], Y[:-1]])
        lr = self.lref[g]
        con_s, coff_s = self.c_on[g], self.c_off[g]
        cap = self.cap[g]
        # the reference update is sequential in time; each step is a few whole-array operations
        # (crossings up and down, the refractory cap, the reference move), the counts kept in N
        n = len(g)
        N = np.zeros((T, n), np.int16)
        R = np.empty((T, n), np.float32)
        capf = cap.astype(np.float32)
        inv_on = (1.0 / con_s).astype(np.float32)
        inv_off = (1.0 / coff_s).astype(np.float32)
        d = np.empty(n, np.float32)
        nu = np.empty(n, np.float32)
        nd = np.empty(n, np.float32)
        zero = np.float32(0.0)
        for k in range(T):
            R[k] = lr
            np.subtract(Y[k], lr, out=d)
            np.multiply(d, inv_on, out=nu)
            np.floor(nu, out=nu)
            np.maximum(nu, zero, out=nu)
            np.multiply(d, inv_off, out=nd)
            np.negative(nd, out=nd)
            np.floor(nd, out=nd)
            np.maximum(nd, zero, out=nd)
            over = (nu > capf) | (nd > capf)
            lr += nu * con_s - nd * coff_s
            if over.any():
                lr[over] = Y[k, over]
                nu[over] = np.minimum(nu[over], capf[over])
                nd[over] = np.minimum(nd[over], capf[over])
            N[k] = nu - nd
        self.lref[g] = lr
        k, i = np.nonzero(N)
        if len(k):
            self._emit(g, t0_us, k, i, N[k, i].astype(np.int32), prev[k, i], Y[k, i], R[k, i],
                       con_s, coff_s, photo)

    def _emit(self, g, t0_us, k, i, n, la, lb, lr, con_s, coff_s, photo) -> None:
        """Expand per-step crossing counts into events with interpolated, jittered times."""
        cnt = np.abs(n)
        rep = np.repeat(np.arange(len(k)), cnt)
        j = np.arange(len(rep)) - np.repeat(np.cumsum(cnt) - cnt, cnt) + 1  # 1..n within a step
        on = n[rep] > 0
        ii = i[rep]
        c = np.where(on, con_s[ii], -coff_s[ii])
        level = lr[rep] + j * c
        span = lb[rep] - la[rep]
        frac = np.clip((level - la[rep]) / np.where(np.abs(span) > 1e-9, span, 1.0), 0.0, 1.0)
        t = t0_us + k[rep].astype(np.int64) * self.dt_us + (frac * self.dt_us).astype(np.int64) - self.dt_us
        # latency: ~latency_bright / photocurrent, log-normal spread
        ph = photo[k[rep], ii]
        lat = self.p.latency_bright_s * 1e6 / np.maximum(ph, 0.02) * self.rng.lognormal(0.0, 0.5, len(rep))
        t = t + lat.astype(np.int64)
        self._ev.append((t, g[ii], on))

    def drain(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All motion events so far as (t_us, flat pixel, on), refractory applied, unsorted."""
        if not self._ev:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
        t = np.concatenate([e[0] for e in self._ev])
        g = np.concatenate([e[1] for e in self._ev])
        on = np.concatenate([e[2] for e in self._ev])
        self._ev = []
        order = np.lexsort((t, g))
        t, g, on = t[order], g[order], on[order]
        same = np.empty(len(g), bool)
        same[0] = False
        same[1:] = g[1:] == g[:-1]
        gap = np.empty(len(t), np.int64)
        gap[0] = 1 << 40
        gap[1:] = t[1:] - t[:-1]
        keep = ~(same & (gap < self.refr_us[g]))
        return t[keep], g[keep], on[keep]

    def set_background(self, bg: np.ndarray) -> None:
        self._bg = bg.astype(np.float32)

    # -- noise ---------------------------------------------------------------------------
    def noise(self, t0_us: int, t1_us: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Background activity, leak and hot-pixel events in [t0, t1) as (t, flat pixel, on)."""
        p, rng = self.p, self.rng
        n_pix = self.shape[0] * self.shape[1]
        span_s = (t1_us - t0_us) * 1e-6
        rate = rng.lognormal(0.0, p.ba_spread_decades * math.log(10), n_pix)
        rate = rate / rate.mean()
        ba = p.ba_hz / max(self.light.level, 0.05)
        parts = []
        m = rng.poisson(ba * n_pix * span_s)
        g = rng.choice(n_pix, size=m, p=rate / rate.sum())
        parts.append((rng.integers(t0_us, t1_us, m), g, rng.random(m) < 0.5))
        m = rng.poisson(p.leak_hz * self.light.level * n_pix * span_s)
        parts.append((rng.integers(t0_us, t1_us, m), rng.integers(0, n_pix, m), np.ones(m, bool)))
        for _ in range(int(rng.integers(p.hot_pixels[0], p.hot_pixels[1] + 1))):
            hz = math.exp(rng.uniform(math.log(p.hot_hz[0]), math.log(p.hot_hz[1])))
            m = rng.poisson(hz * span_s)
            pol = rng.random()
            parts.append((rng.integers(t0_us, t1_us, m), np.full(m, rng.integers(0, n_pix)), rng.random(m) < pol))
        return (np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts]),
                np.concatenate([q[2] for q in parts]))
