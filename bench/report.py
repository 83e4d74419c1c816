"""``snnbench report RUN.h5``: PNG figures rendered offscreen with pyqtgraph, and one HTML page.

Figures (each only when its data is in the run file):
- ``conductance_map.png``  targets, measured and error maps of the programmed array (µS);
- ``programming.png``      histogram of programming error (µS) and of pulses per cell;
- ``rasters.png``          input and output spike rasters of a few samples;
- ``power.png``            current trace per supply rail;
- ``confusion.png``        confusion matrix of the chip's predictions;
- ``error_budget.png``     the error budget (``snnbench budget``; the demo's too): drop per
  non-ideality alone, their sum and all together, with a table on the page;
- ``training_gain.png``    software and chip accuracy of the plain, hardware-aware and
  fine-tuned reference models side by side (the demo), with a table on the page.

The Qt platform defaults to ``offscreen`` so reports render on machines without a screen.
"""
from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import RunPathError, RunStoreError
from bench.runstore import open_run

US = 1e6  # siemens -> microsiemens (report edge)


def _qt():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from pyqtgraph.Qt import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    pg.setConfigOptions(antialias=True, background="w", foreground="k", imageAxisOrder="row-major")
    return pg, app


def _save(widget, app, path: Path, size=(1200, 500)) -> Path:
    widget.resize(*size)
    widget.show()
    for _ in range(3):
        app.processEvents()
    img = widget.grab()
    ok = img.save(str(path))
    # Delete the widget now, inside Qt's event loop: widgets left for interpreter shutdown
    # made PySide6 abort at exit ("none_dealloc") once several figures had been drawn.
    widget.close()
    widget.deleteLater()
    app.sendPostedEvents(None, 0)
    app.processEvents()
    if not ok:
        raise RunStoreError(f"{path}: cannot write figure")
    return path


def _image(pg, plot, data: np.ndarray, levels: tuple[float, float], cmap: str = "viridis"):
    item = pg.ImageItem(np.nan_to_num(np.asarray(data, dtype=float)))
    item.setLevels(levels)
    item.setColorMap(pg.colormap.get(cmap))
    plot.addItem(item)
    plot.invertY(True)
    plot.setAspectLocked(False)
    return item


def _first(f, *names: str):
    """The first of ``names`` present in the run file (run kinds name things differently)."""
    return next((f[n] for n in names if n in f), None)


def _targets(f):
    return _first(f, "program/targets_s", "maps/target_s")


def _measured(f):
    return _first(f, "program/readback_s", "maps/readback_s", "program/g_s", "maps/mean_s")


def conductance_map(f, out: Path) -> Path | None:
    t_ds, g_ds = _targets(f), _measured(f)
    if g_ds is None:
        return None
    pg, app = _qt()
    g = g_ds[:] * US
    panels = []
    if t_ds is not None:
        t = t_ds[:] * US
        top = max(150.0, float(np.nanmax(t)))
        panels += [("target (µS)", t, (0, top), "viridis"), ("measured (µS)", g, (0, top), "viridis"),
                   ("measured − target (µS)", g - t, (-15, 15), "CET-D1")]
    else:
        panels += [("measured (µS)", g, (0, max(150.0, float(np.nanmax(g)))), "viridis")]
    win = pg.GraphicsLayoutWidget(title="conductance map")
    for col, (name, data, lv, cmap) in enumerate(panels):
        p = win.addPlot(row=0, col=2 * col, title=name)
        p.setLabel("bottom", "column")
        p.setLabel("left", "row")
        img = _image(pg, p, data, lv, cmap)
        bar = pg.ColorBarItem(values=lv, colorMap=pg.colormap.get(cmap), interactive=False, width=12)
        bar.setImageItem(img)
        win.addItem(bar, row=0, col=2 * col + 1)
    return _save(win, app, out / "conductance_map.png", (500 * len(panels), 650))


