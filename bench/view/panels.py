"""pyqtgraph panels of the live view, one per kind of data (:mod:`bench.view.model`).

Each panel is a widget built once and refreshed with ``update(data)``: the plot items are
kept and only their data replaced, so a refresh costs a few milliseconds even with the
128 x 24 maps and a 300 x 800 input raster.  Display units: µS, mA, ms.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtWidgets

from bench.view.model import CampaignData, InferData, PowerData, ProgramData

US = 1e6           # S -> µS
G_TOP_US = 150.0   # top of the conductance scale (15 levels up to 150 µS, DESIGN.md §2)
NAN_RGBA = (200, 200, 200, 255)   # not measured yet
STATUS_RGBA = {-1: (205, 205, 205, 255), 0: (60, 170, 75, 255), 1: (215, 50, 50, 255), 2: (235, 190, 40, 255)}
RAIL_PENS = [(30, 90, 200), (200, 90, 30), (40, 150, 60), (150, 40, 160)]


def colourise(values: np.ndarray, levels: tuple[float, float], cmap: str = "viridis") -> np.ndarray:
    """RGBA bytes (rows, cols, 4) of ``values`` on ``cmap`` over ``levels``; NaN in grey."""
    v = np.asarray(values, dtype=float)
    lo, hi = levels
    x = np.clip((np.nan_to_num(v, nan=lo) - lo) / ((hi - lo) or 1.0), 0.0, 1.0)
    rgba = pg.colormap.get(cmap).map(x.ravel(), mode="byte").reshape(v.shape + (4,))
    rgba[~np.isfinite(v)] = NAN_RGBA
    return np.ascontiguousarray(rgba)


def _map_plot(layout: pg.GraphicsLayout, row: int, col: int, title: str) -> tuple[pg.PlotItem, pg.ImageItem]:
    p = layout.addPlot(row=row, col=col, title=title)
    img = pg.ImageItem(axisOrder="row-major")
    p.addItem(img)
    p.invertY(True)
    p.setMenuEnabled(False)
    p.setLabel("bottom", "column (pair)")
    p.setLabel("left", "row")
    return p, img


def fit(p: pg.PlotItem, width: float, height: float) -> None:
    """Show exactly the image area (0..width, 0..height in data units); no auto-ranging."""
    p.disableAutoRange()
    p.setXRange(0, width, padding=0)
    p.setYRange(0, height, padding=0)
    for name in ("bottom", "left"):
        p.getAxis(name).enableAutoSIPrefix(False)


def _pair_lines(p: pg.PlotItem, columns: int) -> None:
    """Differential pairs (G+, G−) visible: a line after every second column, pair numbers."""
    for x in range(2, columns, 2):
        p.addItem(pg.InfiniteLine(pos=x, angle=90, pen=pg.mkPen((255, 255, 255), width=1)))
    ax = p.getAxis("bottom")
    ax.setTicks([[(2 * k + 1, str(k)) for k in range(0, columns // 2, 2)]])


class Panel(QtWidgets.QWidget):
    kind = ""

    def __init__(self, title: str) -> None:
        super().__init__()
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.label = QtWidgets.QLabel(title)
        self.label.setStyleSheet("font-weight: bold")
        lay.addWidget(self.label)
        self.glw = pg.GraphicsLayoutWidget()
        lay.addWidget(self.glw, 1)

    def regions(self, window: QtWidgets.QWidget) -> dict[str, list[int]]:
        """Window-pixel rectangles [x, y, w, h] of this panel's images (for tests)."""
        out = {}
        for name, item in getattr(self, "images", {}).items():
            if item.image is None:
                continue
            rect = item.mapRectToScene(item.boundingRect())
            poly = self.glw.mapFromScene(rect).boundingRect()
            tl = self.glw.mapTo(window, poly.topLeft())
            out[f"{self.kind}.{name}"] = [tl.x(), tl.y(), poly.width(), poly.height()]
        return out


