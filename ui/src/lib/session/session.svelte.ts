// A fix session as the UI shows it, built one event at a time from the session's event log: the same
// events whether they stream live or are replayed from history. Every part is fine-grained state, so a
// streamed line updates only the hunk it belongs to.

import type { CallRecord, Event, Limits, Outcome, PatchDelta, Region, Side, TestSummary, Timings, Totals } from "../bindings";
import { TerminalLog } from "./terminal.svelte";

export type PatchStatus = "streaming" | "applied" | "undone" | "rejected" | "discarded";

export interface Line {
  side: Side;
  text: string;
}

/**
 * A hunk keeps its lines in blocks of this many. A new line changes only the last block, so the viewer
 * renders, and the WebView lays out, one block of a long hunk rather than all of it.
 */
export const BLOCK = 200;

export class Hunk {
  blocks: Line[][] = $state([]);
  count = $state(0);
  complete = $state(false);
  constructor(readonly index: number) {}

  push(line: Line): void {
    const last = this.blocks[this.blocks.length - 1];
    if (last && last.length < BLOCK) last.push(line);
    else this.blocks.push([line]);
    this.count += 1;
  }

  /** Every line, in order. */
  get lines(): Line[] {
    return this.blocks.flat();
  }
}

/** One model answer: the patch it streamed, and what came of it. */
export class Patch {
  path: string | null = $state(null);
  hunks: Hunk[] = $state([]);
  status: PatchStatus = $state("streaming");
  /** What the model was told when the patch was rejected. */
  feedback: string | null = $state(null);
  /** The change it made to its file, as a unified diff, once applied. */
  diff: string | null = $state(null);
  constructor(readonly iteration: number) {}

  /** Applies one streamed delta. */
  delta(delta: PatchDelta): void {
    switch (delta.type) {
      case "file":
        this.path = delta.path;
        break;
      case "hunk":
        this.hunks.push(new Hunk(delta.hunk));
        break;
      case "line":
        this.hunk(delta.hunk)?.push({ side: delta.side, text: delta.text });
        break;
      case "hunk_end": {
        const hunk = this.hunk(delta.hunk);
        if (hunk) hunk.complete = true;
        break;
      }
    }
  }

  private hunk(index: number): Hunk | undefined {
    // Hunks arrive in order, so the one a line belongs to is nearly always the last.
    const last = this.hunks[this.hunks.length - 1];
    return last?.index === index ? last : this.hunks.find((h) => h.index === index);
  }
}

export interface TestRun {
  iteration: number;
  summary: TestSummary;
}

/** One row of the iteration timeline. */
export interface Step {
  iteration: number;
  text: string;
  tone: "info" | "ok" | "fail";
}

export interface Start {
  repo: string;
  task: string;
  testCommand: string;
  limits: Limits;
  image: string;
}

export class Session {
  start: Start | null = $state(null);
  patches: Patch[] = $state([]);
  tests: TestRun[] = $state([]);
  /** The sandbox's test runs as the terminal pane shows them. */
  terminal = new TerminalLog(() => this.start?.testCommand ?? "tests");
  calls: CallRecord[] = $state([]);
  steps: Step[] = $state([]);
  totals: Totals | null = $state(null);
  outcome: Outcome | null = $state(null);
  /** The change to the code against the original repository, once the session has finished. */
  diff: string | null = $state(null);
  /** New tests the session wrote to show the bug, apart from the change. */
  testDiff = $state("");
  timings: Timings | null = $state(null);
  iteration = $state(0);
  /** Events seen, for a replay's progress. */
  seen = $state(0);

  /** The files the patches touched, in the order they were first named. */
  files: string[] = $derived([...new Set(this.patches.map((p) => p.path).filter((p): p is string => p !== null))]);
  finished: boolean = $derived(this.outcome !== null);

