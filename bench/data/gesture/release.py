"""Write a realistic synthetic DVS128 Gesture release (the ``--kind realistic`` set).

Same layout and call shape as :func:`bench.data.synth.generate`: one AEDAT 3.1 recording per
(subject, lighting) holding one ~6 s sample of each of the 11 classes in random order, its
``_labels.csv``, ``trials_to_train.txt`` / ``trials_to_test.txt`` (the last ~20 % of the
subjects test, as the release's 24-29 of 29) and a ``synth.json`` manifest.

Each recording: the subject's articulated body (:mod:`bench.data.gesture.body`) rendered as
intensity every millisecond (:mod:`bench.data.gesture.render`) and seen by a DVS pixel array
(:mod:`bench.data.gesture.dvs`) under the recording's lighting.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bench.data.aedat import EVENT_DTYPE, encode_aedat
from bench.data.gesture.body import Subject, pose_track
from bench.data.gesture.dvs import PixelParams, Sensor, lighting
from bench.data.gesture.render import SENSOR, background, render_block
from bench.data.labels import CLASS_NAMES, write_labels, write_trial_list
from bench.data.synth import LIGHTINGS, check_out_dir, plan as _plan
from bench.errors import UsageError

# 3: a partial gesture's dip falls where it would in a 6 s gesture; 4: subjects stand at a new
# place in each recording and shift between gestures, wider spread of place and distance,
# a height per subject and gesture for the two-handed gestures in front of the body
GENERATOR_VERSION = 4
DEFAULT_PER_CLASS = 122  # the release: 122 recordings of 29 subjects, 1,342 samples
DEFAULT_SUBJECTS = 29
DEFAULT_GESTURE_S = 6.0
MIN_GESTURE_S, MAX_GESTURE_S = 1.6, 30.0
DT_US = 1000  # render / pixel step
BLOCK = 32  # steps rendered at once
LEAD_S = 0.5  # the gesture's motion starts this long before its label
# Placement (generator v4): each recording is a separate trial, the subject steps up anew
SESSION_SHIFT_PX = (6.0, 4.0)  # per recording: neck moved U(-x, x), U(-y, y) px
SESSION_SCALE = 0.07  # per recording: distance (scale) x U(1 - this, 1 + this)
TRIAL_SHIFT_PX = (2.5, 1.5)  # per gesture: body offset N(0, sx), N(0, sy) px (weight shifts, a step)


def placement(seed: int, subject: int, key: int, n_gestures: int) -> tuple[float, float, float, list[tuple[float, float]]]:
    """Where the subject stands in recording ``key``: ``(dx, dy, scale_factor, shifts)``, the
    recording's neck offset (px), distance factor and per-gesture body offsets (px).

    Drawn from their own stream (seed, subject, key), so the rest of the recording (timeline,
    motion, pixels) is drawn as it would be without them.
    """
    r = np.random.default_rng([seed, subject, key, 0x9A7E])
    dx = float(r.uniform(-SESSION_SHIFT_PX[0], SESSION_SHIFT_PX[0]))
    dy = float(r.uniform(-SESSION_SHIFT_PX[1], SESSION_SHIFT_PX[1]))
    f = float(r.uniform(1.0 - SESSION_SCALE, 1.0 + SESSION_SCALE))
    sh = r.normal(0.0, 1.0, size=(n_gestures, 2)) * np.array(TRIAL_SHIFT_PX)
    return dx, dy, f, [(float(a), float(b)) for a, b in sh]


def placed_subject(subj: Subject, dx: float, dy: float, f: float) -> Subject:
    """``subj`` moved by (dx, dy) px and f times nearer (the neck's height follows the scale as
    in :meth:`Subject.draw`)."""
    s = subj.scale * f
    x, y = subj.neck
    return dataclasses.replace(subj, scale=s, neck=(x + dx, y + dy + 12.0 * (s - subj.scale)))


def plan(per_class: int | None = None, subjects: int | None = None) -> dict:
    """Recordings (subject, lighting) and split; defaults: the release's 29 subjects, 122 recordings."""
    if per_class is None and subjects is None:
        per_class, subjects = DEFAULT_PER_CLASS, DEFAULT_SUBJECTS
    elif per_class is None:
        per_class = max(2, round(int(subjects) * DEFAULT_PER_CLASS / DEFAULT_SUBJECTS))
    p = _plan(per_class, subjects)
    # lightings rotate with the subject, so a set with few recordings per subject still has
    # every lighting (the stylised plan gives every subject's first recording the same one)
    n = len(LIGHTINGS)
    p["recordings"] = [(s, LIGHTINGS[(s - 1 + j) % n], j) for s, _, j in p["recordings"]]
    return p


