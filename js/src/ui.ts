// The calab tuning UI. Written once; the host hands it a Transport (anywidget model or HTTP bridge).
// All state lives inside mountTuner: two widgets on one page share nothing.

import "uplot/dist/uPlot.min.css";
import { Card, type CardHost } from "./card";
import { KernelChart, SpectrumChart } from "./charts";
import { buildControls } from "./controls";
import { Disposer, h, setText } from "./dom";
import { fmt } from "./format";
import {
  f32,
  MSG_AUTO_DONE,
  MSG_AUTO_PROGRESS,
  MSG_EXPORTED,
  MSG_HELLO,
  MSG_OVERVIEW,
  MSG_REQ_SPECTRUM,
  MSG_SPECTRUM,
  MSG_VIEW,
  type KernelMessage,
  type OverviewHeader,
  type SpectrumHeader,
  type Transport,
  type ViewHeader,
} from "./protocol";
import { RequestLog } from "./requests";
import { readTheme, themeKey, LABELS, type Theme } from "./theme";
import { entrySeries, legendEntries, makeView, type View } from "./view";

/** Below this width the side panel goes above the plots. */
const NARROW_PX = 700;

/** Build the UI into el; return its cleanup (removes listeners and DOM). */
export function mountTuner(el: HTMLElement, t: Transport): () => void {
  const d = new Disposer();

  // ---- state --------------------------------------------------------------------------------
  const requests = new RequestLog(Number(t.get<number>("request_id")));
  let view: View | null = null;
  let overview: { header: OverviewHeader; data: Float32Array } | null = null;
  let spectrum: { header: SpectrumHeader; freqs: Float32Array; power: Float32Array } | null = null;
  const hidden = new Set<string>();
  const cards = new Map<number, Card>();

  // ---- DOM ----------------------------------------------------------------------------------
  const root = h("div", { class: "calab-tuner", "data-testid": "calab-tuner", "data-rev": "0" });
  // Latency hooks read by bench/widget_latency.py.
  Object.assign(root, { calabTimings: requests.timings, calabBreakdown: requests.breakdown });

  let theme: Theme | null = null;
  const currentTheme = (): Theme => {
    if (!theme) {
      theme = readTheme(root);
      // Native parts of the controls (spinners, check marks, menus) in the same scheme.
      root.style.colorScheme = theme.dark ? "dark" : "light";
    }
    return theme;
  };

  function request(changes: Record<string, unknown>): void {
    const id = requests.next();
    for (const c of cards.values()) c.root.dataset.state = "solving";
    t.set({ ...changes, request_id: id });
  }

  const controls = buildControls(t, request, d);
  const grid = h("div", { class: "calab-grid" });
  const legend = h("div", { class: "calab-legend", "data-testid": "legend" });
  const status = h("div", { class: "calab-status", "data-testid": "status" });
  const specHost = h("div", { class: "calab-spectrum", "data-testid": "spectrum" });
  const specTitle = h("div", { class: "calab-sub" }, "spectrum (click a cell's title)");
  const metrics = h("table", { class: "calab-metrics", "data-testid": "metrics" });
  const bottom = h("div", { class: "calab-bottom" }, h("div", { class: "calab-spec-wrap" }, specTitle, specHost), h("div", { class: "calab-metrics-wrap" }, metrics));
  root.append(controls.el, h("div", { class: "calab-main" }, legend, grid, bottom, status));
  el.append(root);
  const kernelChart = new KernelChart(controls.kernelHost);
  const spectrumChart = new SpectrumChart(specHost);
  d.add(() => kernelChart.destroy());
  d.add(() => spectrumChart.destroy());

  // ---- window (frames shown) -------------------------------------------------------------------
  const win = (): [number, number] => pendingWin ?? [Number(t.get("window_start")), Number(t.get("window_stop"))];
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
  d.add(() => winRaf && cancelAnimationFrame(winRaf));

  const cardHost: CardHost = {
    theme: currentTheme,
    hidden,
    win,
    nFrames: () => Number(t.get("n_frames")),
    setWindow,
    selectCell(cell) {
      t.set({ selected_cell: cell });
      t.send({ type: MSG_REQ_SPECTRUM, cell });
    },
  };

  // ---- legend: entries for the series the kernel sent ------------------------------------------
  let legendKey = "";
  function fillLegend(): void {
    const entries = view ? legendEntries(view.header.series) : [];
    const key = `${entries.join(",")}|${themeKey(currentTheme())}`;
    if (key === legendKey) return;
    legendKey = key;
    const items = entries.map((name) => {
      const cb = h("input", { type: "checkbox", class: "calab-checkbox", "data-series": name });
      cb.checked = !hidden.has(name);
      cb.addEventListener("change", () => {
        for (const n of entrySeries(name)) {
          if (cb.checked) hidden.delete(n);
          else hidden.add(n);
        }
        for (const c of cards.values()) c.update(view);
      });
      const sw = h("span", { class: "calab-swatch" });
      sw.style.background = currentTheme().series[name] ?? currentTheme().fg;
      if (name === "pin_fit") sw.classList.add("calab-swatch-dashed");
      return h("label", { class: "calab-legend-item" }, cb, sw, name === "pin_fit" ? "pinned" : LABELS[name] ?? name);
    });
    legend.replaceChildren(...items);
  }

  // ---- sizes: follow the output area's width ---------------------------------------------------
  function cardWidth(): number {
    const first = cards.values().next().value;
    const style = first ? getComputedStyle(first.root) : null;
    const pad = style ? parseFloat(style.paddingLeft) + parseFloat(style.paddingRight) + 2 : 0;
    const w = first ? first.root.clientWidth - pad : grid.clientWidth;
    return Math.max(120, Math.floor(w || 400));
  }
  // Widths read here (on resize), never while drawing: reading layout after DOM writes would
  // force a synchronous reflow on every reply.
  let kernelWidth = 220;
  let spectrumWidth = 300;
  function layout(): void {
    root.classList.toggle("calab-narrow", root.clientWidth > 0 && root.clientWidth < NARROW_PX);
    kernelWidth = Math.max(160, controls.kernelHost.clientWidth || 220);
    spectrumWidth = Math.max(220, Math.floor((bottom.clientWidth || 600) * 0.5));
    grid.style.gridTemplateColumns = `repeat(${Number(t.get("columns")) || 1}, minmax(0, 1fr))`;
    const w = cardWidth();
    for (const c of cards.values()) c.resize(w);
    if (w !== Number(t.get("plot_width"))) request({ plot_width: w });
  }
  const ro = new ResizeObserver(() => {
    theme = null; // a host theme switch often comes with a relayout
    layout();
    drawAll();
  });
  ro.observe(root);
  ro.observe(grid);
  d.add(() => ro.disconnect());
  // Host theme switches (JupyterLab's data-jp-theme-*, VS Code's and marimo's body classes).
  const mo = new MutationObserver(() => {
    const key = theme ? themeKey(theme) : "";
    theme = null;
    if (themeKey(currentTheme()) !== key) drawAll();
  });
  for (const target of [document.documentElement, document.body]) mo.observe(target, { attributes: true, attributeFilter: ["class", "data-jp-theme-name", "data-jp-theme-light", "data-theme"] });
  d.add(() => mo.disconnect());

  // ---- drawing ----------------------------------------------------------------------------------
  function drawOverviews(): void {
    const w = win();
    for (const c of cards.values()) {
      const i = overview ? overview.header.cells.indexOf(c.cell) : -1;
      let data: Float32Array | null = null;
      if (overview && i >= 0) {
        const nb = overview.header.shape[1];
        data = overview.data.subarray(i * nb * 2, (i + 1) * nb * 2);
      }
      c.drawOverview(data ? { data } : null, w);
    }
  }
  function drawKernel(): void {
    const hd = view?.header;
    const text = view && hd ? kernelChart.set(view.kernel, view.kernelTMax, hd.t_peak_s, hd.fwhm_s, currentTheme(), kernelWidth) : "";
    setText(controls.kernelText, text);
  }
  function drawSpectrum(): void {
    if (!spectrum) return;
    const { freqs, power, header } = spectrum;
    setText(specTitle, `spectrum of cell ${header.cell}`);
    const cuts = view ? [view.header.f_hp, view.header.f_lp] : [header.f_hp, header.f_lp];
    spectrumChart.set(freqs, power, cuts, currentTheme(), spectrumWidth);
  }
  let metricsCells = "";
  function fillMetrics(): void {
    if (!view) return;
    const hd = view.header;
    const texts = hd.cells.map((c, i) => {
      const m = hd.metrics[i] ?? {};
      return [String(c), fmt(m.snr), fmt(m.r2), fmt(m.sparsity), fmt(m.iterations)];
    });
    const cellsKey = hd.cells.join(",");
    if (cellsKey === metricsCells) {
      // The same rows: only the numbers that changed.
      texts.forEach((row, i) => row.forEach((text, j) => setText(metrics.rows[i + 1]!.cells[j]!, text)));
      return;
    }
    metricsCells = cellsKey;
    const head = h("tr", {}, ...["cell", "SNR", "R²", "sparsity", "pivots"].map((s) => h("th", {}, s)));
    const rows = texts.map((row, i) => h("tr", { "data-cell": String(hd.cells[i]) }, ...row.map((s) => h("td", {}, s))));
    metrics.replaceChildren(head, ...rows);
  }
  function drawAll(): void {
    drawOverviews();
    for (const c of cards.values()) c.update(view);
    fillLegend();
    drawKernel();
    drawSpectrum();
  }

  // ---- sync from state -----------------------------------------------------------------------------
  function syncCells(): void {
    const list = (t.get<number[]>("cells") || []).slice();
    const keep = new Set(list);
    for (const [c, card] of cards) {
      if (!keep.has(c)) {
        card.dispose();
        cards.delete(c);
      }
    }
    for (const c of list) {
      let card = cards.get(c);
      if (!card) cards.set(c, (card = new Card(c, cardHost)));
      grid.append(card.root); // keeps the order of `cells`
    }
    layout();
    drawAll();
  }
  for (const key of ["tau_rise", "tau_decay", "lam", "filter_enabled", "show_truth", "cell_mode", "n_shown", "columns", "lam_mode", "baseline"]) {
    d.add(
      t.on(key, () => {
        controls.sync();
        if (key === "columns") layout();
      }),
    );
  }
  for (const key of ["tau_rise", "tau_decay", "lam", "filter_enabled", "lam_mode", "baseline"]) {
    // A change made in Python: the kernel solves it; show the cards as solving meanwhile.
    d.add(t.on(key, () => cards.forEach((c) => (c.root.dataset.state = "solving"))));
  }
  d.add(t.on("cells", syncCells));
  d.add(() => cards.forEach((c) => c.dispose()));

  // ---- messages from the kernel ----------------------------------------------------------------------
  let lamMax = NaN;
  function onView(header: ViewHeader, buffers: DataView[]): void {
    const tRecv = performance.now();
    if (requests.superseded(header.id)) return; // the newer request's answer replaces this one
    const data = buffers[0] ? f32(buffers[0]) : new Float32Array(0);
    view = makeView(header, data, buffers[1] ? f32(buffers[1]) : undefined);
    drawAll();
    // uPlot draws in microtasks queued by setData; the page's text changes come after them, so
    // drawing text on a canvas does not first make the browser restyle the changed elements.
    queueMicrotask(() => showViewState(header));
    const t0 = requests.takeInput(header.id);
    if (t0 !== undefined) {
      // Runs after the drawing microtasks above.
      queueMicrotask(() => requests.record({ recv: tRecv - t0, solve: header.solve_ms, draw: performance.now() - tRecv }));
      // Measured after the browser has painted the redrawn canvases.
      requestAnimationFrame(() => requests.recordTiming(performance.now() - t0));
    }
  }

  /** Cards' states and badges, metrics, status line and the lambda scale of a view. */
  function showViewState(header: ViewHeader): void {
    if (Number.isFinite(header.lam_max) && header.lam_max > 0 && header.lam_max !== lamMax) {
      lamMax = header.lam_max;
      controls.setLamMax(lamMax);
    }
    header.cells.forEach((c, i) => {
      const card = cards.get(c);
      if (!card) return;
      const st = header.states[i] ?? "fresh";
      if (card.root.dataset.state !== st) card.root.dataset.state = st;
      setText(card.badge, st === "error" ? "error" : `fresh · SNR ${fmt(header.metrics[i]?.snr, 2)}`);
      const title = header.errors[i] ?? "";
      if (card.badge.title !== title) card.badge.title = title;
    });
    fillMetrics();
    root.dataset.rev = String(header.id);
    setText(status, `frames ${header.start}–${header.stop} of ${header.n_frames} · solve ${header.solve_ms.toFixed(1)} ms · ${header.cells.length} cells`);
  }

  d.add(
    t.onMessage((msg: KernelMessage, buffers: DataView[]) => {
      if (msg.type === MSG_VIEW) onView(msg, buffers);
      else if (msg.type === MSG_OVERVIEW) {
        overview = { header: msg, data: buffers[0] ? f32(buffers[0]) : new Float32Array(0) };
        drawOverviews();
      } else if (msg.type === MSG_SPECTRUM) {
        if (buffers.length >= 2) spectrum = { header: msg, freqs: f32(buffers[0]!), power: f32(buffers[1]!) };
        drawSpectrum();
      } else if (msg.type === MSG_AUTO_PROGRESS || msg.type === MSG_AUTO_DONE) {
        controls.onAuto(msg);
      } else if (msg.type === MSG_EXPORTED) {
        controls.exportMsg.textContent = msg.error ? `export failed: ${msg.error}` : (msg.message ?? `saved ${msg.path}`);
      }
    }),
  );

  controls.sync();
  syncCells();
  t.send({ type: MSG_HELLO });

  return () => {
    d.dispose();
    root.remove();
  };
}
