// Standalone page entry (calab.tune()): the same tuning UI, with an HTTP transport to the
// local bridge server. Reply framing: keep in sync with src/calab/bridge/framing.py.

import "./style.css";
import {
  MSG_STATE,
  MSG_SUPERSEDED,
  BRIDGE_SECRET_HEADER,
  BRIDGE_HEARTBEAT_MS,
  type KernelMessage,
  type Transport,
} from "./protocol";
import { mountTuner } from "./ui";

type Frame = [Record<string, unknown>, DataView[]];

/** Decode a reply: u32 count, then per message u32 header length, JSON, u32 buffer count,
 *  and per buffer u32 length + zero padding to a multiple of 8 + bytes (little-endian). */
export function decodeFrames(body: ArrayBuffer): Frame[] {
  const view = new DataView(body);
  const text = new TextDecoder();
  let pos = 0;
  const u32 = () => {
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const frames: Frame[] = [];
  const count = u32();
  for (let i = 0; i < count; i++) {
    const hlen = u32();
    const header = JSON.parse(text.decode(new Uint8Array(body, pos, hlen))) as Record<string, unknown>;
    pos += hlen;
    const nbuf = u32();
    const buffers: DataView[] = [];
    for (let j = 0; j < nbuf; j++) {
      const blen = u32();
      pos += (8 - (pos % 8)) % 8;
      buffers.push(new DataView(body, pos, blen));
      pos += blen;
    }
    frames.push([header, buffers]);
  }
  return frames;
}

export function httpTransport(base: string, secret: string, initial: Record<string, unknown>): Transport {
  const state: Record<string, unknown> = { ...initial };
  const keyListeners = new Map<string, Set<() => void>>();
  const msgListeners = new Set<(msg: KernelMessage, buffers: DataView[]) => void>();
  const headers = { "Content-Type": "application/json", [BRIDGE_SECRET_HEADER]: secret };

  const fire = (key: string) => keyListeners.get(key)?.forEach((cb) => cb());
  const dispatch = (frames: Frame[]) => {
    for (const [header, buffers] of frames) {
      if (header.type === MSG_STATE) {
        const changes = (header.changes ?? {}) as Record<string, unknown>;
        for (const [k, v] of Object.entries(changes)) {
          if (JSON.stringify(state[k]) !== JSON.stringify(v)) {
            state[k] = v;
            fire(k);
          }
        }
      } else if (header.type === MSG_SUPERSEDED) {
        if (header.error) console.warn("calab:", header.error);
      } else {
        msgListeners.forEach((cb) => cb(header as unknown as KernelMessage, buffers));
      }
    }
  };
  // A change the server refused (nothing was stored): take the server's state back and ask for
  // a view under the refused request's id, so the cards do not wait for an answer forever.
  const recover = async (changes: Record<string, unknown>) => {
    const r = await fetch(base + "/api/v1/session", { headers });
    if (!r.ok) return;
    const server = (await r.json()) as Record<string, unknown>;
    const keep = { request_id: state.request_id };
    dispatch([[{ type: MSG_STATE, changes: { ...server, ...keep } }, []]]);
    if (typeof changes.request_id === "number") {
      await post("/api/v1/state", { changes: { request_id: changes.request_id } }, false);
    }
  };
  const post = async (path: string, payload: unknown, retry = true): Promise<void> => {
    try {
      const r = await fetch(base + path, { method: "POST", headers, body: JSON.stringify(payload) });
      if (!r.ok) {
        console.warn(`calab: ${path} answered ${r.status}: ${await r.text()}`);
        if (retry && r.status === 400 && path === "/api/v1/state") {
          await recover((payload as { changes: Record<string, unknown> }).changes);
        }
        return;
      }
      dispatch(decodeFrames(await r.arrayBuffer()));
    } catch (err) {
      console.warn("calab: bridge request failed", err);
    }
  };

  return {
    get: <T>(key: string) => state[key] as T,
    set(changes) {
      for (const [k, v] of Object.entries(changes)) {
        state[k] = v;
        fire(k);
      }
      void post("/api/v1/state", { changes });
    },
    on(key, cb) {
      let set = keyListeners.get(key);
      if (!set) keyListeners.set(key, (set = new Set()));
      set.add(cb);
      return () => set?.delete(cb);
    },
    send: (msg) => void post("/api/v1/message", { message: msg }),
    onMessage(cb) {
      msgListeners.add(cb);
      return () => msgListeners.delete(cb);
    },
  };
}

async function main(): Promise<void> {
  const params = new URLSearchParams(window.location.search);
  const base = params.get("bridge") ?? window.location.origin;
  const secret = params.get("bridge_secret") ?? "";
  // Keep the secret out of the address bar and the history once read.
  window.history.replaceState(null, "", window.location.pathname);
  const root = document.getElementById("calab-app") ?? document.body;
  const headers = { [BRIDGE_SECRET_HEADER]: secret };
  const r = await fetch(base + "/api/v1/session", { headers });
  if (!r.ok) {
    root.textContent = `calab: the bridge refused this page (${r.status}); open the URL printed by calab.tune().`;
    return;
  }
  const initial = (await r.json()) as Record<string, unknown>;
  root.textContent = "";
  const beat = () =>
    fetch(base + "/api/v1/heartbeat", {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json" },
      body: "{}",
    }).catch(() => undefined);
  void beat();
  window.setInterval(beat, BRIDGE_HEARTBEAT_MS);
  mountTuner(root, httpTransport(base, secret, initial));
}

void main();
