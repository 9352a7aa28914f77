// The calab tuning UI. Written once; the host hands it a Transport (anywidget model or HTTP bridge).
// All state lives in the closure of mountTuner: two widgets on one page share nothing.

import {
  f32,
  MSG_EXPORT,
  MSG_EXPORTED,
  MSG_HELLO,
  MSG_OVERVIEW,
  MSG_REQ_SPECTRUM,
  MSG_SPECTRUM,
  MSG_VIEW,
  type KernelMessage,
  type OverviewHeader,
  type ParamSet,
  type SpectrumHeader,
  type Transport,
  type ViewHeader,
} from "./protocol";
import { COLORS, drawMinMax, drawTicks, LABELS, niceStep, prepare, range, timeAxis, yOf, type Band } from "./plot";

type El = HTMLElement;

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  if (e instanceof HTMLInputElement || e instanceof HTMLButtonElement || e instanceof HTMLSelectElement) {
    // JupyterLab command-mode shortcuts must not steal keys from our inputs.
    e.setAttribute("data-lm-suppress-shortcuts", "true");
  }
  return e;
}

function fmt(v: number | undefined, digits = 3): string {
  if (v === undefined || v === null || !Number.isFinite(v)) return "–";
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4)) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

interface CardEls {
  root: El;
  badge: El;
  overview: HTMLCanvasElement;
  zoom: HTMLCanvasElement;
  draws: number;
}

interface ParamCtl {
  range: HTMLInputElement;
  box: HTMLInputElement;
  setValue(v: number): void;
}

export interface TunerHandle {
  cleanup(): void;
}

const OVERVIEW_H = 36;
const ZOOM_H = 200;

