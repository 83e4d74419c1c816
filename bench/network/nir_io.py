"""NIR (Neuromorphic Intermediate Representation) export and import with the ``nir`` package.

Export of a :class:`~bench.network.model.Network`::

    input  : Input   (2, H, W)            DVS sensor, polarity-major
    pool   : SumPool2d(kernel = stride = pool, padding = padding)   [input reduction]
    flatten: Flatten (2, H', W') -> 2*H'*W'   (index = p*H'*W' + y*W' + x, as bench.data)
    fc<i>  : Linear  (n_out, n_in)         weights in normalised units
    lif<i> : LIF     (per neuron)
    output : Output  (n_classes,)

How the chip's SRM neuron maps to NIR's LIF (``tau dv/dt = (v_leak - v) + r I``), and what
NIR cannot say:

* PSP: our ``p[t] = e^(-1/tau) p[t-1] + x[t]/tau`` is the exact discretisation of a leaky
  integrator with unit-area kernel, i.e. LIF with ``tau = tau_steps * dt_s`` (chip time),
  ``r = 1``, ``v_leak = 0``, ``v_threshold = theta``.
* Refractory: the chip subtracts ``ref_scale * theta * e^(-(n-1)/tau_ref)`` after a spike
  (a decaying reset) -- exported as ``v_reset = 0`` (approximation; NIR has no kernel reset).
* Input clamp ``[clamp_low, clamp_high]`` (TIA saturation) and the binarisation of the pooled
  counts (a pooled cell spikes once per step if any event fell in it) have no NIR node.

So that export -> import is exact, every ``lif<i>`` node carries our neuron parameters and
weight clamp as JSON in ``metadata["snnbench"]``, and the graph carries the time base,
acceleration, input reduction and chip-layer index in ``metadata["snnbench"]``.  A graph
without that metadata (from another framework) is imported by the mapping above, with
``dt_s`` given by the caller:

* ``Linear`` or ``Affine`` with zero bias (a non-zero bias -> error: no bias on the chip);
* ``LIF``: ``v_leak`` must be 0; ``r`` is folded into the preceding weights; ``v_reset`` is
  replaced by the chip's refractory kernel;
* ``CubaLIF``: accepted when one of ``tau_syn``/``tau_mem`` is at most half a step (then the
  neuron is a single-time-constant LIF); ``w_in`` and ``r`` are folded into the weights;
* ``IF``: refused -- the chip's neuron always leaks with its PSP time constant;
* ``Input``, ``Output``, ``SumPool2d`` (before the first layer, square kernel = stride),
  ``Flatten``.

Any other node type, or a parameter outside these limits, raises
:class:`UnsupportedNIRError` (a ``DataFormatError``) naming the node and the parameter.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import DataFormatError
from bench.network.model import Dense, InputConfig, Network
from sim_backend.physics.neuron import NeuronParams

META_KEY = "snnbench"
META_VERSION = 1


class UnsupportedNIRError(DataFormatError):
    """A NIR graph uses a node type or parameter value the chip's network cannot represent."""


def _nir():
    import nir  # noqa: PLC0415 - optional at import time of the bench

    return nir


