// Axis and band geometry of the cell cards, as pure functions of the data.

/** The "round" step (1, 2 or 5 times a power of ten) nearest to `span / target` (in ratio). */
export function roundStep(span: number, target: number): number {
  if (!(span > 0) || !Number.isFinite(span)) return 1;
  const raw = span / Math.max(1, target);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  let best = p;
  for (const m of [2, 5, 10]) if (Math.abs(Math.log(m * p / raw)) < Math.abs(Math.log(best / raw))) best = m * p;
  return best;
}

/** Round tick values inside [lo, hi] (at most about `target` of them). */
export function roundTicks(lo: number, hi: number, target: number): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || hi < lo) return [];
  if (hi === lo) return [lo];
  const step = roundStep(hi - lo, target);
  const out: number[] = [];
  const eps = step * 1e-9;
  for (let k = Math.ceil((lo - eps) / step); k * step <= hi + eps; k++) {
    // k * step (not an accumulated sum), so labels stay round.
    out.push(Number((k * step).toPrecision(12)));
  }
  return out;
}

/**
 * Scale range [min, max] that puts data [lo, hi] in the band between fractions `bottom` and
 * `top` of the plot height (0 = bottom edge, 1 = top edge). Empty or flat data gets a unit span.
 */
export function bandRange(lo: number, hi: number, bottom: number, top: number): [number, number] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (hi <= lo) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.5 : 0.5;
    lo -= pad;
    hi += pad;
  }
  const full = (hi - lo) / (top - bottom);
  const min = lo - bottom * full;
  return [min, min + full];
}

/** Where each series goes: the traces on top, activity in the middle, residual at the bottom. */
export const BANDS = {
  trace: { bottom: 0.42, top: 0.99 },
  activity: { bottom: 0.2, top: 0.39 },
  residual: { bottom: 0.01, top: 0.17 },
} as const;
export type BandName = keyof typeof BANDS;

export const SERIES_BAND: Record<string, BandName> = {
  raw: "trace",
  filtered: "trace",
  fit: "trace",
  pin_fit: "trace",
  activity: "activity",
  pin_activity: "activity",
  truth: "activity",
  residual: "residual",
};

/** [lo, hi] over bins [off, off + 2*nb) of min/max pairs, ignoring NaN; widens `into` if given. */
export function dataRange(data: Float32Array, off: number, nb: number, into?: [number, number]): [number, number] {
  const out: [number, number] = into ?? [Infinity, -Infinity];
  let lo = out[0];
  let hi = out[1];
  for (let i = off; i < off + 2 * nb; i++) {
    const v = data[i]!;
    if (v === v) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  out[0] = lo;
  out[1] = hi;
  return out;
}

/**
 * x values for min/max bins drawn as vertical segments: each bin's centre time, twice
 * (once for its min, once for its max), in seconds.
 */
export function binTimes(start: number, stop: number, fs: number, nb: number): Float64Array {
  const x = new Float64Array(2 * nb);
  const frames = stop - start;
  for (let k = 0; k < nb; k++) {
    const t = (start + ((k + 0.5) / nb) * frames - 0.5) / fs;
    x[2 * k] = t;
    x[2 * k + 1] = t;
  }
  return x;
}

/** The lambda slider is log-scaled over [max * 1e-4, max]: slider position <-> lambda. */
export function lamToPos(lam: number, lamMax: number): number {
  const lo = lamMax * 1e-4;
  return Math.log(Math.max(lam, lo) / lo) / Math.log(lamMax / lo);
}
export function posToLam(pos: number, lamMax: number): number {
  const lo = lamMax * 1e-4;
  return lo * Math.pow(lamMax / lo, pos);
}

/** A power of ten (the labelled ticks of a log axis). */
export function isDecade(v: number | null | undefined): v is number {
  if (v == null || !(v > 0)) return false;
  const e = Math.log10(v);
  return Math.abs(e - Math.round(e)) < 1e-9;
}
