// Colours: the host's theme (read from the widget root's computed style) and the trace palette.

/** Okabe-Ito: a palette that colour-blind readers can tell apart (what CaTune uses). */
export const OKABE_ITO = {
  orange: "#E69F00",
  skyBlue: "#56B4E9",
  bluishGreen: "#009E73",
  yellow: "#F0E442",
  blue: "#0072B2",
  vermillion: "#D55E00",
  reddishPurple: "#CC79A7",
  black: "#000000",
} as const;

export const LABELS: Record<string, string> = {
  raw: "raw",
  filtered: "filtered",
  fit: "fit",
  activity: "activity",
  residual: "residual",
  pin_fit: "pinned fit",
  pin_activity: "pinned activity",
  truth: "true spikes",
};

export interface Theme {
  dark: boolean;
  fg: string;
  muted: string;
  grid: string;
  bg: string;
  series: Record<string, string>;
}

/** Series colours; dark themes get the lighter blue for the filtered trace and a light truth. */
export function seriesColors(dark: boolean): Record<string, string> {
  const o = OKABE_ITO;
  return {
    raw: o.skyBlue,
    filtered: dark ? "#7FB8E6" : o.blue,
    fit: o.orange,
    activity: o.bluishGreen,
    residual: o.vermillion,
    pin_fit: o.reddishPurple,
    pin_activity: o.reddishPurple,
    truth: dark ? "#E8E8E8" : o.black,
  };
}

/** [r, g, b, a] of a CSS colour in rgb()/rgba() or #hex form; null when not parseable. */
export function parseColor(css: string): [number, number, number, number] | null {
  const s = css.trim();
  const m = /^rgba?\(\s*([\d.]+)[ ,]+([\d.]+)[ ,]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)$/.exec(s);
  if (m) {
    let a = m[4] === undefined ? 1 : parseFloat(m[4]);
    if (m[4]?.endsWith("%")) a /= 100;
    return [Number(m[1]), Number(m[2]), Number(m[3]), a];
  }
  const hx = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(s);
  if (hx) {
    const d = hx[1]!;
    const full = d.length === 3 ? [...d].map((c) => c + c).join("") : d;
    return [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16)).concat(1) as [number, number, number, number];
  }
  return null;
}

/** True for a dark background (relative luminance below 0.4); transparent counts as light. */
export function isDark(background: string): boolean {
  const c = parseColor(background);
  if (!c || c[3] === 0) return false;
  const lin = (v: number) => {
    const x = v / 255;
    return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
  };
  const lum = 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  return lum < 0.4;
}

/** The theme in force on `root` (its CSS maps host variables to --calab-*; see style.css). */
export function readTheme(root: Element): Theme {
  const cs = getComputedStyle(root);
  const v = (name: string, fallback: string) => cs.getPropertyValue(name).trim() || fallback;
  const bg = cs.backgroundColor || "#fff";
  const dark = isDark(bg);
  return {
    dark,
    bg,
    fg: cs.color || (dark ? "#ddd" : "#222"),
    muted: v("--calab-muted", dark ? "#aaa" : "#666"),
    grid: dark ? "rgba(255,255,255,0.12)" : "rgba(0,0,0,0.09)",
    series: seriesColors(dark),
  };
}

/** A key that changes when anything drawn on canvases must be redone with new colours. */
export function themeKey(t: Theme): string {
  return `${t.dark}|${t.fg}|${t.muted}|${t.bg}`;
}
