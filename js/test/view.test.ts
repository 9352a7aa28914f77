import { describe, expect, it } from "vitest";
import type { ViewHeader } from "../src/protocol";
import { binAt, entrySeries, firstCrossing, legendEntries, makeView, sameItems } from "../src/view";

function header(cells: number[], series: string[], nb: number): ViewHeader {
  return {
    type: "calab:view",
    id: 1,
    params: { tau_rise: 0.05, tau_decay: 0.5, lam: 0.1, filter_enabled: false },
    pinned: null,
    cells,
    states: cells.map(() => "fresh"),
    errors: cells.map(() => null),
    metrics: cells.map(() => ({})),
    start: 0,
    stop: 100,
    series,
    dtype: "float32",
    shape: [cells.length, series.length, nb, 2],
    t_peak_s: 0.1,
    fwhm_s: 0.4,
    f_hp: 0.1,
    f_lp: 3,
    solve_ms: 1,
    lam_max: 1,
    fs: 30,
    n_frames: 100,
    kernel_t_max_s: 2.5,
  };
}

describe("makeView", () => {
  it("slices the (cells, series, bins, 2) buffer per cell and series without copying", () => {
    const nb = 3;
    const names = ["raw", "fit"];
    const data = new Float32Array(2 * names.length * nb * 2).map((_, i) => i);
    const v = makeView(header([7, 4], names, nb), data);
    expect(Array.from(v.cells.get(4)!.get("fit")!)).toEqual([18, 19, 20, 21, 22, 23]);
    expect(Array.from(v.cells.get(7)!.get("raw")!)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(v.cells.get(4)!.get("raw")!.buffer).toBe(data.buffer);
    expect(v.kernelTMax).toBe(2.5);
    expect(v.kernel.length).toBe(0);
  });
});

describe("legendEntries", () => {
  it("lists only the series the kernel sent", () => {
    expect(legendEntries(["raw", "fit", "activity", "residual"])).toEqual(["raw", "fit", "activity", "residual"]);
  });
  it("has one 'pinned' entry for both pinned series, and truth only when sent", () => {
    const e = legendEntries(["raw", "filtered", "fit", "activity", "residual", "pin_fit", "pin_activity", "truth"]);
    expect(e).toEqual(["raw", "filtered", "fit", "activity", "residual", "pin_fit", "truth"]);
    expect(entrySeries("pin_fit")).toEqual(["pin_fit", "pin_activity"]);
    expect(entrySeries("raw")).toEqual(["raw"]);
  });
});

describe("firstCrossing", () => {
  it("finds the half-maximum rise time of a sampled double exponential", () => {
    const tr = 0.05;
    const td = 0.5;
    const n = 4001;
    const tMax = 2.5;
    const curve = new Float32Array(n);
    for (let k = 0; k < n; k++) {
      const t = (k * tMax) / (n - 1);
      curve[k] = Math.exp(-t / td) - Math.exp(-t / tr);
    }
    // Reference: bisection on the continuous curve.
    const peakT = ((tr * td) / (td - tr)) * Math.log(td / tr);
    const f = (t: number) => Math.exp(-t / td) - Math.exp(-t / tr);
    let [lo, hi] = [0, peakT];
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2;
      if (f(mid) < f(peakT) / 2) lo = mid;
      else hi = mid;
    }
    expect(firstCrossing(curve, tMax, 0.5)).toBeCloseTo(lo, 4);
  });
  it("is NaN for too short or never-reaching curves", () => {
    expect(firstCrossing(new Float32Array([1]), 1, 0.5)).toBeNaN();
    expect(firstCrossing(new Float32Array([0.2, 1]), 1, 0.1)).toBe(0);
  });
});

describe("binAt", () => {
  it("returns the min/max pair whichever of the two indices the cursor is on", () => {
    const s = new Float32Array([1, 2, 3, 4]);
    expect(binAt(s, 2)).toEqual([3, 4]);
    expect(binAt(s, 3)).toEqual([3, 4]);
  });
});

describe("sameItems", () => {
  it("compares items in order, typed arrays included", () => {
    expect(sameItems([1, "a", null], [1, "a", null])).toBe(true);
    expect(sameItems([1, 2], [2, 1])).toBe(false);
    expect(sameItems([1], [1, 1])).toBe(false);
    expect(sameItems(new Float32Array([0.5, NaN]), new Float32Array([0.5, NaN]))).toBe(true);
    expect(sameItems(new Float32Array([0.5, 1]), new Float32Array([0.5, 1.0001]))).toBe(false);
    const buf = new Float32Array(4);
    expect(sameItems([buf], [buf])).toBe(true);
    expect(sameItems([buf], [buf.slice()])).toBe(false);
  });
});