def recording(seed: int, subject: int, lighting_name: str, key: int, *,
              gesture_s: float = DEFAULT_GESTURE_S, params: PixelParams | None = None
              ) -> tuple[np.ndarray, list[tuple[int, int, int]], dict]:
    """Events (EVENT_DTYPE, time-sorted), labels [(class 1..11, start_us, end_us)] and facts."""
    rng = np.random.default_rng([seed, subject, key, 0xD5128])
    dx, dy, f, shifts = placement(seed, subject, key, len(CLASS_NAMES))
    subj = placed_subject(Subject.draw(seed, subject), dx, dy, f)
    light = lighting(lighting_name, rng)
    params = params or PixelParams()
    order = rng.permutation(len(CLASS_NAMES))
    t_start_us = int(rng.integers(2_000_000, 20_000_000))  # dataset time does not start at 0
    # timeline (seconds from the recording start)
    segs, t = [], float(rng.uniform(0.6, 1.2))
    spans = []  # each gesture's length (with its lead-in) had it been drawn at the default 6 s
    for cls in order:
        u = float(rng.uniform(0.92, 1.08))
        dur = gesture_s * u
        segs.append((int(cls), t, t + dur))
        spans.append(DEFAULT_GESTURE_S * u + LEAD_S)
        t += dur + float(rng.uniform(0.8, 1.6))
    total_s = t
    K = int(np.ceil(total_s * 1e6 / DT_US))
    t_s = np.arange(K) * (DT_US * 1e-6)
    # the body starts each gesture LEAD_S before its label: the label starts once the gesture
    # is under way (the ramp from rest, <= 0.5 s, is over), as an annotator marks it
    pose = pose_track(subj, t_s, [(c, a - LEAD_S, b) for c, a, b in segs], rng, dip_spans_s=spans,
                      shifts_px=shifts)
    bg = background(rng, (SENSOR[1], SENSOR[0]))
    sensor = Sensor(params, light, rng, (SENSOR[1], SENSOR[0]), DT_US)
    sensor.set_background(bg)
    first, (y0, y1, x0, x1) = render_block(bg, pose, subj, 0, 1)
    frame0 = bg.astype(np.float32).copy()
    frame0[y0:y1, x0:x1] = first[0]
    sensor.start(frame0, t_start_us)
    for i0 in range(1, K, BLOCK):
        i1 = min(K, i0 + BLOCK)
        frames, box = render_block(bg, pose, subj, i0, i1)
        sensor.step_block(frames, box, t_start_us + i0 * DT_US)
    tm, gm, onm = sensor.drain()
    t_end_us = t_start_us + K * DT_US
    tn, gn, onn = sensor.noise(t_start_us, t_end_us)
    tt = np.concatenate([tm, tn])
    gg = np.concatenate([gm, gn])
    pp = np.concatenate([onm, onn])
    keep = (tt >= t_start_us) & (tt < t_end_us)
    tt, gg, pp = tt[keep], gg[keep], pp[keep]
    o = np.lexsort((gg, tt))
    ev = np.empty(len(o), EVENT_DTYPE)
    W = SENSOR[0]
    ev["t"] = tt[o]
    ev["x"] = gg[o] % W
    ev["y"] = gg[o] // W
    ev["p"] = pp[o]
    labels = [(c + 1, t_start_us + int(round(a * 1e6)), t_start_us + int(round(b * 1e6))) for c, a, b in segs]
    if len(ev) == 0 or ev["t"][0] > labels[0][1] or ev["t"][-1] < labels[-1][2]:  # pragma: no cover
        raise RuntimeError("synthetic recording does not cover its labels")
    facts = {"lighting": asdict(light), "subject": asdict(subj), "motion_events": int(len(tm)),
             "noise_events": int(len(tn)), "seconds": round(total_s, 3)}
    return ev, labels, facts


