//! The report of a run: per task and in total, as JSON (for tools), Markdown (for people), an SVG
//! chart, and SWE-bench's `predictions.jsonl` (so its own harness can judge the same patches).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::Mode;
use crate::result::{Category, TaskResult};

/// A run's results and what they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub mode: Mode,
    /// The model (SWE-bench's `model_name_or_path`).
    pub model: String,
    pub totals: Totals,
    pub tasks: Vec<TaskResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub tasks: usize,
    pub resolved: usize,
    /// `resolved / tasks`, with its 95% Wilson score interval.
    pub resolve_rate: f64,
    pub interval_95: (f64, f64),
    pub median_wall_s: f64,
    /// Prompt and completion tokens of every session, per resolved task (none resolved: all of them).
    pub tokens_per_resolved: f64,
    pub cost_usd: f64,
    /// Sessions that said "Fixed", and how many of those the hidden tests confirm.
    pub claimed_fixed: usize,
    pub claims_confirmed: usize,
    pub by_category: BTreeMap<Category, usize>,
    /// Seconds over every session, by phase: the model, the tests (with the setup), the sandbox,
    /// Fixbox itself.
    #[serde(default)]
    pub phases_s: Phases,
    /// The median of each session's first prompt, in tokens; `None` when no session called a model.
    #[serde(default)]
    pub median_first_prompt_tokens: Option<f64>,
    /// The share of the prompt tokens after each session's first call that the engine's cache
    /// served; `None` when no session made a second call.
    #[serde(default)]
    pub cached_share_after_first: Option<f64>,
    /// Answers that held no edit the loop could use, over every session.
    #[serde(default)]
    pub answers_without_edit: u32,
    /// The largest prompt of any call, in tokens, and calls that did not fit their context window.
    #[serde(default)]
    pub largest_prompt_tokens: Option<u64>,
    #[serde(default)]
    pub over_context: u32,
    /// Sessions that asked the model to rewrite regions of code, those of them where a region held a
    /// line the upstream fix changes, and those where the first region did.
    #[serde(default)]
    pub localized: usize,
    #[serde(default)]
    pub fix_region_shown: usize,
    #[serde(default)]
    pub fix_region_first: usize,
}

/// Time by phase, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    pub model: f64,
    pub tests: f64,
    /// Installing or restoring the dependencies.
    #[serde(default)]
    pub setup: f64,
    /// Tracing the failing tests and ranking the code.
    #[serde(default)]
    pub localization: f64,
    pub sandbox: f64,
    pub fixbox: f64,
}

impl Report {
    pub fn new(mode: Mode, model: &str, mut tasks: Vec<TaskResult>) -> Self {
        tasks.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        let n = tasks.len();
        let resolved = tasks.iter().filter(|t| t.resolved).count();
        let mut walls: Vec<f64> = tasks.iter().map(|t| t.wall_s).collect();
        walls.sort_by(f64::total_cmp);
        let tokens: u64 = tasks.iter().map(|t| t.prompt_tokens + t.completion_tokens).sum();
        let mut by_category = BTreeMap::new();
        for task in &tasks {
            *by_category.entry(task.category).or_insert(0) += 1;
        }
        let totals = Totals {
            tasks: n,
            resolved,
            resolve_rate: if n == 0 { 0.0 } else { resolved as f64 / n as f64 },
            interval_95: wilson(resolved, n),
            median_wall_s: median(&walls),
            tokens_per_resolved: tokens as f64 / resolved.max(1) as f64,
            cost_usd: tasks.iter().map(|t| t.cost_usd).sum(),
            claimed_fixed: tasks.iter().filter(|t| t.claimed_fixed).count(),
            claims_confirmed: tasks.iter().filter(|t| t.claimed_fixed && t.resolved).count(),
            by_category,
            phases_s: tasks.iter().filter_map(|t| t.timings).fold(Phases::default(), |sum, t| Phases {
                model: sum.model + t.model_ms / 1e3,
                tests: sum.tests + t.tests_ms / 1e3,
                setup: sum.setup + t.setup_ms / 1e3,
                localization: sum.localization + t.localize_ms / 1e3,
                sandbox: sum.sandbox + t.sandbox_ms / 1e3,
                fixbox: sum.fixbox + t.own_ms / 1e3,
            }),
            median_first_prompt_tokens: {
                let mut firsts: Vec<f64> =
                    tasks.iter().filter_map(|t| t.first_prompt_tokens).map(|n| n as f64).collect();
                firsts.sort_by(f64::total_cmp);
                (!firsts.is_empty()).then(|| median(&firsts))
            },
            cached_share_after_first: {
                let prompt: u64 = tasks.iter().map(|t| t.later_prompt_tokens).sum();
                let cached: u64 = tasks.iter().map(|t| t.later_cached_tokens).sum();
                (prompt > 0).then(|| cached as f64 / prompt as f64)
            },
            answers_without_edit: tasks.iter().map(|t| t.answers_without_edit).sum(),
            largest_prompt_tokens: tasks.iter().filter_map(|t| t.largest_prompt_tokens).max(),
            over_context: tasks.iter().map(|t| t.over_context).sum(),
            localized: tasks.iter().filter(|t| !t.regions.is_empty()).count(),
            fix_region_shown: tasks.iter().filter(|t| t.fix_region.is_some()).count(),
            fix_region_first: tasks.iter().filter(|t| t.fix_region == Some(1)).count(),
        };
        Self { mode, model: model.to_string(), totals, tasks }
    }

