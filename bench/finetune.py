"""Chip-in-the-loop fine-tuning of the on-chip layer (issue 7, item 3).

The BrainScaleS-2 / hxtorch recipe: the forward pass of the chip layer runs on the chip
(virtual or real, through the bench), the backward pass uses the model with the *measured*
outputs (``bench.network.train.layer_gradient``: loss on the chip's spike counts, surrogate
from the model's membrane computed with the weights read back from the array).

One round:

1. forward: a batch of fine-tuning samples through the software layers (fixed, computed once)
   and the chip layer on the chip;
2. backward: ``layer_gradient(..., measured_out=chip spikes, weight=realised weights)``;
3. an Adam step (lr 0.1 by default, so weights cross conductance levels) on the layer's float
   "shadow" weights, clipped to the layer clamp;
4. re-map with the scale fixed at the first programming (``map_weights(..., scale_s=)``) and
   around the stuck cells the first programming routed around (``bad_cells_s``), so
   only cells whose target level changed are written (board write-verify,
   ``program_cells(mode="board")``); the array is read back for the realised weights;
5. chip accuracy and loss on the held-out split; stop after ``patience`` rounds without
   improvement (accuracy, then loss), keep the best round's weights (reprogramming the cells
   that differ from them at the end).

Held-out split: whole subjects (``userNN``) held out of the train split (the last
``val_subjects`` subjects in trial-list order); a set whose train split has only one subject
uses the test split instead (``held_out = "test"`` in the result) — then the test figures are
not independent of the stopping rule.

The model written holds the chip layer's *quantised* weights at the fixed scale (what the chip
realises, up to programming error), so mapping it again finds the same levels; the float
shadow weights are kept in the run file.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.errors import UsageError


@dataclass
class FinetuneConfig:
    lr: float = 0.1
    max_rounds: int = 20
    patience: int = 3
    batch_size: int = 64
    val_subjects: int = 2
    seed: int = 0
    read_averages: int = 8

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SUBJECT = re.compile(r"(user\d+)", re.IGNORECASE)


def subject_of(source: str) -> str:
    m = _SUBJECT.search(Path(source).name)
    return m.group(1).lower() if m else Path(source).stem


def split_by_subject(samples: list, val_subjects: int) -> tuple[list, list, list[str]]:
    """(fine-tuning samples, held-out samples, held-out subjects): the last subjects held out."""
    order: list[str] = []
    for s in samples:
        sub = subject_of(s.source)
        if sub not in order:
            order.append(sub)
    if len(order) < 2 or val_subjects < 1:
        return samples, [], []
    held = order[-min(val_subjects, len(order) - 1):]
    tune = [s for s in samples if subject_of(s.source) not in held]
    val = [s for s in samples if subject_of(s.source) in held]
    return tune, val, held


@dataclass
class _Eval:
    accuracy: float
    loss: float
    spikes: np.ndarray


class ChipLayerTuner:
    """Holds the programmed state of one chip layer and reprograms changed cells."""

    def __init__(self, runner, idx: int, schedule=None) -> None:
        from bench.mapping import map_weights  # noqa: F401  (fail early if missing)

        self.runner, self.idx = runner, idx
        self.chip = runner.chip
        self.info = self.chip.info()
        self.layer = runner.net.layers[idx]
        st = runner.layers[idx]
        self.scale_s = float(st.mapping["scale_s"])
        self.g_unit_s = float(st.g_unit_s)
        self.targets_s = np.array(st.targets_s, dtype=np.float64)
        self.bad_cells_s = None if st.bad_cells_s is None else np.array(st.bad_cells_s, dtype=np.float64)
        """Stuck cells the initial programming routed around (S, NaN = healthy); every round
        keeps routing around them."""
        self.realised = np.array(st.weights_realised, dtype=np.float64)
        self.schedule = schedule
        self.levels_s = np.asarray(self.info.levels_s, dtype=np.float64)

    def targets_for(self, w: np.ndarray, *, routed: bool = True) -> np.ndarray:
        """Conductance targets (S) for weights ``w`` at the fixed scale; ``routed``: around the
        stuck cells of the initial programming (what is written to this die)."""
        from bench.mapping import map_weights

        m = map_weights(np.asarray(w, np.float64).T, levels_s=self.levels_s, rows=self.info.rows,
                        columns=self.info.columns, clamp=self.layer.clamp, scale_s=self.scale_s,
                        bad_cells_s=self.bad_cells_s if routed else None)
        return m.targets_s

    def quantised(self, w: np.ndarray) -> np.ndarray:
        """The weights' levels at the fixed scale, not routed: the model's weights, not this
        die's stuck-cell workaround."""
        t = self.targets_for(w, routed=False)
        n_out, n_in = self.layer.n_out, self.layer.n_in
        return ((t[:, 0::2] - t[:, 1::2]) / self.scale_s)[:n_in, :n_out].T.copy()

    def apply(self, w: np.ndarray) -> dict[str, Any]:
        """Program the cells whose target changed for weights ``w``; read back.  Returns counts."""
        from bench.programming import program_cells

        new = self.targets_for(w)
        changed = ~np.isclose(new, self.targets_s, rtol=0.0, atol=1e-9)
        rows, cols = np.nonzero(changed)
        info: dict[str, Any] = {"cells_reprogrammed": int(rows.size), "pulses": 0, "stuck": 0,
                                "failed": 0, "program_seconds": 0.0}
        if rows.size:
            t0 = time.perf_counter()
            res = program_cells(self.chip, rows, cols, new[rows, cols], self.schedule, mode="board")
            info.update(pulses=int(res.pulses.sum()), stuck=int(res.stuck.sum()),
                        failed=int((~res.success & ~res.stuck).sum()),
                        program_seconds=time.perf_counter() - t0)
            self.targets_s = new
            g = self.chip.read_array(averages=self.runner.read_averages)
            n_out, n_in = self.layer.n_out, self.layer.n_in
            self.realised = ((g[:, 0::2] - g[:, 1::2]) / self.g_unit_s)[:n_in, :n_out].T.copy()
        info["changed_mask"] = changed
        return info

    def forward(self, h: np.ndarray) -> np.ndarray:
        s = self.runner.streamer.stream(h)
        return s.spikes[:, :, :self.layer.n_out]


