"""``snnbench campaign report CAMPAIGN.h5``: one PNG per result column and one HTML page.

Same approach as the run report (:mod:`bench.report`: pyqtgraph offscreen, PNGs beside an
``index.html``); the command runs in its own process (docs/decisions/0004).  Reads only the
committed rows.  For each scalar result column with values: the column against the first
numeric axis (log x when the axis spans >= 100x), one curve per combination of the other
axes, the mean over repeats with a +-1 standard deviation bar.  A retention-style campaign
(points holding ``read/level_error_mean_s``) also gets the mean and spread of the drift per
conductance level against that axis (``level_drift.png``).
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from bench.campaign.store import open_campaign, read_table, status_counts
from bench.errors import RunPathError
from bench.report import _qt, _save

US = 1e6


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _groups(cols: dict[str, np.ndarray], axes: list[dict[str, Any]], x_name: str) -> list[tuple[str, np.ndarray]]:
    others = [a["name"] for a in axes if a["name"] != x_name]
    keys = list(zip(*(cols[o] for o in others))) if others else [()] * len(cols["index"])
    out = []
    for key in dict.fromkeys(keys):
        sel = np.array([k == key for k in keys])
        label = ", ".join(f"{o}={v:g}" if isinstance(v, (float, np.floating)) else f"{o}={v}"
                          for o, v in zip(others, key))
        out.append((label or "all points", sel))
    return out[:12]


def _x_axis(cols, axes) -> dict[str, Any] | None:
    for a in axes:
        if cols[a["name"]].dtype.kind == "f":
            return a
    return None


def _column_figure(pg, app, cols, axes, column: str, x: dict[str, Any] | None, out: Path) -> Path | None:
    ok = (cols["status"] == 0) & np.isfinite(cols[column])
    if ok.sum() == 0:
        return None
    y_all = cols[column][ok]
    win = pg.GraphicsLayoutWidget(title=column)
    p = win.addPlot(title=column)
    p.addLegend(offset=(10, 10))
    p.showGrid(x=True, y=True, alpha=0.3)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#000000", "#aec7e8"]
    logy = False
    if x is None:
        p.plot(np.arange(y_all.size), y_all, pen=None, symbol="o", name=column)
        p.setLabel("bottom", "point (commit order)")
    else:
        xs = cols[x["name"]]
        logx = bool(np.all(xs[ok] > 0) and xs[ok].max() / xs[ok].min() >= 100)
        logy = bool(np.all(y_all > 0) and y_all.max() / y_all.min() >= 100)
        for n, (label, sel) in enumerate(_groups(cols, axes, x["name"])):
            sel = sel & ok
            if not sel.any():
                continue
            ux = np.unique(xs[sel])
            mean = np.array([cols[column][sel & (xs == v)].mean() for v in ux])
            std = np.array([cols[column][sel & (xs == v)].std() for v in ux])
            px = np.log10(ux) if logx else ux
            if logy:  # decades: plot log10 of the mean, spread as its relative size
                std = std / mean / np.log(10)
                mean = np.log10(mean)
            c = colors[n % len(colors)]
            p.plot(px, mean, pen=pg.mkPen(c, width=2), symbol="o", symbolBrush=c, name=label)
            if np.any(std > 0):
                p.addItem(pg.ErrorBarItem(x=px, y=mean, height=2 * std, pen=pg.mkPen(c)))
        p.setLogMode(x=False)
        unit = f" ({x['unit']})" if x.get("unit") else ""
        p.setLabel("bottom", (f"log10 {x['name']}" if logx else x["name"]) + unit)
    p.setLabel("left", f"log10 {column}" if x is not None and logy else column)
    return _save(win, app, out / f"{_safe(column)}.png", (900, 520))


def _level_drift(pg, app, f, cols, x, out: Path) -> Path | None:
    if x is None:
        return None
    rows = [(float(xv), int(i)) for xv, i, s in zip(cols[x["name"]], cols["index"], cols["status"])
            if s == 0 and f"points/{int(i):06d}/read/level_error_mean_s" in f]
    if len(rows) < 2:
        return None
    rows.sort()
    xs = np.array([r[0] for r in rows])
    mean = np.stack([f[f"points/{i:06d}/read/level_error_mean_s"][()] for _, i in rows]) * US
    std = np.stack([f[f"points/{i:06d}/read/level_error_std_s"][()] for _, i in rows]) * US
    logx = bool(np.all(xs > 0) and xs.max() / xs.min() >= 100)
    px = np.log10(xs) if logx else xs
    win = pg.GraphicsLayoutWidget(title="drift per level")
    p1 = win.addPlot(title="mean error per level (µS)")
    p2 = win.addPlot(title="spread per level (µS)")
    for level in range(mean.shape[1]):
        c = pg.intColor(level, hues=mean.shape[1])
        p1.plot(px, mean[:, level], pen=pg.mkPen(c, width=1.5))
        p2.plot(px, std[:, level], pen=pg.mkPen(c, width=1.5))
    for p in (p1, p2):
        p.showGrid(x=True, y=True, alpha=0.3)
        p.setLabel("bottom", (f"log10 {x['name']}" if logx else x["name"]) + (f" ({x['unit']})" if x.get("unit") else ""))
    return _save(win, app, out / "level_drift.png", (1300, 520))


def make_report(path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    path, out = Path(path), Path(out_dir)
    cols, attrs = read_table(path)
    st = status_counts(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunPathError(f"{out}: cannot create report directory ({exc.strerror})") from None
    axes = json.loads(attrs["axes"])
    results = json.loads(attrs["result_columns"])
    x = _x_axis(cols, axes)
    figures: list[Path] = []
    varying = [c for c in results if np.unique(cols[c][np.isfinite(cols[c])]).size > 1]
    plotted = [c for c in results if np.isfinite(cols[c]).any()]  # flat ones too: "constant" is a finding
    if len(cols["index"]):
        pg, app = _qt()
        for c in plotted:
            fig = _column_figure(pg, app, cols, axes, c, x, out)
            if fig is not None:
                figures.append(fig)
        with open_campaign(path) as f:
            fig = _level_drift(pg, app, f, cols, x, out)
            if fig is not None:
                figures.append(fig)
    constant = {c: float(cols[c][np.isfinite(cols[c])][0]) for c in results
                if c not in varying and np.isfinite(cols[c]).any()}
    page = out / "index.html"
    imgs = "".join(f'<figure><img src="{p.name}" alt="{html.escape(p.stem)}"><figcaption>'
                   f"{html.escape(p.stem)}</figcaption></figure>" for p in figures)
    counts = "".join(f"<tr><td>{k}</td><td>{html.escape(str(st[k]))}</td></tr>"
                     for k in ("state", "n_points", "done", "failed", "pending", "reason", "created_utc", "ended_utc"))
    const = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in constant.items())
    errs = "".join(f"<li>point {e['index']}: {html.escape(e['error'])}</li>" for e in st["errors"])
    prov = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(attrs.get(k, '')))}</td></tr>"
                   for k in ("snnbench_version", "git_revision", "plan_sha256", "campaign_seed", "station"))
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>snnbench campaign report</title>"
        "<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px}"
        "img{max-width:100%}pre{background:#f6f6f6;padding:1em}</style></head><body>"
        f"<h1>Campaign {html.escape(str(attrs.get('name', '')))}</h1><p>{html.escape(str(path))}</p>"
        f"<h2>Status</h2><table>{counts}</table>" + (f"<h3>Failed points</h3><ul>{errs}</ul>" if errs else "")
        + f"<h2>Figures</h2>{imgs or '<p>no committed points with varying results</p>'}"
        + (f"<h2>Results equal at every point</h2><table>{const}</table>" if const else "")
        + f"<h2>Plan</h2><pre>{html.escape(str(attrs.get('plan_toml', '')))}</pre>"
        f"<h2>Provenance</h2><table>{prov}</table></body></html>")
    return {"report": str(page), "figures": [str(p) for p in figures], "state": st["state"],
            "done": st["done"], "failed": st["failed"], "pending": st["pending"],
            "summary": f"report {page} ({len(figures)} figures; {st['done']} done, {st['failed']} failed, "
                       f"{st['pending']} pending)"}
