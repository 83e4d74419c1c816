"""Seeded synthetic DVS128-Gesture-like event set (no download needed).

Written in the release's layout (AEDAT 3.1 recordings + ``_labels.csv`` + trial lists), so
one reader serves both. Each recording is one subject under one lighting condition and holds
one labelled sample of each of the 11 classes, in a random order, separated by pauses.

Model (stylised, documented in docs/data.md): a hand is a bright disc whose moving edge
emits events with probability proportional to |normal . velocity|, ON on the leading edge
and OFF on the trailing edge, plus texture events with random polarity; the forearm is a
line of events from the shoulder to the hand; hands emit events at a constant rate while
they move; sensor noise is uniform background activity plus a few hot
pixels. Per-subject variation: position offset, scale, speed, hand size, event rate;
per-lighting: noise rate. Coordinates: image x to the right, y down; the subject faces the
camera, so the subject's right hand appears on the image's left.

Classes are built so that groups share their time-collapsed picture and differ only in
temporal order, direction or phase:

* right arm clockwise / counter-clockwise: a hand circling at constant speed, both ways;
* left arm clockwise / counter-clockwise: the same on the other side;
* hand clap / arm roll: two hands sweeping along the same two horizontal strokes, mirrored
  (they meet and part) or in phase (both move the same way);
* air drums / other: two hands sweeping along the same two vertical strokes, drums
  alternating (half a period apart), "other" both hands together at a random tempo;
* right hand wave / air guitar: the right hand swinging side to side over the same arc,
  the guitar strumming at three times the tempo;
* left hand wave stands alone.

Every place is crossed in both directions equally often, so even the ON/OFF maps agree.

A classifier on time-collapsed event counts therefore cannot beat ~6/11 on this set, while
direction, phase and tempo remain in the spike timing.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.data.aedat import EVENT_DTYPE, encode_aedat
from bench.data.labels import CLASS_NAMES, write_labels, write_trial_list
from bench.errors import UsageError

SENSOR = (128, 128)
LIGHTINGS = ("fluorescent", "fluorescent_led", "lab", "led", "natural")
LIGHTING_NOISE = {"fluorescent": 1.0, "fluorescent_led": 1.4, "lab": 0.7, "led": 1.2, "natural": 1.8}
DEFAULT_PER_CLASS = 32
LIGHTINGS_PER_SUBJECT = 4
TEST_FRACTION = 288 / (1176 + 288)  # the release's subject split
GENERATOR_VERSION = 2

# Event rates (events per millisecond) and geometry (pixels, before per-subject transform).
HAND_RATE = 7.5
ARM_RATE = 1.5
NOISE_RATE = 0.8  # whole sensor
EDGE_FRACTION = 0.85  # of hand events on the moving edge (the rest: texture, random polarity)
POLARITY_FLIP = 0.05  # edge events with the "wrong" polarity
HOT_PIXEL_HZ = (20.0, 60.0)
CENTER = np.array([64.0, 64.0])
SHOULDER_R = np.array([44.0, 112.0])  # subject's right shoulder (image left)
SHOULDER_L = np.array([84.0, 112.0])


def _tri(phase: np.ndarray) -> np.ndarray:
    """Triangle wave in [0, 1] with period 1 (constant speed back and forth)."""
    f = np.mod(phase, 1.0)
    return 1.0 - np.abs(2.0 * f - 1.0)


def _trajectories(cls: int, t_s: np.ndarray, speed: float, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Hand paths of class ``cls`` (0..10) at times ``t_s`` (seconds): [(xy (K,2), shoulder)]."""
    K = len(t_s)
    ph0 = rng.uniform(0.0, 1.0)
    out = []

    def line(x, y):
        return np.stack([np.broadcast_to(x, (K,)), np.broadcast_to(y, (K,))], axis=1).astype(float)

    if cls in (0, 7):  # hand clap (mirrored) / arm roll (in phase) on the same strokes
        period = 0.55 / speed
        ph = t_s / period + ph0
        gap, amp, yy = 8.0, 22.0, 60.0
        xr = 64.0 - gap - amp * _tri(ph)  # subject's right hand, image left
        if cls == 0:
            xl = 64.0 + gap + amp * _tri(ph)
        else:
            xl = 64.0 + gap + amp * (1.0 - _tri(ph))
        out.append((line(xr, yy), SHOULDER_R))
        out.append((line(xl, yy), SHOULDER_L))
    elif cls in (1, 2, 9):  # right / left hand wave; air guitar: right hand strumming at 3x the tempo
        cx = 88.0 if cls == 2 else 40.0
        f = 2.0 * speed * (3.0 if cls == 9 else 1.0)
        a = 2 * np.pi * (f * t_s + ph0)
        out.append((line(cx + 13.0 * np.sin(a), 28.0 + 3.0 * np.cos(2 * a)),
                    SHOULDER_L if cls == 2 else SHOULDER_R))
    elif cls in (3, 4, 5, 6):  # arm circles: right CW, right CCW, left CW, left CCW
        cx = 40.0 if cls in (3, 4) else 88.0
        direction = 1.0 if cls in (3, 5) else -1.0  # y points down: +theta is clockwise on screen
        w = 2 * np.pi * 1.3 * speed
        th = 2 * np.pi * ph0 + direction * w * t_s
        r = 18.0
        out.append((line(cx + r * np.cos(th), 54.0 + r * np.sin(th)),
                    SHOULDER_R if cls in (3, 4) else SHOULDER_L))
    elif cls in (8, 10):  # air drums / other gestures on the same two vertical strokes
        period = 0.45 / speed
        ph = t_s / period + ph0
        top, amp = 78.0, 26.0
        if cls == 8:  # alternating strokes at one tempo
            yr, yl = top + amp * _tri(ph), top + amp * _tri(ph + 0.5)
        else:  # both hands together at a random tempo
            ph = ph * rng.uniform(0.7, 1.4)
            yr = yl = top + amp * _tri(ph)
        out.append((line(48.0, yr), SHOULDER_R))
        out.append((line(80.0, yl), SHOULDER_L))
    else:  # pragma: no cover
        raise ValueError(cls)
    return out


