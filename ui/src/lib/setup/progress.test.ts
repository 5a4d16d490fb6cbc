import { describe as group, expect, it } from "vitest";

import { advance, bytes, describe, duration, fraction, idle } from "./progress";

group("download progress", () => {
  it("folds a resumed download into bar, rate, time left and where it resumed", () => {
    let state = idle();
    state = advance(state, { kind: "note", text: "downloading from pypi" });
    state = advance(state, {
      kind: "bytes",
      done: 40_000_000,
      total: 98_000_000,
      resumed_from: 40_000_000,
      bytes_per_second: 0,
      eta_seconds: null,
    });
    expect(describe(state)).toBe("40.0 MB of 98.0 MB · resumed at 40.0 MB");
    // Later events do not repeat where it resumed; the state keeps it.
    state = advance(state, {
      kind: "bytes",
      done: 49_000_000,
      total: 98_000_000,
      resumed_from: 0,
      bytes_per_second: 10_000_000,
      eta_seconds: 4.9,
    });
    expect(fraction(state)).toBe(0.5);
    expect(describe(state)).toBe("49.0 MB of 98.0 MB · 10.0 MB/s · 5 s left · resumed at 40.0 MB");
    expect(state.notes).toEqual(["downloading from pypi"]);
  });

  it("has no fraction without a total, and shows a build's percent over bytes", () => {
    let state = advance(idle(), {
      kind: "bytes",
      done: 1234,
      total: null,
      resumed_from: 0,
      bytes_per_second: 0,
      eta_seconds: null,
    });
    expect(fraction(state)).toBeNull();
    expect(describe(state)).toBe("1.2 KB");
    state = advance(state, { kind: "percent", what: "building", percent: 37 });
    expect(fraction(state)).toBe(0.37);
    expect(describe(state)).toBe("building: 37%");
  });

  it("formats sizes and durations the way the page reads them", () => {
    expect(bytes(999)).toBe("999 B");
    expect(bytes(1_120_000_000)).toBe("1.1 GB");
    expect(duration(65.4)).toBe("1 min 5 s");
    expect(duration(-3)).toBe("0 s");
  });
});
