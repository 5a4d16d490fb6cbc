// Calls as chart series: one series per model over every call in time order, null where a call went
// to another model.
import type { CallPoint } from "../bindings";

export type ChartSeries = { models: string[]; data: (number | null)[][] };

export function chartSeries(calls: CallPoint[], values: "speed" | "latency"): ChartSeries {
  const models = [...new Set(calls.map((c) => c.model))];
  const data = models.map((model) =>
    calls.map((c) => {
      if (c.model !== model) return null;
      if (values === "speed") return c.tokens_per_second;
      return c.latency_ms === null ? null : c.latency_ms / 1000;
    }),
  );
  return { models, data };
}

/** The runs of consecutive values of a series (its line's pieces), as [index, value] pairs. */
export function paths(values: (number | null)[]): [number, number][][] {
  const runs: [number, number][][] = [];
  let run: [number, number][] = [];
  values.forEach((v, i) => {
    if (v === null) {
      if (run.length > 0) runs.push(run);
      run = [];
    } else {
      run.push([i, v]);
    }
  });
  if (run.length > 0) runs.push(run);
  return runs;
}

/** A round top for an axis that starts at 0 and must hold `values`: 1, 2 or 5 times a power of ten. */
export function niceTop(values: number[]): number {
  const max = Math.max(0, ...values.filter((v) => Number.isFinite(v)));
  if (max === 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return ([1, 2, 5, 10].find((m) => m * power >= max) ?? 10) * power;
}
