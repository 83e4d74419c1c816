"""Render the body as relative intensity on the sensor, many time steps at once.

The scene is a static, textured background (a wall with soft shading and a few edges) and
the body drawn on it as anti-aliased capsules (torso, head, upper arms, forearms, hands) in
depth order, each with its reflectance. Intensity is relative (1 = white wall under the
lighting's nominal level); the lighting's level and flicker are applied by the pixel model.

Rendering is vectorised over a block of time steps: each part is drawn only inside the
bounding box it sweeps during the block.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.data.gesture.body import ARM_R, HEAD_R, TORSO_R, Pose, Subject

SENSOR = (128, 128)  # (width, height)
SHADING = 0.45  # relative fall-off of a part's brightness from its axis to its rim
SLOW_PARTS = 2  # the first parts (torso, head) are interpolated within a block


def background(rng: np.random.Generator, shape: tuple[int, int] = (128, 128)) -> np.ndarray:
    """A static scene (H, W) of relative intensity 0.15-0.6: shading, a few edges, texture."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    g = 0.32 + 0.12 * rng.uniform(-1, 1) * (xx / w - 0.5) + 0.10 * rng.uniform(-1, 1) * (yy / h - 0.5)
    # a few straight edges (door frames, shelves, a poster)
    for _ in range(int(rng.integers(2, 6))):
        if rng.random() < 0.5:
            x0 = rng.uniform(0, w)
            g = g + rng.uniform(-0.1, 0.12) * (xx > x0)
        else:
            y0 = rng.uniform(0, h * 0.6)
            g = g + rng.uniform(-0.1, 0.12) * (yy > y0)
    # low-contrast texture
    tex = rng.normal(0.0, 1.0, size=(h // 8 + 2, w // 8 + 2))
    tex = np.kron(tex, np.ones((8, 8)))[:h, :w]
    g = g * (1.0 + 0.05 * tex)
    return np.clip(g, 0.08, 0.8)


@dataclass(frozen=True)
class Part:
    """A capsule from ``a`` to ``b`` (K, 2) of half-width ``r`` (px) and reflectance ``value``."""

    a: np.ndarray
    b: np.ndarray
    r: float
    value: float


def parts(pose: Pose, subj: Subject, i0: int, i1: int) -> list[Part]:
    """The body parts of steps ``i0:i1``, back to front."""
    s = subj.scale
    sl = slice(i0, i1)
    return [
        Part(pose.neck[sl], pose.hip[sl], TORSO_R * s, subj.shirt),
        Part(pose.head[sl], pose.head[sl], HEAD_R * s, subj.skin * 0.9),
        Part(pose.shoulder_r[sl], pose.elbow_r[sl], ARM_R[0] * s, subj.sleeve),
        Part(pose.shoulder_l[sl], pose.elbow_l[sl], ARM_R[0] * s, subj.sleeve),
        Part(pose.elbow_r[sl], pose.wrist_r[sl], ARM_R[1] * s, subj.skin),
        Part(pose.elbow_l[sl], pose.wrist_l[sl], ARM_R[1] * s, subj.skin),
        Part(pose.wrist_r[sl], pose.tip_r[sl], ARM_R[2] * s, subj.skin * 1.05),
        Part(pose.wrist_l[sl], pose.tip_l[sl], ARM_R[2] * s, subj.skin * 1.05),
    ]


def bbox(part: Part, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) pixel box the part covers during the block, clipped; None if off-sensor."""
    h, w = shape
    pts = np.concatenate([part.a, part.b])
    x0 = int(np.floor(pts[:, 0].min() - part.r - 1.0))
    x1 = int(np.ceil(pts[:, 0].max() + part.r + 2.0))
    y0 = int(np.floor(pts[:, 1].min() - part.r - 1.0))
    y1 = int(np.ceil(pts[:, 1].max() + part.r + 2.0))
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return y0, y1, x0, x1


def draw(frames: np.ndarray, box: tuple[int, int, int, int], part: Part) -> None:
    """Composite one part onto ``frames`` (T, h, w) whose top-left is pixel (box y0, box x0).

    Coverage of pixel centre (x+0.5, y+0.5) is ``clip(r + 0.5 - d, 0, 1)`` with ``d`` its
    distance to the segment: a one-pixel anti-aliased rim.
    """
    y0, y1, x0, x1 = box
    T = frames.shape[0]
    px = (np.arange(x0, x1, dtype=np.float32) + 0.5)[None, None, :]
    py = (np.arange(y0, y1, dtype=np.float32) + 0.5)[None, :, None]
    ax = part.a[:, 0].astype(np.float32)[:, None, None]
    ay = part.a[:, 1].astype(np.float32)[:, None, None]
    dx = (part.b[:, 0] - part.a[:, 0]).astype(np.float32)[:, None, None]
    dy = (part.b[:, 1] - part.a[:, 1]).astype(np.float32)[:, None, None]
    ll = dx * dx + dy * dy
    rx = px - ax
    ry = py - ay
    u = np.clip((rx * dx + ry * dy) / np.maximum(ll, np.float32(1e-6)), 0.0, 1.0)
    ex = rx - u * dx
    ey = ry - u * dy
    d = np.sqrt(ex * ex + ey * ey)
    cov = np.clip(np.float32(part.r + 0.5) - d, 0.0, 1.0)
    # a limb is a lit cylinder: brightest along its axis, falling off towards the rim
    q = np.minimum(d * np.float32(1.0 / max(part.r, 1e-6)), np.float32(1.0))
    val = np.float32(part.value) * (np.float32(1.0) - np.float32(SHADING) * q * q)
    sub = frames[:T, y0:y1, x0:x1]
    sub += cov * (val - sub)


def render_block(bg: np.ndarray, pose: Pose, subj: Subject, i0: int, i1: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Intensity frames (T, h, w) float32 of steps ``i0:i1`` over the box the body sweeps.

    Returns ``(frames, (y0, y1, x0, x1))``; outside the box the scene is the background.
    """
    ps = parts(pose, subj, i0, i1)
    boxes = [bbox(p, bg.shape) for p in ps]
    live = [b for b in boxes if b is not None]
    if not live:
        return np.zeros((i1 - i0, 0, 0), np.float32), (0, 0, 0, 0)
    Y0 = min(b[0] for b in live)
    Y1 = max(b[1] for b in live)
    X0 = min(b[2] for b in live)
    X1 = max(b[3] for b in live)
    T = i1 - i0
    base = np.broadcast_to(bg[Y0:Y1, X0:X1].astype(np.float32), (min(T, 2), Y1 - Y0, X1 - X0)).copy()
    # torso and head move slowly (sway of a few px/s): drawn at the block's first and last
    # step and interpolated in between; the arms are drawn at every step
    for p, b in zip(ps[:SLOW_PARTS], boxes[:SLOW_PARTS]):
        if b is None:
            continue
        ends = [0, T - 1] if T > 1 else [0]
        draw(base, (b[0] - Y0, b[1] - Y0, b[2] - X0, b[3] - X0), _shift(_at(p, ends), X0, Y0))
    if T > 1:
        w = (np.arange(T, dtype=np.float32) / np.float32(T - 1))[:, None, None]
        frames = base[0][None] + w * (base[1] - base[0])[None]
    else:
        frames = base
    for p, b in zip(ps[SLOW_PARTS:], boxes[SLOW_PARTS:]):
        if b is None:
            continue
        draw(frames, (b[0] - Y0, b[1] - Y0, b[2] - X0, b[3] - X0), _shift(p, X0, Y0))
    return frames, (Y0, Y1, X0, X1)


def _at(p: Part, idx: list[int]) -> Part:
    return Part(p.a[idx], p.b[idx], p.r, p.value)


def _shift(p: Part, x0: int, y0: int) -> Part:
    o = np.array([x0, y0], dtype=np.float64)
    return Part(p.a - o, p.b - o, p.r, p.value)
