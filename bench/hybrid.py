"""Hybrid network execution: some layers in software (the chip's neuron model), some on PEs.

Mapper (:func:`plan_network`): a layer asked for the chip is placed on PE macros when it fits

- fan-in <= rows per PE (128) and <= 12 differential neurons per PE -> one PE;
- more neurons -> split by neurons across PEs (each PE sees the whole input);
- fan-in > 128 -> split by rows only when the chip declares ``Capability.PARTIAL_SUM``;
- the layer's neuron model must be one the chip implements (refractory time constant 1
  step, input clamp [0, 5]: the chip's registers set threshold, PSP tau and refractory
  amplitude only);
- and the chip must have enough PEs;

otherwise the layer runs in software.  The :class:`Plan` says what was chosen and why; it
prints as a table and is stored (JSON) in run files.  Default for 800-480-120-11: the
hidden layers in software, 120->11 on one PE (120 rows, 11 of 12 neurons).

Runner (:class:`HybridRunner`): software layers run ``spikes @ W.T`` followed by the shared
SRM neuron (``sim_backend.physics``: the compiled event-driven ``layer_forward`` where
available, the same spikes as ``srm_forward``), vectorised over the batch; chip layers are mapped to conductances
(``bench.mapping``), programmed by write-verify (``bench.programming``), their G_UNIT /
neuron / time-step registers set, and their input spike trains streamed through the board
(:class:`bench.streaming.ChipStreamer`).  The software-only reference of the same network
shares the layers before the first chip layer, so it costs only the remaining layers.

Scale of a chip layer (``scale_policy``): ``"trained"`` maps a layer trained hardware-aware
(or fine-tuned on a chip) at the conductance per weight unit it was trained for, read from the
model's metadata (:func:`trained_g_unit_s`: the fine-tuning scale, else the hardware-aware
training's ``g_unit_s``), so the grid the training quantised on is the one the chip realises;
a layer trained without hardware awareness has no such scale and keeps the mapper's
MSE-optimal one.  ``"mse"`` always uses the mapper's MSE-optimal scale.

Stuck cells (``route_stuck``): after write-verify, the cells it flagged stuck are read back
and the layer is re-mapped around them (``bench.mapping.route_around``: the stuck device keeps
its stuck level as its target, its healthy partner is re-chosen to compensate); only the
healthy cells whose target changed are written again.  The bad-cell map is kept in the
layer's state so chip-in-the-loop fine-tuning keeps routing around the same cells.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.errors import MeasurementError
from bench.streaming import ChipStreamer, StreamResult, TimeBase
from firmware_iface.spec import REGISTER_BY_NAME, Capability
from sim_backend.physics.fastpath import layer_forward
from sim_backend.physics.neuron import NeuronParams

CHIP_TAU_REF_STEPS = 1.0
CHIP_CLAMP = (0.0, 5.0)
SCALE_POLICIES = ("trained", "mse")
DEFAULT_SCALE_POLICY = "mse"
"""How a chip layer's scale is chosen by default (see the module docstring).  Measured on the
shipped gesture models (docs/BENCHMARKS.md, "Issue 15 — mapping at the trained g_unit, routing
around stuck cells, stuck cells in hw-aware training (ghw)"): the hw-aware layer at its
trained 50 uS per unit loses 1.9 more points to quantisation than at the MSE-optimal 70.45 uS
(its weights do not sit on the trained grid), and 1.2 points more on `typical` dies with
routing (3.7 without), so the MSE scale stays the default."""
DEFAULT_ROUTE_STUCK = True
"""Route around the stuck cells write-verify reports by default (same benchmark: the
`typical` drop of the plain model falls from +5.2 to +2.3 points, of the hw-aware one from
+7.4 to +4.0, mean of dies 1-8).  The chip calibration against the paper's drop (decision
0020) was measured without routing."""


# --- geometry ------------------------------------------------------------------------
@dataclass(frozen=True)
class ChipGeometry:
    """What the mapper needs to know about the chip (from GET_INFO)."""

    rows: int = 128
    neurons: int = 12
    pes: int = 1
    partial_sum: bool = False

    @classmethod
    def from_info(cls, info) -> "ChipGeometry":
        return cls(rows=int(info.rows), neurons=int(info.neurons), pes=int(info.pes),
                   partial_sum=bool(int(info.capabilities) & int(Capability.PARTIAL_SUM)))


@dataclass(frozen=True)
class PEBlock:
    """One PE's share of a layer: input rows [in_start, in_stop) x neurons [out_start, out_stop)."""

    pe: int
    in_start: int
    in_stop: int
    out_start: int
    out_stop: int


