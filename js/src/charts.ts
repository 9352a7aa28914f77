// The two small charts of the side panel and the bottom row, drawn with uPlot from what the
// kernel sends: the kernel curve (with time to peak and FWHM) and a cell's power spectrum.

import uPlot from "uplot";
import { fmt, tickLabel } from "./format";
import { strokeSegments, type Segment } from "./plot";
import { isDecade } from "./scales";
import { themeKey, type Theme } from "./theme";
import { firstCrossing, sameItems } from "./view";

const FONT = "10px system-ui, sans-serif";

/** A uPlot chart rebuilt when the theme changes and resized to its host's width. */
class SmallChart {
  private u: uPlot | null = null;
  private key = "";

  constructor(
    private readonly host: HTMLElement,
    private readonly height: number,
    private readonly make: (theme: Theme, width: number, height: number) => uPlot.Options,
  ) {}

  set(data: uPlot.AlignedData, theme: Theme, width: number): void {
    const key = themeKey(theme);
    if (!this.u || key !== this.key) {
      this.u?.destroy();
      this.key = key;
      this.u = new uPlot(this.make(theme, width, this.height), data, this.host);
      return;
    }
    if (this.u.width !== width) this.u.setSize({ width, height: this.height });
    this.u.setData(data);
  }

  destroy(): void {
    this.u?.destroy();
    this.u = null;
  }
}

function axes(theme: Theme, xLabel: string, showY: boolean): uPlot.Axis[] {
  const grid = { stroke: theme.grid, width: 1 };
  const ticks = { stroke: theme.grid, width: 1, size: 3 };
  return [
    {
      label: xLabel,
      font: FONT,
      labelFont: FONT,
      labelSize: 14,
      size: 22,
      stroke: theme.muted,
      grid,
      ticks,
      values: (_u, splits, _i, _s, incr) => splits.map((v) => tickLabel(v, incr)),
    },
    { show: showY, font: FONT, size: 40, stroke: theme.muted, grid, ticks },
  ];
}

/** The kernel's shape; dashed line at the time to peak, a bar across the half maximum. */
export class KernelChart {
  private chart: SmallChart;
  private tPeak = NaN;
  private tHalf = NaN;
  private fwhm = NaN;
  /** What was drawn last (a slider move that leaves the kernel alone draws nothing). */
  private drawn: { curve: Float32Array; key: unknown[] } | null = null;

  constructor(host: HTMLElement) {
    this.chart = new SmallChart(host, 100, (theme, width, height) => ({
      width,
      height,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: false }, y: { range: [0, 1.08] } },
      axes: axes(theme, "Time (s)", false),
      series: [{}, { stroke: theme.series.fit, width: 1.5, points: { show: false } }],
      hooks: {
        draw: [
          (u) => {
            if (Number.isFinite(this.tPeak)) {
              const x = u.valToPos(this.tPeak, "x", true);
              strokeSegments(u.ctx, theme.muted, [3, 3], [[x, u.valToPos(0, "y", true), x, u.valToPos(1, "y", true)]]);
            }
            if (Number.isFinite(this.tHalf) && Number.isFinite(this.fwhm)) {
              const y = u.valToPos(0.5, "y", true);
              strokeSegments(u.ctx, theme.series.filtered!, [], [[u.valToPos(this.tHalf, "x", true), y, u.valToPos(this.tHalf + this.fwhm, "x", true), y]]);
            }
          },
        ],
      },
    }));
  }

  /** Draw `curve` (sampled over [0, tMax] s); returns the caption text. */
  set(curve: Float32Array, tMax: number, tPeak: number, fwhm: number, theme: Theme, width: number): string {
    const key = [tMax, tPeak, fwhm, themeKey(theme), width];
    const same = this.drawn && sameItems(key, this.drawn.key) && sameItems(curve, this.drawn.curve);
    if (!same) this.drawn = { curve: curve.slice(), key };
    if (curve.length < 2 || !(tMax > 0)) {
      this.tPeak = this.tHalf = this.fwhm = NaN;
      if (!same) this.chart.set([new Float64Array(0), new Float32Array(0)], theme, width);
      return "rise time must be shorter than decay time";
    }
    if (same) return this.caption();
    const n = curve.length;
    const x = new Float64Array(n);
    for (let k = 0; k < n; k++) x[k] = (k * tMax) / (n - 1);
    this.tPeak = tPeak;
    this.fwhm = fwhm;
    this.tHalf = firstCrossing(curve, tMax, 0.5);
    this.chart.set([x, curve], theme, width);
    return this.caption();
  }

  private caption(): string {
    return `time to peak ${fmt(this.tPeak)} s · FWHM ${fmt(this.fwhm)} s`;
  }

  destroy(): void {
    this.chart.destroy();
  }
}

/** Power spectrum on log-log axes with the band-pass cut-offs as dashed lines. */
export class SpectrumChart {
  private chart: SmallChart;
  private cuts: number[] = [];
  private drawnKey: unknown[] = [];

  constructor(host: HTMLElement) {
    this.chart = new SmallChart(host, 150, (theme, width, height) => ({
      width,
      height,
      legend: { show: false },
      cursor: { y: false, points: { show: false }, drag: { x: false, y: false, setScale: false } },
      scales: { x: { time: false, distr: 3, range: (_u, min, max) => [min, max] }, y: { distr: 3 } },
      axes: [
        { ...axes(theme, "Frequency (Hz)", true)[0], values: (_u, s) => s.map((v) => (isDecade(v) ? fmt(v) : "")) },
        { ...axes(theme, "", true)[1], values: (_u, s) => s.map((v) => (isDecade(v) ? v.toExponential(0) : "")) },
      ],
      series: [{}, { stroke: theme.series.filtered, width: 1, points: { show: false } }],
      hooks: {
        draw: [
          (u) => {
            const [f0, f1] = [u.scales.x?.min ?? 0, u.scales.x?.max ?? 0];
            const { top, height } = u.bbox;
            const segs = this.cuts.filter((f) => f >= f0 && f <= f1).map((f): Segment => {
              const x = u.valToPos(f, "x", true);
              return [x, top, x, top + height];
            });
            strokeSegments(u.ctx, theme.series.residual!, [4, 3], segs);
          },
        ],
      },
    }));
  }

  /** Frequencies (Hz) and power; the zero-frequency bin is left out of the log axes. */
  set(freqs: Float32Array, power: Float32Array, cuts: number[], theme: Theme, width: number): void {
    const key = [freqs, power, freqs.length, power.length, ...cuts, themeKey(theme), width];
    if (sameItems(key, this.drawnKey)) return; // same arrays: the kernel sends new ones for a new spectrum
    this.drawnKey = key;
    this.cuts = cuts;
    const x: number[] = [];
    const y: number[] = [];
    for (let k = 0; k < freqs.length; k++) {
      if (freqs[k]! > 0 && power[k]! > 0) {
        x.push(freqs[k]!);
        y.push(power[k]!);
      }
    }
    this.chart.set([x, y], theme, width);
  }

  destroy(): void {
    this.chart.destroy();
  }
}
