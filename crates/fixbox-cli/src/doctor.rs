use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use fixbox_doctor::{CheckStatus, DoctorOptions, DoctorReport};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Prints the report; exits 1 when a check failed (Fixbox cannot run fix sessions here).
pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let report = fixbox_doctor::run(&DoctorOptions::default()).await;
    let text = if args.json { serde_json::to_string_pretty(&report)? + "\n" } else { render(&report) };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(if report.overall() == CheckStatus::Fail { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The report as text for a terminal: one line per check, its details and fix indented below.
fn render(report: &DoctorReport) -> String {
    let mut out = format!("Fixbox {} doctor\n\n", report.fixbox_version);
    let width = report.checks.iter().map(|c| c.title.len()).max().unwrap_or(0);
    for check in &report.checks {
        let status = match check.status {
            CheckStatus::Ok => "ok  ",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
        };
        let _ = writeln!(out, "  {status}  {:width$}  {}", check.title, check.summary);
        let indent = " ".repeat(2 + 4 + 2 + width + 2);
        for detail in &check.details {
            let _ = writeln!(out, "{indent}{detail}");
        }
        if let Some(fix) = &check.fix {
            let _ = writeln!(out, "{indent}fix: {fix}");
        }
    }
    let verdict = match report.overall() {
        CheckStatus::Ok => "Everything Fixbox needs is here.",
        CheckStatus::Warn => "Fixbox can run; the warnings above say what would make it better.",
        CheckStatus::Fail => "Fixbox cannot run fix sessions until the failures above are fixed.",
    };
    let _ = writeln!(out, "\n{verdict}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixbox_doctor::{Check, CheckId};

    #[test]
    fn renders_each_check_with_details_and_fix() {
        let report = DoctorReport {
            fixbox_version: "0.1.0".to_string(),
            checks: vec![
                Check::ok(CheckId::Docker, "Docker Engine 20.10.24 reachable at unix:///var/run/docker.sock")
                    .with_details(["API 1.41, linux/amd64".to_string()]),
                Check::warn(
                    CheckId::Gpu,
                    "no GPU seen: models will run on the CPU, several times slower",
                    "install the driver",
                ),
                Check::failed(
                    CheckId::DataDir,
                    "the data directory is not usable",
                    Some("set FIXBOX_DATA_DIR".to_string()),
                ),
            ],
        };
        insta::assert_snapshot!(render(&report));
    }
}