def programming(f, out: Path) -> Path | None:
    t_ds, g_ds = _targets(f), _measured(f)
    if t_ds is None or g_ds is None:
        return None
    pg, app = _qt()
    err = (g_ds[:] - t_ds[:]).ravel() * US
    win = pg.GraphicsLayoutWidget(title="programming")
    p = win.addPlot(row=0, col=0, title="programming error, read back (µS)")
    y, x = np.histogram(np.clip(err[np.isfinite(err)], -30, 30), bins=61, range=(-30.5, 30.5))
    p.plot(x, y, stepMode="center", fillLevel=0, brush=(60, 110, 200, 160))
    p.setLabel("bottom", "measured − target", units="µS")
    p.setLabel("left", "cells")
    pulses_ds = _first(f, "program/pulses", "maps/pulses")
    if pulses_ds is not None:
        pulses = np.nan_to_num(pulses_ds[:].ravel()).astype(int)
        q = win.addPlot(row=0, col=1, title="pulses per cell")
        hi = max(1, int(pulses.max()))
        y, x = np.histogram(pulses, bins=min(60, hi + 1), range=(-0.5, hi + 0.5))
        q.plot(x, y, stepMode="center", fillLevel=0, brush=(220, 120, 40, 160))
        q.setLabel("bottom", "pulses")
        q.setLabel("left", "cells")
    return _save(win, app, out / "programming.png")


def rasters(f, out: Path, samples: int = 3) -> Path | None:
    outs = _first(f, "infer/out_spikes", "output_spikes")
    if outs is None:
        return None
    pg, app = _qt()
    win = pg.GraphicsLayoutWidget(title="spike rasters")
    n = min(samples, outs.shape[0])
    lab = _first(f, "infer/labels", "labels")
    labels = lab[:n] if lab is not None else [None] * n
    ins = _first(f, "infer/in_spikes_packed", "inputs_packed")
    for i in range(n):
        if ins is not None:
            n_in = int(ins.attrs.get("n_inputs", 0) or json.loads(str(ins.attrs.get("shape_per_sample", "[0, 800]")))[1])
            x = np.unpackbits(ins[i], axis=-1, count=n_in, bitorder="little").astype(bool)
            t, k = np.nonzero(x)
            p = win.addPlot(row=0, col=i, title=f"sample {i} input (class {labels[i]})")
            p.plot(t, k, pen=None, symbol="s", symbolSize=2, symbolPen=None, symbolBrush=(40, 40, 40, 120))
            p.setLabel("bottom", "step")
            p.setLabel("left", "input")
        o = outs[i]
        t, k = np.nonzero(o)
        q = win.addPlot(row=1, col=i, title=f"sample {i} output neurons")
        q.plot(t, k, pen=None, symbol="o", symbolSize=5, symbolPen=None, symbolBrush=(200, 40, 40, 200))
        q.setYRange(-0.5, o.shape[1] - 0.5)
        q.setLabel("bottom", "step")
        q.setLabel("left", "neuron (class)")
    return _save(win, app, out / "rasters.png", (1500, 800))


def _traces(f) -> list[tuple[str, object]]:
    """(label, group) of every current trace: groups holding ``time_s`` and ``current_a``."""
    found: list[tuple[str, object]] = []

    def visit(name, obj):
        if hasattr(obj, "keys") and "time_s" in obj and "current_a" in obj:
            found.append((name, obj))

    f.visititems(visit)
    active = [t for t in found if "/idle" not in "/" + t[0]]
    return active or found


def power(f, out: Path) -> Path | None:
    traces = _traces(f)
    if not traces:
        return None
    pg, app = _qt()
    win = pg.GraphicsLayoutWidget(title="power")
    for i, (name, grp) in enumerate(traces):
        rail = name.rsplit("/", 1)[-1]
        v = float(grp.attrs.get("voltage_v", float("nan")))
        p = win.addPlot(row=i, col=0, title=f"{rail}: supply current ({name})")
        t, cur = grp["time_s"][:], grp["current_a"][:]
        p.plot((t - t[0]) * 1e3, cur * 1e3, pen=pg.mkPen((30, 90, 200), width=2))
        p.setLabel("bottom", "chip time", units="ms")
        p.setLabel("left", "I (mA)" + (f" at {v:g} V" if v == v else ""))
    return _save(win, app, out / "power.png", (1200, 250 * len(traces) + 50))


def confusion(f, out: Path) -> Path | None:
    cm_ds = _first(f, "infer/confusion_chip", "confusion")
    if cm_ds is None:
        return None
    pg, app = _qt()
    cm = cm_ds[:].astype(float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    win = pg.GraphicsLayoutWidget(title="confusion")
    p = win.addPlot(title="confusion matrix (chip): rows true class, columns predicted")
    img = _image(pg, p, norm, (0, 1), "CET-L17")
    for (r, c), v in np.ndenumerate(cm):
        if v:
            txt = pg.TextItem(str(int(v)), color="w" if norm[r, c] > 0.5 else "k", anchor=(0.5, 0.5))
            txt.setPos(c + 0.5, r + 0.5)
            p.addItem(txt)
    p.setLabel("bottom", "predicted class")
    p.setLabel("left", "true class")
    bar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get("CET-L17"), interactive=False, width=12)
    bar.setImageItem(img)
    win.addItem(bar)
    return _save(win, app, out / "confusion.png", (800, 700))