class _Subject:
    def __init__(self, seed: int, subject: int):
        r = np.random.default_rng([seed, subject, 7919])
        self.offset = r.uniform(-3.0, 3.0, size=2)
        self.scale = r.uniform(0.93, 1.07)
        self.speed = r.uniform(0.9, 1.1)
        self.hand_radius = r.uniform(4.5, 6.5)
        self.rate = r.uniform(0.8, 1.25)

    def place(self, xy: np.ndarray, jitter: np.ndarray) -> np.ndarray:
        return CENTER + (xy - CENTER) * self.scale + self.offset + jitter


def _velocity(xy: np.ndarray) -> np.ndarray:
    """Per-millisecond velocity (pixels per ms) of a (K, 2) path."""
    if len(xy) < 2:
        return np.zeros_like(xy)
    return np.gradient(xy, axis=0)


def _gesture_events(cls: int, t0_us: int, dur_us: int, subj: _Subject, rng: np.random.Generator):
    """(t, x, y, p) arrays of one gesture's hand + forearm events (unsorted, float x/y).

    A hand is a bright disc on a darker background: edge events with probability
    proportional to |normal . velocity|, ON (p=1) on the leading edge and OFF on the trailing
    edge, plus texture events inside the hand with random polarity. The forearm is a line
    from the shoulder to the hand, its events ON on the side it moves towards.
    """
    K = int(math.ceil(dur_us / 1000))
    t_s = (np.arange(K) + 0.5) * 1e-3
    speed = subj.speed * rng.uniform(0.85, 1.15)
    jitter = rng.uniform(-4.0, 4.0, size=2)
    ts, xs, ys, ps = [], [], [], []
    for xy, shoulder in _trajectories(cls, t_s, speed, rng):
        hand = subj.place(xy, jitter)
        vel = _velocity(hand)
        sh = subj.place(np.asarray(shoulder, float)[None, :], jitter)[0]
        # hand edge: direction psi relative to the motion, density ~ |cos psi|
        n = rng.poisson(HAND_RATE * EDGE_FRACTION * subj.rate, size=K)
        idx = np.repeat(np.arange(K), n)
        m = len(idx)
        lead = rng.random(m) < 0.5
        psi = np.arcsin(2.0 * rng.random(m) - 1.0) + np.where(lead, 0.0, np.pi)
        ang = np.arctan2(vel[idx, 1], vel[idx, 0]) + psi
        r = subj.hand_radius + rng.normal(0.0, 1.0, size=m)
        ts.append(idx)
        xs.append(hand[idx, 0] + r * np.cos(ang))
        ys.append(hand[idx, 1] + r * np.sin(ang))
        ps.append(lead ^ (rng.random(m) < POLARITY_FLIP))
        # hand texture: inside the disc, random polarity
        n = rng.poisson(HAND_RATE * (1.0 - EDGE_FRACTION) * subj.rate, size=K)
        idx = np.repeat(np.arange(K), n)
        m = len(idx)
        pos = hand[idx] + rng.normal(0.0, subj.hand_radius / 2.0, size=(m, 2))
        ts.append(idx)
        xs.append(pos[:, 0])
        ys.append(pos[:, 1])
        ps.append(rng.random(m) < 0.5)
        # forearm: a line from the shoulder to the hand
        n = rng.poisson(ARM_RATE * subj.rate, size=K)
        idx = np.repeat(np.arange(K), n)
        m = len(idx)
        u = rng.uniform(0.15, 0.9, size=m)[:, None]
        d = hand[idx] - sh
        normal = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
        side = np.where(rng.random(m) < 0.5, 1.0, -1.0)[:, None]
        pos = sh + u * d + side * 2.0 * normal + rng.normal(0.0, 0.7, size=(m, 2))
        ts.append(idx)
        xs.append(pos[:, 0])
        ys.append(pos[:, 1])
        ps.append(((side[:, 0] * (normal * (u * vel[idx])).sum(1)) > 0) ^ (rng.random(m) < POLARITY_FLIP))
    idx = np.concatenate(ts)
    t = t0_us + idx.astype(np.int64) * 1000 + rng.integers(0, 1000, size=len(idx))
    t = np.minimum(t, t0_us + dur_us - 1)
    return t, np.concatenate(xs), np.concatenate(ys), np.concatenate(ps)