    /// Writes `report.json`, `report.md`, `report.svg` and `predictions.jsonl` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), EvalError> {
        let write = |name: &str, content: String| {
            let path: PathBuf = dir.join(name);
            std::fs::write(&path, content).map_err(|source| EvalError::Write { path, source })
        };
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        write("report.json", json + "\n")?;
        write("report.md", self.markdown())?;
        write("report.svg", self.svg())?;
        write("predictions.jsonl", self.predictions())
    }

    /// SWE-bench's predictions: one `{instance_id, model_name_or_path, model_patch}` a line.
    pub fn predictions(&self) -> String {
        let mut out = String::new();
        for task in &self.tasks {
            let line = serde_json::json!({
                "instance_id": task.instance_id,
                "model_name_or_path": self.model,
                "model_patch": task.model_patch,
            });
            let _ = writeln!(out, "{line}");
        }
        out
    }

    pub fn markdown(&self) -> String {
        let t = &self.totals;
        let mut out = format!("# Eval: {} mode, {}\n\n", self.mode, self.model);
        let (low, high) = t.interval_95;
        let tokens = if t.resolved == 0 {
            format!("{:.0} tokens in all, none resolved", t.tokens_per_resolved)
        } else {
            format!("{:.0} tokens per resolved task", t.tokens_per_resolved)
        };
        let _ = writeln!(
            out,
            "**Resolved {}/{} ({:.1}%, 95% interval {:.1}–{:.1}%)**. Median wall time {}; {tokens}; ${:.2}. Sessions \
             that said \"Fixed\": {}, confirmed by the hidden tests: {}.\n",
            t.resolved,
            t.tasks,
            100.0 * t.resolve_rate,
            100.0 * low,
            100.0 * high,
            duration(t.median_wall_s),
            t.cost_usd,
            t.claimed_fixed,
            t.claims_confirmed,
        );
        let p = t.phases_s;
        let all = (p.model + p.tests + p.setup + p.localization + p.sandbox + p.fixbox).max(f64::EPSILON);
        if all > 1.0 {
            let share = |s: f64| format!("{} ({:.0}%)", duration(s), 100.0 * s / all);
            let _ = writeln!(
                out,
                "Time in sessions: model {}, tests {}, setup {}, localization {}, sandbox {}, Fixbox {}. Median first prompt: {}; \
                 largest: {}; calls over their context window: {}; prompt tokens from the engine's cache after each session's \
                 first call: {}. Answers with no usable edit: {}.\n",
                share(p.model),
                share(p.tests),
                share(p.setup),
                share(p.localization),
                share(p.sandbox),
                share(p.fixbox),
                t.median_first_prompt_tokens.map_or("–".into(), |n| format!("{n:.0} tokens")),
                t.largest_prompt_tokens.map_or("–".into(), |n| format!("{n} tokens")),
                t.over_context,
                t.cached_share_after_first.map_or("–".into(), |s| format!("{:.0}%", s * 100.0)),
                t.answers_without_edit,
            );
        }
        if t.localized > 0 {
            let _ = writeln!(
                out,
                "Localization: of {} sessions that asked for rewrites of regions of code, {} showed the model a region \
                 the upstream fix changes ({} as the first region).\n",
                t.localized, t.fix_region_shown, t.fix_region_first,
            );
        }
        out.push_str("| why | tasks |\n|---|---|\n");
        for (category, count) in &t.by_category {
            let _ = writeln!(out, "| {} | {count} |", category.label());
        }
        out.push_str(
            "\n| task | resolved | why | session's end | iterations | wall | prompt / completion / cached tokens | fix's region |\n|---|---|---|---|---|---|---|---|\n",
        );
        for task in &self.tasks {
            let end = task.outcome.as_ref().map_or_else(|| "—".to_string(), |o| o.describe());
            let end: String = end.chars().take(80).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} / {} / {} | {} |",
                task.instance_id,
                if task.resolved { "yes" } else { "no" },
                task.category.label(),
                end.replace('|', "\\|"),
                task.iterations,
                duration(task.wall_s),
                task.prompt_tokens,
                task.completion_tokens,
                task.cached_tokens,
                match (task.fix_region, task.regions.len()) {
                    (_, 0) => "–".to_string(),
                    (Some(at), n) => format!("{at} of {n}"),
                    (None, n) => format!("none of {n}"),
                },
            );
        }
        out
    }

    /// A bar per category with the resolve rate and its interval in the title.
    pub fn svg(&self) -> String {
        let t = &self.totals;
        let (width, bar_height, left) = (720.0, 26.0, 230.0);
        let rows = t.by_category.len().max(1) as f64;
        let height = 70.0 + rows * (bar_height + 8.0);
        let most = t.by_category.values().copied().max().unwrap_or(1).max(1) as f64;
        let mut out = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        let (low, high) = t.interval_95;
        let _ = writeln!(
            out,
            "<text x=\"12\" y=\"24\" font-size=\"16\" font-weight=\"bold\">{} mode: {}/{} resolved ({:.1}%, 95% interval {:.1}–{:.1}%)</text>",
            self.mode,
            t.resolved,
            t.tasks,
            100.0 * t.resolve_rate,
            100.0 * low,
            100.0 * high
        );
        let _ = writeln!(out, "<text x=\"12\" y=\"44\" fill=\"#555\">{}</text>", escape(&self.model));
        for (i, (category, count)) in t.by_category.iter().enumerate() {
            let y = 60.0 + i as f64 * (bar_height + 8.0);
            let w = (width - left - 60.0) * *count as f64 / most;
            let color = if *category == Category::Resolved { "#2e7d32" } else { "#9e9e9e" };
            let _ = writeln!(
                out,
                "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"{bar_height}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.0}\">{count}</text>",
                left - 8.0,
                y + 18.0,
                escape(category.label()),
                left + w + 6.0,
                y + 18.0,
            );
        }
        out.push_str("</svg>\n");
        out
    }
}

