import { describe, expect, it } from "vitest";

import { delta, session as events } from "./events.fixture";
import { FrameQueue, Session, describe as say, metrics, undoneWhy } from "./session.svelte";

describe("Session", () => {
  it("folds a session's events into patches, tests, steps and an outcome", () => {
    const session = new Session();
    events.forEach((e) => session.apply(e));

    expect(session.start?.testCommand).toBe("python3 -m pytest -q");
    expect(session.patches.map((p) => [p.iteration, p.path, p.status])).toEqual([
      [1, "cache.py", "rejected"],
      [2, "cache.py", "applied"],
    ]);
    expect(session.patches[0]?.feedback).toContain("do not match");
    const hunk = session.patches[1]?.hunks[0];
    expect(hunk?.complete).toBe(true);
    expect(hunk?.lines).toEqual([
      { side: "search", text: "        for key in self.items:" },
      { side: "replace", text: "        for key in list(self.items):" },
    ]);
    expect(session.files).toEqual(["cache.py"]);
    expect(session.tests.map((t) => [t.iteration, t.summary.ok])).toEqual([
      [0, false],
      [2, true],
    ]);
    expect(session.outcome).toEqual({ outcome: "fixed" });
    expect(session.finished).toBe(true);
    expect(session.steps.at(-1)).toEqual({ iteration: 2, text: "fixed: the tests pass", tone: "ok" });
    expect(session.seen).toBe(events.length);
  });

  it("marks a patch undone when it broke tests that passed, and a new test that shows the bug", () => {
    const session = new Session();
    session.apply({ kind: "model_started", iteration: 0, prompt_tokens_estimate: 10, trimmed_turns: 0 });
    session.apply({ kind: "reproduction", attempt: 1, path: "test_fixbox_issue.py", test: "def test_issue(): ...", accepted: true, why: "" });
    session.apply({ kind: "model_started", iteration: 1, prompt_tokens_estimate: 10, trimmed_turns: 0 });
    session.apply({ kind: "patch_undone", iteration: 1, path: "cache.py", broke: ["test_cache.py::test_get"] });
    expect(session.patches.map((p) => [p.iteration, p.path, p.status])).toEqual([
      [0, "test_fixbox_issue.py", "applied"],
      [1, null, "undone"],
    ]);
    expect(session.steps.map((s) => s.text)).toEqual([
      "a test that shows the bug: test_fixbox_issue.py",
      "patch undone: it broke test_cache.py::test_get",
    ]);
  });

  it("says why a patch was undone in one short line", () => {
    expect(undoneWhy([])).toBe("it did not fix the failure");
    const many = Array.from({ length: 237 }, (_, i) => `t::${i}`);
    expect(undoneWhy(many)).toBe("it broke 237 tests: t::0, t::1, t::2 and 234 more");
  });

  it("says where the bug may be, the most likely place first", () => {
    const session = new Session();
    const region = (path: string, start: number, end: number, fn: string | null) => ({ path, start, end, function: fn });
    session.apply({ kind: "localized", regions: [region("src/fields.py", 1111, 1120, "_serialize"), region("src/schema.py", 500, 520, null)] });
    session.apply({ kind: "localized", regions: [region("a.py", 0, 3, null)] });
    expect(session.steps.map((s) => s.text)).toEqual([
      "the bug may be in src/fields.py, lines 1112-1120 (in `_serialize`) (then 1 more place)",
      "the bug may be in a.py, lines 1-3",
    ]);
  });

  it("says which failures before any change are left out, and why", () => {
    const session = new Session();
    const why = "they fail with OSError and the issue's example with TypeError";
    session.apply({ kind: "failing_before", tests: ["t.py::test_env", "t.py::test_gpu"], why });
    expect(session.steps.map((s) => s.text)).toEqual([`failing before any change, not for the issue (${why}), left out: t.py::test_env and 1 more`]);
  });

  it("says how the dependencies were installed, restored, or why not", () => {
    const session = new Session();
    const command = "pip install -e .";
    session.apply({ kind: "setup_run", command, exit_code: 0, output: "Successfully installed six", ms: 4500, restored: false });
    session.apply({ kind: "setup_run", command, exit_code: 0, output: "restored", ms: 900, restored: true });
    session.apply({ kind: "setup_run", command, exit_code: 1, output: "No matching distribution", ms: 800 });
    expect(session.steps.map((s) => [s.text, s.tone])).toEqual([
      ["dependencies installed: `pip install -e .`", "ok"],
      ["dependencies restored from an earlier session (`pip install -e .`)", "ok"],
      ["installing the dependencies failed (exit 1): `pip install -e .`", "fail"],
    ]);
  });

  it("says when the issue's own example is the test that shows the bug", () => {
    const session = new Session();
    session.apply({ kind: "reproduction", attempt: 0, path: "tests/test_fixbox_issue.py", test: "def test_issue(): ...", accepted: true, why: "" });
    expect(session.steps.map((s) => s.text)).toEqual(["the issue's example shows the bug: tests/test_fixbox_issue.py"]);
  });

  it("writes each test run to the terminal as a shell would, streamed output as it came", () => {
    const session = new Session();
    events.forEach((e) => session.apply(e));
    const dim = (s: string) => `\x1b[2m${s}\x1b[0m`;
    expect(session.terminal.pieces.join("")).toBe(
      [
        // The run before any change streamed nothing (an older log): its summary's output stands in.
        dim("$ python3 -m pytest -q   # before any change"),
        "FAILED test_cache.py::test_evict",
        "\x1b[31m✗ 4 passed, 1 failed (exit 1) in 0.4 s\x1b[0m",
        "",
        dim("$ python3 -m pytest -q   # iteration 2"),
        ".....                  [100%]",
        "5 passed in 0.42s",
        "\x1b[32m✓ 5 passed in 0.4 s\x1b[0m",
        "",
      ].join("\n"),
    );
  });

  it("writes the setup to the terminal as it streams, and an older log's setup from its end", () => {
    const dim = (s: string) => `\x1b[2m${s}\x1b[0m`;
    const command = "pip install -e .";
    const live = new Session();
    live.apply({ kind: "setup_started", command, restoring: false });
    live.apply({ kind: "setup_output", text: "Collecting six\n" });
    live.apply({ kind: "setup_output", text: "Successfully installed six" });
    live.apply({ kind: "setup_run", command, exit_code: 0, output: "(the end of it)", ms: 4500, restored: false });
    live.apply({ kind: "setup_started", command, restoring: true });
    live.apply({ kind: "setup_run", command, exit_code: 0, output: "restored", ms: 900, restored: true });
    expect(live.terminal.pieces.join("")).toBe(
      [
        dim(`$ ${command}   # installing the dependencies`),
        "Collecting six",
        "Successfully installed six",
        "\x1b[32m✓ installed in 4.5 s\x1b[0m",
        "",
        dim(`$ ${command}   # restoring what an earlier session installed`),
        "\x1b[32m✓ restored in 0.9 s\x1b[0m",
        "",
      ].join("\n"),
    );
    const older = new Session();
    older.apply({ kind: "setup_run", command, exit_code: 1, output: "No matching distribution\n", ms: 800 });
    expect(older.terminal.pieces.join("")).toBe(
      [dim(`$ ${command}   # installing the dependencies`), "No matching distribution", "\x1b[31m✗ setup failed (exit 1) in 0.8 s\x1b[0m", ""].join("\n"),
    );
  });

  it("gives the terminal only the new pieces as output streams", () => {
    const session = new Session();
    const before = events.filter((e) => e.kind !== "tests_output" && e.kind !== "tests_run" || ("iteration" in e && e.iteration === 0));
    before.forEach((e) => session.apply(e));
    const written = session.terminal.pieces.length;
    session.apply({ kind: "tests_output", iteration: 2, text: "..F" });
    expect(session.terminal.pieces.slice(written)).toEqual(["\n\x1b[2m$ python3 -m pytest -q   # iteration 2\x1b[0m\n", "..F"]);
    session.apply({ kind: "tests_output", iteration: 2, text: "..\n" });
    expect(session.terminal.pieces.slice(written + 2)).toEqual(["..\n"]);
  });

  it("grows a hunk line by line while it streams", () => {
    const session = new Session();
    session.apply({ kind: "model_started", iteration: 1, prompt_tokens_estimate: 10, trimmed_turns: 0 });
    session.apply(delta(1, { type: "hunk", hunk: 0 }));
    const patch = session.patches[0];
    expect(patch?.path).toBeNull();
    expect(patch?.status).toBe("streaming");
    for (let i = 0; i < 3; i++) {
      session.apply(delta(1, { type: "line", hunk: 0, side: "replace", text: `line ${i}` }));
      expect(patch?.hunks[0]?.lines.length).toBe(i + 1);
    }
    expect(patch?.hunks[0]?.complete).toBe(false);
  });

  it("starts the answer over when a call breaks off, keeping the void one marked", () => {
    const session = new Session();
    session.apply({ kind: "model_started", iteration: 1, prompt_tokens_estimate: 10, trimmed_turns: 0 });
    session.apply(delta(1, { type: "file", path: "a.py" }));
    session.apply({ kind: "model_discard", iteration: 1, reason: "connection reset" });
    session.apply(delta(1, { type: "file", path: "b.py" }));
    expect(session.patches.map((p) => [p.path, p.status])).toEqual([
      ["a.py", "discarded"],
      ["b.py", "streaming"],
    ]);
  });

  it("ignores deltas of an iteration that is not the current one", () => {
    const session = new Session();
    session.apply({ kind: "model_started", iteration: 2, prompt_tokens_estimate: 10, trimmed_turns: 0 });
    session.apply(delta(1, { type: "file", path: "stale.py" }));
    expect(session.patches[0]?.path).toBeNull();
  });

  it("says which setup command failed and how", () => {
    expect(say({ outcome: "setup_failed", command: "pip install .", exit_code: 1 })).toBe(
      "the setup command `pip install .` failed (exit 1)",
    );
    expect(say({ outcome: "setup_failed", command: "npm ci", exit_code: null })).toContain("(no exit code)");
  });
});

describe("metrics", () => {
  it("sums tokens and cost, and reports the cache share and the budget left", () => {
    const session = new Session();
    events.forEach((e) => session.apply(e));
    const m = metrics(session);
    expect(m.promptTokens).toBe(1900);
    expect(m.completionTokens).toBe(100);
    expect(m.cacheShare).toBeCloseTo(900 / 1900);
    expect(m.tokensPerSecond).toBe(25);
    expect(m.budgetLeftUsd).toBe(0.5);
  });

  it("has no cache share before the first call", () => {
    expect(metrics(new Session()).cacheShare).toBeNull();
  });

  it("applies queued events once a frame, in order, and none twice", () => {
    const session = new Session();
    const frames: (() => void)[] = [];
    const queue = new FrameQueue(session, (run) => frames.push(run));
    events.slice(0, 5).forEach((e) => queue.push(e));
    expect(frames).toHaveLength(1);
    expect(session.seen).toBe(0);
    frames.shift()?.();
    expect(session.seen).toBe(5);
    events.slice(5).forEach((e) => queue.push(e));
    frames.shift()?.();
    expect(frames).toHaveLength(0);
    expect(session.seen).toBe(events.length);
    expect(session.outcome).toEqual({ outcome: "fixed" });
  });
});
