// Number formatting for labels, boxes and the hover readout (pure).

/** A short, readable number: 3 significant digits, exponent form outside [1e-3, 1e4). */
export function fmt(v: number | null | undefined, digits = 3): string {
  if (v === undefined || v === null || !Number.isFinite(v)) return "–";
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4)) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

/** Value of one min/max bin: one number when both ends agree to the shown digits, else "lo … hi". */
export function fmtBin(lo: number, hi: number, digits = 3): string {
  if (!(lo === lo) || !(hi === hi)) return "–";
  const a = fmt(lo, digits);
  const b = fmt(hi, digits);
  return a === b ? a : `${a} … ${b}`;
}

/** Tick label for a value on a grid of spacing `step`: just enough decimals to tell ticks apart. */
export function tickLabel(v: number, step: number): string {
  if (!Number.isFinite(v) || !(step > 0)) return "";
  if (Math.abs(v) < step * 1e-9) return "0";
  const mag = Math.max(Math.abs(v), step);
  if (mag >= 1e5 || step < 1e-4) return v.toExponential(Math.max(0, Math.round(Math.log10(mag / step))));
  const decimals = Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
  return v.toFixed(decimals);
}
