//! SWE-bench's rule, in a sandbox of its own: the base tree, the candidate patch and the task's test
//! patch; resolved when every FAIL_TO_PASS test passes and every PASS_TO_PASS test still does, by id.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fixbox_agent::{TestOutcome, TestPlan, TestReport, WORKSPACE};
use fixbox_sandbox::{Excludes, ExecRequest, HostAddress, Limits, Sandbox};
use serde::{Deserialize, Serialize};

use crate::checkout::{apply, check_out};
use crate::task_env::TaskEnv;
use crate::{EvalError, Task};

/// What the hidden tests said of a patch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub resolved: bool,
    /// The patch did not apply to the base tree (then nothing ran).
    pub applied: bool,
    /// FAIL_TO_PASS tests that did not pass, with what they did (`failed`, `skipped`, `missing`).
    pub fail_to_pass_left: BTreeMap<String, String>,
    /// PASS_TO_PASS tests that no longer pass.
    pub pass_to_pass_broken: BTreeMap<String, String>,
    /// The end of the test run's output.
    pub output: String,
}

/// How long the judging test run may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How much of the test output a judgement keeps.
const OUTPUT_CHARS: usize = 4000;

/// Judges `patch` (a `git apply`-able diff; empty for none) for `task`, checked out of `source` into `work`,
/// in a sandbox on `docker`.
pub async fn judge(
    task: &Task,
    source: &Path,
    work: &Path,
    patch: &str,
    docker: &HostAddress,
    limits: Limits,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<Judgement, EvalError> {
    check_out(source, &task.base_commit, work).await?;
    if let Err(err) = apply(work, patch, "candidate patch").await {
        return Ok(Judgement {
            resolved: false,
            applied: false,
            fail_to_pass_left: BTreeMap::new(),
            pass_to_pass_broken: BTreeMap::new(),
            output: err.to_string(),
        });
    }
    apply(work, &task.test_patch, "test patch").await?;
    let env = TaskEnv::of(task);
    let plan = TestPlan::given(&env.test_command, work);
    let sandboxed = fixbox_agent::setup::sandbox(docker, &plan.recipe, limits, true, on_line)
        .await
        .map_err(|e| EvalError::Sandbox(e.to_string()))?;
    let sandbox = sandboxed.sandbox;
    let ran = async {
        sandbox.copy_in(work, WORKSPACE, &Excludes::default()).await.map_err(sandbox_error)?;
        let mut install = ExecRequest::shell(format!("({}) 2>&1", env.setup)).hard_timeout(TEST_TIMEOUT);
        install.env = plan.runner.setup_env();
        let installed = sandbox.exec(install).await.map_err(sandbox_error)?.finish().await.map_err(sandbox_error)?;
        sandbox.cut_network().await.map_err(sandbox_error)?;
        if installed.exit_code != Some(0) {
            return Err(EvalError::Setup { exit_code: installed.exit_code, output: tail(&installed.stdout) });
        }
        TestReport::run(&sandbox, &plan, TEST_TIMEOUT).await.map_err(|e| EvalError::Sandbox(e.to_string()))
    }
    .await;
    if let Err(err) = sandbox.destroy().await {
        tracing::warn!(%err, "could not remove a judging sandbox; the reaper removes it at the next start");
    }
    let report = ran?;
    Ok(verdict(task, &report))
}

/// The verdict of a test run on a task's tests.
pub fn verdict(task: &Task, report: &TestReport) -> Judgement {
    let not_passed = |ids: &[String]| -> BTreeMap<String, String> {
        ids.iter()
            .filter_map(|id| match report.outcomes.get(id) {
                Some(TestOutcome::Passed) => None,
                Some(TestOutcome::Failed) => Some((id.clone(), "failed".to_string())),
                Some(TestOutcome::Skipped) => Some((id.clone(), "skipped".to_string())),
                None => Some((id.clone(), "missing".to_string())),
            })
            .collect()
    };
    let fail_to_pass_left = not_passed(&task.fail_to_pass);
    let pass_to_pass_broken = not_passed(&task.pass_to_pass);
    Judgement {
        resolved: fail_to_pass_left.is_empty() && pass_to_pass_broken.is_empty(),
        applied: true,
        fail_to_pass_left,
        pass_to_pass_broken,
        output: tail(&report.output),
    }
}

fn sandbox_error(err: fixbox_sandbox::SandboxError) -> EvalError {
    EvalError::Sandbox(err.to_string())
}

/// The last `OUTPUT_CHARS` characters: how a run ended.
fn tail(text: &str) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(OUTPUT_CHARS)).collect()
}