def _budget(f) -> dict[str, Any] | None:
    g = f.get("budget")
    raw = g.attrs.get("budget_json") if g is not None else None
    return json.loads(raw) if isinstance(raw, (str, bytes)) and raw else None


def error_budget(f, out: Path) -> Path | None:
    """Bar chart of the error budget: drop (points) per row, min..max over dies as whiskers."""
    b = _budget(f)
    if b is None:
        return None
    pg, app = _qt()
    rows = b["rows"] + [{"label": "sum of the rows above", "drop_points": b["sum_of_rows_points"],
                         "drop_min": b["sum_of_rows_points"], "drop_max": b["sum_of_rows_points"]}, b["all"]]
    n = len(rows)
    y = np.arange(n)[::-1].astype(float)
    d = np.array([r["drop_points"] for r in rows])
    lo = np.array([r["drop_min"] for r in rows])
    hi = np.array([r["drop_max"] for r in rows])
    colours = [(60, 110, 200)] * (n - 2) + [(150, 150, 150), (200, 60, 40)]
    win = pg.GraphicsLayoutWidget(title="error budget")
    p = win.addPlot(title=f"error budget at {b['fidelity']} (age {b['age_s']:g} s, {b['samples']} samples, "
                          f"dies {b['chip_seeds']}): software {100 * b['software_accuracy']:.2f} %")
    p.addItem(pg.BarGraphItem(x0=np.minimum(d, 0), y=y, height=0.6, width=np.abs(d),
                              brushes=[pg.mkBrush(*c) for c in colours], pens=[pg.mkPen(None)] * n))
    p.addItem(pg.ErrorBarItem(x=d, y=y, left=d - lo, right=hi - d, beam=0.25, pen=pg.mkPen("k", width=1.5)))
    p.getAxis("left").setTicks([[(yi, r["label"]) for yi, r in zip(y, rows)]])
    p.setLabel("bottom", "accuracy drop (points; whiskers: min..max over dies)")
    p.addLine(x=0, pen=pg.mkPen((0, 0, 0), width=1))
    span = max(1.0, float(np.max(np.abs(np.concatenate([lo, hi, d])))))
    p.setXRange(min(0.0, float(lo.min())) - 0.05 * span, 1.1 * span)
    for yi, v, top in zip(y, d, hi):
        txt = pg.TextItem(f"{v:+.2f}", color="k", anchor=(0, 0.5))
        txt.setPos(max(v, top, 0.0) + 0.02 * span, yi)
        p.addItem(txt)
    return _save(win, app, out / "error_budget.png", (1300, 90 + 45 * n))


def _training(f) -> dict[str, Any] | None:
    g = f.get("training")
    raw = g.attrs.get("training_json") if g is not None else None
    return json.loads(raw) if isinstance(raw, (str, bytes)) and raw else None


def training_gain(f, out: Path) -> Path | None:
    """Software and chip accuracy of each compared model (plain, hw-aware, fine-tuned), side by side."""
    c = _training(f)
    if c is None or not c["rows"]:
        return None
    pg, app = _qt()
    rows = c["rows"]
    win = pg.GraphicsLayoutWidget(title="what training buys")
    p = win.addPlot(title=f"what training buys: software vs chip ({c['fidelity']} die {c['chip_seeds']}, "
                          f"{c['samples']} samples)")
    x = np.arange(len(rows), dtype=float)
    sw = np.array([100 * r["software_accuracy"] for r in rows])
    ch = np.array([100 * r["chip_accuracy"] for r in rows])
    p.addItem(pg.BarGraphItem(x=x - 0.18, height=sw, width=0.34, brush=(150, 150, 150), name="software"))
    p.addItem(pg.BarGraphItem(x=x + 0.18, height=ch, width=0.34, brush=(60, 110, 200), name="chip"))
    for xi, a, b in zip(x, sw, ch):
        for dx, v in ((-0.18, a), (0.18, b)):
            t = pg.TextItem(f"{v:.1f}", color="k", anchor=(0.5, 1))
            t.setPos(xi + dx, v)
            p.addItem(t)
    p.getAxis("bottom").setTicks([[(xi, r["key"]) for xi, r in zip(x, rows)]])
    lo = float(min(sw.min(), ch.min()))
    p.setYRange(max(0.0, lo - 10.0), 101.0)
    p.setLabel("left", "accuracy (%): grey software, blue chip")
    return _save(win, app, out / "training_gain.png", (900, 550))


