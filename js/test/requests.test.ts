import { describe, expect, it } from "vitest";
import { RequestLog } from "../src/requests";

describe("RequestLog", () => {
  it("numbers requests after the id the state already holds", () => {
    const log = new RequestLog(41, () => 0);
    expect(log.next()).toBe(42);
    expect(log.next()).toBe(43);
  });
  it("marks replies to older requests as superseded, not the newest or newer ones", () => {
    const log = new RequestLog(0, () => 0);
    log.next();
    log.next();
    expect(log.superseded(1)).toBe(true);
    expect(log.superseded(2)).toBe(false);
    expect(log.superseded(5)).toBe(false); // made by another view of the same model
  });
  it("hands out an input time once", () => {
    let clock = 10;
    const log = new RequestLog(0, () => clock);
    const id = log.next();
    clock = 25;
    expect(log.takeInput(id)).toBe(10);
    expect(log.takeInput(id)).toBeUndefined();
  });
  it("keeps a bounded history", () => {
    const log = new RequestLog(0, () => 0);
    for (let i = 0; i < 1500; i++) log.record({ recv: i, solve: 0, draw: 0 });
    expect(log.breakdown.length).toBe(1000);
    expect(log.breakdown[0]!.recv).toBe(500);
    const ids = Array.from({ length: 250 }, () => log.next());
    expect(log.takeInput(ids[0]!)).toBeUndefined();
    expect(log.takeInput(ids[249]!)).toBe(0);
  });
});
