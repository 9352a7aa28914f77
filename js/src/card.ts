// One cell card: title and state badge, the whole-trace overview strip (drag to move the
// window) and the zoomed window drawn with uPlot: traces with a y-axis and grid on top,
// activity in the middle, residual at the bottom, a "Time (s)" axis and a hover readout.

import uPlot from "uplot";
import { Disposer, h } from "./dom";
import { fmt, fmtBin, tickLabel } from "./format";
import { drawMinMax, drawTicks, prepare, strokeSegments, traceMinMax, type Segment } from "./plot";
import { BANDS, SERIES_BAND, bandRange, binTimes, dataRange, roundStep, roundTicks } from "./scales";
import { LABELS, themeKey, type Theme } from "./theme";
import { sameItems, type CellSeries, type View } from "./view";

export const OVERVIEW_H = 36;
export const ZOOM_H = 230;
/** Series drawn as lines, back to front ("truth" is drawn as ticks by a hook). */
const LINE_ORDER = ["raw", "filtered", "pin_fit", "fit", "pin_activity", "activity", "residual"];
const Y_TICKS = 4;

/** uPlot path builder for min/max pairs (see traceMinMax). */
const minMaxPaths: uPlot.Series.PathBuilder = (u, si, i0, i1) => {
  const sx = u.scales.x;
  const sy = u.scales[u.series[si]?.scale ?? "y"];
  if (!sx || !sy || sx.min == null || sx.max == null || sy.min == null || sy.max == null) return null;
  const stroke = new Path2D();
  traceMinMax(stroke, u.data[0], u.data[si]!, i0, i1, u.bbox, sx.min, sx.max, sy.min, sy.max);
  return { stroke, fill: null, clip: null, flags: 0 };
};

/**
 * The fits, drawn bolder: the 1-px line twice, the copy half a pixel lower (reads as 1.5 px).
 * The canvas rasterises 1-px lines several times faster than wider ones: a 1.5-px stroke of
 * each fit took most of a card's drawing time (measured: 5 cards 5.4 -> 2.4 ms).
 */
const boldPaths: uPlot.Series.PathBuilder = (u, si, i0, i1) => {
  const p = minMaxPaths(u, si, i0, i1);
  if (!p?.stroke || !(p.stroke instanceof Path2D)) return p;
  const both = new Path2D();
  both.addPath(p.stroke);
  both.addPath(p.stroke, new DOMMatrix([1, 0, 0, 1, 0, 0.5 * (devicePixelRatio || 1)]));
  return { ...p, stroke: both };
};
const BOLD = new Set(["fit", "pin_fit"]);

export interface CardHost {
  theme(): Theme;
  hidden: ReadonlySet<string>;
  /** Current window [start, stop) in frames, and the recording length. */
  win(): [number, number];
  nFrames(): number;
  setWindow(start: number, stop: number): void;
  selectCell(cell: number): void;
}

export interface Overview {
  data: Float32Array;
}

export class Card {
  readonly root: HTMLElement;
  readonly badge: HTMLElement;
  private readonly overview: HTMLCanvasElement;
  private readonly plotHost: HTMLElement;
  private readonly readout: HTMLElement;
  private u: uPlot | null = null;
  private key = "";
  private names: string[] = [];
  private series: CellSeries | null = null;
  private error: string | null = null;
  /** Scale ranges of the three bands, and the trace band's data range (for its ticks). */
  private ranges: Record<"y" | "act" | "res" | "trace", [number, number]> = { y: [0, 1], act: [0, 1], res: [-1, 1], trace: [0, 1] };
  private xRange: [number, number] = [0, 1];
  private width = 300;
  private draws = 0;
  /** Bin times of the last view, and what they were made from (reused while unchanged). */
  private x: Float64Array = new Float64Array(0);
  private xKey = "";
  /** What the overview strip was last drawn from (redrawn only when that changes). */
  private overviewKey: unknown[] = [];
  private readonly d = new Disposer();

