// What the session's terminal pane shows: each test run as a shell would, the command, its output as it
// streamed from the sandbox, then a coloured line with what came of it. Kept as the pieces written in
// order, so the pane writes only what is new and a replay writes the same pieces again.

import type { TestSummary } from "../bindings";

const DIM = "\x1b[2m";
const GREEN = "\x1b[32m";
const RED = "\x1b[31m";
const RESET = "\x1b[0m";
/** The setup's place among the runs: before the first test run (iteration 0). */
const SETUP = -1;

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

  /** The setup begins: `command` installs the dependencies, or what it installed before is restored. */
  setupStarted(command: string, restoring: boolean): void {
    const why = restoring ? "restoring what an earlier session installed" : "installing the dependencies";
    this.write(`${this.pieces.length === 0 ? "" : "\n"}${DIM}$ ${command}   # ${why}${RESET}\n`);
    this.#open = SETUP;
  }

  /** Output of the setup, as it arrived. */
  setupOutput(text: string): void {
    this.write(text);
  }

  /** The setup ended. A log from before its output streamed has the command and output only here. */
  setupFinished(command: string, exitCode: number | null, output: string, ms: number | null, restored: boolean): void {
    if (this.#open !== SETUP) {
      this.setupStarted(command, restored);
      this.write(restored ? "" : output);
    }
    if (!this.#atLineStart) this.write("\n");
    const took = ms === null ? "" : ` in ${(ms / 1000).toFixed(1)} s`;
    this.write(
      exitCode === 0
        ? `${GREEN}✓ ${restored ? "restored" : "installed"}${took}${RESET}\n`
        : `${RED}✗ setup failed (exit ${exitCode ?? "unknown"})${took}${RESET}\n`,
    );
    this.#open = null;
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
