"""Generator v4: where the subjects stand and work (docs/data.md, "Placement").

The real release's 29 subjects stood where they stood: each recording (one lighting) is a
separate trial, so a subject is not at the same place in all of them, shifts between gestures,
and claps / rolls / drums at their own height. Expected values come from the motion model as
documented (a whole-body shift moves every joint by the shift; a height offset moves the hands
by offset x scale), not from this code's output.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.data.gesture import body, release
from bench.data.gesture.body import (AIR_DRUMS, ARM_ROLL, HAND_CLAP, RIGHT_WAVE, Subject, body_shift,
                                     gesture_wrists, pose_track)

DT_S = 1e-3


def _pose(subj: Subject, segments, shifts=None, seed: int = 5):
    total = max(b for _, _, b in segments) + 0.8
    t_s = np.arange(int(round(total / DT_S))) * DT_S
    return t_s, pose_track(subj, t_s, segments, np.random.default_rng(seed), shifts_px=shifts)


JOINTS = ("neck", "head", "hip", "shoulder_r", "shoulder_l", "elbow_r", "elbow_l", "wrist_r", "wrist_l", "tip_r", "tip_l")


def test_whole_body_stands_at_each_gestures_shift():
    """kills pose_track / body_shift mutants that shift only the neck (not the arms), use the
    previous gesture's shift during a gesture, or ease during a gesture instead of in the pause:
    with the same random stream, every joint during gesture k is the unshifted pose + shift k."""
    subj = Subject.draw(0, 2)
    segs = [(HAND_CLAP, 0.5, 2.5), (RIGHT_WAVE, 3.5, 5.5), (AIR_DRUMS, 6.2, 8.0)]
    shifts = [(3.0, -1.0), (-4.0, 2.0), (1.5, 1.5)]
    t_s, base = _pose(subj, segs)
    _, moved = _pose(subj, segs, shifts)
    for (_, a, b), (dx, dy) in zip(segs, shifts):
        m = (t_s >= a) & (t_s < b)
        for j in JOINTS:
            np.testing.assert_allclose(getattr(moved, j)[m] - getattr(base, j)[m],
                                       np.broadcast_to([dx, dy], (m.sum(), 2)), atol=1e-6, err_msg=j)


def test_body_moves_between_gestures_smoothly():
    """kills body_shift mutants that jump at the segment start (a jump fires the whole body's
    outline at once) or never reach the next place: across the pause the offset goes from the
    previous shift to the next, monotonically, in steps of well under a pixel per ms."""
    segs = [(HAND_CLAP, 0.5, 2.5), (RIGHT_WAVE, 3.5, 5.5)]
    t_s = np.arange(6000) * DT_S
    off = body_shift(t_s, segs, [(0.0, 0.0), (6.0, -3.0)])
    assert np.allclose(off[t_s < 2.5], [0.0, 0.0]) and np.allclose(off[t_s >= 3.5], [6.0, -3.0])
    dx = np.diff(off[:, 0])
    assert np.all(dx >= -1e-12) and dx.max() < 0.02  # 6 px over 1 s: eased, at most ~1.5x the mean step
    # half-way through the pause, half-way there (the smoothstep is symmetric)
    assert off[np.searchsorted(t_s, 3.0)] == pytest.approx([3.0, -1.5], abs=1e-6)


def test_shifts_must_match_segments():
    subj = Subject.draw(0, 1)
    with pytest.raises(ValueError, match="1 shifts for 2 segments"):
        pose_track(subj, np.arange(3000) * DT_S, [(HAND_CLAP, 0.2, 1.2), (RIGHT_WAVE, 1.5, 2.5)],
                   np.random.default_rng(0), shifts_px=[(1.0, 1.0)])


@pytest.mark.parametrize("cls", [HAND_CLAP, ARM_ROLL, AIR_DRUMS])
def test_two_handed_gestures_follow_the_subjects_hand_height(cls):
    """kills gesture_wrists mutants ignoring ``hand_height`` for clap, roll or drums: 5 px
    lower (at scale 1) moves both wrist targets down by 5 px, nothing else."""
    t_s = np.arange(1500) * DT_S
    subj = dataclasses.replace(Subject.draw(0, 2), hand_height=0.0)
    lo = dataclasses.replace(subj, hand_height=5.0)
    r0, l0, _, _ = gesture_wrists(cls, t_s, subj, np.random.default_rng(3))
    r1, l1, _, _ = gesture_wrists(cls, t_s, lo, np.random.default_rng(3))
    np.testing.assert_allclose(r1 - r0, np.broadcast_to([0.0, 5.0], r0.shape), atol=1e-9)
    np.testing.assert_allclose(l1 - l0, np.broadcast_to([0.0, 5.0], l0.shape), atol=1e-9)


def test_one_handed_gestures_ignore_the_hand_height():
    """The height is where the two hands work in front of the body; a wave is not moved."""
    t_s = np.arange(1500) * DT_S
    subj = dataclasses.replace(Subject.draw(0, 2), hand_height=0.0)
    r0, _, _, _ = gesture_wrists(RIGHT_WAVE, t_s, subj, np.random.default_rng(3))
    r1, _, _, _ = gesture_wrists(RIGHT_WAVE, t_s, dataclasses.replace(subj, hand_height=5.0), np.random.default_rng(3))
    np.testing.assert_array_equal(r0, r1)


def test_clapping_hands_rise_as_they_part():
    """kills a clap without the arc (CLAP_RISE dropped or its sign flipped): the hands part on
    arcs about the elbows, so at the widest gap they are higher (smaller y) than where they meet
    by CLAP_RISE x the change of gap (the bob term is zero at both ends of the stroke)."""
    t_s = np.arange(3000) * DT_S
    subj = Subject.draw(0, 2)
    r, l, _, _ = gesture_wrists(HAND_CLAP, t_s, subj, np.random.default_rng(4))
    gap = l[:, 0] - r[:, 0]
    i_apart, i_together = int(np.argmax(gap)), int(np.argmin(gap))
    rise = r[i_together, 1] - r[i_apart, 1]
    # the gap is measured between the wrists (half of it per hand)
    assert rise > 2.0
    assert rise == pytest.approx(body.CLAP_RISE * (gap[i_apart] - gap[i_together]) / 2, abs=0.1)


def test_placement_in_documented_ranges_and_own_stream():
    """kills placement mutants outside the documented ranges (per recording +-6 / +-4 px,
    scale x 0.93-1.07; per gesture N(0, 2.5 / 1.5 px)) or drawn without the key (every
    recording of a subject at the same place)."""
    draws = [release.placement(0, s, k, 11) for s in range(1, 30) for k in range(5)]
    d = np.array([(dx, dy, f) for dx, dy, f, _ in draws])
    assert np.all(np.abs(d[:, 0]) <= 6.0) and np.all(np.abs(d[:, 1]) <= 4.0)
    assert np.all((d[:, 2] >= 0.93) & (d[:, 2] <= 1.07))
    assert d[:, 0].std() > 2.0 and d[:, 2].std() > 0.02  # spread over the range (uniform: 3.5, 0.04)
    sh = np.array([x for *_, s in draws for x in s])
    assert sh[:, 0].std() == pytest.approx(2.5, rel=0.15) and sh[:, 1].std() == pytest.approx(1.5, rel=0.15)
    assert release.placement(0, 3, 0, 11) != release.placement(0, 3, 1, 11)
    assert release.placement(0, 3, 1, 11) == release.placement(0, 3, 1, 11)


def test_placed_subject_is_nearer_and_keeps_its_build():
    """A subject f times nearer is f times larger, its neck moved by the offset plus the height
    the scale gives in Subject.draw (12 px per unit of scale); nothing else changes."""
    subj = Subject.draw(0, 7)
    p = release.placed_subject(subj, 3.0, -2.0, 1.05)
    assert p.scale == pytest.approx(subj.scale * 1.05)
    assert p.neck == pytest.approx((subj.neck[0] + 3.0, subj.neck[1] - 2.0 + 12.0 * subj.scale * 0.05))
    assert dataclasses.replace(p, scale=subj.scale, neck=subj.neck) == subj


def test_waving_elbow_and_guitar_hand_follow_the_subjects_habit():
    """kills gesture_wrists / pose_track mutants ignoring ``wave_elbow`` or ``guitar_hand``:
    a right wave's wrist target moves with the elbow (2 px inward = image right for the right
    arm, 3 px down), the guitar's neck hand by its own offset (image right = outward for the left
    arm); and the posed waving upper arm points at where the habit puts the elbow."""
    t_s = np.arange(1500) * DT_S
    subj = dataclasses.replace(Subject.draw(0, 2), wave_elbow=(0.0, 0.0), guitar_hand=(0.0, 0.0))
    moved = dataclasses.replace(subj, wave_elbow=(-2.0, 3.0), guitar_hand=(4.0, -5.0))
    r0, _, _, _ = gesture_wrists(RIGHT_WAVE, t_s, subj, np.random.default_rng(3))
    r1, _, _, _ = gesture_wrists(RIGHT_WAVE, t_s, moved, np.random.default_rng(3))
    np.testing.assert_allclose(r1 - r0, np.broadcast_to([2.0, 3.0], r0.shape), atol=1e-9)
    _, g0, _, _ = gesture_wrists(body.AIR_GUITAR, t_s, subj, np.random.default_rng(3))
    _, g1, _, _ = gesture_wrists(body.AIR_GUITAR, t_s, moved, np.random.default_rng(3))
    np.testing.assert_allclose(g1 - g0, np.broadcast_to([4.0, -5.0], g0.shape), atol=1e-9)
    t2, pose = _pose(dataclasses.replace(moved, partial=0.0), [(RIGHT_WAVE, 0.5, 3.0)])
    m = (t2 > 1.5) & (t2 < 2.5)  # fully in the gesture (no partial dip)
    d = pose.elbow_r[m] - pose.shoulder_r[m]  # the upper arm (its length is the subject's) points there
    np.testing.assert_allclose(np.arctan2(d[:, 1], d[:, 0]), np.arctan2(6.0 + 3.0, -(16.0 - 2.0)), atol=1e-6)


def test_longer_arms_turn_larger_circles():
    """kills mutants dropping ``arm`` from the arm circle or from the posed limb lengths: 10 %
    longer arms turn a 10 % larger circle (same draw), and the posed upper arm and forearm are
    27 x scale x arm and 25 x scale x arm px long."""
    t_s = np.arange(1500) * DT_S
    subj = dataclasses.replace(Subject.draw(0, 2), arm=1.0)
    longer = dataclasses.replace(subj, arm=1.1)
    c = np.array([-6.0, 4.0])  # the circle's centre, relative to the right shoulder
    r0, _, _, _ = gesture_wrists(body.RIGHT_CW, t_s, subj, np.random.default_rng(3))
    r1, _, _, _ = gesture_wrists(body.RIGHT_CW, t_s, longer, np.random.default_rng(3))
    np.testing.assert_allclose(r1 - c, 1.1 * (r0 - c), rtol=1e-9)
    _, pose = _pose(longer, [(body.RIGHT_CW, 0.5, 2.5)])
    s = longer.scale
    np.testing.assert_allclose(np.hypot(*(pose.elbow_r - pose.shoulder_r).T), 27.0 * s * 1.1, rtol=1e-9)
    np.testing.assert_allclose(np.hypot(*(pose.wrist_r - pose.elbow_r).T), 25.0 * s * 1.1, rtol=1e-9)


def test_subject_habits_in_documented_ranges():
    """kills Subject.draw mutants outside the documented v4 ranges (docs/data.md): scale
    1.0-1.5, neck 64 +- 14 px, arm 0.9-1.1, hand height -8..+6 px, waving elbow +-5 / -8..+6 px,
    guitar hand +-5 / +-6 px — and spread over them (not a constant)."""
    subs = [Subject.draw(0, i) for i in range(1, 200)]
    a = lambda f: np.array([f(x) for x in subs])  # noqa: E731
    for v, lo, hi in ((a(lambda x: x.scale), 1.0, 1.5), (a(lambda x: x.neck[0]), 50.0, 78.0),
                      (a(lambda x: x.arm), 0.9, 1.1), (a(lambda x: x.hand_height), -8.0, 6.0),
                      (a(lambda x: x.wave_elbow[0]), -5.0, 5.0), (a(lambda x: x.wave_elbow[1]), -8.0, 6.0),
                      (a(lambda x: x.guitar_hand[0]), -5.0, 5.0), (a(lambda x: x.guitar_hand[1]), -6.0, 6.0)):
        assert v.min() >= lo and v.max() <= hi
        assert v.max() - v.min() > 0.8 * (hi - lo)  # uniform over the range: 199 draws nearly fill it
