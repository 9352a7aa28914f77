import { describe, expect, it } from "vitest";
import { MERGE_PX, traceMinMax, type PathSink } from "../src/plot";

type Pt = [op: "M" | "L", x: number, y: number];

/** Records the path; y is flipped back to data units by the unit box below. */
function record(): PathSink & { pts: Pt[] } {
  const pts: Pt[] = [];
  return { pts, moveTo: (x, y) => pts.push(["M", x, y]), lineTo: (x, y) => pts.push(["L", x, y]) };
}

/** Unit mapping: x and y in data units are canvas px (y measured up from 100). */
const BOX = { left: 0, top: 0, width: 100, height: 100 };
function trace(xs: number[], ys: number[], w = MERGE_PX, i0 = 0, i1 = ys.length - 1): Pt[] {
  const sink = record();
  const n = traceMinMax(sink, xs, ys, i0, i1, BOX, 0, 100, 0, 100, w);
  expect(n).toBe(sink.pts.length);
  return sink.pts.map(([op, x, y]) => [op, x, 100 - y]);
}
/** Interleaved x values of min/max pairs at 0, 1, 2, ... */
const pairX = (nb: number) => Array.from({ length: 2 * nb }, (_, i) => Math.floor(i / 2));

function distToSegment(px: number, py: number, a: Pt, b: Pt): number {
  const [dx, dy] = [b[1] - a[1], b[2] - a[2]];
  const len2 = dx * dx + dy * dy;
  const t = len2 ? Math.max(0, Math.min(1, ((px - a[1]) * dx + (py - a[2]) * dy) / len2)) : 0;
  return Math.hypot(px - a[1] - t * dx, py - a[2] - t * dy);
}

describe("traceMinMax", () => {
  it("draws each bin as a vertical segment entered at the end nearer the previous point", () => {
    const pts = trace(pairX(3), [0, 10, 8, 12, 1, 2], 0);
    expect(pts).toEqual([
      ["M", 0, 0],
      ["L", 0, 10],
      ["L", 1, 8], // bin 1: min 8 is nearer 10 than max 12
      ["L", 1, 12],
      ["L", 2, 2], // bin 2: max 2 is nearer 12 than min 1
      ["L", 2, 1],
    ]);
  });

  it("merges the points of a straight run into its two ends", () => {
    const nb = 50;
    // A shallow ramp: each bin spans what the line crosses in it (sub-pixel steps).
    const ys = Array.from({ length: 2 * nb }, (_, i) => 0.1 * Math.floor(i / 2) + (i % 2) * 0.1);
    const pts = trace(pairX(nb), ys);
    expect(pts.length).toBe(2);
    expect(pts[0]).toEqual(["M", 0, 0]);
    expect(pts[1]![1]).toBe(49);
    expect(pts[1]![2]).toBeCloseTo(5, 9);
  });

  it("keeps a spike and every turn back", () => {
    const ys = [5, 5, 5, 5, 5, 40, 5, 5, 5, 5];
    const pts = trace(pairX(5), ys);
    expect(pts).toContainEqual(["L", 2, 40]);
    expect(pts[pts.length - 1]).toEqual(["L", 4, 5]);
  });

  it("leaves out no point farther than w from the drawn line", () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const nb = 400;
    const ys: number[] = [];
    let v = 50;
    for (let k = 0; k < nb; k++) {
      // Smooth stretches (merged) with noisy ones (kept).
      const a = v + (k % 100 < 50 ? 0.05 : (rand() - 0.5) * 6);
      const b = a + (k % 100 < 50 ? 0.02 : rand() * 4);
      ys.push(a, b);
      v = (a + b) / 2;
    }
    const xs = pairX(nb).map((x) => x / 4);
    const w = 0.25;
    const pts = trace(xs, ys, w);
    const all = trace(xs, ys, 0);
    expect(pts.length).toBeLessThan(0.8 * all.length);
    for (const [, x, y] of all) {
      let best = Infinity;
      for (let k = 1; k < pts.length; k++) best = Math.min(best, distToSegment(x, y, pts[k - 1]!, pts[k]!));
      expect(best).toBeLessThanOrEqual(w + 1e-9);
    }
  });

  it("lifts the pen at NaN and starts at the pair holding i0", () => {
    const pts = trace(pairX(4), [1, 2, NaN, NaN, 3, 4, 5, 6], 0, 1);
    expect(pts.filter((p) => p[0] === "M").length).toBe(2);
    expect(pts[0]).toEqual(["M", 0, 1]);
    const tail = trace(pairX(2), [1, 2, 3, 4], 0, 1, 2);
    expect(tail).toEqual([
      ["M", 0, 1],
      ["L", 0, 2],
      ["L", 1, 3],
      ["L", 1, 4],
    ]);
  });
});