def to_nir(net: Network):
    """The NIR graph of ``net`` (see module doc)."""
    nir = _nir()
    inp = net.input
    h, w = inp.grid
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    nodes["input"] = nir.Input(input_type={"input": np.array([inp.polarities, inp.sensor_height,
                                                               inp.sensor_width])})
    nodes["pool"] = nir.SumPool2d(kernel_size=np.array([inp.pool, inp.pool]),
                                  stride=np.array([inp.pool, inp.pool]),
                                  padding=np.array([inp.padding, inp.padding]),
                                  metadata={META_KEY: json.dumps({"binarise": True})})
    nodes["flatten"] = nir.Flatten(input_type={"input": np.array([inp.polarities, h, w])},
                                   start_dim=0, end_dim=-1)
    edges += [("input", "pool"), ("pool", "flatten")]
    prev = "flatten"
    for i, layer in enumerate(net.layers, start=1):
        n = layer.n_out
        nodes[f"fc{i}"] = nir.Linear(weight=np.array(layer.weight, dtype=np.float64))
        prm = layer.neuron
        meta = {"neuron": {k: float(getattr(prm, k)) for k in
                           ("tau_steps", "tau_ref_steps", "theta", "ref_scale", "clamp_low", "clamp_high")},
                "clamp": float(layer.clamp), "name": layer.name, "model": "srm"}
        nodes[f"lif{i}"] = nir.LIF(tau=np.full(n, prm.tau_steps * net.dt_s), r=np.ones(n),
                                   v_leak=np.zeros(n), v_threshold=np.full(n, prm.theta),
                                   v_reset=np.zeros(n), metadata={META_KEY: json.dumps(meta)})
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([net.n_classes])})
    edges.append((prev, "output"))
    gmeta = {"version": META_VERSION, "dt_s": net.dt_s, "acceleration": net.acceleration,
             "chip_layer": net.chip_layer,
             "input": {k: getattr(inp, k) for k in ("sensor_width", "sensor_height", "polarities",
                                                    "padding", "pool", "bin_s", "steps")},
             "metadata": net.metadata}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META_KEY: json.dumps(gmeta, default=str)})


def export_nir(net: Network, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    _nir().write(str(p), to_nir(net))
    return p


def _meta(node_or_graph: Any) -> dict[str, Any] | None:
    md = getattr(node_or_graph, "metadata", None) or {}
    raw = md.get(META_KEY) if isinstance(md, dict) else None
    if raw is None:
        return None
    if isinstance(raw, np.ndarray):
        raw = raw.item() if raw.shape == () else raw.tolist()
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, TypeError):
        return None


def _arr(v: Any) -> np.ndarray:
    return np.atleast_1d(np.asarray(v, dtype=np.float64))


def _uniform(node_name: str, kind: str, param: str, v: Any) -> float:
    a = _arr(v)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise UnsupportedNIRError(f"NIR node {node_name!r} ({kind}): parameter {param} is empty or not finite")
    if not np.allclose(a, a.flat[0], rtol=1e-9, atol=0):
        raise UnsupportedNIRError(f"NIR node {node_name!r} ({kind}): parameter {param} differs between "
                                  "neurons; the chip's neurons share one value")
    return float(a.flat[0])


def _chain(graph: Any) -> list[str]:
    nodes, edges = graph.nodes, list(graph.edges)
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    starts = [n for n in nodes if n not in pred]
    if len(starts) != 1:
        raise UnsupportedNIRError(f"NIR graph must be a single chain from one input; found start nodes {starts}")
    order = [starts[0]]
    seen = {starts[0]}
    while order[-1] in succ:
        nxt = succ[order[-1]]
        if len(nxt) != 1 or len(pred.get(nxt[0], [])) != 1:
            raise UnsupportedNIRError(f"NIR node {order[-1]!r} branches or merges ({nxt}); only feed-forward "
                                      "chains are supported")
        if nxt[0] in seen:
            raise UnsupportedNIRError(f"NIR graph has a cycle at node {nxt[0]!r}; recurrence is not supported")
        order.append(nxt[0])
        seen.add(nxt[0])
    if len(order) != len(nodes):
        rest = sorted(set(nodes) - seen)
        raise UnsupportedNIRError(f"NIR nodes {rest} are not on the input-to-output chain")
    return order


