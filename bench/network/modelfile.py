"""Model files: one HDF5 file per trained network (format ``snnbench-model``, version 1).

Layout (all attributes scalar unless noted; units in a ``units`` attribute where physical)::

    /                         attrs: format = "snnbench-model", format_version = 1,
                                     n_layers, chip_layer (index), dt_s (units "s"),
                                     acceleration (dimensionless dataset-time/chip-time),
                                     snnbench_version, created_utc,
                                     metadata (JSON text: training config, history, seeds, ...)
    /input                    attrs: sensor_width, sensor_height, polarities, padding (px),
                                     pool (px), bin_s (s), steps, n_inputs
    /layers/<i>  (i = 0, 1, ...)
        weight                dataset (n_out, n_in) float64 or float32 (gzip), units "normalised"
                              (1 unit = g_unit differential conductance per input spike)
                              attrs: name, clamp (|w| bound used in training),
                                     tau_steps, tau_ref_steps, theta, ref_scale,
                                     clamp_low, clamp_high   (sim_backend NeuronParams)
    /optimizer   (checkpoints only)
        m_<i>, v_<i>          Adam moments per layer;  attrs: step_count, epoch,
                              rng_state (JSON of numpy bit-generator state)

Readers check every field: a missing field, a wrong shape (layer fan-in not matching the
previous layer's fan-out or the input reduction), NaN/inf values or an unknown format version
raise :class:`bench.errors.DataFormatError` naming the file and the field.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from bench import __version__
from bench.errors import DataFormatError
from bench.network.model import Dense, InputConfig, Network
from sim_backend.physics.neuron import NeuronParams

FORMAT = "snnbench-model"
FORMAT_VERSION = 1
NEURON_FIELDS = ("tau_steps", "tau_ref_steps", "theta", "ref_scale", "clamp_low", "clamp_high")
INPUT_FIELDS = ("sensor_width", "sensor_height", "polarities", "padding", "pool", "bin_s", "steps")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def _write(net: Network, f: h5py.File, weight_dtype: Any = np.float64) -> None:
    import datetime as _dt

    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["n_layers"] = len(net.layers)
    f.attrs["chip_layer"] = int(net.chip_layer)
    f.attrs["dt_s"] = float(net.dt_s)
    f.attrs["acceleration"] = float(net.acceleration)
    f.attrs["snnbench_version"] = __version__
    f.attrs["created_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    f.attrs["metadata"] = json.dumps(net.metadata, default=_json_default)
    gi = f.create_group("input")
    for k in INPUT_FIELDS:
        gi.attrs[k] = getattr(net.input, k)
    gi.attrs["n_inputs"] = net.input.n_inputs
    gi.attrs["bin_s_units"] = "s"
    gl = f.create_group("layers")
    for i, layer in enumerate(net.layers):
        g = gl.create_group(str(i))
        w = np.asarray(layer.weight, dtype=np.float64)
        wd = np.dtype(weight_dtype)
        if wd != np.float64 and not np.array_equal(w.astype(wd).astype(np.float64), w):
            raise DataFormatError(f"layers/{i}/weight is not exactly representable as {wd}; round it "
                                  f"first (bench.network.modelfile.round_weights)")
        d = g.create_dataset("weight", data=w.astype(wd), compression="gzip", shuffle=True)
        d.attrs["units"] = "normalised"
        g.attrs["name"] = layer.name
        g.attrs["clamp"] = float(layer.clamp)
        for k in NEURON_FIELDS:
            g.attrs[k] = float(getattr(layer.neuron, k))


def _atomic_write(path: Path, fill) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a model file is an ordinary file
    try:
        with h5py.File(tmp, "w") as f:
            fill(f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def round_weights(net: Network, dtype: Any = np.float32) -> Network:
    """Round every weight to ``dtype`` precision in place (so it can be stored as ``dtype``)."""
    for layer in net.layers:
        layer.weight = np.asarray(layer.weight, dtype=dtype).astype(np.float64)
    return net


def save_model(net: Network, path: str | Path, *, weight_dtype: Any = np.float64) -> Path:
    """Write ``net`` to ``path`` (atomically: a crash never leaves a half-written model).

    ``weight_dtype=np.float32`` halves the file (weights must already be float32-exact, see
    :func:`round_weights`); readers always return float64.
    """
    net.validate()
    for i, layer in enumerate(net.layers):
        if not np.all(np.isfinite(layer.weight)):
            raise DataFormatError(f"{path}: refusing to save layers/{i}/weight with NaN or inf")
    p = Path(path)
    _atomic_write(p, lambda f: _write(net, f, weight_dtype))
    return p


def save_checkpoint(net: Network, path: str | Path, optimizer: Any, rng: np.random.Generator,
                    epoch: int) -> Path:
    """A model file plus Adam state and RNG state, resumable with :func:`load_checkpoint`."""
    p = Path(path)

    def fill(f: h5py.File) -> None:
        _write(net, f)
        g = f.create_group("optimizer")
        sd = optimizer.state_dict()
        for i, (m, v) in enumerate(zip(sd["m"], sd["v"])):
            g.create_dataset(f"m_{i}", data=m)
            g.create_dataset(f"v_{i}", data=v)
        g.attrs["step_count"] = int(sd["step_count"])
        g.attrs["epoch"] = int(epoch)
        g.attrs["rng_state"] = json.dumps(rng.bit_generator.state, default=_json_default)

    _atomic_write(p, fill)
    return p


def _attr(path: Path, obj: h5py.HLObject, key: str, where: str) -> Any:
    if key not in obj.attrs:
        raise DataFormatError(f"{path}: missing field {where}{key}")
    v = obj.attrs[key]
    if isinstance(v, bytes):
        v = v.decode()
    return v


def _num(path: Path, obj: h5py.HLObject, key: str, where: str, *, integer: bool = False,
         positive: bool = False) -> float | int:
    v = _attr(path, obj, key, where)
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise DataFormatError(f"{path}: field {where}{key} is not a number ({v!r})") from None
    if not np.isfinite(f):
        raise DataFormatError(f"{path}: field {where}{key} is NaN or inf")
    if positive and f <= 0:
        raise DataFormatError(f"{path}: field {where}{key} must be > 0, got {f}")
    if integer:
        if f != int(f):
            raise DataFormatError(f"{path}: field {where}{key} must be an integer, got {f}")
        return int(f)
    return f


def load_model(path: str | Path) -> Network:
    """Read and validate a model file; errors name the file and the field."""
    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"{p}: model file not found")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DataFormatError(f"{p}: not an HDF5 model file ({exc})") from None
    with f:
        fmt = _attr(p, f, "format", "/")
        if fmt != FORMAT:
            raise DataFormatError(f"{p}: field /format is {fmt!r}, expected {FORMAT!r}")
        ver = _num(p, f, "format_version", "/", integer=True)
        if ver != FORMAT_VERSION:
            raise DataFormatError(f"{p}: unsupported /format_version {ver} (this reader knows {FORMAT_VERSION})")
        n_layers = _num(p, f, "n_layers", "/", integer=True, positive=True)
        chip_layer = _num(p, f, "chip_layer", "/", integer=True)
        dt_s = _num(p, f, "dt_s", "/", positive=True)
        acc = _num(p, f, "acceleration", "/", positive=True)
        try:
            metadata = json.loads(f.attrs.get("metadata", "{}") or "{}")
        except json.JSONDecodeError:
            raise DataFormatError(f"{p}: field /metadata is not valid JSON") from None
        if "input" not in f:
            raise DataFormatError(f"{p}: missing field /input")
        gi = f["input"]
        ikw: dict[str, Any] = {}
        for k in INPUT_FIELDS:
            ikw[k] = _num(p, gi, k, "/input/", integer=k != "bin_s", positive=k not in ("padding",))
        try:
            inp = InputConfig(**ikw)
            inp.validate()
        except ValueError as exc:
            raise DataFormatError(f"{p}: field /input: {exc}") from None
        if "layers" not in f:
            raise DataFormatError(f"{p}: missing field /layers")
        layers = []
        prev = inp.n_inputs
        for i in range(n_layers):
            where = f"/layers/{i}/"
            if str(i) not in f["layers"]:
                raise DataFormatError(f"{p}: missing field {where[:-1]} (n_layers = {n_layers})")
            g = f["layers"][str(i)]
            if "weight" not in g:
                raise DataFormatError(f"{p}: missing field {where}weight")
            w = np.asarray(g["weight"][()], dtype=np.float64)
            if w.ndim != 2:
                raise DataFormatError(f"{p}: field {where}weight must be 2-D (n_out, n_in), got shape {w.shape}")
            if not np.all(np.isfinite(w)):
                bad = int(np.size(w) - np.count_nonzero(np.isfinite(w)))
                raise DataFormatError(f"{p}: field {where}weight contains {bad} NaN/inf value(s)")
            if w.shape[1] != prev:
                src = "the input reduction" if i == 0 else f"layer {i - 1}"
                raise DataFormatError(f"{p}: field {where}weight has shape {w.shape}: fan-in "
                                      f"{w.shape[1]} does not match {prev} outputs of {src}")
            nkw = {k: _num(p, g, k, where) for k in NEURON_FIELDS}
            try:
                neuron = NeuronParams(**nkw)
            except ValueError as exc:
                raise DataFormatError(f"{p}: neuron fields of {where[:-1]}: {exc}") from None
            clamp = _num(p, g, "clamp", where, positive=True)
            name = str(_attr(p, g, "name", where)) if "name" in g.attrs else f"fc{i + 1}"
            layers.append(Dense(w, neuron=neuron, clamp=clamp, name=name))
            prev = w.shape[0]
        if not -n_layers <= chip_layer < n_layers:
            raise DataFormatError(f"{p}: field /chip_layer = {chip_layer} out of range for {n_layers} layers")
        try:
            return Network(layers=layers, dt_s=dt_s, acceleration=acc, input=inp,
                           chip_layer=chip_layer, metadata=metadata)
        except ValueError as exc:
            raise DataFormatError(f"{p}: {exc}") from None


def load_checkpoint(path: str | Path) -> tuple[Network, dict[str, Any] | None, int, dict | None]:
    """(network, Adam state dict or None, epochs done, RNG state or None)."""
    net = load_model(path)
    p = Path(path)
    with h5py.File(p, "r") as f:
        if "optimizer" not in f:
            return net, None, int(net.metadata.get("training", {}).get("epochs_done", 0)), None
        g = f["optimizer"]
        n = len(net.layers)
        try:
            sd = {"m": [g[f"m_{i}"][()] for i in range(n)], "v": [g[f"v_{i}"][()] for i in range(n)],
                  "step_count": int(g.attrs["step_count"])}
            epoch = int(g.attrs["epoch"])
            rng_state = json.loads(g.attrs["rng_state"])
        except KeyError as exc:
            raise DataFormatError(f"{p}: checkpoint field /optimizer/{exc.args[0]} missing") from None
    return net, sd, epoch, rng_state
