// A download's (or an install's) progress, folded from the events Rust sends: what the bar and the line
// under it show.

import type { Progress } from "../bindings";

export type ProgressState = {
  done: number;
  total: number | null;
  /** Bytes that were there from an earlier, cancelled try. */
  resumedFrom: number;
  bytesPerSecond: number;
  etaSeconds: number | null;
  /** A step that counts in percent (building from source), when there is one. */
  percent: { what: string; percent: number } | null;
  /** The steps so far, newest last. */
  notes: string[];
};

export const idle = (): ProgressState => ({
  done: 0,
  total: null,
  resumedFrom: 0,
  bytesPerSecond: 0,
  etaSeconds: null,
  percent: null,
  notes: [],
});

/** The state after `event`. A download's `Started` carries what it resumes from; its `Progress` events do not. */
export function advance(state: ProgressState, event: Progress): ProgressState {
  switch (event.kind) {
    case "note":
      return { ...state, notes: [...state.notes, event.text] };
    case "percent":
      return { ...state, percent: { what: event.what, percent: event.percent } };
    case "bytes":
      return {
        ...state,
        done: event.done,
        total: event.total,
        resumedFrom: event.resumed_from > 0 ? event.resumed_from : state.resumedFrom,
        bytesPerSecond: event.bytes_per_second ?? 0,
        etaSeconds: event.eta_seconds,
      };
  }
}

/** How far along, 0 to 1; `null` when the total is not known. */
export function fraction(state: ProgressState): number | null {
  if (state.percent) return state.percent.percent / 100;
  return state.total ? Math.min(1, state.done / state.total) : null;
}

/** "12.3 MB" (decimal units, as disks and downloads are sold). */
export function bytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** "1 min 5 s", "8 s". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

/** The line under the bar: "12.3 MB of 98.2 MB · 10.2 MB/s · 8 s left · resumed at 40.0 MB". */
export function describe(state: ProgressState): string {
  if (state.percent) return `${state.percent.what}: ${state.percent.percent}%`;
  const parts = [state.total ? `${bytes(state.done)} of ${bytes(state.total)}` : bytes(state.done)];
  if (state.bytesPerSecond > 0) parts.push(`${bytes(state.bytesPerSecond)}/s`);
  if (state.etaSeconds !== null) parts.push(`${duration(state.etaSeconds)} left`);
  if (state.resumedFrom > 0) parts.push(`resumed at ${bytes(state.resumedFrom)}`);
  return parts.join(" · ");
}
