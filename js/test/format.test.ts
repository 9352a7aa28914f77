import { describe, expect, it } from "vitest";
import { fmt, fmtBin, tickLabel } from "../src/format";

describe("fmt", () => {
  it("gives three significant digits and a dash for missing values", () => {
    expect(fmt(0.022424)).toBe("0.0224");
    expect(fmt(0.022424, 4)).toBe("0.02242");
    expect(fmt(12.3456)).toBe("12.3");
    expect(fmt(0)).toBe("0");
    expect(fmt(NaN)).toBe("–");
    expect(fmt(undefined)).toBe("–");
  });
  it("switches to exponent form for very small and very large values", () => {
    expect(fmt(2.5e-5)).toBe("2.50e-5");
    expect(fmt(123456)).toBe("1.23e+5");
  });
});

describe("fmtBin", () => {
  it("shows one number when the bin's ends agree, else the range", () => {
    expect(fmtBin(1.2301, 1.2302)).toBe("1.23");
    expect(fmtBin(0.5, 2)).toBe("0.5 … 2");
    expect(fmtBin(NaN, NaN)).toBe("–");
  });
});

describe("tickLabel", () => {
  it("uses as many decimals as the step needs", () => {
    expect(tickLabel(20, 2)).toBe("20");
    expect(tickLabel(0.30000000000000004, 0.1)).toBe("0.3");
    expect(tickLabel(1.25, 0.05)).toBe("1.25");
    expect(tickLabel(-1e-17, 0.5)).toBe("0");
  });
});
