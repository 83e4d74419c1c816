"""Articulated upper body and the 11 DVS128 Gesture motions (2-D, image coordinates).

Image x to the right, y down, pixels on the 128 x 128 sensor; the subject faces the camera,
so the subject's right arm is on the image's left. A pose is a set of joints (neck, head,
shoulders, elbows, wrists, hand tips) at every render step; :func:`pose_track` returns them as
``(K, 2)`` arrays for a whole recording (gestures, transitions and pauses).

The gestures are driven by wrist paths in body units (pixels at scale 1, relative to the
shoulder of the moving arm or to the chest centre); elbows follow from two-link inverse
kinematics (upper arm and forearm lengths of the subject), bending outward and down as a
person's do. Times are seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Skeleton at scale 1 (pixels), relative to the neck base.
SHOULDER_HALF = 19.0
SHOULDER_DROP = 4.0
HEAD_UP = 21.0
HEAD_R = 10.5
NECK_Y = 50.0  # neck base in the image (px) for a subject of scale 1, no offset
UPPER_ARM = 27.0
FOREARM = 25.0
HAND_LEN = 7.0
TORSO_R = 19.0
ARM_R = (4.2, 3.4, 4.2)  # upper arm, forearm, hand half-widths
CHEST = (0.0, 30.0)  # chest centre relative to the neck base
# Where and how subjects stand and work (generator v4; docs/data.md "Per subject"):
NECK_X_SPREAD = 14.0  # per subject: neck base +- this (px) horizontally about the centre
NECK_Y_SPREAD = 8.0  # per subject: +- this (px) vertically
HAND_HEIGHT = (-8.0, 6.0)  # per subject: height (px at scale 1, + = lower) of clap / roll / drums
HAND_HEIGHT_TRIAL = 3.0  # per gesture: +- this (px at scale 1) about the subject's height
CLAP_RISE = 0.2  # the clapping hands part on arcs about the elbows: rise (px) per px of gap
ARM_LENGTH = (0.9, 1.1)  # per subject: arm length relative to the body (people's proportions)
WAVE_ELBOW = (5.0, -8.0, 6.0)  # per subject: waving elbow +-5 px outward, -8..+6 px down (scale 1)
GUITAR_HAND = (5.0, 6.0)  # per subject: the guitar's neck hand +-5 px outward, +-6 px down (scale 1)

# Class indices (0..10, file class - 1), DVS128 Gesture order.
HAND_CLAP, RIGHT_WAVE, LEFT_WAVE, RIGHT_CW, RIGHT_CCW, LEFT_CW, LEFT_CCW, ARM_ROLL, AIR_DRUMS, AIR_GUITAR, OTHER = range(11)


@dataclass(frozen=True)
class Subject:
    """One person: body size and place in the image, how they move.

    ``scale``: distance to the camera (body size, 1 = reference); ``neck``: neck base (px);
    ``tempo``: multiplies every gesture frequency; ``amplitude``: multiplies gesture sizes;
    ``idle_sway``: how much the idle arm moves along (px); ``hand_height``: where in front of the
    body this person claps, rolls and drums (px at scale 1 below the usual place; negative =
    higher); ``arm``: arm length relative to the body (upper arm and forearm);
    ``wave_elbow``: where this person holds the elbow of a waving arm, relative to the usual
    place (px at scale 1; x outward, y down); ``guitar_hand``: the same for the hand holding the
    guitar's neck; ``sloppiness``: size of the slow
    random wander added to the wrist paths (px); ``partial``: probability that a gesture is
    done partially (a pause or a smaller stretch in the middle); ``skin``, ``shirt``, ``sleeve``:
    relative reflectance of hands/forearms, torso and upper arms; ``lean``: head/torso sway (px).
    """

    index: int
    scale: float
    neck: tuple[float, float]
    tempo: float
    amplitude: float
    idle_sway: float
    sloppiness: float
    partial: float
    skin: float
    shirt: float
    sleeve: float
    lean: float
    roll_tilt: float
    hand_height: float = 0.0
    arm: float = 1.0
    wave_elbow: tuple[float, float] = (0.0, 0.0)
    guitar_hand: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def draw(cls, seed: int, index: int) -> "Subject":
        r = np.random.default_rng([seed, index, 0x5B1EC7])
        # distance: the subjects fill the frame as in the release, nearer or farther (v4: from
        # U(1.1, 1.5)); where they stand: v4 widened from +-9 / +-6 px
        scale = float(r.uniform(1.0, 1.5))
        shirt = float(r.choice([0.12, 0.2, 0.35, 0.55, 0.8]) * r.uniform(0.85, 1.15))
        short_sleeves = r.random() < 0.4
        skin = float(r.uniform(0.45, 0.85))
        return cls(
            index=index,
            scale=scale,
            neck=(float(64.0 + r.uniform(-NECK_X_SPREAD, NECK_X_SPREAD)),
                  float(NECK_Y - 12.0 + 12.0 * scale + r.uniform(-NECK_Y_SPREAD, NECK_Y_SPREAD))),
            tempo=float(r.uniform(0.8, 1.25)),
            amplitude=float(r.uniform(0.8, 1.2)),
            idle_sway=float(r.uniform(0.0, 3.0)),
            sloppiness=float(r.uniform(0.5, 3.5)),
            partial=float(r.uniform(0.0, 0.25)),
            skin=skin,
            shirt=shirt,
            sleeve=skin if short_sleeves else shirt,
            lean=float(r.uniform(0.3, 2.0)),
            roll_tilt=float(r.uniform(-0.25, 0.25)),
            hand_height=float(r.uniform(*HAND_HEIGHT)),
            arm=float(r.uniform(*ARM_LENGTH)),
            wave_elbow=(float(r.uniform(-WAVE_ELBOW[0], WAVE_ELBOW[0])), float(r.uniform(*WAVE_ELBOW[1:]))),
            guitar_hand=(float(r.uniform(-GUITAR_HAND[0], GUITAR_HAND[0])),
                         float(r.uniform(-GUITAR_HAND[1], GUITAR_HAND[1]))),
        )


def _smooth_noise(rng: np.random.Generator, t_s: np.ndarray, hz: float, n: int = 2) -> np.ndarray:
    """A smooth random signal (K, n), unit RMS, band-limited to about ``hz`` (sum of sines)."""
    out = np.zeros((len(t_s), n))
    for j in range(n):
        for _ in range(4):
            f = hz * rng.uniform(0.3, 1.0)
            out[:, j] += np.sin(2 * math.pi * f * t_s + rng.uniform(0, 2 * math.pi))
    return out / math.sqrt(2.0)


def ik_elbow(shoulder: np.ndarray, wrist: np.ndarray, a: float, b: float, outward: float,
             side: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Elbow positions of a two-link arm (upper arm ``a``, forearm ``b``) reaching ``wrist``.

    The wrist is pulled in to the reachable annulus. Of the two solutions (the elbow turned
    +alpha or -alpha from the shoulder-wrist line) one is taken for the whole stretch, so the
    elbow never jumps: ``side`` +1 / -1 picks it; ``None`` picks the one that is, on average
    over the stretch, more outward (``outward`` = -1 image left, +1 image right) and lower.
    Returns ``(elbow, wrist)`` as (K, 2) arrays.
    """
    d = wrist - shoulder
    dist = np.hypot(d[:, 0], d[:, 1])
    lo, hi = abs(a - b) + 1e-3, a + b - 1e-3
    dc = np.clip(dist, lo, hi)
    u = d / np.maximum(dist, 1e-9)[:, None]
    wrist = shoulder + u * dc[:, None]
    cos_al = np.clip((a * a + dc * dc - b * b) / (2 * a * dc), -1.0, 1.0)
    al = np.arccos(cos_al)
    phi = np.arctan2(u[:, 1], u[:, 0])
    e1 = shoulder + a * np.stack([np.cos(phi + al), np.sin(phi + al)], axis=1)
    e2 = shoulder + a * np.stack([np.cos(phi - al), np.sin(phi - al)], axis=1)
    if side is None:
        score = lambda e: outward * (e[:, 0] - shoulder[:, 0]) + 1.2 * (e[:, 1] - shoulder[:, 1])  # noqa: E731
        side = 1.0 if float(np.mean(score(e1) - score(e2))) >= 0 else -1.0
    return (e1 if side > 0 else e2), wrist


