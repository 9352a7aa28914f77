// What the kernel sends, made ready to draw (pure: no DOM).

import type { ViewHeader } from "./protocol";

/** The series of one cell in a view: name -> its min/max pairs (a view into the buffer). */
export type CellSeries = Map<string, Float32Array>;

export interface View {
  header: ViewHeader;
  /** Bins per series. */
  nb: number;
  /** Per shown cell (header.cells order): its series. */
  cells: Map<number, CellSeries>;
  /** Kernel curve sampled over [0, kernelTMax] s (empty when the parameters are invalid). */
  kernel: Float32Array;
  kernelTMax: number;
}

/** Split the view buffer (n_cells, n_series, n_bins, 2) into per-cell, per-series views (no copy). */
export function makeView(header: ViewHeader, data: Float32Array, kernel?: Float32Array): View {
  const [nC, nS, nb] = header.shape;
  const cells = new Map<number, CellSeries>();
  for (let i = 0; i < nC && i < header.cells.length; i++) {
    const m: CellSeries = new Map();
    header.series.forEach((name, j) => {
      const off = (i * nS + j) * nb * 2;
      if (off + 2 * nb <= data.length) m.set(name, data.subarray(off, off + 2 * nb));
    });
    cells.set(header.cells[i]!, m);
  }
  const k = kernel ?? new Float32Array(0);
  return { header, nb, cells, kernel: k, kernelTMax: Number(header.kernel_t_max_s) || 0 };
}

/** Legend entries: one per kind of series present in the view ("pinned" covers both pin_*). */
export function legendEntries(series: readonly string[]): string[] {
  const order = ["raw", "filtered", "fit", "activity", "residual", "pin_fit", "truth"];
  const have = new Set(series);
  if (have.has("pin_activity")) have.add("pin_fit");
  return order.filter((n) => have.has(n));
}

/** The series a legend entry switches on and off. */
export function entrySeries(entry: string): string[] {
  return entry === "pin_fit" ? ["pin_fit", "pin_activity"] : [entry];
}

/**
 * First time the sampled curve reaches `level` of its peak, interpolated between samples
 * (seconds; NaN when it never does). `curve[k]` is at `k * tMax / (n - 1)`.
 */
export function firstCrossing(curve: Float32Array, tMax: number, level: number): number {
  const n = curve.length;
  if (n < 2) return NaN;
  let peak = -Infinity;
  for (const v of curve) if (v > peak) peak = v;
  const target = level * peak;
  const dt = tMax / (n - 1);
  for (let k = 0; k < n; k++) {
    if (curve[k]! >= target) {
      if (k === 0) return 0;
      const a = curve[k - 1]!;
      const b = curve[k]!;
      return (k - 1 + (target - a) / (b - a)) * dt;
    }
  }
  return NaN;
}

/** Index of the min/max pair at position `idx` of an interleaved series, and that bin's values. */
export function binAt(series: Float32Array, idx: number): [number, number] {
  const k = Math.floor(idx / 2) * 2;
  return [series[k]!, series[k + 1]!];
}

/** Same length and the same items (=== ; NaN equals NaN) in the same order. */
export function sameItems(a: ArrayLike<unknown>, b: ArrayLike<unknown>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !Object.is(a[i], b[i])) return false;
  return true;
}
