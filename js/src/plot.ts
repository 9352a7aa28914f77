// Hand-drawn canvas parts: the overview strip above each card (min/max per pixel column)
// and the spike ticks drawn into a card's plot.

/** Size the canvas backing store for the device pixel ratio; return a 2-D context in CSS px. */
export function prepare(canvas: HTMLCanvasElement, cssW: number, cssH: number): CanvasRenderingContext2D {
  const dpr = Math.min(2, globalThis.devicePixelRatio || 1);
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
  ctx.clearRect(0, 0, cssW, cssH);
  return ctx;
}

/** Vertical pixel of v when [lo, hi] fills [top, top + height]. */
export function yOf(top: number, height: number, lo: number, hi: number, v: number): number {
  const span = hi - lo || 1;
  return top + height - ((v - lo) / span) * height;
}

/** Draw min/max pairs `data` (length 2*nb) across [0, w): one vertical segment per bin. */
export function drawMinMax(
  ctx: CanvasRenderingContext2D,
  data: Float32Array,
  w: number,
  top: number,
  height: number,
  lo: number,
  hi: number,
  color: string,
): void {
  const nb = data.length / 2;
  ctx.strokeStyle = color;
  ctx.lineWidth = 1;
  ctx.beginPath();
  let pen = false;
  for (let k = 0; k < nb; k++) {
    const mn = data[2 * k]!;
    const mx = data[2 * k + 1]!;
    if (mn !== mn) {
      pen = false;
      continue;
    }
    const x = ((k + 0.5) / nb) * w;
    const y = yOf(top, height, lo, hi, mn);
    if (pen) ctx.lineTo(x, y);
    else ctx.moveTo(x, y);
    pen = true;
    if (mx !== mn) ctx.lineTo(x, yOf(top, height, lo, hi, mx));
  }
  ctx.stroke();
}

/**
 * Spike ticks: for each bin whose max is positive, a vertical tick up from `y0` (taller for
 * more spikes in the bin). `xOf(k)` gives the bin's pixel column.
 */
export function drawTicks(
  ctx: CanvasRenderingContext2D,
  data: Float32Array,
  xOf: (k: number) => number,
  y0: number,
  h: number,
  color: string,
): void {
  const nb = data.length / 2;
  ctx.strokeStyle = color;
  ctx.lineWidth = 1;
  ctx.setLineDash([]);
  ctx.beginPath();
  for (let k = 0; k < nb; k++) {
    const mx = data[2 * k + 1]!;
    if (mx > 0) {
      const x = xOf(k);
      ctx.moveTo(x, y0);
      ctx.lineTo(x, y0 - h * Math.min(1, 0.5 + 0.25 * mx));
    }
  }
  ctx.stroke();
}

export type Segment = [x0: number, y0: number, x1: number, y1: number];

/** Stroke line segments (canvas pixels) 1 CSS px wide, dashed by `dash` (CSS px) unless empty. */
export function strokeSegments(ctx: CanvasRenderingContext2D, color: string, dash: number[], segs: Segment[]): void {
  const px = globalThis.devicePixelRatio || 1;
  ctx.save();
  ctx.strokeStyle = color;
  ctx.lineWidth = px;
  ctx.setLineDash(dash.map((d) => d * px));
  ctx.beginPath();
  for (const [x0, y0, x1, y1] of segs) {
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
  }
  ctx.stroke();
  ctx.restore();
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * The path through points (xs[i], ys[i]) for i in [i0, i1], mapped from [x0, x1] x [y0, y1] onto
 * `box` (canvas pixels, y down). With min/max pairs at equal x this draws one vertical segment
 * per bin, as a min/max downsampled trace needs; NaN or null lifts the pen. (Cheaper than
 * uPlot's own builder, which re-aggregates points per pixel column; ours already are.)
 */
export function minMaxPath(
  xs: ArrayLike<number>,
  ys: ArrayLike<number | null | undefined>,
  i0: number,
  i1: number,
  box: Box,
  x0: number,
  x1: number,
  y0: number,
  y1: number,
): Path2D {
  const path = new Path2D();
  const kx = box.width / (x1 - x0 || 1);
  const ky = box.height / (y1 - y0 || 1);
  const bottom = box.top + box.height;
  let pen = false;
  for (let i = Math.max(0, i0); i <= i1 && i < ys.length; i++) {
    const v = ys[i];
    if (v == null || v !== v) {
      pen = false;
      continue;
    }
    const x = box.left + (xs[i]! - x0) * kx;
    const y = bottom - (v - y0) * ky;
    if (pen) path.lineTo(x, y);
    else path.moveTo(x, y);
    pen = true;
  }
  return path;
}
