// Events of a small fix session, shaped as the Rust side sends them (fixbox-agent's Event): one rejected
// answer, then one that streams a hunk, applies and fixes the tests.

import type { CallRecord, Event, PatchDelta, TestSummary } from "../bindings";

export function tests(passed: number, failed: string[]): TestSummary {
  return {
    ok: failed.length === 0,
    exit_code: failed.length === 0 ? 0 : 1,
    timed_out: false,
    passed,
    failed,
    skipped: 0,
    duration_ms: 420,
    output: failed.map((t) => `FAILED ${t}`).join("\n"),
  };
}

export function call(prompt: number, cached: number, completion: number): CallRecord {
  return {
    task: "fix",
    route: "local",
    model: "qwen2.5-coder-1.5b-instruct",
    local: true,
    text: "",
    finish_reason: "stop",
    usage: { prompt, completion, cache_read: cached, cache_write: 0 },
    usage_source: "server",
    ttft_ms: 120,
    latency_ms: 2000,
    tokens_per_second: 25,
    context_window: 8192,
    cost_usd: 0,
    equivalent_cost_usd: 0.001,
    timings: null,
    attempts: [],
  };
}

export function delta(iteration: number, delta: PatchDelta): Event {
  return { kind: "patch_delta", iteration, delta };
}

/** The deltas of one search/replace hunk on `path`. */
export function hunkDeltas(iteration: number, path: string, search: string[], replace: string[]): Event[] {
  return [
    delta(iteration, { type: "file", path }),
    delta(iteration, { type: "hunk", hunk: 0 }),
    ...search.map((text) => delta(iteration, { type: "line", hunk: 0, side: "search", text })),
    ...replace.map((text) => delta(iteration, { type: "line", hunk: 0, side: "replace", text })),
    delta(iteration, { type: "hunk_end", hunk: 0 }),
  ];
}

const totals = { calls: 1, usage: { prompt: 900, completion: 60, cache_read: 0, cache_write: 0 }, cost_usd: 0, equivalent_cost_usd: 0 };

export const session: Event[] = [
  {
    kind: "session_started",
    repo: "/home/dev/cache",
    task: "evicting while iterating raises",
    test_command: "python3 -m pytest -q",
    model_task: "fix",
    edit_format: "search_replace",
    limits: { max_iterations: 50, budget_usd: 0.5, budget_tokens: null, wall_time_s: 1800, test_timeout_s: 300, same_failure: 3 },
    image: "fixbox-sandbox-python:c6afa09d7651",
  },
  { kind: "sandbox_ready", sandbox: "abc", files: 4, bytes: 2048 },
  { kind: "tests_run", iteration: 0, summary: tests(4, ["test_cache.py::test_evict"]) },
  { kind: "model_started", iteration: 1, prompt_tokens_estimate: 900, trimmed_turns: 0 },
  ...hunkDeltas(1, "cache.py", ["    for key in self.items:"], ["    for key in self.items"]),
  { kind: "model_call", iteration: 1, record: call(900, 0, 60) },
  { kind: "patch_rejected", iteration: 1, path: "cache.py", feedback: "The SEARCH lines do not match cache.py." },
  { kind: "iteration", iteration: 1, result: "rejected", totals },
  { kind: "model_started", iteration: 2, prompt_tokens_estimate: 1000, trimmed_turns: 0 },
  ...hunkDeltas(2, "cache.py", ["        for key in self.items:"], ["        for key in list(self.items):"]),
  { kind: "model_call", iteration: 2, record: call(1000, 900, 40) },
  {
    kind: "patch_applied",
    iteration: 2,
    path: "cache.py",
    matches: [],
    diff: "--- a/cache.py\n+++ b/cache.py\n@@ -3 +3 @@\n-        for key in self.items:\n+        for key in list(self.items):\n",
  },
  // A log from before test output streamed has none for a run (iteration 0); this run streamed in pieces.
  { kind: "tests_output", iteration: 2, text: "....." },
  { kind: "tests_output", iteration: 2, text: "                  [100%]\n5 pass" },
  { kind: "tests_output", iteration: 2, text: "ed in 0.42s" },
  { kind: "tests_run", iteration: 2, summary: { ...tests(5, []), output: ".....                  [100%]\n5 passed in 0.42s" } },
  {
    kind: "session_finished",
    outcome: { outcome: "fixed" },
    iterations: 2,
    diff: "--- a/cache.py\n+++ b/cache.py\n",
    totals: { ...totals, calls: 2 },
    timings: { wall_ms: 9000, model_ms: 6000, tests_ms: 2000, sandbox_ms: 900, own_ms: 100 },
  },
];
