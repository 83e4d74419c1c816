"""Figures of a gesture set for docs/data.md: event-count images and rasters per class.

    .venv/bin/python tools/gesture_figures.py [--data DIR] [--out docs/img] [--window-s 1.5]

``--data`` may be a set still being generated (its finished recordings are used). Without
``--data`` a small realistic set (2 subjects, 2 s gestures, seed 0) is generated in a
temporary directory. Writes ``gesture_counts.png`` (per class: ON events green, OFF red,
log-scaled counts over the first window of one training sample, then the same summed over all
samples of the class) and ``gesture_rasters.png`` (per class: events' x position against time,
ON green / OFF red, over the window; then y against time).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data.dataset import load_recording, load_split  # noqa: E402
from bench.data.labels import CLASS_NAMES  # noqa: E402

SCALE = 2


def _rgb(on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """(H, W) counts -> (H, W, 3) uint8, log-scaled: OFF red, ON green."""
    top = max(float(np.log1p(np.maximum(on, off)).max()), 1e-9)
    img = np.zeros(on.shape + (3,), np.uint8)
    img[..., 0] = (255 * np.log1p(off) / top).astype(np.uint8)
    img[..., 1] = (255 * np.log1p(on) / top).astype(np.uint8)
    return img


def count_image(samples, window_us: int) -> np.ndarray:
    on = np.zeros((128, 128))
    off = np.zeros((128, 128))
    for s in samples:
        e = s.events[(s.events["t"] >= s.start_us) & (s.events["t"] < s.start_us + window_us)]
        p = e["p"].astype(bool)
        np.add.at(on, (e["y"][p], e["x"][p]), 1)
        np.add.at(off, (e["y"][~p], e["x"][~p]), 1)
    return _rgb(on, off)


def raster(sample, window_us: int, axis: str, bins: int = 300) -> np.ndarray:
    e = sample.events[(sample.events["t"] >= sample.start_us) & (sample.events["t"] < sample.start_us + window_us)]
    b = ((e["t"] - sample.start_us) * bins // window_us).astype(np.int64)
    pos = e[axis].astype(np.int64)
    p = e["p"].astype(bool)
    on = np.zeros((128, bins))
    off = np.zeros((128, bins))
    np.add.at(on, (pos[p], b[p]), 1)
    np.add.at(off, (pos[~p], b[~p]), 1)
    return _rgb(on, off)


def _grid(tiles: list[tuple[str, list[np.ndarray]]], path: Path) -> Path:
    label_h = 14
    cols = max(len(t[1]) for t in tiles)
    tw = max(a.shape[1] for t in tiles for a in t[1]) * SCALE
    th = max(a.shape[0] for t in tiles for a in t[1]) * SCALE
    per_row = 4 if cols <= 2 else 2
    rows = (len(tiles) + per_row - 1) // per_row
    W = per_row * (cols * (tw + 4) + 8)
    H = rows * (th + label_h + 8)
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for n, (name, imgs) in enumerate(tiles):
        r, c = divmod(n, per_row)
        x0 = c * (cols * (tw + 4) + 8)
        y0 = r * (th + label_h + 8)
        draw.text((x0 + 2, y0), name, fill=(0, 0, 0))
        for j, a in enumerate(imgs):
            im = Image.fromarray(a).resize((a.shape[1] * SCALE, a.shape[0] * SCALE), Image.NEAREST)
            canvas.paste(im, (x0 + j * (tw + 4), y0 + label_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--window-s", type=float, default=1.5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    window_us = int(a.window_s * 1e6)
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data
        if data is None:
            from bench.data.gesture import generate

            data = generate(Path(tmp) / "set", seed=a.seed, subjects=2, per_class=2, gesture_s=2.0)
        data = Path(data)
        if (data / "trials_to_train.txt").exists():
            samples = load_split(data, "train") + load_split(data, "test")
        else:  # a set still being generated: every finished recording
            samples = [s for p in sorted(data.glob("user*.aedat"))
                       if (data / (p.stem + "_labels.csv")).exists() for s in load_recording(p)]
    by_cls: dict[int, list] = {}
    for s in samples:
        by_cls.setdefault(s.label, []).append(s)
    counts, rasters = [], []
    for c, name in enumerate(CLASS_NAMES):
        ss = by_cls.get(c, [])
        if not ss:
            continue
        counts.append((f"{c + 1} {name}", [count_image(ss[:1], window_us), count_image(ss, window_us)]))
        rasters.append((f"{c + 1} {name}", [raster(ss[0], window_us, "x"), raster(ss[0], window_us, "y")]))
    out = Path(a.out)
    print(_grid(counts, out / "gesture_counts.png"))
    print(_grid(rasters, out / "gesture_rasters.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
