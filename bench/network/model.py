"""The network description shared by training, model files, NIR exchange and hybrid execution.

A :class:`Network` is a feed-forward stack of fully connected :class:`Dense` layers of the
chip's SRM neurons.  Every layer computes, per time step ``t`` and sample ``b``::

    z[b, t, :] = W @ s_in[b, t, :]            (W has shape (n_out, n_in), normalised units)
    s_out      = srm_forward(z, neuron)       (sim_backend.physics.neuron, the shared model)

so a layer run in software and the same layer run on the (ideal) chip give the same spikes:
the chip computes ``spikes @ ((G+ - G-) / g_unit)`` with the same ``srm_forward``.

For binary input spikes the sum ``W @ s_in`` is defined in ascending input order (one rounding
per active input, :mod:`bench.network.kernel`), and inference runs the compiled fast path of
that module (numba; the plain-numpy definition when numba is unavailable or
``SNNBENCH_KERNEL=numpy``): same spikes either way.  Non-binary inputs use a dense matmul.

Units: weights are normalised (one unit = the differential conductance ``g_unit_s`` that
produces one normalised neuron-input unit per input spike; 50 uS on the simulated chip).
Time is counted in chip steps; ``dt_s`` is the chip step in seconds and ``acceleration`` the
factor between dataset time and chip time (``input.bin_s == dt_s * acceleration``).

Public API used by other parts of the bench:

- ``Network.forward(spikes)`` -> list of per-layer output spikes (software only);
- ``Network.forward_from(i, spikes, stop=None)`` -> outputs of layers ``i .. stop-1`` given the
  input spikes of layer ``i`` (the hybrid runner runs ``forward_from(0, x, stop=chip)``,
  sends the last result to the chip, then ``forward_from(chip + 1, chip_out)`` if any);
- ``Network.chip_layer`` (index, default the last layer) and ``Network.layers[i].weight``;
- :func:`predict` -> class per sample from output spikes (most spikes, ties: earliest spike).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.network import kernel
from sim_backend.physics.neuron import NeuronParams, srm_forward

HIDDEN_CLAMP = 5.0
"""Reference weight clamp of software (hidden) layers, normalised units."""
OUTPUT_CLAMP = 3.0
"""Reference weight clamp of the on-chip layer: 150 uS / 50 uS per unit = 3 units."""


@dataclass(frozen=True)
class InputConfig:
    """How DVS events become the network's input spikes (metadata; applied by bench.data)."""

    sensor_width: int = 128
    sensor_height: int = 128
    polarities: int = 2
    padding: int = 6
    """Zero padding on each side of the sensor, pixels."""
    pool: int = 7
    """Sum-pooling window and stride, pixels."""
    bin_s: float = 5e-3
    """Dataset time per step, seconds (5 ms)."""
    steps: int = 300
    """Steps per sample (300 x 5 ms = 1.5 s)."""

    @property
    def grid(self) -> tuple[int, int]:
        """(height, width) of the pooled grid (20 x 20 by default)."""
        return ((self.sensor_height + 2 * self.padding) // self.pool,
                (self.sensor_width + 2 * self.padding) // self.pool)

    @property
    def n_inputs(self) -> int:
        h, w = self.grid
        return h * w * self.polarities

    def validate(self) -> None:
        for name in ("sensor_width", "sensor_height", "polarities", "pool", "steps"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"InputConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.padding < 0:
            raise ValueError(f"InputConfig.padding must be >= 0, got {self.padding!r}")
        if not (np.isfinite(self.bin_s) and self.bin_s > 0):
            raise ValueError(f"InputConfig.bin_s must be finite and > 0, got {self.bin_s!r}")


@dataclass
class Dense:
    """One fully connected layer of SRM neurons."""

    weight: np.ndarray
    """(n_out, n_in) float64, normalised units."""
    neuron: NeuronParams = field(default_factory=NeuronParams)
    clamp: float = HIDDEN_CLAMP
    """Training keeps |weight| <= clamp."""
    name: str = ""

    def __post_init__(self) -> None:
        w = np.asarray(self.weight, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(f"layer {self.name!r}: weight must be 2-D (n_out, n_in), got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"layer {self.name!r}: weight contains NaN or inf")
        self.weight = w

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])

    def forward(self, spikes: np.ndarray, *, weight: np.ndarray | None = None,
                theta: np.ndarray | None = None, tau_steps: np.ndarray | None = None,
                keep_state: bool = False):
        """Spikes (B, T, n_in) or (T, n_in) -> output spikes of the same layout, float64 0/1.

        Binary inputs: the ordered sum of :mod:`bench.network.kernel` (compiled unless
        ``keep_state``, which needs the trajectories); other inputs: ``s @ w.T``.
        """
        w = self.weight if weight is None else np.asarray(weight, dtype=np.float64)
        s = np.asarray(spikes)
        if s.shape[-1] != self.n_in or s.ndim not in (2, 3):
            raise ValueError(f"layer {self.name!r}: expected (B, T, {self.n_in}) or (T, {self.n_in}) "
                             f"spikes, got shape {s.shape}")
        binary = kernel.as_binary(s)
        if binary is None:
            z = s.astype(np.float64) @ w.T
            return srm_forward(z, self.neuron, theta=theta, tau_steps=tau_steps, keep_state=keep_state)
        if keep_state:
            z = kernel.synaptic_input(binary if binary.ndim == 3 else binary[None], w)
            res = srm_forward(z if binary.ndim == 3 else z[0], self.neuron, theta=theta,
                              tau_steps=tau_steps, keep_state=True)
            return res
        b3 = binary if binary.ndim == 3 else binary[None]
        out = kernel.fast_layer(b3, w, self.neuron, theta=theta, tau_steps=tau_steps).astype(np.float64)
        return out if binary.ndim == 3 else out[0]


@dataclass
class Network:
    """A feed-forward SNN: input reduction metadata, layers, time base, chip placement."""

    layers: list[Dense]
    dt_s: float = 100e-9
    acceleration: float = 50_000.0
    input: InputConfig = field(default_factory=InputConfig)
    chip_layer: int = -1
    """Index of the layer meant for the chip (negative counts from the end); default last."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Training metadata (free-form, JSON-serialisable)."""

    def __post_init__(self) -> None:
        self.validate()

    # --- structure -------------------------------------------------------------------
    def validate(self) -> None:
        if not self.layers:
            raise ValueError("network has no layers")
        self.input.validate()
        if self.layers[0].n_in != self.input.n_inputs:
            raise ValueError(f"first layer has {self.layers[0].n_in} inputs but the input "
                             f"reduction gives {self.input.n_inputs}")
        for i in range(1, len(self.layers)):
            if self.layers[i].n_in != self.layers[i - 1].n_out:
                raise ValueError(f"layer {i} has {self.layers[i].n_in} inputs but layer {i - 1} "
                                 f"has {self.layers[i - 1].n_out} outputs")
        n = len(self.layers)
        if not -n <= int(self.chip_layer) < n:
            raise ValueError(f"chip_layer {self.chip_layer} out of range for {n} layers")
        self.chip_layer = int(self.chip_layer) % n
        for name in ("dt_s", "acceleration"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"network {name} must be finite and > 0, got {v!r}")

    @property
    def sizes(self) -> list[int]:
        """[n_inputs, n_1, ..., n_out], e.g. [800, 480, 120, 11]."""
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]

    @property
    def n_classes(self) -> int:
        return self.layers[-1].n_out

    def copy(self) -> "Network":
        return copy.deepcopy(self)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle / deepcopy without the fast path's prepared weights (rebuilt on demand)."""
        state = self.__dict__.copy()
        state.pop("_fast_cache", None)
        return state

    @classmethod
    def create(cls, sizes: tuple[int, ...] | list[int] = (800, 480, 120, 11), *, seed: int = 0,
               neuron: NeuronParams | None = None, input: InputConfig | None = None,
               init_scale: float = 1.0, input_rate: float = 0.05, **kw: Any) -> "Network":
        """A freshly initialised network (zero-mean Gaussian weights).

        The weight spread is chosen so that the weighted input of a neuron has a standard
        deviation of ``init_scale`` when the inputs spike with probability ``input_rate``
        per step (hidden layers assume 10 %).  Hidden layers get clamp 5, the last layer 3.
        """
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError("sizes needs at least input and output sizes")
        rng = np.random.default_rng(seed)
        neuron = neuron or NeuronParams()
        inp = input or InputConfig()
        if inp.n_inputs != sizes[0]:
            if input is not None:
                raise ValueError(f"input config gives {inp.n_inputs} inputs, sizes[0] is {sizes[0]}")
            inp = _input_for(sizes[0])
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            rate = input_rate if i == 0 else 0.1
            std = init_scale / np.sqrt(max(n_in * rate, 1.0))
            last = i == len(sizes) - 2
            clamp = OUTPUT_CLAMP if last else HIDDEN_CLAMP
            w = np.clip(rng.normal(0.0, std, size=(n_out, n_in)), -clamp, clamp)
            layers.append(Dense(w, neuron=neuron, clamp=clamp, name=f"fc{i + 1}"))
        return cls(layers=layers, input=inp, **kw)

    # --- execution -------------------------------------------------------------------
    def forward(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Run every layer in software.  spikes (B, T, n_inputs) -> [s_1, ..., s_L] (B, T, n_i)."""
        return self.forward_from(0, spikes)

    def forward_from(self, layer_index: int, spikes: np.ndarray, stop: int | None = None,
                     *, batch_size: int | None = None) -> list[np.ndarray]:
        """Run layers ``layer_index .. stop-1`` in software on that layer's input spikes.

        ``spikes`` is (B, T, layers[layer_index].n_in) (bool or 0/1 float) or (T, n_in).
        Returns one float64 0/1 array per layer run.  ``batch_size`` bounds memory by
        running samples in chunks (results are identical).
        """
        n = len(self.layers)
        if not -n <= layer_index < n:
            raise IndexError(f"layer_index {layer_index} out of range for {n} layers")
        start = layer_index % n
        stop = n if stop is None else (stop if stop >= 0 else n + stop)
        x = np.asarray(spikes)
        squeeze = x.ndim == 2
        if squeeze:
            x = x[None]
        if x.ndim != 3:
            raise ValueError(f"spikes must be (B, T, N) or (T, N), got shape {x.shape}")
        if batch_size is None or x.shape[0] <= batch_size:
            outs = self._run(start, stop, x)
        else:
            parts = [self._run(start, stop, x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
            outs = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
        return [o[0] for o in outs] if squeeze else outs

    def _run(self, start: int, stop: int, x: np.ndarray) -> list[np.ndarray]:
        binary = kernel.as_binary(x)
        if binary is not None:   # every layer's output is binary: one prepared fast network
            return [o.view(np.uint8).astype(np.float64) for o in self.fast(start, stop).forward(binary)]
        outs = []
        for layer in self.layers[start:stop]:
            x = layer.forward(x)
            outs.append(x)
        return outs

    def fast(self, start: int = 0, stop: int | None = None) -> kernel.FastNetwork:
        """Layers ``start .. stop-1`` prepared for the fast path (:class:`kernel.FastNetwork`).

        The preparation (weights transposed into the kernel's tiles) is kept and reused while
        the layers' weights and neurons compare equal to it, so repeated small calls (batch 1)
        do not pay for it again; any change of the weights, in place or not, is seen.
        """
        stop = len(self.layers) if stop is None else stop
        layers = self.layers[start:stop]
        cache = self.__dict__.setdefault("_fast_cache", {})
        fn = cache.get((start, stop))
        if fn is None or not fn.matches(layers):
            fn = cache[(start, stop)] = kernel.FastNetwork(layers)
        return fn

    def predict(self, spikes: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Class per sample from input spikes (software forward of every layer)."""
        x = np.asarray(spikes)
        binary = kernel.as_binary(x)
        if binary is not None:   # the prepared fast network, bool spikes between layers
            fast = self.fast()
            preds = [predict(fast.forward(binary[i:i + batch_size])[-1])
                     for i in range(0, x.shape[0], batch_size)]
        else:
            preds = [predict(self.forward_from(0, x[i:i + batch_size])[-1])
                     for i in range(0, x.shape[0], batch_size)]
        return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def _input_for(n_inputs: int) -> InputConfig:
    """A square two-polarity input config with ``n_inputs`` inputs (for small test networks)."""
    side = int(round(np.sqrt(n_inputs / 2)))
    if 2 * side * side != n_inputs:
        # not a pooled DVS grid: describe it as a 1 x n single-polarity "sensor" without pooling
        return InputConfig(sensor_width=n_inputs, sensor_height=1, polarities=1, padding=0, pool=1)
    return InputConfig(sensor_width=side, sensor_height=side, polarities=2, padding=0, pool=1)


def spike_counts(out_spikes: np.ndarray) -> np.ndarray:
    """(B, T, K) -> (B, K) spike counts."""
    return np.asarray(out_spikes).sum(axis=-2)


def predict(out_spikes: np.ndarray) -> np.ndarray:
    """Class = most output spikes; ties go to the neuron that fired first (then lowest index).

    ``out_spikes`` is (B, T, K) or (T, K).  Returns int64 (B,) (or a scalar for (T, K)).
    """
    s = np.asarray(out_spikes)
    squeeze = s.ndim == 2
    if squeeze:
        s = s[None]
    s = s.astype(bool)
    b, t, k = s.shape
    counts = s.sum(axis=1)
    first = np.where(s.any(axis=1), s.argmax(axis=1), t)
    # lexicographic: max count, then min first-spike time, then min index
    key = counts.astype(np.int64) * (t + 1) + (t - first)
    pred = np.argmax(key, axis=1)
    return pred[0] if squeeze else pred


def accuracy(out_spikes: np.ndarray, labels: np.ndarray) -> float:
    labels = np.asarray(labels)
    if labels.size == 0:
        return float("nan")
    return float(np.mean(predict(out_spikes) == labels))