class ProgramPanel(Panel):
    kind = "program"

    def __init__(self) -> None:
        super().__init__("programming")
        g = self.glw.ci
        self.p_target, self.i_target = _map_plot(g, 0, 0, "target (µS)")
        self.p_meas, self.i_meas = _map_plot(g, 0, 1, "measured (µS); x = stuck")
        self.stuck = pg.ScatterPlotItem(symbol="x", size=7, pen=pg.mkPen((255, 40, 40), width=2), brush=None)
        self.p_meas.addItem(self.stuck)
        self.p_meas.setXLink(self.p_target)
        self.p_meas.setYLink(self.p_target)
        bar = pg.ColorBarItem(values=(0, G_TOP_US), colorMap=pg.colormap.get("viridis"), interactive=False, width=12)
        g.addItem(bar, row=0, col=2)
        hist = g.addLayout(row=0, col=3)
        self.p_err = hist.addPlot(row=0, col=0, title="measured − target (µS)")
        self.c_err = self.p_err.plot(stepMode="center", fillLevel=0, brush=(60, 110, 200, 160))
        self.p_err.setLabel("left", "cells")
        self.p_pul = hist.addPlot(row=1, col=0, title="pulses per cell")
        self.c_pul = self.p_pul.plot(stepMode="center", fillLevel=0, brush=(220, 120, 40, 160))
        self.p_pul.setLabel("left", "cells")
        for col, stretch in ((0, 2), (1, 2), (3, 3)):
            g.layout.setColumnStretchFactor(col, stretch)
        for p in (self.p_target, self.p_meas):   # the two maps side by side at the same size
            p.setMinimumWidth(230)
        self.images = {"target": self.i_target, "measured": self.i_meas}
        self._cols = 0

    def update(self, d: ProgramData) -> None:
        top = G_TOP_US
        if d.target_s is not None and np.isfinite(d.target_s).any():
            top = max(top, float(np.nanmax(d.target_s)) * US)
        if d.target_s is not None:
            self.i_target.setImage(colourise(d.target_s * US, (0, top)), autoLevels=False)
        else:
            self.p_target.setTitle("target: none (read run)")
        self.i_meas.setImage(colourise(d.measured_s * US, (0, top)), autoLevels=False)
        rows, cols = d.measured_s.shape
        if cols != self._cols:
            for p in (self.p_target, self.p_meas):
                _pair_lines(p, cols)
                fit(p, cols, rows)
            self._cols = cols
        r, c = np.nonzero(d.stuck)
        self.stuck.setData(c + 0.5, r + 0.5)
        err = d.error_s * US
        y, x = np.histogram(np.clip(err, -30, 30), bins=61, range=(-30.5, 30.5))
        self.c_err.setData(x, y)
        pul = d.done_pulses
        hi = max(1, int(pul.max())) if pul.size else 1
        y, x = np.histogram(pul, bins=min(60, hi + 1), range=(-0.5, hi + 0.5))
        self.c_pul.setData(x, y)
        total = "?" if d.total is None else str(d.total)
        self.label.setText(f"programming ({d.source}): {d.what} done {d.done} / {total}, "
                           f"stuck {int(d.stuck.sum())}")


