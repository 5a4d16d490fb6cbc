//! Fix sessions: the loop that has a model patch a repository copied into a sandbox until its tests
//! pass. It builds prompts a small local model can follow (a stable prefix so the engine's prompt cache
//! is reused), turns the streamed answer into file patches as tokens arrive and applies them (both with
//! [`fixbox_patch`]), runs the tests and feeds what failed back, and records every step
//! as an event in the session's append-only log.
//!
//! Not for talking to Docker or to a model server directly: it drives a [`fixbox_sandbox::Sandbox`]
//! and a [`fixbox_llm::Router`]; and not for rendering: front ends render its [`Event`]s.

mod accept;
pub mod calls;
mod detect;
mod environment;
mod error;
mod event;
mod example;
mod localize;
mod metrics;
mod outcome;
mod preferences;
mod prompt;
mod repo;
mod report;
mod reproduce;
mod request;
mod rewrite;
mod session;
mod sessions;
pub mod setup;
mod testrun;
pub mod text;

pub use accept::accept;
pub use detect::{Runner, TestPlan, detect};
pub use environment::{Environment, PYTHON_VENV, Setup, install_command};
pub use error::AgentError;
pub use event::{Event, EventLog, Recorded};
pub use localize::Region;
pub use outcome::{Finished, Outcome, Timings};
pub use preferences::{Preferences, SharedFiles};
pub use prompt::{Conversation, Prompt};
pub use repo::Repo;
pub use report::SessionReport;
pub use reproduce::GRAMMAR as REPRODUCTION_GRAMMAR;
pub use request::{FixRequest, Limits, ModelSettings};
pub use session::{Fix, WORKSPACE};
pub use sessions::{SessionHandle, SessionSetup, SessionUpdate, Sessions, machine_cap};
pub use testrun::{TestOutcome, TestReport, TestSummary};
