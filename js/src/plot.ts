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

/** Where a traced line goes: a Path2D, or a recorder in the tests. */
export interface PathSink {
  moveTo(x: number, y: number): void;
  lineTo(x: number, y: number): void;
}

/** How far (canvas px) a point left out of a traced line may be from the drawn line. */
export const MERGE_PX = 0.25;

/**
 * Streams points into `sink` as a polyline, leaving out those the drawn line passes within `w`
 * px of. A run starts at the last drawn point A and keeps the cone of directions from A that
 * pass within `w` of each point taken in (sleeve fitting, Zhao and Saalfeld 1997); it goes on
 * while the next point lies inside that cone and no nearer to A than the previous one, and ends
 * at its last point. Vectors only: one square root per point, no trigonometry.
 */
class Polyline {
  private ax = 0;
  private ay = 0;
  private px = 0;
  private py = 0;
  private pending = false;
  /** Distance from A of the run's last point; the cone's edges as unit vectors. */
  private far = 0;
  private cone = false;
  private lox = 0;
  private loy = 0;
  private hix = 0;
  private hiy = 0;
  points = 0;

  constructor(
    private readonly sink: PathSink,
    private readonly w: number,
  ) {}

  moveTo(x: number, y: number): void {
    this.flush();
    this.sink.moveTo(x, y);
    this.points += 1;
    this.ax = x;
    this.ay = y;
  }

  lineTo(x: number, y: number): void {
    if (this.pending && this.extend(x - this.ax, y - this.ay)) {
      this.px = x;
      this.py = y;
      return;
    }
    this.flush();
    if (x === this.ax && y === this.ay) return; // the same point again
    this.cone = false;
    this.far = 0;
    this.extend(x - this.ax, y - this.ay);
    this.px = x;
    this.py = y;
    this.pending = true;
  }

  /** Take the point at (rx, ry) from A into the run if the run can end there; narrow the cone. */
  private extend(rx: number, ry: number): boolean {
    const r = Math.sqrt(rx * rx + ry * ry);
    if (r < this.far) return false; // turning back towards A
    if (r <= this.w) {
      this.far = r;
      return true;
    }
    const ux = rx / r;
    const uy = ry / r;
    if (this.cone && (this.lox * uy - this.loy * ux < 0 || ux * this.hiy - uy * this.hix < 0)) return false;
    // The directions passing within w of this point: u turned by -/+ asin(w / r).
    const s = this.w / r;
    const c = Math.sqrt(1 - s * s);
    const lx = ux * c + uy * s;
    const ly = uy * c - ux * s;
    const hx = ux * c - uy * s;
    const hy = uy * c + ux * s;
    if (!this.cone || this.lox * ly - this.loy * lx > 0) {
      this.lox = lx;
      this.loy = ly;
    }
    if (!this.cone || hx * this.hiy - hy * this.hix > 0) {
      this.hix = hx;
      this.hiy = hy;
    }
    this.cone = true;
    this.far = r;
    return true;
  }

  /** Draw the run's last point (call before lifting the pen and at the end). */
  flush(): void {
    if (!this.pending) return;
    this.sink.lineTo(this.px, this.py);
    this.points += 1;
    this.ax = this.px;
    this.ay = this.py;
    this.pending = false;
  }
}

/**
 * Trace min/max pairs `ys[2k], ys[2k + 1]` (at `xs[2k]`) for the pairs overlapping [i0, i1],
 * mapped from [x0, x1] x [y0, y1] onto `box` (canvas pixels, y down), into `sink`: one vertical
 * segment per bin, as a min/max downsampled trace needs, entered at the end nearer the previous
 * point (so the line does not run back over each bin), leaving out points the drawn line passes
 * within `w` px of (see Polyline). NaN in a pair lifts the pen. Returns the number of points drawn.
 *
 * Why not uPlot's own builder: it re-aggregates points per pixel column, ours already are. Why
 * merge: the canvas rasteriser's cost for lines wider than 1 px grows with their segments and
 * reversals (a 1.5 px fit was most of a card's drawing time); merged points are invisible.
 */
export function traceMinMax(
  sink: PathSink,
  xs: ArrayLike<number>,
  ys: ArrayLike<number | null | undefined>,
  i0: number,
  i1: number,
  box: Box,
  x0: number,
  x1: number,
  y0: number,
  y1: number,
  w: number = MERGE_PX,
): number {
  const line = new Polyline(sink, w);
  const kx = box.width / (x1 - x0 || 1);
  const ky = box.height / (y1 - y0 || 1);
  const bottom = box.top + box.height;
  let pen = false;
  let last = 0;
  for (let i = Math.max(0, i0 - (i0 % 2)); i <= i1 && i + 1 < ys.length; i += 2) {
    const a = ys[i];
    const b = ys[i + 1];
    if (a == null || b == null || a !== a || b !== b) {
      pen = false;
      continue;
    }
    const x = box.left + (xs[i]! - x0) * kx;
    const ya = bottom - (a - y0) * ky;
    const yb = bottom - (b - y0) * ky;
    const flip = pen && Math.abs(yb - last) < Math.abs(ya - last);
    const first = flip ? yb : ya;
    last = flip ? ya : yb;
    if (pen) line.lineTo(x, first);
    else line.moveTo(x, first);
    line.lineTo(x, last);
    pen = true;
  }
  line.flush();
  return line.points;
}