def from_nir(graph: Any, *, dt_s: float = 100e-9, acceleration: float | None = None) -> Network:
    """Build a Network from a NIR graph (see module doc for what is accepted)."""
    nir = _nir()
    if isinstance(graph, (nir.NIRGraph,)) is False:
        raise UnsupportedNIRError(f"expected a NIR graph, got {type(graph).__name__}")
    gmeta = _meta(graph) or {}
    dt_s = float(gmeta.get("dt_s", dt_s))
    acc = float(gmeta.get("acceleration", acceleration if acceleration is not None else 5e-3 / dt_s))
    order = _chain(graph)
    pool, padding = 1, 0
    in_shape: np.ndarray | None = None
    layers: list[Dense] = []
    pending_w: np.ndarray | None = None
    pending_name = ""
    for name in order:
        node = graph.nodes[name]
        kind = type(node).__name__
        if isinstance(node, nir.Input):
            shp = list(node.input_type.values())
            in_shape = np.asarray(shp[0]).astype(int).ravel() if shp else None
        elif isinstance(node, nir.Output):
            pass
        elif isinstance(node, nir.SumPool2d):
            if layers or pending_w is not None:
                raise UnsupportedNIRError(f"NIR node {name!r} (SumPool2d): only supported as the input reduction")
            k, s, pd = (np.asarray(node.kernel_size).ravel(), np.asarray(node.stride).ravel(),
                        np.asarray(node.padding).ravel())
            if len(set(k.tolist())) != 1 or not np.array_equal(k, s):
                raise UnsupportedNIRError(f"NIR node {name!r} (SumPool2d): parameter kernel_size/stride must be "
                                          f"square and equal (got {k.tolist()}, {s.tolist()})")
            if len(set(pd.tolist())) != 1:
                raise UnsupportedNIRError(f"NIR node {name!r} (SumPool2d): parameter padding must be equal "
                                          f"in x and y (got {pd.tolist()})")
            pool, padding = int(k[0]), int(pd[0])
        elif isinstance(node, nir.Flatten):
            pass
        elif isinstance(node, (nir.Linear, nir.Affine)):
            if pending_w is not None:
                raise UnsupportedNIRError(f"NIR node {name!r} ({kind}): two weight nodes in a row")
            w = np.asarray(node.weight, dtype=np.float64)
            if w.ndim != 2:
                raise UnsupportedNIRError(f"NIR node {name!r} ({kind}): parameter weight must be 2-D, got {w.shape}")
            if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
                raise UnsupportedNIRError(f"NIR node {name!r} (Affine): parameter bias is non-zero; "
                                          "the chip has no bias input")
            pending_w, pending_name = w, name
        elif isinstance(node, (nir.LIF, nir.CubaLIF)):
            if pending_w is None:
                raise UnsupportedNIRError(f"NIR node {name!r} ({kind}): neuron without a preceding Linear/Affine")
            layers.append(_neuron_layer(name, node, kind, pending_w, pending_name, dt_s))
            pending_w = None
        elif isinstance(node, nir.IF):
            raise UnsupportedNIRError(f"NIR node {name!r} (IF): non-leaky integrate-and-fire is not supported; "
                                      "the chip's neuron always leaks with its PSP time constant (use LIF)")
        else:
            raise UnsupportedNIRError(f"NIR node {name!r}: node type {kind} is not supported (supported: Input, "
                                      "Output, SumPool2d, Flatten, Linear, Affine, LIF, CubaLIF)")
    if pending_w is not None:
        raise UnsupportedNIRError(f"NIR node {pending_name!r}: weights without a following neuron node")
    if not layers:
        raise UnsupportedNIRError("NIR graph has no Linear/Affine + LIF layer")
    if _meta(graph.nodes[order[-2]] if len(order) > 1 else graph) is None:
        from bench.network.model import OUTPUT_CLAMP

        layers[-1].clamp = OUTPUT_CLAMP  # foreign graph: the output layer is the chip layer
    if "input" in gmeta:
        inp = InputConfig(**gmeta["input"])
    elif in_shape is not None and in_shape.size == 3:
        c, hh, ww = (int(v) for v in in_shape)
        inp = InputConfig(sensor_width=ww, sensor_height=hh, polarities=c, padding=padding, pool=pool,
                          bin_s=dt_s * acc)
    else:
        n_in = layers[0].n_in
        inp = InputConfig(sensor_width=n_in, sensor_height=1, polarities=1, padding=0, pool=1, bin_s=dt_s * acc)
    if inp.n_inputs != layers[0].n_in:
        raise UnsupportedNIRError(f"NIR graph: input reduction gives {inp.n_inputs} inputs but the first "
                                  f"weight node has {layers[0].n_in}")
    try:
        return Network(layers=layers, dt_s=dt_s, acceleration=acc, input=inp,
                       chip_layer=int(gmeta.get("chip_layer", -1)), metadata=gmeta.get("metadata", {}) or {})
    except ValueError as exc:
        raise UnsupportedNIRError(f"NIR graph: {exc}") from None


