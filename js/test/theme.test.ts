import { describe, expect, it } from "vitest";
import { OKABE_ITO, isDark, parseColor, seriesColors } from "../src/theme";

describe("parseColor", () => {
  it("reads rgb(), rgba() and hex", () => {
    expect(parseColor("rgb(17, 17, 17)")).toEqual([17, 17, 17, 1]);
    expect(parseColor("rgba(0, 0, 0, 0)")).toEqual([0, 0, 0, 0]);
    expect(parseColor("rgb(10 20 30 / 50%)")).toEqual([10, 20, 30, 0.5]);
    expect(parseColor("#fff")).toEqual([255, 255, 255, 1]);
    expect(parseColor("#111111")).toEqual([17, 17, 17, 1]);
    expect(parseColor("transparent")).toBeNull();
  });
});

describe("isDark", () => {
  it("tells JupyterLab's dark and light backgrounds apart", () => {
    expect(isDark("rgb(17, 17, 17)")).toBe(true); // --jp-layout-color0 of JupyterLab Dark
    expect(isDark("rgb(255, 255, 255)")).toBe(false);
    expect(isDark("rgba(0, 0, 0, 0)")).toBe(false); // transparent: no opinion, light default
  });
});

describe("seriesColors", () => {
  it("uses the Okabe-Ito palette for the traces in both themes", () => {
    const palette = new Set<string>(Object.values(OKABE_ITO));
    for (const dark of [false, true]) {
      const c = seriesColors(dark);
      for (const n of ["raw", "fit", "activity", "residual", "pin_fit"]) expect(palette.has(c[n]!)).toBe(true);
    }
    expect(seriesColors(true).truth).not.toBe(OKABE_ITO.black);
  });
});
