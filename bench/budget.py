"""The error budget: where the accuracy goes between software and the (simulated) chip (issue 15).

Each non-ideality of the chip model is switched on ALONE on an otherwise ideal chip, at the
value the chosen preset (``typical`` by default) gives it, and the test split is scored; then
everything together (the preset itself).  The chips are in-process virtual boards reached
through the simulator's documented URL (``pesim://?fidelity=ideal&p.<field>=<value>``,
docs/chip_model.md) and driven through the same driver, mapper, write-verify and streamer as
the lab (``bench.hybrid.HybridRunner``).

Rows (drop in accuracy points; each against the row it builds on):

=========================  ==========================================  ==================
row                        what is on                                   measured against
=========================  ==========================================  ==================
quantisation               chip layer on the 16 levels, in software     software
write-verify residual      ideal chip, programmed by write-verify       quantised software
each effect (below)        ideal chip + that effect at preset value     ideal chip
all together               the preset                                   software
=========================  ==========================================  ==================

so with ``--fidelity ideal`` every effect row is zero and "all together" is quantisation plus
the residual.  Noisy rows are measured on ``chip_seeds`` dies (device-to-device maps) and
reported as mean with min/max; "sum of rows" against "all together" shows the interaction.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np

from bench.errors import ConfigError


@dataclass(frozen=True)
class Effect:
    """One non-ideality: the chip-parameter fields (``ChipParams``) that make it."""

    key: str
    label: str
    fields: tuple[str, ...]


EFFECTS: tuple[Effect, ...] = (
    Effect("programming", "programming: stuck cells, device-to-device and cycle-to-cycle spread",
           ("stuck_on_frac", "stuck_off_frac", "v_th_d2d_sigma_v", "gain_d2d_sigma_ln",
            "c2c_sigma_ln", "c2c_add_sigma_s")),
    Effect("read_noise", "read noise (verify reads and per-column during inference)",
           ("read_noise_rel", "read_noise_floor_s", "column_noise", "read_disturb_rel",
            "read_nonlinearity_per_v")),
    Effect("relaxation", "relaxation and drift after programming (+ age)",
           ("relax_sigma_1s_s", "relax_t0_s", "drift_mean_rel_per_ln")),
    Effect("neuron_mismatch", "neuron mismatch: threshold (incl. TIA gain), time constant",
           ("theta_mismatch_rel", "tau_mismatch_rel")),
    Effect("neuron_noise", "neuron input (TIA) noise", ("neuron_noise_sigma",)),
    Effect("ir_drop", "IR drop along the columns", ("ir_drop_rel",)),
    Effect("link", "input spikes: loss and one-step jitter", ("input_spike_loss", "input_jitter_frac")),
)
"""The budget's rows after quantisation and the write-verify residual."""

NOT_BUDGETED: dict[str, str] = {
    "name": "the preset's name",
    "e_scale": "energy only",
    "idle_current_a": "energy only",
    "endurance_median_pulses": "wear-out needs ~1e5 reprogrammings; a budget is taken on a fresh die",
}
"""Chip parameters that differ between presets but cannot move accuracy on a fresh die."""


def preset_params(fidelity: str):
    """The chip model's parameter set for a preset (``ChipParams.preset``, its documented API)."""
    from sim_backend.physics.params import ChipParams

    try:
        return ChipParams.preset(fidelity)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def effect_overrides(effect: Effect, fidelity: str) -> dict[str, Any]:
    """The preset's values of ``effect``'s fields (to switch on over an ideal chip)."""
    p = preset_params(fidelity)
    return {f: getattr(p, f) for f in effect.fields}


def is_active(effect: Effect, fidelity: str) -> bool:
    """Does the preset switch this effect on (any field differs from ``ideal``)?"""
    ideal = preset_params("ideal")
    return any(v != getattr(ideal, f) for f, v in effect_overrides(effect, fidelity).items())


def chip_url(fidelity: str, chip_seed: int, run_seed: int, overrides: dict[str, Any] | None = None) -> str:
    """``pesim://`` URL of a fresh virtual board with ``overrides`` on top of the preset."""
    q: dict[str, Any] = {"seed": int(chip_seed), "run_seed": int(run_seed), "fidelity": fidelity}
    for k, v in (overrides or {}).items():
        q[f"p.{k}"] = int(v) if isinstance(v, bool) else repr(float(v)) if isinstance(v, float) else v
    return "pesim://?" + urlencode(q)


