"""The demo's shipped test split: preprocessed input spikes of the realistic synthetic gesture
set, so ``snnbench demo`` on a fresh clone needs no minutes of event generation (issue 15).

File layout (HDF5, ``bench/models/gesture_test.h5``; a stranger can read it with h5py):

| where | what |
|---|---|
| attrs ``format`` = ``"snnbench-spikes"``, ``format_version`` = 1 | identity |
| ``spikes_packed`` uint8 (n, steps, ceil(inputs / 8)) | input spikes, ``numpy.packbits(axis=2, bitorder="little")`` |
| ``labels`` int64 (n,) | class 0..10 |
| attrs ``n_inputs``, ``steps``, ``bin_s`` (s), ``padding``, ``pool``, ``sensor`` | the preprocessing (``bench.data.preprocess``) |
| attrs ``source_json`` | where the samples come from (generator, version, seed, split, subjects, files) |
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import DataFormatError

SHIPPED_TEST = Path(__file__).resolve().parent / "models" / "gesture_test.h5"
FORMAT = "snnbench-spikes"


def save_spikes(path: str | Path, x: np.ndarray, labels: np.ndarray, cfg, source: dict[str, Any]) -> Path:
    """Write preprocessed spikes ``x`` bool (n, steps, inputs) and ``labels`` (n,)."""
    import h5py

    x = np.asarray(x, dtype=bool)
    labels = np.asarray(labels, dtype=np.int64)
    if x.ndim != 3 or x.shape[0] != labels.shape[0]:
        raise ValueError(f"spikes {x.shape} and labels {labels.shape} do not match")
    path = Path(path)
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": FORMAT, "format_version": 1, "n_inputs": int(x.shape[2]),
                        "steps": int(x.shape[1]), "bin_s": cfg.bin_us * 1e-6, "padding": int(cfg.padding),
                        "pool": int(cfg.pool), "sensor": list(cfg.sensor), "source_json": json.dumps(source)})
        f.create_dataset("spikes_packed", data=np.packbits(x, axis=2, bitorder="little"),
                         compression="gzip", compression_opts=9, shuffle=True)
        f.create_dataset("labels", data=labels)
    return path


def load_spikes(path: str | Path, net=None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(spikes bool (n, steps, inputs), labels (n,), attributes); checks the preprocessing
    against ``net``'s input configuration when given."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read shipped spikes ({exc})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise DataFormatError(f"{path}: not a {FORMAT} file")
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
        n_in = int(attrs["n_inputs"])
        sl = slice(None) if limit is None else slice(0, int(limit))
        x = np.unpackbits(f["spikes_packed"][sl], axis=2, count=n_in, bitorder="little").astype(bool)
        labels = f["labels"][sl].astype(np.int64)
    if net is not None:
        inp = net.input
        want = {"n_inputs": net.layers[0].n_in, "steps": int(inp.steps), "padding": int(inp.padding),
                "pool": int(inp.pool)}
        for k, v in want.items():
            if int(attrs[k]) != v:
                raise DataFormatError(f"{path}: {k} {attrs[k]} does not match the model's {v}")
        if abs(float(attrs["bin_s"]) - float(inp.bin_s)) > 1e-9:
            raise DataFormatError(f"{path}: bin {attrs['bin_s']} s does not match the model's {inp.bin_s} s")
    attrs["source"] = json.loads(attrs.pop("source_json", "{}") or "{}")
    return x, labels, attrs