  /** Applies the next event of the session's log. */
  apply(event: Event): void {
    this.seen += 1;
    switch (event.kind) {
      case "session_started":
        this.start = {
          repo: event.repo,
          task: event.task,
          testCommand: event.test_command,
          limits: event.limits,
          image: event.image,
        };
        break;
      case "sandbox_ready":
        this.step(0, `sandbox ready: ${event.files} files copied`, "info");
        break;
      case "setup_started":
        this.terminal.setupStarted(event.command, event.restoring);
        break;
      case "setup_output":
        this.terminal.setupOutput(event.text);
        break;
      case "setup_run":
        this.terminal.setupFinished(event.command, event.exit_code, event.output, event.ms, event.restored ?? false);
        this.step(
          0,
          event.restored
            ? `dependencies restored from an earlier session (\`${event.command}\`)`
            : event.exit_code === 0
              ? `dependencies installed: \`${event.command}\``
              : `installing the dependencies failed (exit ${event.exit_code ?? "none"}): \`${event.command}\``,
          event.exit_code === 0 ? "ok" : "fail",
        );
        break;
      case "tests_output":
        this.terminal.output(event.iteration, event.text);
        break;
      case "reproduction": {
        const patch = this.current(0);
        if (patch) {
          patch.status = event.accepted ? "applied" : "rejected";
          patch.path = event.path;
          if (!event.accepted) patch.feedback = event.why;
        }
        this.step(
          0,
          event.attempt === 0
            ? event.accepted
              ? `the issue's example shows the bug: ${event.path}`
              : `the issue's example as a test, not kept: ${event.why}`
            : event.accepted
              ? `a test that shows the bug: ${event.path}`
              : `a test for the issue, not kept: ${event.why}`,
          event.accepted ? "ok" : "fail",
        );
        break;
      }
      case "tests_run":
        this.terminal.finished(event.iteration, event.summary);
        this.tests.push({ iteration: event.iteration, summary: event.summary });
        this.step(event.iteration, testLine(event.iteration, event.summary), event.summary.ok ? "ok" : "fail");
        break;
      case "failing_before": {
        const [first, ...rest] = event.tests;
        const more = rest.length === 0 ? "" : ` and ${rest.length} more`;
        this.step(0, `failing before any change, not for the issue (${event.why}), left out: ${first}${more}`, "info");
        break;
      }
      case "localized": {
        const [first, ...rest] = event.regions;
        if (first) {
          const more = rest.length === 0 ? "" : ` (then ${rest.length} more place${rest.length === 1 ? "" : "s"})`;
          this.step(0, `the bug may be in ${regionLabel(first)}${more}`, "info");
        }
        break;
      }
      case "model_started":
        this.iteration = event.iteration;
        this.patches.push(new Patch(event.iteration));
        break;
      case "model_attempt":
        this.step(event.iteration, `a call to ${event.attempt.route} failed (${event.attempt.message}); ${event.attempt.retry_in_ms === null ? "moving on" : "retrying"}`, "fail");
        break;
      case "model_discard": {
        const patch = this.current(event.iteration);
        if (patch) patch.status = "discarded";
        this.patches.push(new Patch(event.iteration));
        break;
      }
      case "model_call":
        this.calls.push(event.record);
        break;
      case "patch_delta":
        this.current(event.iteration)?.delta(event.delta);
        break;
      case "patch_applied": {
        const patch = this.current(event.iteration);
        if (patch) {
          patch.status = "applied";
          patch.path = event.path;
          patch.diff = event.diff;
        }
        this.step(event.iteration, `patch applied to ${event.path}`, "info");
        break;
      }
      case "patch_undone": {
        const patch = this.current(event.iteration);
        if (patch) patch.status = "undone";
        this.step(event.iteration, `patch undone: ${undoneWhy(event.broke)}`, "fail");
        break;
      }
      case "patch_rejected": {
        const patch = this.current(event.iteration);
        if (patch) {
          patch.status = "rejected";
          patch.feedback = event.feedback;
          if (event.path !== null) patch.path = event.path;
        }
        this.step(event.iteration, `patch rejected${event.path ? ` (${event.path})` : ""}`, "fail");
        break;
      }
      case "iteration":
        this.totals = event.totals;
        break;
      case "session_finished":
        this.outcome = event.outcome;
        this.diff = event.diff;
        this.testDiff = event.test_diff ?? "";
        this.totals = event.totals;
        this.timings = event.timings;
        this.step(event.iterations, describe(event.outcome), event.outcome.outcome === "fixed" ? "ok" : "fail");
        break;
    }
  }

