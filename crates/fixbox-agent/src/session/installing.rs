//! The session's setup: the dependencies installed with network (then cut) and kept for the next
//! session, or restored from an earlier one.

use std::time::{Duration, Instant};

use fixbox_sandbox::{ExecRequest, Sandbox};

use super::{Run, ms};
use crate::AgentError;
use crate::environment::{self, Environment};
use crate::event::Event;
use crate::outcome::Outcome;
use crate::testrun::LiveOutput;

/// How long a setup command (installing dependencies) may take, and how much of its output is kept.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20 * 60);
const SETUP_OUTPUT_LIMIT: usize = 256 * 1024;
const SETUP_SHOWN_CHARS: usize = 3000;

impl<S: Sandbox> Run<'_, S> {
    /// Runs the setup with network, then cuts the network, and keeps what it installed where that is
    /// kept; or restores what an earlier session kept, in a sandbox that never had network. A setup
    /// that fails ends the session: the tests could not say anything about a patch.
    pub(super) async fn set_up(&mut self, environment: &Environment) -> Result<Result<(), Outcome>, AgentError> {
        let started = Instant::now();
        let command = environment.command.clone();
        self.log.record(Event::SetupStarted { command: command.clone(), restoring: environment.restore })?;
        if let (Some(archive), true) = (&environment.archive, environment.restore) {
            if environment.restored_ahead {
                let output = format!(
                    "what an earlier session installed ({}) was restored in the warm pool, before this session began",
                    archive.display()
                );
                self.log.record(Event::SetupRun { command, exit_code: Some(0), output, ms: 0.0, restored: true })?;
                return Ok(Ok(()));
            }
            let restored = environment::restore(self.sandbox, archive).await;
            self.timings.setup_ms += ms(started.elapsed());
            if let Err(err) = restored {
                let message = format!(
                    "what an earlier session installed could not be restored ({err}); it is removed, so the next session installs again"
                );
                return Ok(Err(Outcome::Error { message }));
            }
            let output = format!("restored what an earlier session installed ({})", archive.display());
            self.log.record(Event::SetupRun {
                command,
                exit_code: Some(0),
                output,
                ms: ms(started.elapsed()),
                restored: true,
            })?;
            return Ok(Ok(()));
        }
        let (mut live, sender) = LiveOutput::new();
        let mut request =
            ExecRequest::shell(&command).hard_timeout(SETUP_TIMEOUT).output_limit(SETUP_OUTPUT_LIMIT).on_output(sender);
        request.env = self.plan.runner.setup_env();
        let sandbox = self.sandbox;
        let run = async { sandbox.exec(request).await?.finish().await };
        tokio::pin!(run);
        let output = loop {
            tokio::select! {
                output = &mut run => break output.map_err(AgentError::sandbox("run the setup command"))?,
                Some(text) = live.next() => self.log.record(Event::SetupOutput { text })?,
                () = self.cancel.cancelled() => return Ok(Err(Outcome::Cancelled)),
                () = tokio::time::sleep_until(self.deadline.into()) => return Ok(Err(Outcome::WallTime)),
            }
        };
        while let Some(text) = live.next().await {
            self.log.record(Event::SetupOutput { text })?;
        }
        let cut = self.sandbox.cut_network().await;
        self.timings.setup_ms += ms(started.elapsed());
        let printed = format!("{}{}", output.stdout, output.stderr);
        let tail = crate::text::cut_middle(&printed, SETUP_SHOWN_CHARS);
        self.log.record(Event::SetupRun {
            command: command.clone(),
            exit_code: output.exit_code,
            output: tail,
            ms: ms(started.elapsed()),
            restored: false,
        })?;
        cut.map_err(AgentError::sandbox("cut the network after the setup"))?;
        if output.exit_code != Some(0) {
            return Ok(Err(Outcome::SetupFailed { command, exit_code: output.exit_code }));
        }
        if let Some(archive) = &environment.archive {
            let keeping = Instant::now();
            // Not kept costs the next session an install, no more.
            if let Err(err) = environment::keep(self.sandbox, archive).await {
                tracing::warn!(%err, "could not keep the installed dependencies; the next session installs them again");
            }
            self.timings.setup_ms += ms(keeping.elapsed());
        }
        Ok(Ok(()))
    }
}