/** Build the UI into el; return its cleanup (removes listeners and DOM). */
export function mountTuner(el: HTMLElement, t: Transport): () => void {
  const offs: (() => void)[] = [];
  const listen = <E extends Event>(target: EventTarget, type: string, fn: (e: E) => void, opts?: AddEventListenerOptions) => {
    target.addEventListener(type, fn as EventListener, opts);
    offs.push(() => target.removeEventListener(type, fn as EventListener, opts));
  };

  // ---- per-widget state ---------------------------------------------------------------
  let reqId = Math.max(0, Number(t.get<number>("request_id")) || 0);
  const inputTimes = new Map<number, number>();
  const timings: number[] = [];
  let view: ViewHeader | null = null;
  let viewData: Float32Array | null = null;
  let overview: { header: OverviewHeader; data: Float32Array } | null = null;
  let spectrum: { header: SpectrumHeader; freqs: Float32Array; power: Float32Array } | null = null;
  let lamMax = Number(t.get<number>("lam")) * 100 || 1;
  let stale = 0;
  const hidden = new Set<string>();
  const cards = new Map<number, CardEls>();

  // ---- DOM --------------------------------------------------------------------------------
  const root = h("div", { class: "calab-tuner", "data-testid": "calab-tuner", "data-rev": "0" });
  (root as unknown as { calabTimings: number[] }).calabTimings = timings;
  // Latency breakdown per answered request (bench/widget_latency.py): reply arrival after the
  // input, kernel solve time, and drawing time (arrival to drawn), all in ms.
  const breakdown: { recv: number; solve: number; draw: number }[] = [];
  (root as unknown as { calabBreakdown: typeof breakdown }).calabBreakdown = breakdown;
  const controls = h("div", { class: "calab-controls" });
  const grid = h("div", { class: "calab-grid" });
  const legend = h("div", { class: "calab-legend" });
  const status = h("div", { class: "calab-status", "data-testid": "status" });
  const bottom = h("div", { class: "calab-bottom" });
  root.append(controls, h("div", { class: "calab-main" }, legend, grid, bottom, status));
  el.append(root);

  function request(changes: Record<string, unknown>): void {
    reqId += 1;
    inputTimes.set(reqId, performance.now());
    if (inputTimes.size > 200) inputTimes.delete(inputTimes.keys().next().value as number);
    for (const c of cards.values()) c.root.dataset.state = "solving";
    t.set({ ...changes, request_id: reqId });
  }

  // Parameter controls: range + numeric box. Lambda's range is log-scaled, but its `value`
  // property reads and writes plain lambda (test hook contract).
  function paramControl(
    key: "tau_rise" | "tau_decay" | "lam",
    label: string,
    testid: string,
    unit: string,
    lo: number,
    hi: number,
    step: number,
    log: boolean,
  ): ParamCtl {
    const rng = h("input", { type: "range", "data-testid": testid, "aria-label": label });
    const box = h("input", { type: "number", class: "calab-num", "aria-label": `${label} value`, step: "any" });
    const proto = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!;
    if (log) {
      rng.min = "0";
      rng.max = "1";
      rng.step = "0.001";
      const toPos = (v: number) => Math.log(Math.max(v, lamLo()) / lamLo()) / Math.log(lamMaxUi() / lamLo());
      const fromPos = (p: number) => lamLo() * Math.pow(lamMaxUi() / lamLo(), p);
      // Remember the exact value set, so a quantised thumb position does not alter it.
      let exact: [string, number] | null = null;
      Object.defineProperty(rng, "value", {
        configurable: true,
        get: () => {
          const pos = String(proto.get!.call(rng));
          return exact && exact[0] === pos ? String(exact[1]) : String(fromPos(Number(pos)));
        },
        set: (v: string) => {
          proto.set!.call(rng, String(toPos(Number(v))));
          exact = [String(proto.get!.call(rng)), Number(v)];
        },
      });
    } else {
      rng.min = String(lo);
      rng.max = String(hi);
      rng.step = String(step);
    }
    const setValue = (v: number) => {
      if (!log && v > Number(rng.max)) rng.max = String(v);
      rng.value = String(v);
      rng.dataset.value = String(v);
      if (document.activeElement !== box) box.value = fmt(v, 4);
    };
    const commit = (v: number) => {
      if (!Number.isFinite(v)) return;
      rng.dataset.value = String(v);
      request({ [key]: v });
    };
    listen(rng, "input", () => {
      const v = Number(rng.value);
      box.value = fmt(v, 4);
      commit(v);
    });
    listen(box, "change", () => {
      const v = Number(box.value);
      setValue(v);
      commit(v);
    });
    controls.append(h("label", { class: "calab-param" }, h("span", {}, `${label}${unit ? ` (${unit})` : ""}`), rng, box));
    return { range: rng, box, setValue };
  }
  const lamLo = () => lamMaxUi() * 1e-4;
  const lamMaxUi = () => Math.max(lamMax, Number(t.get<number>("lam")) * 1.05, 1e-12);

  controls.append(h("div", { class: "calab-title" }, "calab tuning"));
  const ctlRise = paramControl("tau_rise", "rise time", "param-tau-rise", "s", 0.001, 0.5, 0.001, false);
  const ctlDecay = paramControl("tau_decay", "decay time", "param-tau-decay", "s", 0.02, 5, 0.005, false);
  const ctlLam = paramControl("lam", "sparsity λ", "param-lambda", "", 0, 1, 0, true);

  const filt = h("input", { type: "checkbox", "data-testid": "toggle-filter" });
  controls.append(h("label", { class: "calab-check" }, filt, " noise filter (band-pass)"));
  listen(filt, "change", () => request({ filter_enabled: filt.checked }));

  const truth = h("input", { type: "checkbox", "data-testid": "toggle-truth" });
  const truthRow = h("label", { class: "calab-check" }, truth, " show true spikes");
  controls.append(truthRow);
  listen(truth, "change", () => request({ show_truth: truth.checked }));

  const pinBtn = h("button", { "data-testid": "pin", type: "button" }, "Pin parameters");
  const unpinBtn = h("button", { "data-testid": "unpin", type: "button" }, "Clear pin");
  const exportBtn = h("button", { "data-testid": "export", type: "button" }, "Export JSON");
  controls.append(h("div", { class: "calab-buttons" }, pinBtn, unpinBtn, exportBtn));
  listen(pinBtn, "click", () => {
    const p: ParamSet = {
      tau_rise: Number(t.get("tau_rise")),
      tau_decay: Number(t.get("tau_decay")),
      lam: Number(t.get("lam")),
      filter_enabled: Boolean(t.get("filter_enabled")),
    };
    request({ pinned: p });
  });
  listen(unpinBtn, "click", () => request({ pinned: null }));
  listen(exportBtn, "click", () => t.send({ type: MSG_EXPORT }));
  const exportMsg = h("div", { class: "calab-note", "data-testid": "export-status" });
  controls.append(exportMsg);

  const kernelCanvas = h("canvas", { class: "calab-kernel", "data-testid": "kernel-plot" });
  const kernelText = h("div", { class: "calab-note" });
  controls.append(h("div", { class: "calab-sub" }, "kernel"), kernelCanvas, kernelText);

  // Cell selection.
  const mode = h(
    "select",
    { "data-testid": "cell-mode" },
    h("option", { value: "active" }, "most active"),
    h("option", { value: "random" }, "random"),
    h("option", { value: "index" }, "by index"),
  );
  const nShown = h("input", { type: "number", min: "1", max: "64", step: "1", class: "calab-num", "data-testid": "n-shown" });
  const cols = h("input", { type: "number", min: "1", max: "8", step: "1", class: "calab-num", "data-testid": "columns" });
  const idx = h("input", { type: "text", class: "calab-idx", placeholder: "e.g. 0, 5, 12", "data-testid": "cell-index" });
  const reshuffle = h("button", { type: "button", "data-testid": "reshuffle" }, "Reshuffle");
  controls.append(
    h("div", { class: "calab-sub" }, "cells"),
    h("label", { class: "calab-param" }, h("span", {}, "show"), mode),
    h("label", { class: "calab-param" }, h("span", {}, "how many"), nShown),
    h("label", { class: "calab-param" }, h("span", {}, "columns"), cols),
    h("label", { class: "calab-param" }, h("span", {}, "indices"), idx),
    reshuffle,
  );
  listen(mode, "change", () => request({ cell_mode: mode.value }));
  listen(nShown, "change", () => request({ n_shown: Math.max(1, Math.round(Number(nShown.value) || 1)) }));
  listen(cols, "change", () => {
    const c = Math.max(1, Math.min(8, Math.round(Number(cols.value) || 1)));
    t.set({ columns: c });
  });
  listen(idx, "change", () => {
    const n = Number(t.get("n_cells"));
    const list = idx.value
      .split(/[\s,;]+/)
      .filter((s) => s !== "")
      .map(Number)
      .filter((v) => Number.isInteger(v) && v >= 0 && v < n);
    if (list.length) request({ cell_mode: "index", cells: list });
  });
  listen(reshuffle, "click", () => request({ cell_mode: "random", seed: Number(t.get("seed")) + 1 }));

  // Legend toggles.
  for (const name of ["raw", "filtered", "fit", "activity", "residual", "pin_fit", "truth"]) {
    const cb = h("input", { type: "checkbox", "data-series": name });
    cb.checked = true;
    const sw = h("span", { class: "calab-swatch" });
    sw.style.background = COLORS[name] ?? "#000";
    legend.append(h("label", { class: "calab-legend-item" }, cb, sw, name === "pin_fit" ? "pinned" : LABELS[name] ?? name));
    listen(cb, "change", () => {
      const names = name === "pin_fit" ? ["pin_fit", "pin_activity"] : [name];
      for (const n of names) (cb.checked ? hidden.delete(n) : hidden.add(n));
      drawAll();
    });
  }

  const spectrumCanvas = h("canvas", { class: "calab-spectrum", "data-testid": "spectrum" });
  const spectrumTitle = h("div", { class: "calab-sub" }, "spectrum");
  const metrics = h("table", { class: "calab-metrics", "data-testid": "metrics" });
  bottom.append(h("div", { class: "calab-spec-wrap" }, spectrumTitle, spectrumCanvas), h("div", { class: "calab-metrics-wrap" }, metrics));

  // ---- sync from state ---------------------------------------------------------------------
  function syncParams(): void {
    ctlRise.setValue(Number(t.get("tau_rise")));
    ctlDecay.setValue(Number(t.get("tau_decay")));
    ctlLam.setValue(Number(t.get("lam")));
    filt.checked = Boolean(t.get("filter_enabled"));
    truth.checked = Boolean(t.get("show_truth"));
    truthRow.style.display = t.get("has_truth") ? "" : "none";
    mode.value = String(t.get("cell_mode"));
    nShown.value = String(t.get("n_shown"));
    cols.value = String(t.get("columns"));
    grid.style.gridTemplateColumns = `repeat(${Number(t.get("columns")) || 1}, minmax(0, 1fr))`;
    drawKernel();
  }
  function syncCells(): void {
    const list = (t.get<number[]>("cells") || []).slice();
    if (mode.value === "index" || t.get("cell_mode") === "index") idx.value = list.join(", ");
    const keep = new Set(list);
    for (const [c, card] of cards) {
      if (!keep.has(c)) {
        card.root.remove();
        cards.delete(c);
      }
    }
    for (const c of list) {
      let card = cards.get(c);
      if (!card) card = makeCard(c);
      grid.append(card.root); // keeps the order of `cells`
    }
    measure();
    drawAll();
  }
  for (const key of ["tau_rise", "tau_decay", "lam", "filter_enabled", "show_truth", "cell_mode", "n_shown", "columns"]) {
    offs.push(
      t.on(key, () => {
        syncParams();
        if (key === "columns") measure();
      }),
    );
  }
  for (const key of ["tau_rise", "tau_decay", "lam", "filter_enabled"]) {
    // A change made in Python: the kernel solves it; show the cards as solving meanwhile.
    offs.push(
      t.on(key, () => {
        for (const c of cards.values()) c.root.dataset.state = "solving";
      }),
    );
  }
  offs.push(t.on("cells", syncCells));

  // ---- cards -----------------------------------------------------------------------------------
  function makeCard(cell: number): CardEls {
    const badge = h("span", { class: "calab-badge", "data-testid": "badge" }, "solving");
    const title = h("button", { type: "button", class: "calab-card-title", title: "show this cell's spectrum" }, `cell ${cell}`);
    const ov = h("canvas", { class: "calab-overview", "data-testid": "overview" });
    const zm = h("canvas", { class: "calab-zoom", "data-testid": "zoom", "data-draws": "0" });
    const cardRoot = h(
      "div",
      { class: "calab-card", "data-testid": "cell-card", "data-cell": String(cell), "data-state": "solving" },
      h("div", { class: "calab-card-head" }, title, badge),
      ov,
      zm,
    );
    const card: CardEls = { root: cardRoot, badge, overview: ov, zoom: zm, draws: 0 };
    cards.set(cell, card);
    listen(title, "click", () => {
      t.set({ selected_cell: cell });
      t.send({ type: MSG_REQ_SPECTRUM, cell });
    });
    // Overview: click or drag to move the window.
    let ovDrag = false;
    const moveTo = (e: MouseEvent) => {
      const r = ov.getBoundingClientRect();
      const n = Number(t.get("n_frames"));
      const [s0, s1] = win();
      const span = s1 - s0;
      const center = ((e.clientX - r.left) / Math.max(1, r.width)) * n;
      let s = Math.round(center - span / 2);
      s = Math.max(0, Math.min(n - span, s));
      setWindow(s, s + span);
    };
    listen<MouseEvent>(ov, "mousedown", (e) => {
      ovDrag = true;
      moveTo(e);
    });
    listen<MouseEvent>(window, "mousemove", (e) => ovDrag && moveTo(e));
    listen(window, "mouseup", () => (ovDrag = false));
    // Zoom view: drag to pan, Ctrl/Cmd + wheel to zoom.
    let panX: number | null = null;
    let panStart: [number, number] = [0, 0];
    listen<MouseEvent>(zm, "mousedown", (e) => {
      panX = e.clientX;
      panStart = win();
      e.preventDefault();
    });
    listen<MouseEvent>(window, "mousemove", (e) => {
      if (panX === null) return;
      const r = zm.getBoundingClientRect();
      const span = panStart[1] - panStart[0];
      const n = Number(t.get("n_frames"));
      let s = Math.round(panStart[0] - ((e.clientX - panX) / Math.max(1, r.width)) * span);
      s = Math.max(0, Math.min(n - span, s));
      if (s !== win()[0]) setWindow(s, s + span);
    });
    listen(window, "mouseup", () => (panX = null));
    listen<WheelEvent>(
      zm,
      "wheel",
      (e) => {
        if (!(e.ctrlKey || e.metaKey)) return;
        e.preventDefault();
        const r = zm.getBoundingClientRect();
        const [s0, s1] = win();
        const n = Number(t.get("n_frames"));
        const frac = (e.clientX - r.left) / Math.max(1, r.width);
        const at = s0 + frac * (s1 - s0);
        const span = Math.max(16, Math.min(n, Math.round((s1 - s0) * (e.deltaY > 0 ? 1.25 : 0.8))));
        let s = Math.round(at - frac * span);
        s = Math.max(0, Math.min(n - span, s));
        setWindow(s, s + span);
      },
      { passive: false },
    );
    return card;
  }
  const win = (): [number, number] => [Number(t.get("window_start")), Number(t.get("window_stop"))];
  let pendingWin: [number, number] | null = null;
  let winRaf = 0;
  function setWindow(a: number, b: number): void {
    pendingWin = [a, b];
    if (winRaf) return;
    winRaf = requestAnimationFrame(() => {
      winRaf = 0;
      if (pendingWin) request({ window_start: pendingWin[0], window_stop: pendingWin[1] });
      pendingWin = null;
      drawOverviews();
    });
  }

  function cardWidth(): number {
    const first = cards.values().next().value as CardEls | undefined;
    const w = first ? first.root.clientWidth - 12 : grid.clientWidth;
    return Math.max(120, Math.floor(w || 400));
  }
  function measure(): void {
    const w = cardWidth();
    if (w !== Number(t.get("plot_width"))) request({ plot_width: w });
  }
  const ro = new ResizeObserver(() => {
    measure();
    drawAll();
  });
  ro.observe(grid);
  offs.push(() => ro.disconnect());

  // ---- drawing -------------------------------------------------------------------------------
  function drawOverviews(): void {
    const [s0, s1] = pendingWin ?? win();
    for (const [cell, card] of cards) {
      const w = cardWidth();
      const ctx = prepare(card.overview, w, OVERVIEW_H);
      const n = Number(t.get("n_frames"));
      if (overview) {
        const i = overview.header.cells.indexOf(cell);
        if (i >= 0) {
          const nb = overview.header.shape[1];
          const off = i * nb * 2;
          const [lo, hi] = range(overview.data, off, nb);
          drawMinMax(ctx, overview.data, off, nb, 0, w, { top: 2, height: OVERVIEW_H - 4, lo, hi }, "#1f77b4");
        }
      }
      ctx.fillStyle = "rgba(31,119,180,0.15)";
      ctx.strokeStyle = "rgba(31,119,180,0.6)";
      const x0 = (s0 / n) * w;
      const x1 = Math.max(x0 + 2, (s1 / n) * w);
      ctx.fillRect(x0, 0, x1 - x0, OVERVIEW_H);
      ctx.strokeRect(x0 + 0.5, 0.5, x1 - x0 - 1, OVERVIEW_H - 1);
    }
  }

  function drawCard(cell: number, card: CardEls): void {
    const w = cardWidth();
    const ctx = prepare(card.zoom, w, ZOOM_H);
    if (!view || !viewData) return;
    const i = view.cells.indexOf(cell);
    if (i < 0) return;
    const [, nS, nb] = view.shape;
    const base = (j: number) => (i * nS + j) * nb * 2;
    const idxOf = (name: string) => view!.series.indexOf(name);
    const axisH = 14;
    const plotH = ZOOM_H - axisH;
    // Bands: traces 60%, activity 22%, residual 18%.
    const top: [number, number] = [Infinity, -Infinity];
    for (const name of ["raw", "filtered", "fit", "pin_fit"]) {
      const j = idxOf(name);
      if (j >= 0 && !hidden.has(name)) range(viewData, base(j), nb, top);
    }
    const act: [number, number] = [0, 1e-12];
    for (const name of ["activity", "pin_activity"]) {
      const j = idxOf(name);
      if (j >= 0 && !hidden.has(name)) range(viewData, base(j), nb, act);
    }
    const res: [number, number] = [0, 0];
    const jr = idxOf("residual");
    if (jr >= 0) range(viewData, base(jr), nb, res);
    const rmax = Math.max(Math.abs(res[0]), Math.abs(res[1]), 1e-12);
    const bTop: Band = { top: 4, height: plotH * 0.58 - 4, lo: top[0], hi: top[1] };
    const bAct: Band = { top: plotH * 0.6, height: plotH * 0.2, lo: 0, hi: act[1] * 1.05 };
    const bRes: Band = { top: plotH * 0.82, height: plotH * 0.18, lo: -rmax, hi: rmax };
    const fs = view.fs;
    timeAxis(ctx, view.start / fs, view.stop / fs, 0, w, ZOOM_H - 2, 0);
    ctx.strokeStyle = "rgba(0,0,0,0.15)";
    ctx.beginPath();
    ctx.moveTo(0, yOf(bAct, 0));
    ctx.lineTo(w, yOf(bAct, 0));
    ctx.moveTo(0, yOf(bRes, 0));
    ctx.lineTo(w, yOf(bRes, 0));
    ctx.stroke();
    const draw = (name: string, band: Band, dashed = false, lw = 1) => {
      const j = idxOf(name);
      if (j < 0 || hidden.has(name)) return;
      drawMinMax(ctx, viewData!, base(j), nb, 0, w, band, COLORS[name] ?? "#000", dashed, lw);
    };
    draw("raw", bTop);
    draw("filtered", bTop);
    draw("pin_fit", bTop, true, 1.5);
    draw("fit", bTop, false, 1.5);
    draw("pin_activity", bAct, true);
    draw("activity", bAct);
    draw("residual", bRes);
    const jt = idxOf("truth");
    if (jt >= 0 && !hidden.has("truth")) {
      drawTicks(ctx, viewData, base(jt), nb, 0, w, yOf(bAct, 0), bAct.height * 0.5, COLORS.truth ?? "#000");
    }
    if (view.states[i] === "error") {
      ctx.fillStyle = "#b00";
      ctx.font = "12px sans-serif";
      ctx.fillText(String(view.errors[i] ?? "error").slice(0, 120), 6, 16);
    }
    card.draws += 1;
    card.zoom.dataset.draws = String(card.draws);
    card.zoom.dataset.rev = String(view.id);
  }

  function drawAll(): void {
    drawOverviews();
    for (const [cell, card] of cards) drawCard(cell, card);
    drawSpectrum();
  }

  function drawKernel(): void {
    const w = Math.max(160, controls.clientWidth - 8 || 200);
    const H = 90;
    const ctx = prepare(kernelCanvas, w, H);
    const tr = Number(t.get("tau_rise"));
    const td = Number(t.get("tau_decay"));
    if (!(tr > 0 && td > tr)) {
      kernelText.textContent = "rise time must be shorter than decay time";
      return;
    }
    const tmax = 5 * td;
    const n = 200;
    const ys: number[] = [];
    let peak = 0;
    for (let k = 0; k <= n; k++) {
      const tt = (k / n) * tmax;
      const v = Math.exp(-tt / td) - Math.exp(-tt / tr);
      ys.push(v);
      peak = Math.max(peak, v);
    }
    const band: Band = { top: 6, height: H - 22, lo: 0, hi: 1.05 };
    const xOf = (tt: number) => 4 + (tt / tmax) * (w - 8);
    ctx.strokeStyle = COLORS.fit ?? "#f80";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ys.forEach((v, k) => (k ? ctx.lineTo(xOf((k / n) * tmax), yOf(band, v / peak)) : ctx.moveTo(xOf(0), yOf(band, v / peak))));
    ctx.stroke();
    const tp = view && view.params.tau_rise === tr && view.params.tau_decay === td ? view.t_peak_s : tr * td / (td - tr) * Math.log(td / tr);
    ctx.strokeStyle = "#555";
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(xOf(tp), yOf(band, 0));
    ctx.lineTo(xOf(tp), yOf(band, 1));
    ctx.stroke();
    if (view && view.params.tau_rise === tr && view.params.tau_decay === td && Number.isFinite(view.fwhm_s)) {
      // FWHM: the half-maximum segment; left crossing found on the sampled curve.
      let left = 0;
      for (let k = 0; k <= n; k++) if (ys[k]! / peak >= 0.5) { left = (k / n) * tmax; break; }
      ctx.setLineDash([]);
      ctx.strokeStyle = "#2060c0";
      ctx.beginPath();
      ctx.moveTo(xOf(left), yOf(band, 0.5));
      ctx.lineTo(xOf(left + view.fwhm_s), yOf(band, 0.5));
      ctx.stroke();
      kernelText.textContent = `time to peak ${fmt(view.t_peak_s)} s · FWHM ${fmt(view.fwhm_s)} s`;
    }
    timeAxis(ctx, 0, tmax, 4, w - 8, H - 2, 0);
  }

  function drawSpectrum(): void {
    const w = Math.max(200, Math.floor((bottom.clientWidth || 600) * 0.5));
    const H = 140;
    const ctx = prepare(spectrumCanvas, w, H);
    if (!spectrum) {
      spectrumTitle.textContent = "spectrum (click a cell's title)";
      return;
    }
    const { freqs, power, header } = spectrum;
    spectrumTitle.textContent = `spectrum of cell ${header.cell}`;
    const f0 = Math.max(freqs[1] ?? 1e-3, 1e-6);
    const f1 = freqs[freqs.length - 1] ?? 1;
    let lo = Infinity;
    let hi = -Infinity;
    for (let k = 1; k < power.length; k++) {
      const v = Math.log10(Math.max(power[k]!, 1e-30));
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    const band: Band = { top: 4, height: H - 20, lo, hi };
    const xOf = (f: number) => 4 + (Math.log10(f / f0) / Math.log10(f1 / f0)) * (w - 8);
    ctx.strokeStyle = "#1f77b4";
    ctx.beginPath();
    for (let k = 1; k < power.length; k++) {
      const x = xOf(freqs[k]!);
      const y = yOf(band, Math.log10(Math.max(power[k]!, 1e-30)));
      k === 1 ? ctx.moveTo(x, y) : ctx.lineTo(x, y);
    }
    ctx.stroke();
    const cut = view ? [view.f_hp, view.f_lp] : [header.f_hp, header.f_lp];
    ctx.strokeStyle = "#d62728";
    ctx.setLineDash([4, 3]);
    for (const f of cut) {
      if (!(f >= f0 && f <= f1)) continue;
      ctx.beginPath();
      ctx.moveTo(xOf(f), band.top);
      ctx.lineTo(xOf(f), band.top + band.height);
      ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.fillStyle = "#666";
    ctx.font = "10px sans-serif";
    for (const f of [0.01, 0.1, 1, 10, 100]) {
      if (f >= f0 && f <= f1) ctx.fillText(`${f} Hz`, xOf(f) - 8, H - 3);
    }
    void niceStep;
  }

  function fillMetrics(): void {
    if (!view) return;
    const rows = [h("tr", {}, h("th", {}, "cell"), h("th", {}, "SNR"), h("th", {}, "R²"), h("th", {}, "sparsity"), h("th", {}, "pivots"))];
    view.cells.forEach((c, i) => {
      const m = view!.metrics[i] ?? {};
      rows.push(h("tr", { "data-cell": String(c) }, h("td", {}, String(c)), h("td", {}, fmt(m.snr)), h("td", {}, fmt(m.r2)), h("td", {}, fmt(m.sparsity)), h("td", {}, fmt(m.iterations))));
    });
    metrics.replaceChildren(...rows);
  }

  // ---- messages from the kernel -----------------------------------------------------------
  function onView(header: ViewHeader, buffers: DataView[]): void {
    const tRecv = performance.now();
    if (header.id < reqId) {
      stale += 1; // a newer request is on its way; its answer will replace this one
      return;
    }
    view = header;
    viewData = buffers[0] ? f32(buffers[0]) : new Float32Array(0);
    if (Number.isFinite(header.lam_max) && header.lam_max > 0) {
      lamMax = header.lam_max;
      ctlLam.setValue(Number(t.get("lam")));
    }
    header.cells.forEach((c, i) => {
      const card = cards.get(c);
      if (!card) return;
      const st = header.states[i] ?? "fresh";
      card.root.dataset.state = st;
      const m = header.metrics[i] ?? {};
      card.badge.textContent = st === "error" ? "error" : `fresh · SNR ${fmt(m.snr, 2)}`;
      card.badge.title = header.errors[i] ?? "";
    });
    drawAll();
    drawKernel();
    fillMetrics();
    root.dataset.rev = String(header.id);
    status.textContent = `frames ${header.start}–${header.stop} of ${header.n_frames} · solve ${header.solve_ms.toFixed(1)} ms · ${header.cells.length} cells`;
    const t0 = inputTimes.get(header.id);
    if (t0 !== undefined) {
      inputTimes.delete(header.id);
      const drawn = performance.now();
      breakdown.push({ recv: tRecv - t0, solve: header.solve_ms, draw: drawn - tRecv });
      if (breakdown.length > 1000) breakdown.shift();
      // Measured after the browser has painted the redrawn canvases.
      requestAnimationFrame(() => timings.push(performance.now() - t0));
    }
  }

  offs.push(
    t.onMessage((msg: KernelMessage, buffers: DataView[]) => {
      if (msg.type === MSG_VIEW) onView(msg, buffers);
      else if (msg.type === MSG_OVERVIEW) {
        overview = { header: msg, data: buffers[0] ? f32(buffers[0]) : new Float32Array(0) };
        drawOverviews();
      } else if (msg.type === MSG_SPECTRUM) {
        if (buffers.length >= 2) spectrum = { header: msg, freqs: f32(buffers[0]!), power: f32(buffers[1]!) };
        drawSpectrum();
      } else if (msg.type === MSG_EXPORTED) {
        exportMsg.textContent = msg.error
          ? `export failed: ${msg.error}`
          : (msg.message ?? `saved ${msg.path}`);
      }
    }),
  );

  syncParams();
  syncCells();
  t.send({ type: MSG_HELLO });
  void stale;

  return () => {
    if (winRaf) cancelAnimationFrame(winRaf);
    for (const off of offs.splice(0)) off();
    root.remove();
  };
}