class InferPanel(Panel):
    kind = "infer"

    def __init__(self) -> None:
        super().__init__("inference")
        g = self.glw.ci
        self.p_in = g.addPlot(row=0, col=0, title="input spikes, latest sample")
        self.i_in = pg.ImageItem(axisOrder="row-major")
        self.p_in.addItem(self.i_in)
        self.p_in.setLabel("bottom", "step")
        self.p_in.setLabel("left", "input")
        self.p_out = g.addPlot(row=1, col=0, title="output spikes")
        self.i_out = pg.ImageItem(axisOrder="row-major")
        self.p_out.addItem(self.i_out)
        self.p_out.setLabel("bottom", "step")
        self.p_out.setLabel("left", "class")
        self.p_out.setXLink(self.p_in)
        self.p_acc = g.addPlot(row=0, col=1, title="running accuracy (%)")
        self.p_acc.addLegend(offset=(-5, -5))
        self.c_chip = self.p_acc.plot(pen=pg.mkPen((200, 40, 40), width=2), name="chip")
        self.c_sw = self.p_acc.plot(pen=pg.mkPen((40, 90, 200), width=2), name="software")
        self.p_acc.setYRange(0, 100)
        self.p_acc.setLabel("bottom", "samples")
        self.p_cm = g.addPlot(row=1, col=1, title="confusion (rows true, columns predicted)")
        self.i_cm = pg.ImageItem(axisOrder="row-major")
        self.p_cm.addItem(self.i_cm)
        self.p_cm.invertY(True)
        g.layout.setRowStretchFactor(0, 3)
        g.layout.setRowStretchFactor(1, 2)
        self.images = {"input": self.i_in, "output": self.i_out, "confusion": self.i_cm}
        self._in_shape = self._out_shape = self._cm_shape = None

    def update(self, d: InferData) -> None:
        if d.input_raster is not None:
            # rows = inputs, columns = steps: black dot per spike on white
            r = d.input_raster.T
            self.i_in.setImage(np.where(r, 0, 255).astype(np.uint8), levels=(0, 255))
            if self._in_shape != r.shape:
                fit(self.p_in, r.shape[1], r.shape[0])
                self._in_shape = r.shape
        if d.output_raster is not None:
            o = np.asarray(d.output_raster, dtype=float).T
            rgba = np.full(o.shape + (4,), 255, np.uint8)
            rgba[o > 0] = (200, 30, 30, 255)
            self.i_out.setImage(rgba, autoLevels=False)
            if self._out_shape != o.shape:
                fit(self.p_out, o.shape[1], o.shape[0])
                self._out_shape = o.shape
        n = d.samples
        if n:
            x = np.arange(1, n + 1)
            self.c_chip.setData(x, 100 * d.chip_accuracy)
            if d.software_accuracy is not None:
                self.c_sw.setData(x, 100 * d.software_accuracy)
        cm = d.confusion.astype(float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        self.i_cm.setImage(colourise(norm, (0, 1), "CET-L17"), autoLevels=False)
        if self._cm_shape != norm.shape:
            fit(self.p_cm, norm.shape[1], norm.shape[0])
            self._cm_shape = norm.shape
        rate = "" if d.samples_per_s is None else f", {d.samples_per_s:,.0f} samples/s"
        acc = f", chip {100 * d.chip_accuracy[-1]:.1f} %" if n and d.chip_accuracy.size else ""
        sw = f", software {100 * d.software_accuracy[-1]:.1f} %" if n and d.software_accuracy is not None else ""
        total = "?" if d.total is None else str(d.total)
        lab = "" if d.latest_label is None else f" (latest: class {d.latest_label})"
        self.label.setText(f"inference: samples {n} / {total}{acc}{sw}{rate}{lab}")


class PowerPanel(Panel):
    kind = "power"
    MAX_POINTS = 4000

    def __init__(self) -> None:
        super().__init__("power")
        self.plots: dict[str, tuple[pg.PlotItem, Any, pg.InfiniteLine]] = {}
        self.images = {}

    def _plot(self, rail: str) -> tuple[pg.PlotItem, Any, pg.InfiniteLine]:
        if rail not in self.plots:
            i = len(self.plots)
            p = self.glw.addPlot(row=i, col=0, title=f"{rail}: supply current")
            curve = p.plot(pen=pg.mkPen(RAIL_PENS[i % len(RAIL_PENS)], width=2))
            base = pg.InfiniteLine(angle=0, pen=pg.mkPen((90, 90, 90), width=1, style=QtCore.Qt.PenStyle.DashLine),
                                   label="idle", labelOpts={"position": 0.05, "color": (90, 90, 90)})
            p.addItem(base)
            p.setLabel("bottom", "time", units="ms")
            p.setLabel("left", "I (mA)")
            self.plots[rail] = (p, curve, base)
        return self.plots[rail]

    def update(self, d: PowerData) -> None:
        for r in d.rails:
            p, curve, base = self._plot(r.rail)
            t, cur = r.time_s, r.current_a
            if t.size > self.MAX_POINTS:
                step = int(np.ceil(t.size / self.MAX_POINTS))
                t, cur = t[::step], cur[::step]
            curve.setData((t - (t[0] if t.size else 0.0)) * 1e3, cur * 1e3)
            if r.idle_current_a is not None:
                base.setValue(r.idle_current_a * 1e3)
            p.setTitle(f"{r.rail}: supply current at {r.voltage_v:g} V"
                       + ("" if r.idle_current_a is None else f", idle {r.idle_current_a * 1e3:.3g} mA"))
        if d.measured_j is not None:
            self.label.setText(f"power: energy per sample {d.measured_j * 1e6:.4g} µJ (measured, net of idle) "
                               f"over {d.samples_done} samples")
        elif d.estimate_j is not None:
            self.label.setText(f"power: energy per sample ≈ {d.estimate_j * 1e6:.4g} µJ (running estimate, net "
                               f"of idle) over {d.samples_done} samples")
        else:
            self.label.setText("power: energy per sample shown once the first chunk of samples is stored")


class CampaignPanel(Panel):
    kind = "campaign"

    def __init__(self) -> None:
        super().__init__("campaign")
        row = QtWidgets.QHBoxLayout()
        self.axis = QtWidgets.QComboBox()
        self.column = QtWidgets.QComboBox()
        row.addWidget(QtWidgets.QLabel("plot"))
        row.addWidget(self.column)
        row.addWidget(QtWidgets.QLabel("against"))
        row.addWidget(self.axis)
        row.addStretch(1)
        self.layout().insertLayout(1, row)
        g = self.glw.ci
        self.p_grid = g.addPlot(row=0, col=0, title="points: green done, red failed, yellow skipped, grey pending")
        self.i_grid = pg.ImageItem(axisOrder="row-major")
        self.p_grid.addItem(self.i_grid)
        self.p_grid.invertY(True)
        self.p_res = g.addPlot(row=0, col=1, title="result")
        self.c_res = self.p_res.plot(pen=None, symbol="o", symbolSize=8, symbolBrush=(40, 90, 200))
        for name in ("bottom", "left"):
            self.p_res.getAxis(name).enableAutoSIPrefix(False)
        self.images = {"grid": self.i_grid}
        self._grid_shape = None
        self._last: CampaignData | None = None
        self.axis.currentTextChanged.connect(lambda _t: self._plot())
        self.column.currentTextChanged.connect(lambda _t: self._plot())

    @staticmethod
    def _fill(box: QtWidgets.QComboBox, names: list[str]) -> None:
        if [box.itemText(i) for i in range(box.count())] != names:
            cur = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItems(names)
            if cur in names:
                box.setCurrentText(cur)
            box.blockSignals(False)

    def choose(self, axis: str | None, column: str | None) -> None:
        if axis:
            self.axis.setCurrentText(axis)
        if column:
            self.column.setCurrentText(column)

    def _plot(self) -> None:
        d = self._last
        if d is None:
            return
        ax, col = self.axis.currentText(), self.column.currentText()
        x, y = d.series(ax, col)
        self.c_res.setData(x, y)
        self.p_res.setTitle(f"{col} against {ax}")
        unit = next((a.get("unit", "") for a in d.axes if a.get("name") == ax), "")
        self.p_res.setLabel("bottom", ax + (f" ({unit})" if unit else ""))
        self.p_res.setLabel("left", col)

    def update(self, d: CampaignData) -> None:
        self._last = d
        grid = d.grid2d()
        rgba = np.zeros(grid.shape + (4,), np.uint8)
        for k, c in STATUS_RGBA.items():
            rgba[grid == k] = c
        self.i_grid.setImage(rgba, autoLevels=False)
        if self._grid_shape != grid.shape:
            fit(self.p_grid, grid.shape[1], grid.shape[0])
            self._grid_shape = grid.shape
            names = [str(a.get("name")) for a in d.axes]
            if len(d.grid_shape) > 1 and names:
                self.p_grid.setLabel("left", names[0])
                self.p_grid.setLabel("bottom", " x ".join(names[1:]) or "point")
                for axis, spec, n in (("left", d.axes[0], grid.shape[0]),
                                      ("bottom", d.axes[1] if len(d.axes) == 2 else None, grid.shape[1])):
                    vals = list(spec.get("values", [])) if spec else []
                    if len(vals) == n:   # tick each row / column with its axis value
                        self.p_grid.getAxis(axis).setTicks([[(i + 0.5, f"{v:g}" if isinstance(v, (int, float))
                                                              else str(v)) for i, v in enumerate(vals)]])
            else:
                self.p_grid.setLabel("bottom", "point")
        self._fill(self.axis, [str(a.get("name")) for a in d.axes])
        self._fill(self.column, list(d.result_columns))
        self._plot()
        c = d.counts
        self.label.setText(f"campaign: {c['done']} done, {c['failed']} failed, {c['skipped']} skipped, "
                           f"{c['pending']} pending of {d.n_points} points")


PANELS = {"program": ProgramPanel, "infer": InferPanel, "power": PowerPanel, "campaign": CampaignPanel}
