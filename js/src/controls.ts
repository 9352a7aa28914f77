// The side panel: parameter sliders with number boxes, toggles, pin/export buttons, cell choice.

import { Disposer, h } from "./dom";
import { fmt } from "./format";
import {
  MSG_AUTO,
  MSG_AUTO_DONE,
  MSG_AUTO_STATUS,
  MSG_EXPORT,
  type AutoDoneHeader,
  type AutoProgressHeader,
  type BaselineMode,
  type EstimateVerdict,
  type LamMode,
  type ParamSet,
  type Transport,
} from "./protocol";
import { lamToPos, posToLam } from "./scales";

export type Request = (changes: Record<string, unknown>) => void;

export interface Controls {
  el: HTMLElement;
  /** Where the kernel plot goes. */
  kernelHost: HTMLElement;
  kernelText: HTMLElement;
  exportMsg: HTMLElement;
  /** Bring every control in line with the transport's state. */
  sync(): void;
  /** The largest useful lambda (from the kernel) changes the log slider's scale. */
  setLamMax(v: number): void;
  /** Show Auto's progress or outcome (auto-progress / auto-done messages). */
  onAuto(msg: AutoProgressHeader | AutoDoneHeader): void;
}

interface ParamCtl {
  setValue(v: number): void;
  label: HTMLElement;
}

/** How often the page asks for Auto's progress while it runs (the bridge cannot push). */
const AUTO_POLL_MS = 500;

