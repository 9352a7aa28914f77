// anywidget entry: hands the tuning UI a transport made from the widget model.

import "./style.css";
import type { KernelMessage, Transport } from "./protocol";
import { mountTuner } from "./ui";

interface AnyModel {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
  save_changes(): void;
  on(event: string, cb: (...args: unknown[]) => void): void;
  off(event: string, cb: (...args: unknown[]) => void): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[]): void;
}

export function modelTransport(model: AnyModel): Transport {
  return {
    get: <T>(key: string) => model.get(key) as T,
    set(changes) {
      for (const [k, v] of Object.entries(changes)) model.set(k, v);
      model.save_changes();
    },
    on(key, cb) {
      const fn = () => cb();
      model.on(`change:${key}`, fn);
      return () => model.off(`change:${key}`, fn);
    },
    send: (msg) => model.send(msg),
    onMessage(cb) {
      const fn = (...args: unknown[]) => cb(args[0] as KernelMessage, (args[1] as DataView[] | undefined) ?? []);
      model.on("msg:custom", fn);
      return () => model.off("msg:custom", fn);
    },
  };
}

export default {
  render({ model, el }: { model: AnyModel; el: HTMLElement }) {
    return mountTuner(el, modelTransport(model));
  },
};