  constructor(
    readonly cell: number,
    private readonly host: CardHost,
  ) {
    this.badge = h("span", { class: "calab-badge", "data-testid": "badge" }, "solving");
    const title = h("button", { type: "button", class: "calab-card-title", title: "show this cell's spectrum", "data-testid": "card-title" }, `cell ${cell}`);
    this.overview = h("canvas", { class: "calab-overview", "data-testid": "overview" });
    this.readout = h("div", { class: "calab-readout", "data-testid": "readout" });
    this.readout.hidden = true;
    this.plotHost = h("div", { class: "calab-plot" }, this.readout);
    this.root = h(
      "div",
      { class: "calab-card", "data-testid": "cell-card", "data-cell": String(cell), "data-state": "solving" },
      h("div", { class: "calab-card-head" }, title, this.badge),
      this.overview,
      this.plotHost,
    );
    this.d.listen(title, "click", () => host.selectCell(cell));
    this.listenOverview();
    this.listenPanZoom();
  }

  dispose(): void {
    this.d.dispose();
    this.u?.destroy();
    this.u = null;
    this.root.remove();
  }

  private listenOverview(): void {
    let drag = false;
    const moveTo = (e: MouseEvent) => {
      const r = this.overview.getBoundingClientRect();
      const n = this.host.nFrames();
      const [s0, s1] = this.host.win();
      const span = s1 - s0;
      const centre = ((e.clientX - r.left) / Math.max(1, r.width)) * n;
      const s = Math.max(0, Math.min(n - span, Math.round(centre - span / 2)));
      this.host.setWindow(s, s + span);
    };
    this.d.listen<MouseEvent>(this.overview, "mousedown", (e) => {
      drag = true;
      moveTo(e);
    });
    this.d.listen<MouseEvent>(window, "mousemove", (e) => drag && moveTo(e));
    this.d.listen(window, "mouseup", () => (drag = false));
  }

  /** Drag to pan, Ctrl/Cmd + wheel to zoom, on the plot area. */
  private listenPanZoom(): void {
    let panX: number | null = null;
    let panStart: [number, number] = [0, 0];
    const plotWidth = () => (this.u ? this.u.over.clientWidth : this.width) || 1;
    this.d.listen<MouseEvent>(this.plotHost, "mousedown", (e) => {
      panX = e.clientX;
      panStart = this.host.win();
      e.preventDefault();
    });
    this.d.listen<MouseEvent>(window, "mousemove", (e) => {
      if (panX === null) return;
      const span = panStart[1] - panStart[0];
      const n = this.host.nFrames();
      let s = Math.round(panStart[0] - ((e.clientX - panX) / plotWidth()) * span);
      s = Math.max(0, Math.min(n - span, s));
      if (s !== this.host.win()[0]) this.host.setWindow(s, s + span);
    });
    this.d.listen(window, "mouseup", () => (panX = null));
    this.d.listen<WheelEvent>(
      this.plotHost,
      "wheel",
      (e) => {
        if (!(e.ctrlKey || e.metaKey) || !this.u) return;
        e.preventDefault();
        const r = this.u.over.getBoundingClientRect();
        const [s0, s1] = this.host.win();
        const n = this.host.nFrames();
        const frac = Math.max(0, Math.min(1, (e.clientX - r.left) / Math.max(1, r.width)));
        const at = s0 + frac * (s1 - s0);
        const span = Math.max(16, Math.min(n, Math.round((s1 - s0) * (e.deltaY > 0 ? 1.25 : 0.8))));
        const s = Math.max(0, Math.min(n - span, Math.round(at - frac * span)));
        this.host.setWindow(s, s + span);
      },
      { passive: false },
    );
  }

  /** The whole-trace strip and the window's place in it. */
  drawOverview(ov: Overview | null, win: [number, number]): void {
    const w = this.width;
    const theme = this.host.theme();
    const key = [ov?.data.buffer, ov?.data.byteOffset, ov?.data.length, w, win[0], win[1], this.host.nFrames(), themeKey(theme)];
    if (sameItems(key, this.overviewKey)) return;
    this.overviewKey = key;
    const ctx = prepare(this.overview, w, OVERVIEW_H);
    if (ov) {
      const [lo, hi] = dataRange(ov.data, 0, ov.data.length / 2);
      drawMinMax(ctx, ov.data, w, 2, OVERVIEW_H - 4, lo, hi, theme.series.filtered!);
    }
    const n = this.host.nFrames() || 1;
    const x0 = (win[0] / n) * w;
    const x1 = Math.max(x0 + 2, (win[1] / n) * w);
    ctx.fillStyle = theme.dark ? "rgba(86,180,233,0.22)" : "rgba(0,114,178,0.13)";
    ctx.strokeStyle = theme.dark ? "rgba(86,180,233,0.8)" : "rgba(0,114,178,0.6)";
    ctx.fillRect(x0, 0, x1 - x0, OVERVIEW_H);
    ctx.strokeRect(x0 + 0.5, 0.5, x1 - x0 - 1, OVERVIEW_H - 1);
  }

