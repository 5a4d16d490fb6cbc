import { describe, expect, it } from "vitest";

import type { CallPoint } from "../bindings";
import { chartSeries, niceTop, paths } from "./series";

const call = (model: string, latency_ms: number, tokens_per_second: number | null): CallPoint => ({
  session: "s",
  at_ms: 0,
  model,
  latency_ms,
  ttft_ms: null,
  tokens_per_second,
});

describe("the metrics charts' series", () => {
  it("gives each model its own series over the calls in order, with gaps for the other models' calls", () => {
    const calls = [call("a", 1000, 20), call("b", 500, null), call("a", 3000, 10)];
    expect(chartSeries(calls, "speed")).toEqual({
      models: ["a", "b"],
      data: [
        [20, null, 10],
        [null, null, null],
      ],
    });
    expect(chartSeries(calls, "latency").data).toEqual([
      [1, null, 3],
      [null, 0.5, null],
    ]);
  });

  it("is empty for no calls", () => {
    expect(chartSeries([], "speed")).toEqual({ models: [], data: [] });
  });

  it("splits a series into the runs its line is drawn in", () => {
    expect(paths([1, 2, null, 4, null, null])).toEqual([
      [
        [0, 1],
        [1, 2],
      ],
      [[3, 4]],
    ]);
    expect(paths([null])).toEqual([]);
  });

  it("tops the axis at a round number at or above the largest value", () => {
    expect(niceTop([0.3, 17])).toBe(20);
    expect(niceTop([42])).toBe(50);
    expect(niceTop([100])).toBe(100);
    expect(niceTop([])).toBe(1);
  });
});