def _neuron_layer(name: str, node: Any, kind: str, w: np.ndarray, wname: str, dt_s: float) -> Dense:
    from bench.network.model import HIDDEN_CLAMP

    n = w.shape[0]
    meta = _meta(node)
    if meta and meta.get("model") == "srm":
        prm = NeuronParams(**{k: float(v) for k, v in meta["neuron"].items()})
        return Dense(w, neuron=prm, clamp=float(meta.get("clamp", HIDDEN_CLAMP)), name=str(meta.get("name", wname)))
    for p in (("v_threshold",) + (("tau",) if kind == "LIF" else ("tau_syn", "tau_mem"))):
        if _arr(getattr(node, p)).size not in (1, n):
            raise UnsupportedNIRError(f"NIR node {name!r} ({kind}): parameter {p} has "
                                      f"{_arr(getattr(node, p)).size} values for {n} neurons")
    v_leak = _arr(node.v_leak)
    if np.any(v_leak != 0):
        raise UnsupportedNIRError(f"NIR node {name!r} ({kind}): parameter v_leak must be 0 (the chip's "
                                  "neuron rests at 0)")
    theta = _uniform(name, kind, "v_threshold", node.v_threshold)
    r = _arr(node.r)
    scale = np.broadcast_to(r, (n,)).copy()
    if kind == "LIF":
        tau_s = _uniform(name, kind, "tau", node.tau)
    else:
        ts, tm = _uniform(name, kind, "tau_syn", node.tau_syn), _uniform(name, kind, "tau_mem", node.tau_mem)
        if min(ts, tm) > 0.5 * dt_s:
            raise UnsupportedNIRError(f"NIR node {name!r} (CubaLIF): parameters tau_syn={ts:g} s and "
                                      f"tau_mem={tm:g} s both exceed half a step ({dt_s:g} s); the chip's "
                                      "neuron has a single PSP time constant")
        tau_s = max(ts, tm)
        w_in = _arr(node.w_in)
        if w_in.size not in (1, n):
            raise UnsupportedNIRError(f"NIR node {name!r} (CubaLIF): parameter w_in has {w_in.size} values")
        scale = scale * np.broadcast_to(w_in, (n,))
    if not (theta > 0 and tau_s > 0):
        raise UnsupportedNIRError(f"NIR node {name!r} ({kind}): parameters v_threshold and tau must be > 0")
    tau_steps = tau_s / dt_s
    if abs(tau_steps - round(tau_steps)) < 1e-9 * max(1.0, tau_steps):
        tau_steps = float(round(tau_steps))
    prm = NeuronParams(tau_steps=tau_steps, theta=theta)
    return Dense(w * scale[:, None], neuron=prm, clamp=HIDDEN_CLAMP, name=wname)


def import_nir(path: str | Path, *, dt_s: float = 100e-9) -> Network:
    """Read a ``.nir`` file and build a Network; errors name the file and the node/parameter."""
    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"{p}: NIR file not found")
    try:
        graph = _nir().read(str(p))
    except Exception as exc:  # noqa: BLE001 - nir raises assorted errors for bad files/unknown nodes
        raise DataFormatError(f"{p}: cannot read NIR graph ({type(exc).__name__}: {exc})") from None
    try:
        net = from_nir(graph, dt_s=dt_s)
    except UnsupportedNIRError as exc:
        raise UnsupportedNIRError(f"{p}: {exc}") from None
    return net
