// Canvas drawing of min/max-downsampled series (one vertical segment per pixel column).

export const COLORS: Record<string, string> = {
  raw: "#17becf",
  filtered: "#1f77b4",
  fit: "#ff7f0e",
  activity: "#2ca02c",
  residual: "#d62728",
  pin_fit: "#7f3fbf",
  pin_activity: "#7f3fbf",
  truth: "#222222",
};

export const LABELS: Record<string, string> = {
  raw: "raw",
  filtered: "filtered",
  fit: "fit (K s + b)",
  activity: "activity",
  residual: "residual",
  pin_fit: "pinned fit",
  pin_activity: "pinned activity",
  truth: "true spikes",
};

/** Size the canvas backing store for the device pixel ratio; return a 2-D context in CSS px. */
export function prepare(canvas: HTMLCanvasElement, cssW: number, cssH: number): CanvasRenderingContext2D {
  const dpr = Math.min(2, (globalThis.devicePixelRatio as number | undefined) || 1);
  const w = Math.max(1, Math.round(cssW * dpr));
  const h = Math.max(1, Math.round(cssH * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("canvas 2d context unavailable");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.setLineDash([]);
  ctx.clearRect(0, 0, cssW, cssH);
  return ctx;
}

export interface Band {
  top: number;
  height: number;
  lo: number;
  hi: number;
}

export function yOf(band: Band, v: number): number {
  const span = band.hi - band.lo || 1;
  return band.top + band.height - ((v - band.lo) / span) * band.height;
}

/** Range [lo, hi] of bins [off, off + 2*nb) ignoring NaN. */
export function range(data: Float32Array, off: number, nb: number, into?: [number, number]): [number, number] {
  let lo = into ? into[0] : Infinity;
  let hi = into ? into[1] : -Infinity;
  for (let i = off; i < off + 2 * nb; i++) {
    const v = data[i];
    if (v === v) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (into) {
    into[0] = lo;
    into[1] = hi;
  }
  return [lo, hi];
}

/** Draw bins [off, off + 2*nb) of data (min, max pairs) across [x0, x0 + w). */
export function drawMinMax(
  ctx: CanvasRenderingContext2D,
  data: Float32Array,
  off: number,
  nb: number,
  x0: number,
  w: number,
  band: Band,
  color: string,
  dashed = false,
  lineWidth = 1,
): void {
  ctx.save();
  ctx.beginPath();
  ctx.rect(x0, band.top - 1, w, band.height + 2);
  ctx.clip();
  ctx.strokeStyle = color;
  ctx.lineWidth = lineWidth;
  ctx.setLineDash(dashed ? [4, 3] : []);
  ctx.beginPath();
  let pen = false;
  for (let k = 0; k < nb; k++) {
    const mn = data[off + 2 * k];
    const mx = data[off + 2 * k + 1];
    if (mn !== mn) {
      pen = false;
      continue;
    }
    const x = x0 + ((k + 0.5) / nb) * w;
    if (!pen) {
      ctx.moveTo(x, yOf(band, mn));
      pen = true;
    } else {
      ctx.lineTo(x, yOf(band, mn));
    }
    if (mx !== mn) ctx.lineTo(x, yOf(band, mx));
  }
  ctx.stroke();
  ctx.restore();
}

/** Vertical ticks where the series (max per bin) is positive: for spike trains. */
export function drawTicks(
  ctx: CanvasRenderingContext2D,
  data: Float32Array,
  off: number,
  nb: number,
  x0: number,
  w: number,
  y0: number,
  h: number,
  color: string,
): void {
  ctx.save();
  ctx.strokeStyle = color;
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let k = 0; k < nb; k++) {
    const mx = data[off + 2 * k + 1];
    if (mx > 0) {
      const x = x0 + ((k + 0.5) / nb) * w;
      ctx.moveTo(x, y0);
      ctx.lineTo(x, y0 - h * Math.min(1, 0.5 + 0.25 * mx));
    }
  }
  ctx.stroke();
  ctx.restore();
}

/** "Nice" tick step for a span. */
export function niceStep(span: number, target: number): number {
  const raw = span / Math.max(1, target);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

export function timeAxis(
  ctx: CanvasRenderingContext2D,
  t0: number,
  t1: number,
  x0: number,
  w: number,
  y: number,
  gridTop: number,
): void {
  const step = niceStep(t1 - t0, Math.max(2, Math.floor(w / 80)));
  ctx.save();
  ctx.fillStyle = "#666";
  ctx.strokeStyle = "rgba(0,0,0,0.08)";
  ctx.font = "10px sans-serif";
  ctx.textAlign = "center";
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const x = x0 + ((t - t0) / (t1 - t0)) * w;
    ctx.beginPath();
    ctx.moveTo(x, gridTop);
    ctx.lineTo(x, y - 10);
    ctx.stroke();
    const label = step < 1 ? t.toFixed(Math.min(3, Math.ceil(-Math.log10(step)))) : t.toFixed(0);
    // Keep the labels at either edge inside the canvas instead of cutting them in half.
    const half = ctx.measureText(label).width / 2;
    ctx.textAlign = x - half < x0 ? "left" : x + half > x0 + w ? "right" : "center";
    ctx.fillText(label, x, y);
  }
  ctx.restore();
}
