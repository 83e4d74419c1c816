"""The network's window of a short synthetic gesture is drawn like that of a release-length one.

Training sets are generated with ``--gesture-s 2.2`` (the network reads only the first 1.5 s
of a sample), the release's gestures last ~6 s. The motion model must not depend on the
gesture's length inside that window: tempo and wrist paths are functions of the time since
the gesture started, and a partial gesture's dip must fall where it would in a 6 s gesture
(docs/data.md). Expected values: the pose of the same draw at the long length, not a number
recorded from this code.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench.data.gesture.body import (AIR_DRUMS, HAND_CLAP, LEFT_CW, OTHER, RIGHT_WAVE, Subject,
                                     pose_track)
from bench.data.gesture.release import DEFAULT_GESTURE_S, LEAD_S

DT_S = 1e-3
START_S = 1.0  # the segment (motion) start; the label starts LEAD_S later


def _wrists(cls: int, seg_len_s: float, dip_spans_s: list[float] | None) -> np.ndarray:
    """Both wrists (K, 4) of one recording holding one segment of class ``cls``, every
    partial-gesture branch taken (``partial`` = 1)."""
    subj = dataclasses.replace(Subject.draw(0, 3), partial=1.0)
    total = START_S + seg_len_s + 1.0
    t_s = np.arange(int(round(total / DT_S))) * DT_S
    rng = np.random.default_rng(7)
    pose = pose_track(subj, t_s, [(cls, START_S, START_S + seg_len_s)], rng, dip_spans_s=dip_spans_s)
    return np.concatenate([pose.wrist_r, pose.wrist_l], axis=1)


@pytest.mark.parametrize("cls", [HAND_CLAP, RIGHT_WAVE, LEFT_CW, AIR_DRUMS, OTHER])
def test_window_of_short_gesture_equals_that_of_a_6_s_gesture(cls):
    """kills pose_track mutants drawing the dip centre over the segment's own length when a
    span is given (the dip then lands inside a 2.2 s gesture's window, not in a 6 s one's).
    The window is [LEAD_S, LEAD_S + 1.5 s) from the motion start; a 2.2 s gesture's segment
    (2.7 s with its lead-in) and a 6 s one's (6.5 s) must agree there to 0.1 px. (Not exactly
    for an arm circle: its turn count is matched to the rest angle at the gesture's end, which
    shifts the blend inside a 6 s gesture's dip tail reaching the window's end by 2 pi k (1 - w)
    x the reach: 0.08-0.32 px at the window's last millisecond for subjects 1-8 of generator v4
    (v3's subject 3: ~0.05 px); circles are held to 0.4 px, a dip drawn over the short length
    moves the wrists by pixels.)"""
    short_len = 2.2 + LEAD_S
    long_len = DEFAULT_GESTURE_S + LEAD_S
    long_ = _wrists(cls, long_len, None)
    short = _wrists(cls, short_len, [long_len])
    i0 = int(round((START_S + LEAD_S) / DT_S))
    i1 = int(round((START_S + LEAD_S + 1.5) / DT_S))
    np.testing.assert_allclose(short[i0:i1], long_[i0:i1], atol=0.4 if cls == LEFT_CW else 0.1)


def test_without_spans_the_short_gesture_window_differs():
    """The check above can fail: drawn over its own 2.7 s, the short gesture's dip (partial = 1)
    lands inside the window and moves the wrists there by pixels (hand clap: both arms)."""
    short_len = 2.2 + LEAD_S
    long_len = DEFAULT_GESTURE_S + LEAD_S
    i0 = int(round((START_S + LEAD_S) / DT_S))
    i1 = int(round((START_S + LEAD_S + 1.5) / DT_S))
    d = np.abs(_wrists(HAND_CLAP, short_len, None)[i0:i1] - _wrists(HAND_CLAP, long_len, None)[i0:i1])
    assert d.max() > 1.0


def test_dip_spans_must_match_segments():
    """kills the length check on ``dip_spans_s`` (a short list would silently index wrong)."""
    subj = Subject.draw(0, 1)
    t_s = np.arange(3000) * DT_S
    with pytest.raises(ValueError, match="1 dip spans for 2 segments"):
        pose_track(subj, t_s, [(HAND_CLAP, 0.2, 1.2), (OTHER, 1.5, 2.5)], np.random.default_rng(0), dip_spans_s=[1.0])


class _Captured(Exception):
    pass


def _captured(monkeypatch, gesture_s: float) -> dict:
    """The segments and dip spans :func:`recording` hands to ``pose_track`` (rendering skipped)."""
    from bench.data.gesture import release

    got = {}

    def capture(subj, t_s, segments, rng, dip_spans_s=None, shifts_px=None):
        got["segments"], got["spans"], got["shifts"], got["subj"] = segments, dip_spans_s, shifts_px, subj
        raise _Captured

    monkeypatch.setattr(release, "pose_track", capture)
    with pytest.raises(_Captured):
        release.recording(0, 4, "led", 1, gesture_s=gesture_s)
    return got


def _segments_of(monkeypatch, gesture_s: float) -> tuple[list, list | None]:
    got = _captured(monkeypatch, gesture_s)
    return got["segments"], got["spans"]


def test_recording_draws_dips_over_the_6_s_lengths_of_the_same_draw(monkeypatch):
    """kills release.recording mutants not passing the dip spans (or passing the short
    lengths): each span of a 2.2 s recording is the length (lead-in included) the same
    gesture's segment has in the 6 s recording of the same seed, subject and key."""
    short, spans = _segments_of(monkeypatch, 2.2)
    long_, _ = _segments_of(monkeypatch, DEFAULT_GESTURE_S)
    assert spans is not None and len(spans) == len(short) == 11
    assert [c for c, _, _ in short] == [c for c, _, _ in long_]
    np.testing.assert_allclose(spans, [b - a for _, a, b in long_], rtol=0, atol=1e-9)
    assert all(b - a < 3.0 for _, a, b in short)  # the short segments are short


def test_recording_places_the_subject_alike_at_any_gesture_length(monkeypatch):
    """kills release.recording mutants drawing the subject's placement (per-recording offset,
    distance, per-gesture shifts) from the recording's main stream after the gesture lengths,
    or not passing the shifts: a 2.2 s recording stands the subject where the 6 s one of the
    same seed, subject and key does (generator v4, docs/data.md "Placement")."""
    short, long_ = _captured(monkeypatch, 2.2), _captured(monkeypatch, DEFAULT_GESTURE_S)
    assert short["shifts"] is not None and len(short["shifts"]) == 11
    assert short["shifts"] == long_["shifts"]
    assert short["subj"] == long_["subj"]