def training_table_html(c: dict[str, Any]) -> str:
    cells = "".join(f"<tr><td>{html.escape(r['label'])}</td><td>{100 * r['software_accuracy']:.2f} %</td>"
                    f"<td>{100 * r['chip_accuracy']:.2f} %</td><td>{r['drop_points']:+.2f}"
                    f"{'' if r.get('baseline', r['key']) == r['key'] else ' (against ' + html.escape(r['baseline']) + ' software)'}"
                    f"</td></tr>" for r in c["rows"])
    return (f"<h2>What training buys</h2><p>The shipped reference models on the same test inputs, in software "
            f"and on a simulated {html.escape(c['fidelity'])} die (chip seed {c['chip_seeds']}). A fine-tuned "
            f"chip layer is tuned to one die: its software figure is not its baseline, the model it was "
            f"tuned from is.</p>"
            f"<table><tr><th>model</th><th>software</th><th>chip</th><th>drop (points)</th></tr>{cells}</table>")


def budget_table_html(b: dict[str, Any]) -> str:
    """The error budget as an HTML table."""
    def params(r):
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.get("params", {}).items())

    base = {"software": "software", "quantisation": "quantised software", "ideal_chip": "ideal chip"}
    cells = "".join(
        f"<tr><td>{html.escape(r['label'])}{'' if r.get('active', True) else ' (off at this preset)'}</td>"
        f"<td>{100 * r['accuracy']:.2f} %</td><td>{r['drop_points']:+.2f}</td>"
        f"<td>{r['drop_min']:+.2f} .. {r['drop_max']:+.2f}</td><td>{html.escape(base.get(r['baseline'], r['baseline']))}</td>"
        f"<td>{html.escape(params(r))}</td></tr>" for r in b["rows"] + [b["all"]])
    which = "".join(f"{k} {html.escape(Path(str(b[k])).name)}, " for k in ("model", "data") if b.get(k))
    return (f"<h2>Error budget</h2><p>{which}fidelity {html.escape(b['fidelity'])}, age {b['age_s']:g} s, "
            f"{b['samples']} samples, chip seeds {b['chip_seeds']}; software accuracy "
            f"{100 * b['software_accuracy']:.2f} %. Each effect alone = an ideal chip with only that effect on, "
            f"at the preset's value.</p><table><tr><th>row</th><th>accuracy</th><th>drop (points)</th>"
            f"<th>min .. max over dies</th><th>against</th><th>chip parameters</th></tr>{cells}"
            f"<tr><td>sum of the rows</td><td></td><td>{b['sum_of_rows_points']:+.2f}</td><td></td><td></td>"
            f"<td>interaction (all together − sum) {b['interaction_points']:+.2f}</td></tr></table>")


def run_summary(f) -> dict[str, Any]:
    """The figures of a run, from whichever attributes its kind writes."""
    summary: dict[str, Any] = {}
    for key in ("result_json", "result", "summary"):
        for attrs in (f.attrs, f["power"].attrs if "power" in f else {}):
            raw = attrs.get(key)
            if isinstance(raw, (str, bytes)) and raw:
                try:
                    d = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(d, dict):
                    summary.update(d)
    for key in ("accuracy", "software_accuracy", "drop_points", "within_tolerance"):
        if key in f.attrs and key not in summary:
            summary[key] = float(f.attrs[key])
    return summary