def _recording(seed: int, subject: int, lighting: str, rng_key: int):
    """Events (EVENT_DTYPE, sorted) and labels [(class 1..11, start, end)] of one recording."""
    rng = np.random.default_rng([seed, subject, rng_key, 104729])
    subj = _Subject(seed, subject)
    order = rng.permutation(len(CLASS_NAMES))
    t_cur = int(rng.integers(2_000_000, 20_000_000))  # dataset time does not start at 0
    rec_start = t_cur
    t_cur += int(rng.integers(300_000, 600_000))
    parts_t, parts_x, parts_y, parts_p, labels = [], [], [], [], []
    for cls in order:
        dur = int(rng.integers(1_600_000, 1_900_000))
        t, x, y, pol = _gesture_events(int(cls), t_cur, dur, subj, rng)
        parts_p.append(pol)
        parts_t.append(t)
        parts_x.append(x)
        parts_y.append(y)
        labels.append((int(cls) + 1, t_cur, t_cur + dur))
        t_cur += dur + int(rng.integers(250_000, 600_000))
    rec_end = t_cur
    span = rec_end - rec_start
    # sensor noise: uniform background activity + hot pixels
    w, h = SENSOR
    n_noise = rng.poisson(NOISE_RATE * LIGHTING_NOISE.get(lighting, 1.0) * span / 1000)
    parts_t.append(rng.integers(rec_start, rec_end, size=n_noise))
    parts_x.append(rng.uniform(0, w, size=n_noise))
    parts_y.append(rng.uniform(0, h, size=n_noise))
    parts_p.append(rng.random(n_noise) < 0.5)
    for _ in range(int(rng.integers(2, 7))):
        n_hot = rng.poisson(rng.uniform(*HOT_PIXEL_HZ) * span / 1e6)
        parts_t.append(rng.integers(rec_start, rec_end, size=n_hot))
        parts_x.append(np.full(n_hot, rng.integers(0, w) + 0.5))
        parts_y.append(np.full(n_hot, rng.integers(0, h) + 0.5))
        parts_p.append(np.full(n_hot, rng.random() < 0.5))
    t = np.concatenate(parts_t)
    x = np.floor(np.concatenate(parts_x))
    y = np.floor(np.concatenate(parts_y))
    pol = np.concatenate(parts_p)
    keep = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    t, x, y, pol = t[keep], x[keep], y[keep], pol[keep]
    order_t = np.argsort(t, kind="stable")
    ev = np.empty(len(t), dtype=EVENT_DTYPE)
    ev["t"] = t[order_t]
    ev["x"] = x[order_t]
    ev["y"] = y[order_t]
    ev["p"] = pol[order_t]
    # make sure every label lies inside [first event, last event]
    if ev["t"][0] > labels[0][1] or ev["t"][-1] < labels[-1][2]:  # pragma: no cover - vanishingly rare
        raise RuntimeError("synthetic recording does not cover its labels")
    return ev, labels