def _one(args: tuple) -> tuple[np.ndarray, list, dict]:
    seed, (subject, light_name, j), gesture_s = args
    return recording(seed, subject, light_name, j, gesture_s=gesture_s)


def _recordings(seed: int, recs: list, gesture_s: float, workers: int):
    """The recordings of ``recs`` in order, computed in ``workers`` processes (1: in this one)."""
    jobs = [(seed, r, gesture_s) for r in recs]
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_one, jobs)
        return
    import multiprocessing as mp

    # fork where there is one: no resource-tracker process outliving the run (spawn starts one)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(min(int(workers), len(jobs))) as pool:
        yield from pool.imap(_one, jobs)


def encode_recording(ev: np.ndarray, seed: int) -> bytes:
    """The AEDAT 3.1 file of a recording's events, as :func:`generate` writes it."""
    return encode_aedat(ev, header_extra=[f"#Generator: snnbench gesture (realistic) v{GENERATOR_VERSION} seed={seed}"])


def generate(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    per_class: int | None = None,
    subjects: int | None = None,
    gesture_s: float | None = None,
    workers: int = 1,
) -> Path:
    """Write a realistic synthetic DVS128 Gesture set to ``out_dir`` and return its path.

    ``per_class``: recordings (= samples per class, default 122 as the release),
    ``subjects``: number of subjects (default 29), ``gesture_s``: mean gesture length in
    seconds (default 6, as the release; >= 1.6 so the network's 1.5 s window fits).
    ``workers`` > 1 computes recordings in that many processes (the files are the same).
    Deterministic in ``seed`` (byte-identical files). Built under a temporary name and
    renamed into place when complete.
    """
    if int(workers) < 1:
        raise UsageError(f"--workers {workers}: must be >= 1")
    gesture_s = DEFAULT_GESTURE_S if gesture_s is None else float(gesture_s)
    if not (MIN_GESTURE_S <= gesture_s <= MAX_GESTURE_S):
        raise UsageError(f"--gesture-s {gesture_s}: must be in [{MIN_GESTURE_S}, {MAX_GESTURE_S}] s")
    out = check_out_dir(out_dir)
    p = plan(per_class, subjects)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create it: {exc.strerror or exc}") from None
    try:
        os.chmod(tmp, 0o755)
        train, test, recs = [], [], []
        n_events = 0
        for (subject, light_name, j), (ev, labels, facts) in zip(
                p["recordings"], _recordings(seed, p["recordings"], gesture_s, workers)):
            name = f"user{subject:02d}_{light_name}"
            (tmp / f"{name}.aedat").write_bytes(encode_recording(ev, seed))
            write_labels(tmp / f"{name}_labels.csv", labels)
            (test if subject in p["test_subjects"] else train).append(f"{name}.aedat")
            recs.append({"file": f"{name}.aedat", "subject": subject, "lighting": light_name,
                         "events": int(len(ev)), "samples": len(labels), **facts})
            n_events += len(ev)
        write_trial_list(tmp / "trials_to_train.txt", train)
        write_trial_list(tmp / "trials_to_test.txt", test)
        n_cls = len(CLASS_NAMES)
        manifest = {
            "generator": "bench.data.gesture",
            "kind": "realistic",
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
            "gesture_s": gesture_s,
            "recordings": recs,
            "parameters": {"pixel": asdict(PixelParams()), "dt_us": DT_US},
        }
        (tmp / "synth.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