FIGURES = (conductance_map, programming, rasters, power, confusion, error_budget, training_gain)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(quantity, ours, paper) rows for the printed and HTML summary table."""
    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f} %"

    def si(v, unit, scale=1.0, fmt=".3g"):
        return "n/a" if v is None else f"{v * scale:{fmt}} {unit}"

    tsops = summary.get("tsops_per_w") or {}
    rows = [
        ("cells within tolerance", pct(summary.get("within_tolerance")), "n/a"),
        ("software accuracy", pct(summary.get("software_accuracy")), "~98.26 %"),
        ("chip accuracy", pct(summary.get("accuracy")), "93.06 %"),
        ("accuracy drop", "n/a" if summary.get("drop_points") is None else f"{summary['drop_points']:.2f} points", "5.2 points"),
        ("average power", si(summary.get("average_power_w"), "mW", 1e3), "43.83 mW"),
        ("energy per sample", si(summary.get("energy_per_sample_j"), "µJ", 1e6), "1.94 µJ"),
        ("latency per sample", si(summary.get("latency_s"), "µs", 1e6, ".4g"), "44.31 µs"),
    ]
    for k, v in tsops.items():
        rows.append((f"TSOPS/W ({k} SOPs)", "n/a" if v is None else f"{v:.4g}", "101.05"))
    net = summary.get("tsops_per_w_network", summary.get("tsops_per_w_network_dense_rate"))
    if net is not None:
        rows.append(("TSOPS/W (network rate, paper's form)", f"{net:.4g}", "101.05"))
    return rows


def format_table(rows: list[tuple[str, str, str]]) -> str:
    w0 = max(len(r[0]) for r in rows + [("quantity", "", "")])
    w1 = max(len(r[1]) for r in rows + [("", "snnbench", "")])
    lines = [f"{'quantity':<{w0}}  {'snnbench':>{w1}}  paper", f"{'-' * w0}  {'-' * w1}  -----"]
    lines += [f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def make_report(run_path: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Render the figures and the HTML page; returns their paths."""
    run_path = Path(run_path)
    out = Path(out_dir) if out_dir else run_path.with_suffix("").parent / (run_path.stem + "_report")
    # The run file is opened and checked before the directory exists: a bad run file leaves
    # nothing behind; a failure while rendering removes the directories this call created.
    top_new = None
    for p in (out, *out.parents):
        if p.exists():
            break
        top_new = p
    with open_run(run_path) as f:
        if "kind" not in f.attrs:
            raise RunPathError(f"{run_path}: not a snnbench run file (no 'kind' attribute)")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunPathError(f"{out}: cannot create report directory ({exc.strerror})") from None
        try:
            return _render(f, run_path, out)
        except BaseException:
            if top_new is not None:
                shutil.rmtree(top_new, ignore_errors=True)
            raise


def _render(f, run_path: Path, out: Path) -> dict[str, Any]:
    """Figures and the HTML page of the open run file ``f`` into ``out``."""
    kind = str(f.attrs["kind"])
    complete = bool(f.attrs.get("complete", False))
    summary = run_summary(f)
    figures = [p for fig in FIGURES if (p := fig(f, out)) is not None]
    attrs = {k: (v if isinstance(v, (str, int, float, bool)) else str(v)) for k, v in f.attrs.items()
             if k not in ("station", "summary")}
    rows = summary_rows(summary)
    budget = _budget(f)
    training = _training(f)
    page = out / "index.html"
    cells = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td>{html.escape(c)}</td></tr>"
                    for a, b, c in rows)
    imgs = "".join(f'<figure><img src="{p.name}" alt="{p.stem}"><figcaption>{p.stem.replace("_", " ")}'
                   f"</figcaption></figure>" for p in figures)
    prov = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in attrs.items())
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>snnbench run report</title>"
        "<style>body{font-family:sans-serif;max-width:1500px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px}"
        "img{max-width:100%}figure{margin:1.5em 0}</style></head><body>"
        f"<h1>snnbench run report</h1><p>{html.escape(str(run_path))} ({html.escape(kind)} run)</p>"
        + ("" if complete else "<p><strong>This run did not complete: the file holds the units "
                               "finished before it stopped.</strong></p>") +
        f"<h2>Summary</h2><table><tr><th>quantity</th><th>snnbench</th><th>paper</th></tr>{cells}</table>"
        + (training_table_html(training) if training else "")
        + (budget_table_html(budget) if budget else "") +
        f"<h2>Figures</h2>{imgs}<h2>Provenance</h2><table>{prov}</table></body></html>")
    table = format_table(rows) + ("" if complete else "\n(incomplete run: units finished before it stopped)")
    if budget:
        from bench.budget import format_budget

        table += "\n\n" + format_budget(budget)
    return {"report": str(page), "kind": kind, "complete": complete, "figures": [str(p) for p in figures],
            "summary_table": table}
