import { describe, expect, it } from "vitest";
import { bandRange, binTimes, dataRange, isDecade, lamToPos, posToLam, roundStep, roundTicks } from "../src/scales";

describe("roundTicks", () => {
  it("gives 1-2-5 steps inside the range", () => {
    expect(roundStep(10, 5)).toBe(2);
    expect(roundStep(0.9, 4)).toBe(0.2);
    expect(roundStep(7, 4)).toBe(2);
    expect(roundTicks(0.13, 1.92, 4)).toEqual([0.5, 1, 1.5]);
    expect(roundTicks(-3.2, 7.7, 5)).toEqual([-2, 0, 2, 4, 6]);
  });
  it("keeps the values round (no accumulated float error)", () => {
    for (const v of roundTicks(0, 1, 10)) expect(String(v).length).toBeLessThanOrEqual(3);
  });
  it("copes with flat or missing data", () => {
    expect(roundTicks(2, 2, 4)).toEqual([2]);
    expect(roundTicks(Infinity, -Infinity, 4)).toEqual([]);
  });
});

describe("bandRange", () => {
  it("maps the data onto the requested fractions of the plot height", () => {
    const [min, max] = bandRange(10, 20, 0.4, 0.9);
    expect((10 - min) / (max - min)).toBeCloseTo(0.4, 12);
    expect((20 - min) / (max - min)).toBeCloseTo(0.9, 12);
  });
  it("widens flat data and replaces missing data", () => {
    const [a, b] = bandRange(3, 3, 0, 1);
    expect(a).toBeLessThan(3);
    expect(b).toBeGreaterThan(3);
    expect(bandRange(Infinity, -Infinity, 0, 1)).toEqual([0, 1]);
  });
});

describe("dataRange", () => {
  it("scans min/max pairs and skips NaN", () => {
    const d = new Float32Array([9, 9, 1, 2, NaN, NaN, -1, 5, 9, 9]);
    expect(dataRange(d, 2, 3)).toEqual([-1, 5]);
    const acc: [number, number] = [-3, 0];
    dataRange(d, 2, 1, acc);
    expect(acc).toEqual([-3, 2]);
  });
});

describe("binTimes", () => {
  it("repeats each bin centre for its min and max, in seconds", () => {
    // Frames 100..109 at 10 Hz in 5 bins of 2 frames: centres at frames 100.5, 102.5, ...
    const x = binTimes(100, 110, 10, 5);
    const want = [10.05, 10.05, 10.25, 10.25, 10.45, 10.45, 10.65, 10.65, 10.85, 10.85];
    expect(x.length).toBe(want.length);
    want.forEach((v, i) => expect(x[i]).toBeCloseTo(v, 10));
  });
  it("puts each frame at its own time when there is one frame per bin", () => {
    const x = binTimes(0, 3, 2, 3);
    expect(Array.from(x)).toEqual([0, 0, 0.5, 0.5, 1, 1]);
  });
});

describe("lambda slider", () => {
  it("maps lambda to [0, 1] on a log scale and back", () => {
    expect(lamToPos(1, 1)).toBeCloseTo(1, 12);
    expect(lamToPos(1e-4, 1)).toBeCloseTo(0, 12);
    expect(lamToPos(1e-2, 1)).toBeCloseTo(0.5, 12);
    expect(posToLam(lamToPos(0.0321, 2), 2)).toBeCloseTo(0.0321, 12);
  });
});

describe("isDecade", () => {
  it("labels only powers of ten on log axes", () => {
    expect([0.01, 0.1, 1, 10, 100].every(isDecade)).toBe(true);
    expect([0.2, 3, 50, 0, -10, null].some((v) => isDecade(v))).toBe(false);
  });
});