export function buildControls(t: Transport, request: Request, d: Disposer): Controls {
  const el = h("div", { class: "calab-controls" });
  let lamMax = Number(t.get<number>("lam")) * 100 || 1;
  const lamTop = () => Math.max(lamMax, Number(t.get<number>("lam")) * 1.05, 1e-12);

  // A range and a number box. Lambda's range is log-scaled, but its `value` property reads and
  // writes plain lambda (test hook contract).
  function paramControl(key: "tau_rise" | "tau_decay" | "lam", label: string, testid: string, unit: string, lo: number, hi: number, step: number): ParamCtl {
    const log = key === "lam";
    const rng = h("input", { type: "range", "data-testid": testid, "aria-label": label });
    const box = h("input", { type: "number", class: "calab-num", "aria-label": `${label} value`, step: "any", "data-testid": `${testid}-box` });
    if (log) {
      const proto = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value")!;
      rng.min = "0";
      rng.max = "1";
      rng.step = "0.001";
      // Remember the exact value set, so a quantised thumb position does not alter it.
      let exact: [string, number] | null = null;
      Object.defineProperty(rng, "value", {
        configurable: true,
        get: () => {
          const pos = String(proto.get!.call(rng));
          return exact && exact[0] === pos ? String(exact[1]) : String(posToLam(Number(pos), lamTop()));
        },
        set: (v: string) => {
          proto.set!.call(rng, String(lamToPos(Number(v), lamTop())));
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
    d.listen(rng, "input", () => {
      const v = Number(rng.value);
      box.value = fmt(v, 4);
      commit(v);
    });
    d.listen(box, "change", () => {
      const v = Number(box.value);
      setValue(v);
      commit(v);
    });
    const text = h("span", {}, `${label}${unit ? ` (${unit})` : ""}`);
    el.append(h("label", { class: "calab-param" }, text, rng, box));
    return { setValue, label: text };
  }

  el.append(h("div", { class: "calab-title" }, "calab tuning"));
  const rise = paramControl("tau_rise", "rise time", "param-tau-rise", "s", 0.001, 0.5, 0.001);
  const decay = paramControl("tau_decay", "decay time", "param-tau-decay", "s", 0.02, 5, 0.005);
  const lam = paramControl("lam", "sparsity λ", "param-lambda", "", 0, 1, 0);

  // What the sparsity slider means, and the baseline of the model.
  const lamMode = h(
    "select",
    { "data-testid": "lam-mode", class: "calab-select", "aria-label": "sparsity mode" },
    h("option", { value: "global" }, "one λ for all cells"),
    h("option", { value: "per_cell" }, "per cell (× noise SD)"),
  );
  const baseline = h(
    "select",
    { "data-testid": "baseline", class: "calab-select", "aria-label": "baseline" },
    h("option", { value: "constant" }, "constant"),
    h("option", { value: "drift" }, "follows drift"),
  );
  el.append(
    h("label", { class: "calab-param" }, h("span", {}, "sparsity"), lamMode),
    h("label", { class: "calab-param" }, h("span", {}, "baseline"), baseline),
  );
  d.listen(lamMode, "change", () => request({ lam_mode: lamMode.value }));
  d.listen(baseline, "change", () => request({ baseline: baseline.value }));

  const check = (testid: string, text: string, key: string) => {
    const cb = h("input", { type: "checkbox", "data-testid": testid });
    const row = h("label", { class: "calab-check" }, cb, h("span", {}, text));
    el.append(row);
    d.listen(cb, "change", () => request({ [key]: cb.checked }));
    return { cb, row };
  };
  const filt = check("toggle-filter", "noise filter (band-pass)", "filter_enabled");
  const truth = check("toggle-truth", "show true spikes", "show_truth");

  const button = (testid: string, text: string, onClick: () => void) => {
    const b = h("button", { type: "button", class: "calab-button", "data-testid": testid }, text);
    d.listen(b, "click", onClick);
    return b;
  };
  el.append(
    h(
      "div",
      { class: "calab-buttons" },
      button("pin", "Pin parameters", () => {
        const p: ParamSet = {
          tau_rise: Number(t.get("tau_rise")),
          tau_decay: Number(t.get("tau_decay")),
          lam: Number(t.get("lam")),
          filter_enabled: Boolean(t.get("filter_enabled")),
          lam_mode: (t.get<string>("lam_mode") ?? "global") as LamMode,
          baseline: (t.get<string>("baseline") ?? "constant") as BaselineMode,
        };
        request({ pinned: p });
      }),
      button("unpin", "Clear pin", () => request({ pinned: null })),
      button("export", "Export JSON", () => t.send({ type: MSG_EXPORT })),
    ),
  );
  const exportMsg = h("div", { class: "calab-note", "data-testid": "export-status" });
  el.append(exportMsg);

  // Auto: estimate the parameters from the recording; the kernel moves the sliders.
  const autoBtn = button("auto", "Auto", () => {
    autoBtn.disabled = true;
    autoMsg.textContent = "estimating parameters…";
    autoMsg.dataset.state = "running";
    t.send({ type: MSG_AUTO });
    stopPoll();
    poll = window.setInterval(() => t.send({ type: MSG_AUTO_STATUS }), AUTO_POLL_MS);
  });
  autoBtn.title = "Estimate kernel, per-cell sparsity and baseline from the recording";
  const autoMsg = h("div", { class: "calab-note", "data-testid": "auto-status" });
  // The estimate's verdict after Auto: ok / usable (something unresolved) / unreliable.
  const verdict = h("span", { class: "calab-verdict", "data-testid": "auto-verdict", hidden: "" });
  let poll = 0;
  const stopPoll = () => {
    if (poll) window.clearInterval(poll);
    poll = 0;
  };
  d.add(stopPoll);
  el.insertBefore(h("div", { class: "calab-buttons" }, autoBtn, verdict), el.children[1] ?? null);
  el.insertBefore(autoMsg, el.children[2] ?? null);
  function showVerdict(v: EstimateVerdict | undefined): void {
    if (!v) {
      verdict.hidden = true;
      return;
    }
    const level = !v.trusted ? "unreliable" : v.resolved ? "ok" : "usable";
    verdict.hidden = false;
    verdict.dataset.verdict = level;
    verdict.textContent = level === "unreliable" ? "estimate unreliable" : `estimate ${level}`;
    verdict.title = v.summary;
  }
  function onAuto(msg: AutoProgressHeader | AutoDoneHeader): void {
    if (msg.type === MSG_AUTO_DONE) {
      stopPoll();
      autoBtn.disabled = false;
      showVerdict(msg.error ? undefined : msg.estimate?.verdict);
      if (msg.error) {
        autoMsg.dataset.state = "error";
        autoMsg.textContent = `Auto failed: ${msg.error}`;
      } else {
        const e = msg.estimate;
        autoMsg.dataset.state = "done";
        autoMsg.textContent = e
          ? `Auto: rise ${fmt(e.tau_rise, 3)} s, decay ${fmt(e.tau_decay, 3)} s, λ per cell, ` +
            `baseline ${e.baseline} (${fmt(e.elapsed_s, 2)} s)`
          : "Auto: done";
        const v = e?.verdict;
        if (v && !v.resolved) autoMsg.textContent += ` · ${v.summary}`;
      }
    } else if (msg.running) {
      verdict.hidden = true;
      autoBtn.disabled = true;
      autoMsg.dataset.state = "running";
      autoMsg.textContent = `${msg.message ?? "estimating parameters"} · ${fmt(msg.elapsed_s ?? 0, 2)} s`;
    }
  }

  const kernelHost = h("div", { class: "calab-kernel", "data-testid": "kernel-plot" });
  const kernelText = h("div", { class: "calab-note", "data-testid": "kernel-text" });
  el.append(h("div", { class: "calab-sub" }, "kernel"), kernelHost, kernelText);

  // Cell selection.
  const mode = h(
    "select",
    { "data-testid": "cell-mode", class: "calab-select" },
    h("option", { value: "active" }, "most active"),
    h("option", { value: "random" }, "random"),
    h("option", { value: "index" }, "by index"),
  );
  const nShown = h("input", { type: "number", min: "1", max: "64", step: "1", class: "calab-num", "data-testid": "n-shown" });
  const cols = h("input", { type: "number", min: "1", max: "8", step: "1", class: "calab-num", "data-testid": "columns" });
  const idx = h("input", { type: "text", class: "calab-idx", placeholder: "e.g. 0, 5, 12", "data-testid": "cell-index" });
  el.append(
    h("div", { class: "calab-sub" }, "cells"),
    h("label", { class: "calab-param" }, h("span", {}, "show"), mode),
    h("label", { class: "calab-param" }, h("span", {}, "how many"), nShown),
    h("label", { class: "calab-param" }, h("span", {}, "columns"), cols),
    h("label", { class: "calab-param" }, h("span", {}, "indices"), idx),
    h(
      "div",
      { class: "calab-buttons" },
      button("reshuffle", "Reshuffle", () => request({ cell_mode: "random", seed: Number(t.get("seed")) + 1 })),
    ),
  );
  d.listen(mode, "change", () => request({ cell_mode: mode.value }));
  d.listen(nShown, "change", () => request({ n_shown: Math.max(1, Math.round(Number(nShown.value) || 1)) }));
  d.listen(cols, "change", () => t.set({ columns: Math.max(1, Math.min(8, Math.round(Number(cols.value) || 1))) }));
  d.listen(idx, "change", () => {
    const n = Number(t.get("n_cells"));
    const list = idx.value
      .split(/[\s,;]+/)
      .filter((s) => s !== "")
      .map(Number)
      .filter((v) => Number.isInteger(v) && v >= 0 && v < n);
    if (list.length) request({ cell_mode: "index", cells: list });
  });

  function sync(): void {
    rise.setValue(Number(t.get("tau_rise")));
    decay.setValue(Number(t.get("tau_decay")));
    lam.setValue(Number(t.get("lam")));
    const perCell = t.get("lam_mode") === "per_cell";
    lamMode.value = perCell ? "per_cell" : "global";
    lam.label.textContent = perCell ? "sparsity (× noise SD)" : "sparsity λ";
    baseline.value = t.get("baseline") === "drift" ? "drift" : "constant";
    filt.cb.checked = Boolean(t.get("filter_enabled"));
    truth.cb.checked = Boolean(t.get("show_truth"));
    truth.row.style.display = t.get("has_truth") ? "" : "none";
    mode.value = String(t.get("cell_mode"));
    nShown.value = String(t.get("n_shown"));
    cols.value = String(t.get("columns"));
    if (t.get("cell_mode") === "index") idx.value = (t.get<number[]>("cells") || []).join(", ");
  }

  return {
    el,
    kernelHost,
    kernelText,
    exportMsg,
    sync,
    onAuto,
    setLamMax(v: number) {
      lamMax = v;
      lam.setValue(Number(t.get("lam")));
    },
  };
}