  resize(width: number): void {
    this.width = width;
    this.u?.setSize({ width, height: ZOOM_H });
  }

  /** Show this cell's part of `view` (hidden series left out of the plot and its ranges). */
  update(view: View | null): void {
    const theme = this.host.theme();
    const i = view ? view.header.cells.indexOf(this.cell) : -1;
    if (!view || i < 0) return;
    const series = view.cells.get(this.cell) ?? new Map<string, Float32Array>();
    this.series = series;
    this.error = view.header.states[i] === "error" ? String(view.header.errors[i] ?? "error") : null;
    const names = LINE_ORDER.filter((n) => series.has(n));
    const key = `${names.join(",")}|${themeKey(theme)}`;
    if (key !== this.key || !this.u) this.create(names, theme, key);
    // Ranges per band from the visible series.
    const acc: Record<string, [number, number]> = {};
    for (const [name, arr] of series) {
      const band = SERIES_BAND[name];
      if (!band || this.host.hidden.has(name) || name === "truth") continue;
      dataRange(arr, 0, view.nb, (acc[band] ??= [Infinity, -Infinity]));
    }
    const act = acc.activity ?? [0, 1];
    const rmax = Math.max(Math.abs(acc.residual?.[0] ?? 0), Math.abs(acc.residual?.[1] ?? 0), 1e-12);
    const tr = acc.trace ?? [0, 1];
    this.ranges = {
      y: bandRange(tr[0], tr[1], BANDS.trace.bottom, BANDS.trace.top),
      act: bandRange(0, Math.max(act[1], 1e-12) * 1.05, BANDS.activity.bottom, BANDS.activity.top),
      res: bandRange(-rmax, rmax, BANDS.residual.bottom, BANDS.residual.top),
      trace: tr,
    };
    const hd = view.header;
    const xKey = `${hd.start}|${hd.stop}|${hd.fs}|${view.nb}`;
    if (xKey !== this.xKey) {
      this.x = binTimes(hd.start, hd.stop, hd.fs, view.nb);
      this.xKey = xKey;
    }
    const x = this.x;
    this.xRange = [hd.start / hd.fs, Math.max(hd.start + 1, hd.stop - 1) / hd.fs];
    const u = this.u!;
    names.forEach((n, k) => {
      const show = !this.host.hidden.has(n);
      if (u.series[k + 1]!.show !== show) u.setSeries(k + 1, { show });
    });
    u.setData([x, ...names.map((n) => series.get(n)!)]);
    this.draws += 1;
    u.ctx.canvas.dataset.draws = String(this.draws);
    u.ctx.canvas.dataset.rev = String(hd.id);
  }

