"""Realistic synthetic DVS128 Gesture: an articulated upper body seen by a DVS pixel model.

``generate(out_dir, *, seed=0, per_class=None, subjects=None, gesture_s=None)`` writes a set
in the release's layout (see :mod:`bench.data.gesture.release`, docs/data.md).
"""
from bench.data.gesture.release import DEFAULT_GESTURE_S, GENERATOR_VERSION, generate, plan, recording

__all__ = ["generate", "plan", "recording", "GENERATOR_VERSION", "DEFAULT_GESTURE_S"]
