// Names shared by the kernel side and the tuning UI.
// Keep in sync with src/calab/_protocol.py.

export const MSG_VIEW = "calab:view";
export const MSG_OVERVIEW = "calab:overview";
export const MSG_SPECTRUM = "calab:spectrum";
export const MSG_EXPORTED = "calab:exported";

export const MSG_HELLO = "calab:hello";
export const MSG_REQ_SPECTRUM = "calab:get-spectrum";
export const MSG_EXPORT = "calab:export";

export interface ParamSet {
  tau_rise: number;
  tau_decay: number;
  /** A penalty (lam_mode "global") or noise SDs of each cell (lam_mode "per_cell"). */
  lam: number;
  filter_enabled: boolean;
  lam_mode?: LamMode;
  baseline?: BaselineMode;
}

export interface CellMetrics {
  snr?: number;
  r2?: number;
  sparsity?: number;
  baseline?: number;
  iterations?: number;
}

export interface ViewHeader {
  type: typeof MSG_VIEW;
  id: number;
  params: ParamSet;
  pinned: ParamSet | null;
  cells: number[];
  states: string[];
  errors: (string | null)[];
  metrics: CellMetrics[];
  start: number;
  stop: number;
  series: string[];
  dtype: "float32";
  shape: [number, number, number, number];
  t_peak_s: number;
  fwhm_s: number;
  f_hp: number;
  f_lp: number;
  solve_ms: number;
  lam_max: number;
  fs: number;
  n_frames: number;
  /** Span in seconds of the kernel curve (second buffer); absent when the parameters are invalid. */
  kernel_t_max_s?: number;
}

export interface OverviewHeader {
  type: typeof MSG_OVERVIEW;
  cells: number[];
  shape: [number, number, number];
  n_frames: number;
}

export interface SpectrumHeader {
  type: typeof MSG_SPECTRUM;
  cell: number;
  f_hp: number;
  f_lp: number;
  n: number;
}

export interface ExportedHeader {
  type: typeof MSG_EXPORTED;
  path?: string;
  /** Shown instead of "saved <path>" (the bridge returns the parameters to Python). */
  message?: string;
  error?: string;
}

export type KernelMessage =
  | ViewHeader
  | OverviewHeader
  | SpectrumHeader
  | ExportedHeader
  | AutoProgressHeader
  | AutoDoneHeader;

/** What the UI needs from its host: the anywidget model, or the HTTP bridge. */
export interface Transport {
  get<T = unknown>(key: string): T;
  /** Set several state keys at once and send them to the kernel. */
  set(changes: Record<string, unknown>): void;
  /** Call cb when key changes (from either side); returns the unsubscribe function. */
  on(key: string, cb: () => void): () => void;
  send(msg: Record<string, unknown>): void;
  onMessage(cb: (msg: KernelMessage, buffers: DataView[]) => void): () => void;
}

export function f32(dv: DataView): Float32Array {
  if (dv.byteOffset % 4 === 0) {
    return new Float32Array(dv.buffer, dv.byteOffset, Math.floor(dv.byteLength / 4));
  }
  return new Float32Array(dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength));
}

// Browser bridge (HTTP); keep in sync with src/calab/_protocol.py.
export const MSG_STATE = "calab:state";
export const MSG_SUPERSEDED = "calab:superseded";
export const BRIDGE_SECRET_HEADER = "X-Bridge-Secret";
export const BRIDGE_HEARTBEAT_MS = 3000;

// Parameters from the data (Auto); keep in sync with src/calab/_protocol.py.
/** Page -> kernel: estimate the parameters from the recording, then move the sliders. */
export const MSG_AUTO = "calab:auto";
/** Page -> kernel: answered at once with the latest auto-progress (the bridge polls it). */
export const MSG_AUTO_STATUS = "calab:auto-status";
export const MSG_AUTO_PROGRESS = "calab:auto-progress";
export const MSG_AUTO_DONE = "calab:auto-done";

/** State key lam_mode: what the sparsity slider means. */
export type LamMode = "global" | "per_cell";
/** State key baseline: CaTune's scalar baseline, or a drift-following one. */
export type BaselineMode = "constant" | "drift";

export interface AutoProgressHeader {
  type: typeof MSG_AUTO_PROGRESS;
  /** True while the estimate runs. */
  running: boolean;
  elapsed_s?: number;
  message?: string;
}

/** How far an estimate can be trusted; keep in sync with EstimateQuality.to_dict. */
export interface EstimateVerdict {
  /** False: the kernel could not be measured; the default kernel was used. */
  trusted: boolean;
  /** Trusted, and rise, decay and noise all resolved by the data. */
  resolved: boolean;
  fallback: boolean;
  /** One line: "ok (...)", "usable (...): notes" or "UNRELIABLE: problems ...". */
  summary: string;
  problems: string[];
  notes: string[];
  rise_resolved: boolean;
  decay_resolved: boolean;
  noise_resolved: boolean;
  n_near_constant: number;
}

export interface AutoDoneHeader {
  type: typeof MSG_AUTO_DONE;
  /** The state changes made (tau_rise, tau_decay, lam, lam_mode, baseline); absent on error. */
  changes?: Record<string, unknown>;
  estimate?: {
    tau_rise: number;
    tau_decay: number;
    lambda_: number;
    baseline: BaselineMode;
    n_no_transients: number;
    elapsed_s: number;
    /** The estimate's verdict (calab.estimate_verdict.EstimateQuality.to_dict). */
    verdict?: EstimateVerdict;
  };
  /** The estimate failed: nothing changed. */
  error?: string;
}