@dataclass
class LayerPlacement:
    index: int
    name: str
    n_in: int
    n_out: int
    where: str
    """"chip" or "software"."""
    reason: str
    blocks: list[PEBlock] = field(default_factory=list)
    partial_sum: bool = False

    @property
    def pes_used(self) -> int:
        return len(self.blocks)


@dataclass
class Plan:
    """Where each layer runs, and why."""

    layers: list[LayerPlacement]
    geometry: ChipGeometry

    @property
    def chip_layers(self) -> list[int]:
        return [p.index for p in self.layers if p.where == "chip"]

    def as_dict(self) -> dict[str, Any]:
        return {"geometry": asdict(self.geometry),
                "layers": [{**{k: v for k, v in asdict(p).items() if k != "blocks"},
                            "blocks": [asdict(b) for b in p.blocks]} for p in self.layers]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    def __str__(self) -> str:
        g = self.geometry
        lines = [f"chip: {g.pes} PE x {g.rows} rows x {g.neurons} neurons"
                 f"{', partial sums' if g.partial_sum else ''}",
                 f"{'layer':<10} {'size':>10}  {'runs on':<9} {'PEs':>3}  why"]
        for p in self.layers:
            where = "chip" if p.where == "chip" else "software"
            lines.append(f"{p.index}:{p.name:<8} {f'{p.n_in}->{p.n_out}':>10}  {where:<9} "
                         f"{p.pes_used:>3}  {p.reason}")
        return "\n".join(lines)


def _neuron_issue(neuron: NeuronParams) -> str | None:
    if not np.isclose(neuron.tau_ref_steps, CHIP_TAU_REF_STEPS):
        return f"refractory tau {neuron.tau_ref_steps:g} steps (chip: fixed {CHIP_TAU_REF_STEPS:g})"
    if (neuron.clamp_low, neuron.clamp_high) != CHIP_CLAMP:
        return f"input clamp [{neuron.clamp_low:g}, {neuron.clamp_high:g}] (chip: [0, 5])"
    return None


def place_layer(index: int, layer, geometry: ChipGeometry, first_pe: int = 0,
                name: str = "") -> LayerPlacement:
    """Place one layer on PEs starting at ``first_pe``, or say why it runs in software."""
    n_in, n_out = layer.n_in, layer.n_out
    g = geometry
    mk = lambda where, why, blocks=(), ps=False: LayerPlacement(  # noqa: E731
        index, name or layer.name or f"fc{index + 1}", n_in, n_out, where, why, list(blocks), ps)
    issue = _neuron_issue(layer.neuron)
    if issue:
        return mk("software", f"neuron model not on chip: {issue}")
    row_parts = -(-n_in // g.rows)
    col_parts = -(-n_out // g.neurons)
    if row_parts > 1 and not g.partial_sum:
        return mk("software", f"fan-in {n_in} > {g.rows} rows and the chip has no partial-sum support")
    need = row_parts * col_parts
    free = g.pes - first_pe
    if need > free:
        return mk("software", f"needs {need} PE(s) ({row_parts} row x {col_parts} neuron blocks), "
                              f"{max(free, 0)} free")
    blocks = []
    pe = first_pe
    for c in range(col_parts):
        for r in range(row_parts):
            blocks.append(PEBlock(pe, r * g.rows, min(n_in, (r + 1) * g.rows),
                                  c * g.neurons, min(n_out, (c + 1) * g.neurons)))
            pe += 1
    how = []
    if col_parts > 1:
        how.append(f"split by neurons into {col_parts}")
    if row_parts > 1:
        how.append(f"fan-in split into {row_parts} with partial sums")
    why = (f"fits: {n_in} <= {g.rows} rows, {n_out} <= {g.neurons} neurons" if need == 1
           else "; ".join(how))
    return mk("chip", why, blocks, row_parts > 1)


def plan_network(net, geometry: ChipGeometry | Any | None = None, *,
                 chip_layers: list[int] | None = None) -> Plan:
    """The placement of every layer of ``net``.

    ``geometry``: a :class:`ChipGeometry`, a chip ``info()`` record, or None (one default
    PE).  ``chip_layers``: layers to try on the chip (default ``[net.chip_layer]``; ``[]``
    = software only).  Layers are placed in order on the next free PEs.
    """
    if geometry is None:
        geometry = ChipGeometry()
    elif not isinstance(geometry, ChipGeometry):
        geometry = ChipGeometry.from_info(geometry)
    n = len(net.layers)
    wanted = {net.chip_layer} if chip_layers is None else {int(i) % n for i in chip_layers}
    out, pe = [], 0
    for i, layer in enumerate(net.layers):
        name = layer.name or f"fc{i + 1}"
        if i not in wanted:
            out.append(LayerPlacement(i, name, layer.n_in, layer.n_out, "software", "not asked for the chip"))
            continue
        p = place_layer(i, layer, geometry, pe, name)
        pe += p.pes_used
        out.append(p)
    return Plan(out, geometry)


# --- software execution ----------------------------------------------------------------
def require_chip_layers(net, source: str, geometry: ChipGeometry | None = None) -> Plan:
    """The plan for ``net``; a ``ConfigError`` naming every layer's reason when none fits the
    chip (a "chip" measurement with nothing on the chip would report software as chip)."""
    from bench.errors import ConfigError

    plan = plan_network(net, geometry or ChipGeometry())
    if not plan.chip_layers:
        why = "; ".join(f"layer {p.index} ({p.n_in}->{p.n_out}): {p.reason}" for p in plan.layers)
        raise ConfigError(f"{source}: no layer of the model fits the chip, nothing to measure ({why})")
    return plan


def software_layer(layer, spikes: np.ndarray, weight: np.ndarray | None = None, *,
                   threads: int | None = None) -> np.ndarray:
    """One layer in software: bool (B, T, n_in) -> bool (B, T, n_out).

    Event-driven: per step, the weights of the active inputs are summed in ascending input
    order, then the shared SRM neuron - the definition of :mod:`bench.network.kernel`, run by
    its compiled fast path (single-threaded) when numba is in use; otherwise by
    ``sim_backend.physics.fastpath.layer_forward`` (noiseless) in blocks of 64 neurons on
    ``threads`` threads.  Same spikes as :meth:`bench.network.model.Dense.forward` (tested).
    """
    w = np.asarray(layer.weight if weight is None else weight, dtype=np.float64).T  # (n_in, n_out)
    x = np.asarray(spikes)
    if x.dtype != bool:
        x = x != 0
    if x.ndim != 3 or x.shape[2] != w.shape[0]:
        raise ValueError(f"layer {layer.name!r}: expected (B, T, {w.shape[0]}) spikes, got {x.shape}")
    from bench.network import kernel
    if kernel.have_jit():   # the network's own fast path (same definition; one thread, ~2x faster)
        return kernel.fast_layer(x, w.T, layer.neuron)
    pad = (-w.shape[0]) % 8
    if pad:  # the kernel wants whole bytes of rows; zero rows never spike
        x = np.concatenate([x, np.zeros(x.shape[:2] + (pad,), bool)], axis=2)
        w = np.concatenate([w, np.zeros((pad, w.shape[1]))], axis=0)
    x = np.ascontiguousarray(x)
    n_out = w.shape[1]
    blocks = [(j, min(n_out, j + 64)) for j in range(0, n_out, 64)]
    out = np.empty(x.shape[:2] + (n_out,), dtype=bool)

    def one(b):
        j0, j1 = b
        s, _, _ = layer_forward(x, np.ascontiguousarray(w[:, j0:j1]), None, None, None, layer.neuron)
        out[:, :, j0:j1] = s

    threads = _threads(threads)
    if threads > 1 and len(blocks) > 1:
        with ThreadPoolExecutor(min(threads, len(blocks))) as ex:
            list(ex.map(one, blocks))
    else:
        for b in blocks:
            one(b)
    return out


def _threads(threads: int | None) -> int:
    if threads is not None:
        return max(1, int(threads))
    return max(1, min(4, os.cpu_count() or 1))


# --- runner ------------------------------------------------------------------------------
@dataclass
class ChipLayerState:
    """A chip layer after programming."""

    index: int
    g_unit_s: float
    weights_target: np.ndarray
    """Quantised weights of the conductance targets (n_out, n_in)."""
    weights_realised: np.ndarray
    """Weights read back from the array after programming (n_out, n_in)."""
    mapping: dict[str, Any]
    programming: dict[str, Any]
    registers: dict[str, Any]
    targets_s: np.ndarray | None = field(default=None, repr=False)
    """Conductance targets of the whole array (rows, columns), S."""
    program_result: Any = field(default=None, repr=False)
    """Per-cell write-verify outcome (``bench.programming.ProgramResult``)."""
    bad_cells_s: np.ndarray | None = field(default=None, repr=False)
    """Stuck cells routed around: read-back conductance (S) where stuck, NaN elsewhere
    (rows, columns); None when the layer was not routed."""


@dataclass
class HybridResult:
    """Outputs of one batch through the hybrid network."""

    outputs: np.ndarray
    """(n, T, n_classes) bool: output spikes of the hybrid (chip) execution."""
    software_outputs: np.ndarray | None
    """(n, T, n_classes) bool: the same network entirely in software (original weights)."""
    chip_raw: dict[int, np.ndarray] = field(default_factory=dict)
    """Per chip layer: the board's output spikes (n, T, neurons of the PE)."""
    chip_inputs: dict[int, np.ndarray] = field(default_factory=dict)
    """Per chip layer: the input spikes streamed to it (n, T, fan-in), bool."""
    model_check: dict[int, np.ndarray] = field(default_factory=dict)
    """Per chip layer: per sample, does the chip output equal the software model run with
    the realised (read-back) weights?  All True at ideal fidelity."""
    seconds: dict[str, float] = field(default_factory=dict)
    streams: list[StreamResult] = field(default_factory=list)


class HybridRunner:
    """Runs a :class:`bench.network.model.Network` with its plan's chip layers on ``chip``.

    ``chip`` may be None only for an all-software plan.  Call :meth:`prepare` once (maps and
    programs the chip layers), then :meth:`run` on batches of input spikes.
    """

    def __init__(self, net, chip=None, *, plan: Plan | None = None, timebase: TimeBase | None = None,
                 schedule=None, chunk: int | None = None, batch_size: int = 64,
                 baud: float = 3_000_000.0, latency_s: float = 1e-3, read_averages: int = 8,
                 threads: int | None = None, scale_policy: str = DEFAULT_SCALE_POLICY,
                 route_stuck: bool = DEFAULT_ROUTE_STUCK) -> None:
        if scale_policy not in SCALE_POLICIES:
            raise ValueError(f"scale_policy must be one of {SCALE_POLICIES}, got {scale_policy!r}")
        self.scale_policy = scale_policy
        self.route_stuck = bool(route_stuck)
        self.net = net
        self.chip = chip
        self.plan = plan or plan_network(net, chip.info() if chip is not None else None)
        if self.plan.chip_layers and chip is None:
            raise ValueError("the plan puts layers on the chip but no chip was given")
        for p in self.plan.layers:
            if p.where == "chip" and (p.pes_used != 1 or p.partial_sum):
                raise MeasurementError(
                    f"layer {p.index} needs {p.pes_used} PEs: multi-PE execution is not in protocol "
                    f"v1 (one PE is addressed); run it in software (chip_layers=[])")
        self.timebase = timebase or TimeBase.for_network(net)
        self.schedule = schedule
        self.chunk = chunk
        self.batch_size = max(1, int(batch_size))
        self.read_averages = read_averages
        self.threads = threads
        self.streamer = (ChipStreamer(chip, self.timebase, chunk=chunk, baud=baud, latency_s=latency_s)
                         if chip is not None else None)
        self.layers: dict[int, ChipLayerState] = {}
        self.program_seconds = 0.0

    # --- preparation ----------------------------------------------------------------
    def prepare(self) -> dict[int, ChipLayerState]:
        """Map, program and configure every chip layer (one PE: one chip layer)."""
        t0 = time.perf_counter()
        for idx in self.plan.chip_layers:
            self.layers[idx] = self._program(idx)
        self.program_seconds = time.perf_counter() - t0
        return self.layers

    def _program(self, idx: int) -> ChipLayerState:
        chip, layer = self.chip, self.net.layers[idx]
        info = chip.info()
        wt = layer.weight.T  # (n_in rows, n_out neurons)
        trained = trained_g_unit_s(self.net, idx) if self.scale_policy == "trained" else None
        m = _map(wt, info, layer.clamp, scale_s=trained)
        m["scale_policy"] = self.scale_policy
        m["scale_source"] = "trained" if trained is not None else "mse"
        g_unit = chip.write_register("G_UNIT", m["scale_s"])
        regs = self.streamer.configure(layer.neuron)
        registers = {"G_UNIT": {"requested": m["scale_s"], "in_force": g_unit},
                     **{r.name: {"requested": r.requested, "in_force": r.in_force} for r in regs}}
        targets = m["targets_s"]
        prog = _program(chip, targets, self.schedule)
        result = prog.pop("_result", None)
        bad = None
        if self.route_stuck and result is not None and bool(np.any(result.stuck)):
            targets, bad, routing = _route_stuck(chip, wt, info, layer.clamp, m["scale_s"], result,
                                                 self.schedule, self.read_averages)
            prog["routing"] = routing
            m["rerouted_pairs"] = routing["rerouted_pairs"]
            m["uncorrectable_pairs"] = routing["uncorrectable_pairs"]
        g = chip.read_array(averages=self.read_averages)
        w_real = ((g[:, 0::2] - g[:, 1::2]) / g_unit)[:layer.n_in, :layer.n_out].T.copy()
        w_target = ((targets[:, 0::2] - targets[:, 1::2]) / m["scale_s"])[:layer.n_in, :layer.n_out].T.copy()
        mapping = {k: v for k, v in m.items() if k != "targets_s"}
        mapping["route_stuck"] = self.route_stuck
        mapping["realised_rms"] = float(np.sqrt(np.mean((w_real - np.clip(layer.weight, -layer.clamp, layer.clamp)) ** 2)))
        return ChipLayerState(idx, g_unit, w_target, w_real, mapping, prog, registers,
                              targets_s=targets, program_result=result, bad_cells_s=bad)

    # --- execution --------------------------------------------------------------------
    def run(self, x: np.ndarray, *, software_reference: bool = True) -> HybridResult:
        """Input spikes (n, T, n_inputs) -> :class:`HybridResult` (hybrid and software outputs)."""
        if self.plan.chip_layers and not self.layers:
            self.prepare()
        x = np.asarray(x, dtype=bool)
        if x.ndim != 3 or x.shape[2] != self.net.layers[0].n_in:
            raise ValueError(f"inputs must be (n, T, {self.net.layers[0].n_in}), got {x.shape}")
        sec = {"software": 0.0, "chip_wall": 0.0, "upload": 0.0, "run": 0.0, "readout": 0.0,
               "chip_seconds": 0.0, "link_modelled": 0.0, "software_reference": 0.0}
        res = HybridResult(outputs=np.zeros(0), software_outputs=None, seconds=sec)
        first_chip = min(self.plan.chip_layers, default=len(self.net.layers))
        # layers before the first chip layer: shared by both executions
        h = x
        t0 = time.perf_counter()
        for i in range(first_chip):
            h = self._sw_batched(self.net.layers[i], h)
        sec["software"] += time.perf_counter() - t0
        sw = h
        for i in range(first_chip, len(self.net.layers)):
            layer = self.net.layers[i]
            if self.plan.layers[i].where == "chip":
                st = self.layers[i]
                s = self.streamer.stream(h)
                res.streams.append(s)
                res.chip_inputs[i] = h
                sec["chip_wall"] += s.wall_seconds
                sec["upload"] += s.upload_seconds
                sec["run"] += s.run_seconds
                sec["readout"] += s.readout_seconds
                sec["chip_seconds"] += s.chip_seconds
                sec["link_modelled"] += s.link_modelled_seconds
                res.chip_raw[i] = s.spikes
                out = s.spikes[:, :, :layer.n_out]
                t0 = time.perf_counter()
                model = self._sw_batched(layer, h, st.weights_realised)
                res.model_check[i] = np.all(model == out, axis=(1, 2))
                sec["software_reference"] += time.perf_counter() - t0
                h = out
            else:
                t0 = time.perf_counter()
                h = self._sw_batched(layer, h)
                sec["software"] += time.perf_counter() - t0
        if software_reference:
            t0 = time.perf_counter()
            for i in range(first_chip, len(self.net.layers)):
                sw = self._sw_batched(self.net.layers[i], sw)
            sec["software_reference"] += time.perf_counter() - t0
        res.outputs = np.asarray(h, dtype=bool)
        res.software_outputs = np.asarray(sw, dtype=bool) if software_reference else None
        return res

    def _sw_batched(self, layer, x: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        if x.shape[0] <= self.batch_size:
            return software_layer(layer, x, weight, threads=self.threads)
        return np.concatenate([software_layer(layer, x[i:i + self.batch_size], weight, threads=self.threads)
                               for i in range(0, x.shape[0], self.batch_size)])

    def chip_inputs(self, x: np.ndarray, rows: int | None = None) -> np.ndarray:
        """Input spikes of the first chip layer (the software prefix run on ``x``), bool.

        ``rows``: zero-pad the last axis to the array's rows (e.g. ``chip.info().rows``).
        """
        first = min(self.plan.chip_layers, default=len(self.net.layers))
        h = np.asarray(x, dtype=bool)
        for i in range(first):
            h = self._sw_batched(self.net.layers[i], h)
        if rows is not None and h.shape[2] < rows:
            h = np.concatenate([h, np.zeros(h.shape[:2] + (rows - h.shape[2],), bool)], axis=2)
        return h

    def software_forward(self, x: np.ndarray) -> np.ndarray:
        """Output spikes of the network entirely in software (original weights)."""
        h = np.asarray(x, dtype=bool)
        for layer in self.net.layers:
            h = self._sw_batched(layer, h)
        return h

    def describe(self) -> dict[str, Any]:
        """Plan plus the chip layers' mapping / programming / registers (for run files)."""
        return {"plan": self.plan.as_dict(), "timebase": self.timebase.as_dict(),
                "program_seconds": self.program_seconds,
                "chip_layers": {str(i): {"g_unit_s": s.g_unit_s, "mapping": s.mapping,
                                         "programming": s.programming, "registers": s.registers}
                                for i, s in self.layers.items()}}


# --- mapping / programming adapters (bench.mapping / bench.programming, issue 4) -------------
def trained_g_unit_s(net, idx: int) -> float | None:
    """The conductance per weight unit (S) layer ``idx`` was trained for, from the model's
    metadata, or None when it was trained without hardware awareness.

    A chip layer fine-tuned on a chip (``metadata["finetune"]["scale_s"]``) holds weights
    quantised at the fine-tuning scale; a layer trained hardware-aware
    (``metadata["training"]["hw_aware"]``) was quantised on the grid of
    ``training.config.hw.g_unit_s`` (the chip register default when the config does not say) —
    for the chip layer only when ``hw.layers`` is ``"chip"``.
    """
    md = getattr(net, "metadata", None) or {}
    n = len(net.layers)
    is_chip_layer = net.chip_layer is not None and idx % n == net.chip_layer % n
    ft = md.get("finetune") or {}
    if is_chip_layer and _positive(ft.get("scale_s")):
        return float(ft["scale_s"])
    tr = md.get("training") or {}
    cfg = tr.get("config") or {}
    if not (tr.get("hw_aware") or cfg.get("hw_aware")):
        return None
    hw = cfg.get("hw") or {}
    if hw.get("layers", "chip") != "all" and not is_chip_layer:
        return None
    if _positive(hw.get("g_unit_s")):
        return float(hw["g_unit_s"])
    from bench.network.hwaware import chip_defaults

    return float(chip_defaults().g_unit_s)


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v)) and v > 0


def _map(wt: np.ndarray, info, clamp: float, scale_s: float | None = None) -> dict[str, Any]:
    """Weights (rows, neurons) -> whole-array targets (S) and scale (S per weight unit);
    ``scale_s`` forces the scale (else the mapper's MSE-optimal one)."""
    from bench.mapping import map_weights

    levels = np.asarray(info.levels_s, dtype=np.float64)
    m = map_weights(wt, levels_s=levels, rows=info.rows, columns=info.columns, clamp=clamp, scale_s=scale_s)
    scale = _g_unit_code(m.scale_s)
    note = ""
    if scale != m.scale_s:  # the G_UNIT register must realise the scale: clip to its range, round to its code
        note = f"scale {m.scale_s:.6g} S -> {scale:.6g} S (G_UNIT register range/resolution)"
        m = map_weights(wt, levels_s=levels, rows=info.rows, columns=info.columns, clamp=clamp, scale_s=scale)
    return {"targets_s": m.targets_s, **m.as_attrs(), "mapper": "bench.mapping", "scale_note": note}


def _g_unit_code(scale_s: float) -> float:
    """The nearest scale the G_UNIT register can hold (its range and resolution)."""
    reg = REGISTER_BY_NAME["G_UNIT"]
    code = min(max(reg.to_code(scale_s), reg.min_code), reg.max_code)
    return reg.to_si(code)


def _program(chip, targets: np.ndarray, schedule) -> dict[str, Any]:
    from bench.programming import default_schedule, program_array

    res = program_array(chip, targets, schedule or default_schedule(limits=chip.limits))
    return {"cells": int(res.rows.size), "success": int(res.success.sum()), "stuck": int(res.stuck.sum()),
            "pulses": int(res.pulses.sum()), "wall_seconds": res.wall_seconds,
            "chip_seconds": float(res.link.chip_seconds), "programmer": "bench.programming", "_result": res}


def _route_stuck(chip, wt: np.ndarray, info, clamp: float, scale_s: float, res, schedule,
                 averages: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Re-map around the cells write-verify flagged stuck in ``res`` and write the healthy
    cells whose target changed.  Returns (targets (S), bad-cell map (S, NaN = healthy), figures)."""
    from bench.mapping import bad_cells_map, map_weights
    from bench.programming import default_schedule, program_cells

    shape = (int(info.rows), int(info.columns))
    stuck = res.as_map(np.asarray(res.stuck, dtype=np.float64), shape, 0.0) > 0
    old = res.as_map(np.asarray(res.targets_s, dtype=np.float64), shape, 0.0)
    bad = bad_cells_map(stuck, chip.read_array(averages=averages))
    m = map_weights(wt, levels_s=np.asarray(info.levels_s, dtype=np.float64), rows=shape[0], columns=shape[1],
                    clamp=clamp, scale_s=scale_s, bad_cells_s=bad)
    new = m.targets_s
    write = ~np.isclose(new, old, rtol=0.0, atol=1e-9) & ~stuck
    rows, cols = np.nonzero(write)
    fig: dict[str, Any] = {"stuck_cells": int(stuck.sum()), "rerouted_pairs": int(m.rerouted_pairs),
                           "uncorrectable_pairs": int(m.uncorrectable_pairs), "cells": int(rows.size),
                           "pulses": 0, "success": 0, "stuck": 0}
    if rows.size:
        r = program_cells(chip, rows, cols, new[rows, cols], schedule or default_schedule(limits=chip.limits))
        fig.update(pulses=int(r.pulses.sum()), success=int(r.success.sum()), stuck=int(r.stuck.sum()))
    return new, bad, fig