def finetune(net, chip, x_tune: np.ndarray, y_tune: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
             cfg: FinetuneConfig, *, schedule=None, timebase=None, baud: float = 3_000_000.0,
             latency_s: float = 1e-3, x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
             on_round: Callable[[dict[str, Any], np.ndarray], None] | None = None,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fine-tune ``net``'s chip layer on ``chip`` (an open PEChip).  Updates ``net`` in place with
    the best round's quantised weights; returns the figures (see module docstring)."""
    from bench.hybrid import HybridRunner, plan_network
    from bench.network import train as T
    from bench.scoring import predict

    t_start = time.perf_counter()
    idx = net.chip_layer
    plan = plan_network(net, chip.info())
    if idx not in plan.chip_layers:
        raise UsageError(f"the model's chip layer {idx} does not fit this chip: {plan.layers[idx].reason}")
    if idx % len(net.layers) != len(net.layers) - 1:
        raise UsageError("fine-tuning supports a chip layer that is the output layer only")
    plan = plan_network(net, chip.info(), chip_layers=[idx])
    runner = HybridRunner(net, chip, plan=plan, timebase=timebase, schedule=schedule, baud=baud,
                          latency_s=latency_s, read_averages=cfg.read_averages)
    t0 = time.perf_counter()
    runner.prepare()
    initial_program_s = time.perf_counter() - t0
    tuner = ChipLayerTuner(runner, idx, schedule)
    k = net.n_classes
    tcfg = T.TrainConfig()
    say = log or (lambda _m: None)

    t0 = time.perf_counter()
    h_tune = runner.chip_inputs(x_tune)
    h_val = runner.chip_inputs(x_val)
    h_test = runner.chip_inputs(x_test) if x_test is not None else None
    sw_layer = net.layers[idx]

    def sw_acc(h, y, w=None):
        out = runner._sw_batched(sw_layer, h, w)
        return float(np.mean(predict(out, k) == y))

    software = {"val": sw_acc(h_val, y_val)}
    if h_test is not None:
        software["test"] = sw_acc(h_test, y_test)
    software_seconds = time.perf_counter() - t0

    def evaluate(h, y) -> _Eval:
        s = tuner.forward(h)
        loss, _ = T.spike_count_loss(s, y, target_true=tcfg.target_true, target_false=tcfg.target_false)
        return _Eval(float(np.mean(predict(s, k) == y)), float(loss), s)

    w = np.array(sw_layer.weight, dtype=np.float64)  # float shadow weights
    opt = T.Adam([w], lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)

    ev = evaluate(h_val, y_val)
    test_before = evaluate(h_test, y_test).accuracy if h_test is not None else None
    best = {"round": 0, "accuracy": ev.accuracy, "loss": ev.loss, "w": w.copy()}
    rounds: list[dict[str, Any]] = []
    r0 = {"round": 0, "val_accuracy": ev.accuracy, "val_loss": ev.loss, "train_loss": None,
          "train_accuracy": None, "cells_reprogrammed": int(runner.layers[idx].programming["cells"]),
          "levels_changed": None, "pulses": None, "stuck": None, "failed": None,
          "program_seconds": initial_program_s, "seconds": time.perf_counter() - t_start}
    rounds.append(r0)
    if on_round:
        on_round(r0, w)
    say(f"round 0: held-out chip accuracy {ev.accuracy:.3f}, loss {ev.loss:.2f} (initial programming)")
    since = 0
    order = rng.permutation(len(y_tune))
    pos = 0
    for rnd in range(1, cfg.max_rounds + 1):
        t_r = time.perf_counter()
        if pos + cfg.batch_size > len(order):
            order, pos = rng.permutation(len(y_tune)), 0
        sel = np.sort(order[pos:pos + cfg.batch_size])
        pos += cfg.batch_size
        hb, yb = h_tune[sel], y_tune[sel]
        s = tuner.forward(hb)
        dw, loss = T.layer_gradient(net, idx, hb, yb, measured_out=s, weight=tuner.realised, cfg=tcfg)
        train_acc = float(np.mean(predict(s, k) == yb))
        opt.step([w], [dw], [sw_layer.clamp])
        prog = tuner.apply(w)
        changed = prog.pop("changed_mask")
        ev = evaluate(h_val, y_val)
        improved = (ev.accuracy > best["accuracy"]
                    or (ev.accuracy == best["accuracy"] and ev.loss < best["loss"] * (1 - 1e-3)))
        if improved:
            best = {"round": rnd, "accuracy": ev.accuracy, "loss": ev.loss, "w": w.copy()}
            since = 0
        else:
            since += 1
        rec = {"round": rnd, "val_accuracy": ev.accuracy, "val_loss": ev.loss, "train_loss": float(loss),
               "train_accuracy": train_acc, "levels_changed": int(np.count_nonzero(changed[:, 0::2] | changed[:, 1::2])),
               **prog, "improved": bool(improved), "seconds": time.perf_counter() - t_r}
        rounds.append(rec)
        if on_round:
            on_round(rec, w)
        say(f"round {rnd}: train loss {loss:.2f}, {prog['cells_reprogrammed']} cells reprogrammed, "
            f"held-out chip accuracy {ev.accuracy:.3f}, loss {ev.loss:.2f}{' *' if improved else ''}")
        if since >= cfg.patience:
            break
    # keep the best round's weights on the chip and in the model
    restore = tuner.apply(best["w"])
    restore.pop("changed_mask")
    wq = tuner.quantised(best["w"])
    test_after = evaluate(h_test, y_test).accuracy if h_test is not None else None
    val_after = evaluate(h_val, y_val).accuracy
    net.layers[idx].weight = wq
    reprogrammed = sum(r["cells_reprogrammed"] for r in rounds[1:]) + restore["cells_reprogrammed"]
    return {
        "rounds": len(rounds) - 1,
        "best_round": best["round"],
        "val_accuracy_before": rounds[0]["val_accuracy"],
        "val_accuracy_best": best["accuracy"],
        "val_accuracy_after": val_after,
        "chip_accuracy_before": test_before,
        "chip_accuracy_after": test_after,
        "software_accuracy": software.get("test", software["val"]),
        "software_val_accuracy": software["val"],
        "cells_reprogrammed": int(reprogrammed),
        "cells_reprogrammed_restore": int(restore["cells_reprogrammed"]),
        "cells_initial": int(rounds[0]["cells_reprogrammed"]),
        "scale_s": tuner.scale_s,
        "g_unit_s": tuner.g_unit_s,
        "per_round": rounds,
        "shadow_weights": best["w"],
        "bad_cells_s": tuner.bad_cells_s,
        "seconds": {"total": time.perf_counter() - t_start, "initial_programming": initial_program_s,
                    "software_layers": software_seconds},
        "runner": runner.describe(),
    }
