//! A fix session's events as terminal lines: the patch as it streams (coloured when stdout is a
//! terminal), the iterations, the test results, tokens and cost. The live run and `sessions replay`
//! print through the same renderer, so a replay shows what the run showed.

use std::io::{IsTerminal, Write};

use fixbox_agent::{Event, Outcome};
use fixbox_patch::{MatchKind, PatchDelta, Side};

/// ANSI colours, or nothing.
#[derive(Debug, Clone, Copy)]
struct Palette {
    on: bool,
}

impl Palette {
    fn paint(self, code: &str, text: &str) -> String {
        if self.on { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }
    fn red(self, t: &str) -> String {
        self.paint("31", t)
    }
    fn green(self, t: &str) -> String {
        self.paint("32", t)
    }
    fn yellow(self, t: &str) -> String {
        self.paint("33", t)
    }
    fn cyan(self, t: &str) -> String {
        self.paint("36", t)
    }
    fn dim(self, t: &str) -> String {
        self.paint("2", t)
    }
    fn bold(self, t: &str) -> String {
        self.paint("1", t)
    }
}

#[derive(Debug)]
pub struct Renderer<W: Write> {
    out: W,
    palette: Palette,
}

impl Renderer<std::io::Stdout> {
    /// To stdout, coloured when it is a terminal and `NO_COLOR` is not set.
    pub fn stdout() -> Self {
        let on = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { out: std::io::stdout(), palette: Palette { on } }
    }
}

impl<W: Write> Renderer<W> {
    pub fn event(&mut self, event: &Event) -> std::io::Result<()> {
        let p = self.palette;
        let line = match event {
            Event::SessionStarted { repo, task, test_command, model_task, edit_format, limits, image } => format!(
                "{} {repo}\n  task: {task}\n  tests: {test_command}  (sandbox {image})\n  model: routes for `{model_task}`, {edit_format:?} edits, at most {} iterations",
                p.bold("Fixing"),
                limits.max_iterations
            ),
            Event::SandboxReady { sandbox, files, bytes } => {
                p.dim(&format!("  sandbox {sandbox}: {files} files ({} KiB) copied in", bytes / 1024))
            }
            Event::SetupRun { command, ms, restored: true, .. } => p.dim(&format!(
                "  setup `{command}`: restored from an earlier session in {:.1} s, no network",
                ms / 1000.0
            )),
            Event::SetupRun { command, exit_code: Some(0), ms, .. } => {
                p.dim(&format!("  setup `{command}`: done in {:.1} s, network cut", ms / 1000.0))
            }
            Event::SetupRun { command, exit_code, output, .. } => {
                format!("  setup `{command}` failed (exit {exit_code:?}):\n{output}")
            }
            Event::Reproduction { attempt: 0, path, accepted: true, .. } => {
                p.green(&format!("  a test that shows the bug: {path} (the issue's example)"))
            }
            Event::Reproduction { attempt: 0, why, .. } => {
                p.yellow(&format!("  the issue's example as a test that shows the bug, not kept: {why}"))
            }
            Event::Reproduction { attempt, path, accepted: true, .. } => {
                p.green(&format!("  a test that shows the bug: {path} (try {attempt})"))
            }
            Event::Reproduction { attempt, why, .. } => {
                p.yellow(&format!("  try {attempt} at a test that shows the bug, not kept: {why}"))
            }
            Event::FailingBefore { tests, why } => p.yellow(&format!(
                "  failing before any change, not for the issue ({why}), left out: {}",
                fixbox_agent::text::first_of(tests, 3)
            )),
            // An install can take minutes: said as it starts, and how it ended when it does.
            Event::SetupStarted { command, restoring: false } => {
                p.dim(&format!("  setup `{command}`: installing the dependencies, with network…"))
            }
            // Each run's (and the setup's) line says what came of it; their output line by line would
            // bury the patches.
            Event::TestsOutput { .. } | Event::SetupStarted { .. } | Event::SetupOutput { .. } => return Ok(()),
            Event::TestsRun { iteration: 0, summary } => format!("  tests before any change: {}", self.tests(summary)),
            Event::TestsRun { summary, .. } => format!("  tests: {}", self.tests(summary)),
            Event::ModelStarted { iteration, prompt_tokens_estimate, trimmed_turns } => {
                let trimmed =
                    if *trimmed_turns > 0 { format!(", {trimmed_turns} old turns left out") } else { String::new() };
                format!(
                    "\n{} {}",
                    p.bold(&format!("── iteration {iteration}")),
                    p.dim(&format!("(prompt ≈{prompt_tokens_estimate} tokens{trimmed})"))
                )
            }
            Event::ModelAttempt { attempt, .. } => {
                let then =
                    attempt.retry_in_ms.map_or("trying the next route".into(), |ms| format!("retrying in {ms} ms"));
                p.yellow(&format!("  [{}: {}; {then}]", attempt.route, attempt.message))
            }
            Event::ModelDiscard { reason, .. } => {
                p.yellow(&format!("  [the answer broke off ({reason}); it starts over]"))
            }
            Event::ModelCall { record, .. } => {
                let speed = record.tokens_per_second.map(|t| format!(", {t:.1} tok/s")).unwrap_or_default();
                let cost = record.cost_usd.map_or("cost unknown".into(), |c| format!("${c:.4}"));
                p.dim(&format!(
                    "  [{} {}: {} prompt tokens ({} cached), {} generated in {:.1} s{speed}; {cost}]",
                    record.route,
                    record.model,
                    record.usage.prompt,
                    record.usage.cache_read,
                    record.usage.completion,
                    record.latency_ms / 1e3
                ))
            }
            Event::PatchDelta { delta, .. } => match delta {
                PatchDelta::File { path } => p.bold(&format!("  {path}")),
                PatchDelta::Hunk { hunk } => p.cyan(&format!("  @@ edit {} @@", hunk + 1)),
                PatchDelta::Line { side: Side::Search, text, .. } => p.red(&format!("  -{text}")),
                PatchDelta::Line { side: Side::Replace, text, .. } => p.green(&format!("  +{text}")),
                PatchDelta::Line { side: Side::Context, text, .. } => format!("   {text}"),
                PatchDelta::HunkEnd { .. } => return Ok(()),
            },
            Event::PatchApplied { path, matches, .. } => {
                let how: Vec<String> = matches
                    .iter()
                    .map(|m| match m.kind {
                        MatchKind::Exact => format!("line {}", m.first_line),
                        MatchKind::Whitespace => format!("line {}, whitespace differed", m.first_line),
                        MatchKind::Fuzzy => format!("line {}, {:.0}% similar", m.first_line, m.similarity * 100.0),
                    })
                    .collect();
                p.green(&format!("  applied to {path} ({})", how.join("; ")))
            }
            Event::Localized { regions } => {
                let places: Vec<String> = regions.iter().map(|r| format!("\n    {}", r.label())).collect();
                p.cyan(&format!("  where the bug may be, most likely first:{}", places.concat()))
            }
            Event::PatchUndone { path, broke, .. } => p.yellow(&format!("  undone: {}", undone_why(path, broke))),
            Event::PatchRejected { feedback, .. } => {
                p.yellow(&format!("  not applied: {}", feedback.lines().next().unwrap_or_default()))
            }
            Event::Iteration { iteration, result, totals } => p.dim(&format!(
                "  iteration {iteration}: {result} · {} tokens so far ({} cached) · ${:.4}",
                totals.usage.total(),
                totals.usage.cache_read,
                totals.cost_usd
            )),
            Event::SessionFinished { outcome, iterations, diff, test_diff, totals, timings } => {
                let mut text = String::new();
                for (title, diff) in
                    [("The change:", diff), ("The new test that shows the bug (apart from the change):", test_diff)]
                {
                    if diff.is_empty() {
                        continue;
                    }
                    text.push_str(&format!("\n{}\n", p.bold(title)));
                    for line in diff.lines() {
                        let painted = if line.starts_with("+++") || line.starts_with("---") {
                            p.bold(line)
                        } else if line.starts_with('+') {
                            p.green(line)
                        } else if line.starts_with('-') {
                            p.red(line)
                        } else if line.starts_with("@@") {
                            p.cyan(line)
                        } else {
                            line.to_string()
                        };
                        text.push_str(&painted);
                        text.push('\n');
                    }
                }
                let headline = match outcome {
                    Outcome::Fixed => p.green(&outcome.describe()),
                    _ => p.red(&outcome.describe()),
                };
                text.push_str(&format!(
                    "\n{headline}\n  {iterations} iterations · {} calls · {} prompt tokens ({} from the cache) · {} generated · ${:.4} (${:.4} in the cloud)\n  time {:.1} s: model {:.1} s, tests {:.1} s, setup {:.1} s, localization {:.1} s, sandbox {:.1} s, Fixbox {:.2} s",
                    totals.calls,
                    totals.usage.prompt,
                    totals.usage.cache_read,
                    totals.usage.completion,
                    totals.cost_usd,
                    totals.equivalent_cost_usd,
                    timings.wall_ms / 1e3,
                    timings.model_ms / 1e3,
                    timings.tests_ms / 1e3,
                    timings.setup_ms / 1e3,
                    timings.localize_ms / 1e3,
                    timings.sandbox_ms / 1e3,
                    timings.own_ms / 1e3,
                ));
                text
            }
        };
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }

    fn tests(&self, summary: &fixbox_agent::TestSummary) -> String {
        if summary.ok { self.palette.green(&summary.line()) } else { self.palette.red(&summary.line()) }
    }
}

/// Why an edit was undone: the tests it broke, the first few named, or that the failure stayed.
fn undone_why(path: &str, broke: &[String]) -> String {
    const NAMED: usize = 3;
    match broke.len() {
        0 => format!("the edit to {path} did not fix the failure"),
        n if n <= NAMED => format!("the edit to {path} broke {}", broke.join(", ")),
        n => format!("the edit to {path} broke {n} tests: {}", fixbox_agent::text::first_of(broke, NAMED)),
    }
}

#[cfg(test)]
mod tests {
    use super::undone_why;

    #[test]
    fn an_undone_edit_says_why_in_one_short_line() {
        assert_eq!(undone_why("a.py", &[]), "the edit to a.py did not fix the failure");
        assert_eq!(undone_why("a.py", &["t::x".into()]), "the edit to a.py broke t::x");
        let many: Vec<String> = (0..237).map(|i| format!("t::{i}")).collect();
        assert_eq!(undone_why("a.py", &many), "the edit to a.py broke 237 tests: t::0, t::1, t::2 and 234 more");
    }
}
