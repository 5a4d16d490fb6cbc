//! Evaluation: fix sessions over a dataset of real bugs in SWE-bench's format, each judged by tests the
//! session never saw (SWE-bench's rule, in a sandbox of its own), with a report of how many were
//! resolved, why the others were not, and what each cost.
//!
//! Not for running a session (that is [`fixbox_agent::Sessions`]) or for rendering progress (front ends
//! do, from the [`Progress`] a run reports).

mod checkout;
mod dataset;
mod error;
mod judge;
mod localization;
mod report;
mod result;
mod run;
mod task_env;

pub use checkout::find_repo;
pub use dataset::{BadLine, Dataset, Mode, Task};
pub use error::EvalError;
pub use judge::{Judgement, verdict};
pub use report::{Report, Totals, compare};
pub use result::{Category, TaskResult};
pub use run::{EvalRun, Progress, model_name};
pub use task_env::TaskEnv;