def plan(per_class: int | None = None, subjects: int | None = None) -> dict:
    """Which (subject, lighting) recordings make up the set, and the train/test subjects."""
    per_class = DEFAULT_PER_CLASS if per_class is None else int(per_class)
    if per_class < 2:
        raise UsageError(f"--per-class {per_class}: need at least 2 (one train and one test recording)")
    n_subj = max(2, math.ceil(per_class / LIGHTINGS_PER_SUBJECT)) if subjects is None else int(subjects)
    if n_subj < 2:
        raise UsageError(f"subjects={n_subj}: need at least 2 (train and test subjects are disjoint)")
    if n_subj > per_class:
        raise UsageError(f"subjects={n_subj} > per-class {per_class}: every subject needs a recording")
    base, rem = divmod(per_class, n_subj)
    if base + (1 if rem else 0) > len(LIGHTINGS):
        raise UsageError(
            f"per-class {per_class} with {n_subj} subjects needs more than {len(LIGHTINGS)} lightings per subject"
        )
    n_test = min(n_subj - 1, max(1, round(n_subj * TEST_FRACTION)))
    recs = []
    for s in range(1, n_subj + 1):
        k = base + (1 if s - 1 < rem else 0)
        for j in range(k):
            recs.append((s, LIGHTINGS[j], j))
    test_subjects = list(range(n_subj - n_test + 1, n_subj + 1))
    return {
        "per_class": per_class,
        "subjects": n_subj,
        "train_subjects": list(range(1, n_subj - n_test + 1)),
        "test_subjects": test_subjects,
        "recordings": recs,
    }


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Refuse an output directory we must not or cannot write, before writing anything."""
    out = Path(out_dir)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a directory")
        if any(out.iterdir()):
            raise UsageError(f"--out {out}: directory exists and is not empty; refusing to overwrite")
    anc = out.parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir() or not os.access(anc, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: cannot create files under {anc} (not writable)")
    return out


def generate(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    per_class: int | None = None,
    subjects: int | None = None,
) -> Path:
    """Write a synthetic DVS128 Gesture style set to ``out_dir`` and return its path.

    ``per_class``: samples per class in total (= recordings; default 32 -> 24 train + 8 test),
    ``subjects``: number of subjects (default: 4 lighting conditions per subject); the last
    ~20% of subjects (the release's 288/1464) form the test split. Deterministic in ``seed``.
    The directory is built under a temporary name and renamed into place when complete.
    """
    out = check_out_dir(out_dir)
    p = plan(per_class, subjects)
    t_start = time.perf_counter()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create it: {exc.strerror or exc}") from None
    try:
        os.chmod(tmp, 0o755)
        train, test, recs = [], [], []
        n_events = 0
        for subject, lighting, j in p["recordings"]:
            ev, labels = _recording(seed, subject, lighting, j)
            name = f"user{subject:02d}_{lighting}"
            (tmp / f"{name}.aedat").write_bytes(
                encode_aedat(ev, header_extra=[f"#Generator: snnbench synth v{GENERATOR_VERSION} seed={seed}"])
            )
            write_labels(tmp / f"{name}_labels.csv", labels)
            (test if subject in p["test_subjects"] else train).append(f"{name}.aedat")
            recs.append({"file": f"{name}.aedat", "subject": subject, "lighting": lighting,
                         "events": int(len(ev)), "samples": len(labels)})
            n_events += len(ev)
        write_trial_list(tmp / "trials_to_train.txt", train)
        write_trial_list(tmp / "trials_to_test.txt", test)
        n_cls = len(CLASS_NAMES)
        manifest = {
            "generator": "bench.data.synth",
            "version": GENERATOR_VERSION,
            "seed": int(seed),
            "per_class": p["per_class"],
            "subjects": p["subjects"],
            "train_subjects": p["train_subjects"],
            "test_subjects": p["test_subjects"],
            "classes": list(CLASS_NAMES),
            "sensor": list(SENSOR),
            "samples": n_cls * len(recs),
            "train": n_cls * len(train),
            "test": n_cls * len(test),
            "events": int(n_events),
            "recordings": recs,
            "parameters": {
                "hand_rate_per_ms": HAND_RATE, "arm_rate_per_ms": ARM_RATE, "noise_rate_per_ms": NOISE_RATE,
                "lighting_noise": LIGHTING_NOISE, "gesture_us": [1_600_000, 1_900_000],
                "lightings_per_subject": LIGHTINGS_PER_SUBJECT,
            },
            "seconds": round(time.perf_counter() - t_start, 3),
        }
        (tmp / "synth.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