  private create(names: string[], theme: Theme, key: string): void {
    this.u?.destroy();
    this.names = names;
    this.key = key;
    const font = "11px system-ui, sans-serif";
    const axisStroke = theme.muted;
    const grid = { stroke: theme.grid, width: 1 };
    const scaleOf = (n: string) => ({ trace: "y", activity: "act", residual: "res" })[SERIES_BAND[n] ?? "trace"];
    const opts: uPlot.Options = {
      width: this.width,
      height: ZOOM_H,
      legend: { show: false },
      padding: [6, 10, 0, 0],
      cursor: { y: false, points: { show: false }, drag: { x: false, y: false, setScale: false } },
      scales: {
        x: { time: false, range: () => this.xRange },
        y: { range: () => this.ranges.y },
        act: { range: () => this.ranges.act },
        res: { range: () => this.ranges.res },
      },
      axes: [
        {
          scale: "x",
          label: "Time (s)",
          font,
          labelFont: font,
          labelSize: 16,
          size: 26,
          stroke: axisStroke,
          grid,
          ticks: { stroke: theme.grid, width: 1, size: 4 },
          values: (_u, splits, _i, _space, incr) => splits.map((v) => tickLabel(v, incr)),
        },
        {
          scale: "y",
          font,
          size: 46,
          gap: 3,
          stroke: axisStroke,
          grid,
          ticks: { stroke: theme.grid, width: 1, size: 4 },
          // Round ticks over the trace band only; the bands below have their own zero lines.
          splits: () => roundTicks(this.ranges.trace[0], this.ranges.trace[1], Y_TICKS),
          values: (_u, splits) => {
            const tr = this.ranges.trace;
            const step = roundStep(tr[1] - tr[0], Y_TICKS);
            return splits.map((v) => tickLabel(v, step));
          },
        },
      ],
      series: [
        {},
        ...names.map((n) => ({
          label: LABELS[n] ?? n,
          scale: scaleOf(n),
          stroke: theme.series[n] ?? theme.fg,
          width: 1,
          dash: n.startsWith("pin_") ? [5, 3] : undefined,
          points: { show: false },
          spanGaps: false,
          // The scales' ranges come from the bands (update()): no scan of the data by uPlot.
          auto: false,
          paths: BOLD.has(n) ? boldPaths : minMaxPaths,
        })),
      ],
      hooks: {
        drawAxes: [(u) => this.drawBaselines(u)],
        draw: [(u) => this.drawOverlay(u)],
        setCursor: [(u) => this.showReadout(u)],
      },
    };
    this.u = new uPlot(opts, [new Float64Array(0), ...names.map(() => new Float32Array(0))], this.plotHost);
    this.u.ctx.canvas.dataset.testid = "zoom";
    this.u.ctx.canvas.classList.add("calab-zoom");
    this.u.ctx.canvas.dataset.draws = String(this.draws);
  }

  /** Zero lines of the activity and residual bands. */
  private drawBaselines(u: uPlot): void {
    const { left, width } = u.bbox;
    const segs = ["act", "res"].map((scale): Segment => {
      const y = Math.round(u.valToPos(0, scale, true)) + 0.5;
      return [left, y, left + width, y];
    });
    strokeSegments(u.ctx, this.host.theme().grid, [], segs);
  }

  /** True spike ticks and the error message of a failed solve, over the series. */
  private drawOverlay(u: uPlot): void {
    const ctx = u.ctx;
    const theme = this.host.theme();
    const truth = this.series?.get("truth");
    ctx.save();
    if (truth && !this.host.hidden.has("truth")) {
      const xs = u.data[0];
      const y0 = u.valToPos(0, "act", true);
      const hgt = u.bbox.height * (BANDS.activity.top - BANDS.activity.bottom) * 0.5;
      drawTicks(ctx, truth, (k) => Math.round(u.valToPos(xs[2 * k]!, "x", true)) + 0.5, y0, hgt, theme.series.truth!);
    }
    if (this.error) {
      const px = devicePixelRatio || 1;
      ctx.fillStyle = theme.dark ? "#ff8a80" : "#b00020";
      ctx.font = `${12 * px}px system-ui, sans-serif`;
      ctx.fillText(this.error.slice(0, 120), u.bbox.left + 6 * px, u.bbox.top + 16 * px);
    }
    ctx.restore();
  }

  /** Hover: the time under the cursor and each visible series' value there. */
  private showReadout(u: uPlot): void {
    const idx = u.cursor.idx;
    if (idx === null || idx === undefined || !this.series) {
      if (!this.readout.hidden) this.readout.hidden = true;
      return;
    }
    const t = u.data[0][idx]!;
    const theme = this.host.theme();
    const parts: HTMLElement[] = [h("span", { class: "calab-readout-t" }, `t = ${fmt(t, 5)} s`)];
    for (const n of [...this.names, "truth"]) {
      const arr = this.series.get(n);
      if (!arr || this.host.hidden.has(n)) continue;
      const k = Math.floor(idx / 2) * 2;
      const text = n === "truth" ? fmt(arr[k + 1]) : fmtBin(arr[k]!, arr[k + 1]!);
      const sw = h("span", { class: "calab-swatch" });
      sw.style.background = theme.series[n] ?? theme.fg;
      parts.push(h("span", { class: "calab-readout-item" }, sw, `${LABELS[n] ?? n} ${text}`));
    }
    this.readout.replaceChildren(...parts);
    this.readout.hidden = false;
  }
}
