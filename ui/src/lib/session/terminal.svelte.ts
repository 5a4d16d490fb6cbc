// What the session's terminal pane shows: each test run as a shell would, the command, its output as it
// streamed from the sandbox, then a coloured line with what came of it. Kept as the pieces written in
// order, so the pane writes only what is new and a replay writes the same pieces again.

import type { TestSummary } from "../bindings";

const DIM = "\x1b[2m";
const GREEN = "\x1b[32m";
const RED = "\x1b[31m";
const RESET = "\x1b[0m";

export class TerminalLog {
  pieces: string[] = $state([]);
  /** The run whose output is being written, if it has begun. */
  #open: number | null = null;
  #atLineStart = true;

  constructor(private readonly command: () => string) {}

  /** Output of run `iteration`, as it arrived. */
  output(iteration: number, text: string): void {
    this.begin(iteration);
    this.write(text);
  }

  /** Run `iteration` ended with `summary`. A log from before output streamed has it only here. */
  finished(iteration: number, summary: TestSummary): void {
    if (this.#open !== iteration) {
      this.begin(iteration);
      this.write(summary.output);
    }
    if (!this.#atLineStart) this.write("\n");
    this.write(`${summary.ok ? GREEN : RED}${status(summary)}${RESET}\n`);
    this.#open = null;
  }

  private begin(iteration: number): void {
    if (this.#open === iteration) return;
    const first = this.pieces.length === 0;
    const when = iteration === 0 ? "before any change" : `iteration ${iteration}`;
    this.write(`${first ? "" : "\n"}${DIM}$ ${this.command()}   # ${when}${RESET}\n`);
    this.#open = iteration;
  }

  private write(text: string): void {
    if (text === "") return;
    this.pieces.push(text);
    this.#atLineStart = text.endsWith("\n");
  }
}

/** `✓ 5 passed in 1.2 s`, `✗ 4 passed, 1 failed (exit 1) in 0.8 s`. */
export function status(s: TestSummary): string {
  const took = s.duration_ms === null ? "" : ` in ${(s.duration_ms / 1000).toFixed(1)} s`;
  const skipped = s.skipped ? `, ${s.skipped} skipped` : "";
  if (s.ok) return `✓ ${s.passed} passed${skipped}${took}`;
  const why = s.timed_out ? "timed out" : `exit ${s.exit_code ?? "unknown"}`;
  return `✗ ${s.passed} passed, ${s.failed.length} failed${skipped} (${why})${took}`;
}