  /** The answer of `iteration` still being streamed or judged. */
  private current(iteration: number): Patch | undefined {
    const last = this.patches[this.patches.length - 1];
    return last?.iteration === iteration ? last : undefined;
  }

  private step(iteration: number, text: string, tone: Step["tone"]): void {
    this.steps.push({ iteration, text, tone });
  }
}

function testLine(iteration: number, s: TestSummary): string {
  const when = iteration === 0 ? "tests before any change" : "tests";
  if (s.timed_out) return `${when}: timed out`;
  return `${when}: ${s.passed} passed, ${s.failed.length} failed${s.skipped ? `, ${s.skipped} skipped` : ""}`;
}

/** One line for a person, like the CLI's. */
export function describe(outcome: Outcome): string {
  switch (outcome.outcome) {
    case "fixed":
      return "fixed: the tests pass";
    case "already_passing":
      return "nothing to fix: the tests already pass";
    case "not_reproduced":
      return `not fixed: no test written for the issue showed the bug (${outcome.reason})`;
    case "max_iterations":
      return "stopped: the iteration limit was reached";
    case "budget":
      return `stopped by the budget: ${outcome.message}`;
    case "wall_time":
      return "stopped: the time limit was reached";
    case "stuck":
      return `stopped: the same failure kept coming back (${outcome.failure})`;
    case "gave_up":
      return `the model gave up: ${outcome.reason}`;
    case "cancelled":
      return "stopped by you; the session is kept";
    case "setup_failed":
      return `the setup command \`${outcome.command}\` failed (${outcome.exit_code === null ? "no exit code" : `exit ${outcome.exit_code}`})`;
    case "error":
      return `failed: ${outcome.message}`;
  }
}

/** The numbers of the metrics strip. */
export interface Metrics {
  promptTokens: number;
  completionTokens: number;
  /** Share of prompt tokens served from the engine's cache, 0..1; null before any call. */
  cacheShare: number | null;
  /** Generation speed of the latest call. */
  tokensPerSecond: number | null;
  costUsd: number;
  /** Dollars left under the session's budget; null without one. */
  budgetLeftUsd: number | null;
}

export function metrics(session: Session): Metrics {
  let prompt = 0;
  let completion = 0;
  let cached = 0;
  let cost = 0;
  for (const call of session.calls) {
    prompt += call.usage.prompt;
    completion += call.usage.completion;
    cached += call.usage.cache_read;
    cost += call.cost_usd ?? 0;
  }
  const last = session.calls[session.calls.length - 1];
  const budget = session.start?.limits.budget_usd ?? null;
  return {
    promptTokens: prompt,
    completionTokens: completion,
    cacheShare: prompt > 0 ? cached / prompt : null,
    tokensPerSecond: last?.tokens_per_second ?? null,
    costUsd: cost,
    budgetLeftUsd: budget === null ? null : Math.max(0, budget - cost),
  };
}

/**
 * Feeds a session events as they arrive, applied at most once a frame: a burst of events between two
 * frames costs one render, not one per event. `schedule` is the frame clock.
 */
export class FrameQueue {
  #pending: Event[] = [];
  #scheduled = false;

  constructor(
    private readonly session: Session,
    private readonly schedule: (run: () => void) => unknown = (run) => requestAnimationFrame(run),
  ) {}

  push(event: Event): void {
    this.#pending.push(event);
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.schedule(() => this.flush());
  }

  /** Applies every event waiting, in order. */
  flush(): void {
    this.#scheduled = false;
    const events = this.#pending;
    this.#pending = [];
    for (const event of events) this.session.apply(event);
  }
}

/** Why a patch was undone: the tests it broke, the first few named, or that the failure stayed. */
export function undoneWhy(broke: string[]): string {
  const named = 3;
  if (broke.length === 0) return "it did not fix the failure";
  if (broke.length <= named) return `it broke ${broke.join(", ")}`;
  return `it broke ${broke.length} tests: ${broke.slice(0, named).join(", ")} and ${broke.length - named} more`;
}

/** `src/a.py, lines 12-30 (in `f`)`, as the CLI says it. */
export function regionLabel(region: Region): string {
  const within = region.function === null ? "" : ` (in \`${region.function}\`)`;
  return `${region.path}, lines ${region.start + 1}-${region.end}${within}`;
}
