// Request bookkeeping: each change the page makes carries a new id; a reply to an older id is
// superseded. Input times give the latency figures read by bench/widget_latency.py.

export interface Breakdown {
  /** Reply arrival after the input, kernel solve time, and drawing time (arrival to drawn), ms. */
  recv: number;
  solve: number;
  draw: number;
}

const KEEP_INPUTS = 200;
const KEEP_FIGURES = 1000;

export class RequestLog {
  /** Input-to-painted times (ms) of answered requests. */
  readonly timings: number[] = [];
  readonly breakdown: Breakdown[] = [];
  private last: number;
  private readonly inputTimes = new Map<number, number>();

  constructor(
    startId: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.last = Math.max(0, Math.floor(startId) || 0);
  }

  /** A new request id; its input time is remembered. */
  next(): number {
    this.last += 1;
    this.inputTimes.set(this.last, this.now());
    if (this.inputTimes.size > KEEP_INPUTS) this.inputTimes.delete(this.inputTimes.keys().next().value!);
    return this.last;
  }

  /** True for a reply to a request older than the newest one sent (a newer answer will come). */
  superseded(id: number): boolean {
    return id < this.last;
  }

  /** The input time of request `id`, once (undefined for requests made elsewhere, or twice). */
  takeInput(id: number): number | undefined {
    const t0 = this.inputTimes.get(id);
    this.inputTimes.delete(id);
    return t0;
  }

  record(b: Breakdown): void {
    this.breakdown.push(b);
    if (this.breakdown.length > KEEP_FIGURES) this.breakdown.shift();
  }

  /** Timings are kept whole: the benchmark counts them (8 bytes per answered input). */
  recordTiming(ms: number): void {
    this.timings.push(ms);
  }
}