def wave_elbow(subj: Subject, o: float) -> np.ndarray:
    """Where a waving arm's elbow is held, relative to its shoulder (px at scale 1): out to the
    side (``o`` = -1 image left, +1 right) about shoulder height, moved by the subject's habit."""
    return np.array([o * (16.0 + subj.wave_elbow[0]), 6.0 + subj.wave_elbow[1]])


def _ease(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def gesture_wrists(cls: int, t_s: np.ndarray, subj: Subject, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wrist targets of one gesture, in body units relative to each shoulder.

    Returns ``(right, left, right_active, left_active)``: (K, 2) offsets from the right and
    left shoulder (scale 1) and (K,) weights (1 = the arm does the gesture, 0 = at rest).
    ``t_s`` is time since the gesture started (s).
    """
    K = len(t_s)
    tempo = subj.tempo * rng.uniform(0.9, 1.1)
    amp = subj.amplitude * rng.uniform(0.88, 1.12)
    ph = rng.uniform(0.0, 1.0)
    # where in front of the body this trial's two-handed work happens (clap, roll, drums)
    hh = subj.hand_height + rng.uniform(-HAND_HEIGHT_TRIAL, HAND_HEIGHT_TRIAL)
    one = np.ones(K)
    zero = np.zeros(K)
    rest_r = np.stack([-6.0 * one, 48.0 * one], axis=1)
    rest_l = np.stack([6.0 * one, 48.0 * one], axis=1)
    # chest centre relative to each shoulder
    c_r = np.array([SHOULDER_HALF + CHEST[0], CHEST[1] - SHOULDER_DROP])
    c_l = np.array([-SHOULDER_HALF + CHEST[0], CHEST[1] - SHOULDER_DROP])
    tw = 2 * math.pi

    if cls == HAND_CLAP:
        f = 2.2 * tempo
        s = 0.5 * (1 - np.cos(tw * (f * t_s + ph)))  # 0 = hands together, 1 = apart
        gap = 3.0 + 17.0 * amp * s
        # the hands part on arcs about the elbows (forearms turning outward): they rise a little
        bob = 1.5 * np.sin(tw * (f * t_s + ph)) - CLAP_RISE * gap
        right = c_r + np.stack([-gap, 4.0 + hh + bob], axis=1)
        left = c_l + np.stack([gap, 4.0 + hh + bob], axis=1)
        return right, left, one, one
    if cls == ARM_ROLL:
        # forearms rolling around each other: the hands orbit a common centre half a turn apart;
        # seen from the front, the orbit is a flat ellipse about as wide as a clap
        f = 1.5 * tempo
        th = tw * (f * t_s + ph)
        rx, ry = 11.0 * amp, 6.0 * amp
        tilt = subj.roll_tilt
        ox, oy = rx * np.cos(th), ry * np.sin(th)
        ox, oy = ox * math.cos(tilt) - oy * math.sin(tilt), ox * math.sin(tilt) + oy * math.cos(tilt)
        right = c_r + np.stack([-9.0 + ox, 4.0 + hh + oy], axis=1)
        left = c_l + np.stack([9.0 - ox, 4.0 + hh - oy], axis=1)
        return right, left, one, one
    if cls in (RIGHT_WAVE, LEFT_WAVE):
        # forearm up, swinging side to side about the elbow
        o = -1.0 if cls == RIGHT_WAVE else 1.0
        f = 2.0 * tempo
        swing = 0.55 * amp * np.sin(tw * (f * t_s + ph))
        elbow = wave_elbow(subj, o)
        ang = o * 0.2 + swing
        w = elbow + FOREARM * subj.arm * np.stack([np.sin(ang), -np.cos(ang)], axis=1)
        return (w, rest_l, one, zero) if cls == RIGHT_WAVE else (rest_r, w, zero, one)
    if cls in (RIGHT_CW, RIGHT_CCW, LEFT_CW, LEFT_CCW):
        # the whole arm turning a big circle in the frontal plane
        right_arm = cls in (RIGHT_CW, RIGHT_CCW)
        o = -1.0 if right_arm else 1.0
        direction = 1.0 if cls in (RIGHT_CW, LEFT_CW) else -1.0  # y down: +angle is clockwise on screen
        # the arm nearly straight (0.75 of its reach), turning about a point just out from
        # the shoulder; the hand leaves the frame on the outside for the larger subjects
        f = 0.95 * tempo
        th = tw * ph + direction * tw * f * t_s
        r = min(0.75 * amp, 0.85) * (UPPER_ARM + FOREARM) * subj.arm
        w = np.array([o * 6.0, 4.0]) + r * np.stack([np.cos(th), np.sin(th)], axis=1)
        return (w, rest_l, one, zero) if right_arm else (rest_r, w, zero, one)
    if cls == AIR_DRUMS:
        # alternate strokes: fast down (the hit), slower up
        f = 2.4 * tempo
        def stroke(p):
            x = np.mod(p, 1.0)
            return np.where(x < 0.35, (x / 0.35) ** 2, 1.0 - _ease((x - 0.35) / 0.65))
        right = c_r + np.stack([-16.0 * one, 12.0 + hh - 14.0 * amp * (1 - stroke(f * t_s + ph))], axis=1)
        left = c_l + np.stack([16.0 * one, 12.0 + hh - 14.0 * amp * (1 - stroke(f * t_s + ph + 0.5))], axis=1)
        return right, left, one, one
    if cls == AIR_GUITAR:
        # left hand holds the neck out to the side, fingers moving; right hand strums at the belly
        f = 3.2 * tempo
        strum = 7.0 * amp * np.sin(tw * (f * t_s + ph))
        right = c_r + np.stack([-4.0 + 0.3 * strum, 20.0 + strum], axis=1)
        fret = 1.5 * _smooth_noise(rng, t_s, 3.0, 2)
        left = np.array([24.0 + subj.guitar_hand[0], 8.0 + subj.guitar_hand[1]]) + fret
        return right, left, one, one
    if cls == OTHER:
        # something else: slow, random reaching with one or both arms
        # something else: slow, random movements of one or both arms, each about a place the
        # other gestures also use (in front of the chest, up by the head, out to the side, at
        # the belly), so "other" has no place of its own
        which = rng.integers(0, 3)
        places = np.array([[7.0, 32.0], [-16.0, -12.0], [-30.0, 16.0], [12.0, 44.0]])
        pr, pl = places[rng.integers(0, 4)], places[rng.integers(0, 4)]
        wr = pr * [1.0, 1.0] + 9.0 * amp * _smooth_noise(rng, t_s, 1.2 * tempo, 2)
        wl = pl * [-1.0, 1.0] + 9.0 * amp * _smooth_noise(rng, t_s, 1.2 * tempo, 2)
        ar = one if which in (0, 2) else zero
        al = one if which in (1, 2) else zero
        return wr, wl, ar, al
    raise ValueError(f"class {cls} not in 0..10")


def body_shift(t_s: np.ndarray, segments: list[tuple[int, float, float]],
               shifts_px: list[tuple[float, float]]) -> np.ndarray:
    """(K, 2) offset (px) of the whole body at times ``t_s``: ``shifts_px[k]`` during segment k,
    eased from one to the next over the pause between two segments (before the first: the first)."""
    sh = np.asarray(shifts_px, dtype=np.float64).reshape(len(segments), 2)
    off = np.tile(sh[0], (len(t_s), 1))
    for k in range(1, len(segments)):
        a, b = segments[k - 1][2], segments[k][1]
        w = _ease((t_s - a) / max(b - a, 1e-6)) if b > a else (t_s >= b).astype(np.float64)
        off += w[:, None] * (sh[k] - sh[k - 1])
    return off


def _angle(v: np.ndarray) -> np.ndarray:
    return np.arctan2(v[:, 1], v[:, 0])


def _dir(th: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(th), np.sin(th)], axis=1)


@dataclass
class Pose:
    """Joint tracks (K, 2) in image pixels for one stretch of time."""

    neck: np.ndarray
    head: np.ndarray
    hip: np.ndarray
    shoulder_r: np.ndarray
    shoulder_l: np.ndarray
    elbow_r: np.ndarray
    elbow_l: np.ndarray
    wrist_r: np.ndarray
    wrist_l: np.ndarray
    tip_r: np.ndarray
    tip_l: np.ndarray


def pose_track(subj: Subject, t_s: np.ndarray, segments: list[tuple[int, float, float]],
               rng: np.random.Generator, dip_spans_s: list[float] | None = None,
               shifts_px: list[tuple[float, float]] | None = None) -> Pose:
    """Joint tracks over a whole recording at times ``t_s`` (s).

    ``segments``: (class, start_s, end_s) of each gesture; outside them the arms rest (with
    a little fidgeting); at each gesture's start and end the arms move between rest and the
    gesture over 0.25-0.5 s. ``dip_spans_s``: per segment, the length (s) over which the
    centre of a partial gesture's dip is drawn (0.3-0.8 of it, from the segment's start);
    default the segment's own length. A recording of short gestures passes the lengths its
    gestures would have at the release's 6 s, so a dip falls at the same time from the
    gesture's start as in a 6 s gesture (mostly after the network's 1.5 s window) and the
    start of a short gesture is drawn like that of a long one. ``shifts_px``: per segment, where
    the subject stands during it (px, added to the neck): between two gestures the body moves
    from one place to the next over the pause (the subject shifts their weight or steps);
    constant during a gesture; default no shifts.
    """
    K = len(t_s)
    s = subj.scale
    if dip_spans_s is not None and len(dip_spans_s) != len(segments):
        raise ValueError(f"{len(dip_spans_s)} dip spans for {len(segments)} segments")
    if shifts_px is not None and len(shifts_px) != len(segments):
        raise ValueError(f"{len(shifts_px)} shifts for {len(segments)} segments")
    sway = subj.lean * _smooth_noise(rng, t_s, 0.4, 2)
    neck = np.array(subj.neck) + sway * np.array([1.0, 0.4])
    if shifts_px is not None and len(segments):
        neck = neck + body_shift(t_s, segments, shifts_px)
    head = neck + np.array([0.0, -HEAD_UP * s]) + 0.8 * subj.lean * _smooth_noise(rng, t_s, 0.7, 2)
    hip = neck + np.array([0.0, 90.0 * s])
    sh_r = neck + np.array([-SHOULDER_HALF * s, SHOULDER_DROP * s])
    sh_l = neck + np.array([SHOULDER_HALF * s, SHOULDER_DROP * s])
    A, B = UPPER_ARM * s * subj.arm, FOREARM * s * subj.arm
    # rest pose (arms hanging), fidgeting with the idle sway
    w_r = sh_r + s * (np.tile([-6.0, 48.0], (K, 1)) + subj.idle_sway * _smooth_noise(rng, t_s, 0.8, 2))
    w_l = sh_l + s * (np.tile([6.0, 48.0], (K, 1)) + subj.idle_sway * _smooth_noise(rng, t_s, 0.8, 2))
    e_r, w_r = ik_elbow(sh_r, w_r, A, B, -1.0, side=1.0)
    e_l, w_l = ik_elbow(sh_l, w_l, A, B, 1.0, side=-1.0)
    # joint angles (upper arm from the shoulder, forearm from the elbow), blended between rest
    # and gesture angle by angle, each unwrapped in time: the arm moves continuously
    ua_r, fa_r = _angle(e_r - sh_r), _angle(w_r - e_r)
    ua_l, fa_l = _angle(e_l - sh_l), _angle(w_l - e_l)
    wander = subj.sloppiness * _smooth_noise(rng, t_s, 1.5, 4)
    for k, (cls, a, b) in enumerate(segments):
        i0, i1 = np.searchsorted(t_s, [a, b])
        if i1 <= i0:
            continue
        tt = t_s[i0:i1] - a
        gr, gl, ar, al = gesture_wrists(cls, tt, subj, rng)
        ramp_in = rng.uniform(0.25, 0.5)
        ramp_out = rng.uniform(0.25, 0.5)
        env = _ease(tt / ramp_in) * _ease((b - a - tt) / ramp_out)
        if rng.random() < subj.partial:  # a sloppy/partial stretch: the arm drops part-way
            c = rng.uniform(0.3, 0.8) * ((b - a) if dip_spans_s is None else dip_spans_s[k])
            wdt = rng.uniform(0.3, 0.9)
            env = env * (1.0 - 0.7 * np.exp(-0.5 * ((tt - c) / (wdt / 2)) ** 2))
        sl = slice(i0, i1)
        for S, g, act, wn, UA, FA, o, wave in ((sh_r, gr, ar, wander[sl, :2], ua_r, fa_r, -1.0, cls == RIGHT_WAVE),
                                               (sh_l, gl, al, wander[sl, 2:], ua_l, fa_l, 1.0, cls == LEFT_WAVE)):
            wg = S[sl] + s * (g + wn)
            # arm circles keep the resting arm's bend (the arm turns as a whole)
            circle = cls in (RIGHT_CW, RIGHT_CCW, LEFT_CW, LEFT_CCW)
            eg, wg = ik_elbow(S[sl], wg, A, B, o, side=-o if circle else None)
            if wave:  # the waving forearm pivots about an elbow held out at shoulder height
                eg = S[sl] + s * wave_elbow(subj, o)
            w = act * env
            top = int(np.argmax(w))  # fully in the gesture (w = 1): where the turn count may change
            for R, target in ((UA, eg - S[sl]), (FA, wg - eg)):
                th = np.unwrap(_angle(target))
                # in: start from the rest angle's turn; out: end on it (no unwinding of circles)
                th[:top] += 2 * np.pi * np.round((R[i0] - th[0]) / (2 * np.pi))
                th[top:] += 2 * np.pi * np.round((R[i1 - 1] - th[-1]) / (2 * np.pi))
                R[sl] = R[sl] * (1 - w) + th * w
    el_r = sh_r + A * _dir(ua_r)
    wrist_r = el_r + B * _dir(fa_r)
    el_l = sh_l + A * _dir(ua_l)
    wrist_l = el_l + B * _dir(fa_l)

    def tip(el, wr):
        d = wr - el
        return wr + HAND_LEN * s * d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]

    return Pose(neck, head, hip, sh_r, sh_l, el_r, el_l, wrist_r, wrist_l, tip(el_r, wrist_r), tip(el_l, wrist_l))