@dataclass
class Row:
    key: str
    label: str
    baseline: str
    """Row key this one is measured against ("software", "quantisation", "ideal_chip")."""
    accuracies: list[float]
    drop_points: list[float]
    params: dict[str, Any] = field(default_factory=dict)
    active: bool = True

    def as_dict(self) -> dict[str, Any]:
        d = np.asarray(self.drop_points, dtype=float)
        a = np.asarray(self.accuracies, dtype=float)
        return {"key": self.key, "label": self.label, "baseline": self.baseline, "active": self.active,
                "params": {k: (bool(v) if isinstance(v, (bool, np.bool_)) else float(v)) for k, v in self.params.items()},
                "accuracy": float(a.mean()), "accuracies": [float(v) for v in a],
                "drop_points": float(d.mean()), "drop_min": float(d.min()), "drop_max": float(d.max()),
                "drops": [float(v) for v in d]}


def _accuracy(out: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    from bench.scoring import predict

    return float(np.mean(predict(out, n_classes) == labels)) if labels.size else float("nan")


class ChipTail:
    """The network from its (single) chip layer on, with the software prefix computed once."""

    def __init__(self, net, x: np.ndarray, threads: int | None = None, batch: int = 64) -> None:
        from bench.hybrid import require_chip_layers, software_layer

        self.net = net
        self.plan = require_chip_layers(net, "budget")
        if len(self.plan.chip_layers) != 1:
            raise ConfigError(f"the error budget needs exactly one chip layer, the plan has "
                              f"{len(self.plan.chip_layers)}")
        self.idx = self.plan.chip_layers[0]
        self._sw = lambda layer, h, w=None: np.concatenate(
            [software_layer(layer, h[i:i + batch], w, threads=threads) for i in range(0, h.shape[0], batch)])
        h = np.asarray(x, dtype=bool)
        for i in range(self.idx):
            h = self._sw(net.layers[i], h)
        self.h = h
        """Input spikes of the chip layer (n, T, fan-in)."""

    def after(self, out: np.ndarray) -> np.ndarray:
        h = out
        for layer in self.net.layers[self.idx + 1:]:
            h = self._sw(layer, h)
        return h

    def software(self, weight: np.ndarray | None = None) -> np.ndarray:
        """Outputs with the chip layer in software (its own or the given weights)."""
        return self.after(self._sw(self.net.layers[self.idx], self.h, weight))


def run_on_chip(tail: ChipTail, url: str, *, schedule=None, age_s: float = 0.0,
                mapping: dict[str, Any] | None = None) -> tuple[np.ndarray, Any]:
    """Program the chip layer on a fresh board at ``url``, let ``age_s`` pass, stream the inputs.

    ``mapping``: ``HybridRunner`` options (``scale_policy``, ``route_stuck``); default: its defaults.
    """
    from bench.hybrid import HybridRunner
    from bench.session import register_sim_urls
    from drivers.pechip import PEChip

    register_sim_urls()
    with PEChip(url) as chip:
        runner = HybridRunner(tail.net, chip, plan=tail.plan, schedule=schedule, **(mapping or {}))
        state = runner.prepare()[tail.idx]
        if age_s > 0:
            chip.wait(age_s)
        s = runner.streamer.stream(tail.h)
        out = s.spikes[:, :, :tail.net.layers[tail.idx].n_out]
    return tail.after(out), state


def measure_budget(net, x: np.ndarray, labels: np.ndarray, *, fidelity: str = "typical",
                   chip_seeds: tuple[int, ...] = (1, 2, 3), run_seed: int = 0, age_s: float = 0.0,
                   schedule=None, threads: int | None = None, mapping: dict[str, Any] | None = None,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The error budget of ``net`` on inputs ``x`` (n, T, n_inputs) with ``labels`` (n,).

    Returns a JSON-able dict: ``software_accuracy``, ``rows`` (quantisation, write-verify
    residual, one per :data:`EFFECTS`), ``all`` (the preset), ``sum_of_rows_points``,
    ``interaction_points``, and the settings.  Accuracies are fractions, drops points.
    """
    t0 = time.perf_counter()
    say = log or (lambda m: None)
    preset_params(fidelity)
    if not chip_seeds:
        raise ConfigError("the error budget needs at least one chip seed")
    if not (np.isfinite(age_s) and age_s >= 0):
        raise ConfigError(f"age must be a duration >= 0 s, got {age_s!r}")
    labels = np.asarray(labels, dtype=np.int64)
    k = net.n_classes
    tail = ChipTail(net, x, threads=threads)
    acc_sw = _accuracy(tail.software(), labels, k)
    say(f"software {100 * acc_sw:.2f} %")

    # ideal chip (deterministic: one die is enough) and the quantised software network
    out, state = run_on_chip(tail, chip_url("ideal", chip_seeds[0], run_seed), schedule=schedule, age_s=age_s,
                             mapping=mapping)
    acc_ideal = _accuracy(out, labels, k)
    acc_q = _accuracy(tail.software(state.weights_target), labels, k)
    say(f"quantised software {100 * acc_q:.2f} %, ideal chip {100 * acc_ideal:.2f} %")
    rows = [Row("quantisation", f"{len(preset_params('ideal').levels_s)}-level quantisation of the chip layer",
                "software", [acc_q], [100 * (acc_sw - acc_q)],
                {"levels": len(preset_params("ideal").levels_s)}),
            Row("residual", "write-verify residual (ideal device)", "quantisation", [acc_ideal],
                [100 * (acc_q - acc_ideal)])]

    def over_dies(fid: str, overrides: dict[str, Any]) -> list[float]:
        accs = []
        for seed in chip_seeds:
            o, _ = run_on_chip(tail, chip_url(fid, seed, run_seed, overrides), schedule=schedule, age_s=age_s,
                               mapping=mapping)
            accs.append(_accuracy(o, labels, k))
        return accs

    for eff in EFFECTS:
        ov = effect_overrides(eff, fidelity)
        accs = over_dies("ideal", ov)
        rows.append(Row(eff.key, eff.label, "ideal_chip", accs, [100 * (acc_ideal - a) for a in accs], ov,
                        active=is_active(eff, fidelity)))
        say(f"{eff.key}: {100 * float(np.mean(accs)):.2f} %")
    accs = over_dies(fidelity, {})
    all_row = Row("all", f"all together ({fidelity})", "software", accs, [100 * (acc_sw - a) for a in accs])
    say(f"all together: {100 * float(np.mean(accs)):.2f} %")
    total = float(sum(np.mean(r.drop_points) for r in rows))
    all_d = all_row.as_dict()
    from bench.hybrid import DEFAULT_ROUTE_STUCK, DEFAULT_SCALE_POLICY

    used = {"scale_policy": DEFAULT_SCALE_POLICY, "route_stuck": DEFAULT_ROUTE_STUCK, **(mapping or {})}
    return {"fidelity": fidelity, "age_s": float(age_s), "chip_seeds": [int(s) for s in chip_seeds],
            "run_seed": int(run_seed), "samples": int(labels.size), "mapping": used,
            "software_accuracy": acc_sw, "quantised_accuracy": acc_q, "ideal_chip_accuracy": acc_ideal,
            "rows": [r.as_dict() for r in rows], "all": all_d,
            "sum_of_rows_points": total, "interaction_points": all_d["drop_points"] - total,
            "seconds": time.perf_counter() - t0}


def format_budget(b: dict[str, Any]) -> str:
    """The budget as a plain-text table."""
    head = ("row", "accuracy", "drop (points)", "min..max")
    lines = []
    for r in b["rows"] + [b["all"]]:
        spread = "" if len(r["drops"]) < 2 else f"{r['drop_min']:+.2f}..{r['drop_max']:+.2f}"
        off = "" if r.get("active", True) else " (off at this preset)"
        lines.append((r["label"] + off, f"{100 * r['accuracy']:.2f} %", f"{r['drop_points']:+.2f}", spread))
    w = [max(len(x[i]) for x in lines + [head]) for i in range(4)]
    fmt = lambda t: f"{t[0]:<{w[0]}}  {t[1]:>{w[1]}}  {t[2]:>{w[2]}}  {t[3]:<{w[3]}}".rstrip()  # noqa: E731
    mp = b.get("mapping") or {}
    flow = ("" if not mp else f"; scale {mp.get('scale_policy')}, "
            f"{'routed around' if mp.get('route_stuck') else 'not routed around'} stuck cells")
    out = [f"error budget at {b['fidelity']!r}, age {b['age_s']:g} s, {b['samples']} samples, "
           f"chip seeds {b['chip_seeds']}{flow}; software {100 * b['software_accuracy']:.2f} %",
           fmt(head), fmt(tuple("-" * n for n in w))]
    out += [fmt(t) for t in lines]
    out.append(f"sum of rows {b['sum_of_rows_points']:+.2f} points; all together {b['all']['drop_points']:+.2f} "
               f"(interaction {b['interaction_points']:+.2f})")
    return "\n".join(out)


def covered_fields() -> set[str]:
    """Every ChipParams field some budget row switches on, plus the ones that cannot matter."""
    return {f for e in EFFECTS for f in e.fields} | set(NOT_BUDGETED)
