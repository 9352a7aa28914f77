// Small DOM helpers: element builder and a bag of cleanups.

export function h<K extends keyof HTMLElementTagNameMap>(
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
    // JupyterLab command-mode shortcuts must not steal keys from our inputs (set on the element itself).
    e.setAttribute("data-lm-suppress-shortcuts", "true");
  }
  return e;
}

/** Collects cleanups (listeners, observers); `dispose()` runs them all once. */
export class Disposer {
  private offs: (() => void)[] = [];

  add(off: () => void): void {
    this.offs.push(off);
  }

  listen<E extends Event>(target: EventTarget, type: string, fn: (e: E) => void, opts?: AddEventListenerOptions): void {
    target.addEventListener(type, fn as EventListener, opts);
    this.offs.push(() => target.removeEventListener(type, fn as EventListener, opts));
  }

  dispose(): void {
    for (const off of this.offs.splice(0).reverse()) off();
  }
}

/**
 * Set an element's text only when it differs: writing the same text still replaces the text
 * node, which costs the browser a style and layout pass on the next frame.
 */
export function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}