/// Per task, where two reports differ (resolved, or why not), and their totals side by side.
pub fn compare(a: &Report, b: &Report) -> String {
    let mut out = format!(
        "| | A ({} mode, {}) | B ({} mode, {}) |\n|---|---|---|\n| resolved | {}/{} | {}/{} |\n| median wall | {} | {} |\n\n",
        a.mode,
        a.model,
        b.mode,
        b.model,
        a.totals.resolved,
        a.totals.tasks,
        b.totals.resolved,
        b.totals.tasks,
        duration(a.totals.median_wall_s),
        duration(b.totals.median_wall_s),
    );
    let in_b: BTreeMap<&str, &TaskResult> = b.tasks.iter().map(|t| (t.instance_id.as_str(), t)).collect();
    let mut rows = String::new();
    for task in &a.tasks {
        let Some(other) = in_b.get(task.instance_id.as_str()) else { continue };
        if task.category != other.category {
            let _ = writeln!(rows, "| {} | {} | {} |", task.instance_id, task.category.label(), other.category.label());
        }
    }
    if rows.is_empty() {
        out.push_str("No task ended differently.\n");
    } else {
        out.push_str("| task | A | B |\n|---|---|---|\n");
        out.push_str(&rows);
    }
    out
}

/// The 95% Wilson score interval of `k` successes in `n`.
fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let (n, p, z) = (n as f64, k as f64 / n as f64, 1.96_f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn duration(seconds: f64) -> String {
    if seconds < 90.0 { format!("{seconds:.0} s") } else { format!("{:.1} min", seconds / 60.0) }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wilson_interval_matches_a_known_value() {
        let (low, high) = wilson(5, 24);
        assert!((low - 0.0924).abs() < 1e-3 && (high - 0.4047).abs() < 1e-3, "{low} {high}");
        assert_eq!(wilson(0, 0), (0.0, 0.0));
        assert_eq!(wilson(0, 10).0, 0.0);
    }

    #[test]
    fn the_report_adds_up_time_by_phase_first_prompts_and_answers_without_an_edit() {
        let line = r#"{"instance_id": "a__b-1", "repo": "a/b", "base_commit": "abc", "problem_statement": "x", "FAIL_TO_PASS": ["t.py::a"], "PASS_TO_PASS": [], "test_patch": ""}"#;
        let task = &crate::Dataset::parse(line).tasks[0];
        let session = |first: u64, without: u32, model_s: f64| {
            let mut result = TaskResult::new(task, Mode::Issue);
            result.timings = Some(fixbox_agent::Timings {
                wall_ms: model_s * 1e3 + 30e3,
                model_ms: model_s * 1e3,
                tests_ms: 20e3,
                setup_ms: 5e3,
                localize_ms: 2e3,
                sandbox_ms: 2e3,
                own_ms: 1e3,
            });
            result.first_prompt_tokens = Some(first);
            result.largest_prompt_tokens = Some(first * 2);
            result.answers_without_edit = without;
            (result.later_prompt_tokens, result.later_cached_tokens) = (first * 4, first * 3);
            result
        };
        let region = |path: &str| fixbox_agent::Region { path: path.into(), start: 0, end: 9, function: None };
        let (mut first, mut second) = (session(900, 1, 60.0), session(3000, 0, 120.0));
        (first.regions, first.fix_region) = (vec![region("a.py"), region("b.py")], Some(2));
        second.regions = vec![region("a.py")];
        let report = Report::new(Mode::Issue, "m", vec![first, second, session(1500, 2, 120.0)]);
        let t = &report.totals;
        assert_eq!(
            t.phases_s,
            Phases { model: 300.0, tests: 60.0, setup: 15.0, localization: 6.0, sandbox: 6.0, fixbox: 3.0 }
        );
        assert_eq!((t.median_first_prompt_tokens, t.answers_without_edit), (Some(1500.0), 3));
        let text = report.markdown();
        for part in [
            "none resolved",
            "Time in sessions: model 5.0 min (77%), tests 60 s (15%), setup 15 s (4%), localization 6 s (2%), sandbox 6 s (2%), Fixbox 3 s (1%)",
            "Median first prompt: 1500 tokens; largest: 6000 tokens; calls over their context window: 0; prompt tokens from the engine's cache after each session's first call: 75%. Answers with no usable edit: 3.",
            "of 2 sessions that asked for rewrites of regions of code, 1 showed the model a region the upstream fix changes (0 as the first region)",
            "| 2 of 2 |",
            "| none of 1 |",
            "| – |",
        ] {
            assert!(text.contains(part), "{part} missing from:\n{text}");
        }
    }
}
