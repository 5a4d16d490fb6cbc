//! A hardened sandbox for a session, with the image the repository's tests need.

use std::time::{Duration, Instant};

use fixbox_sandbox::{
    BuildMethod, DockerSandbox, HostAddress, Limits, Recipe, SandboxError, SandboxOptions, ensure_image, reap_orphans,
};

use crate::AgentError;

/// A sandbox ready for a session, and how long getting it took.
#[derive(Debug)]
pub struct Sandboxed {
    pub sandbox: DockerSandbox,
    pub image: String,
    pub took: Duration,
}

/// Connects to the sandbox host at `docker`, removes sandboxes a crashed run left behind, builds the recipe's
/// image unless it is built already (its build lines go to `on_line`), and creates a sandbox from it
/// with `limits`, without network unless `keep_network` (for a setup the caller runs, then cuts it).
pub async fn sandbox(
    docker: &HostAddress,
    recipe: &str,
    limits: Limits,
    keep_network: bool,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<Sandboxed, AgentError> {
    let started = Instant::now();
    let host = docker.connect().await.map_err(AgentError::sandbox("reach Docker"))?;
    if let Err(err) = reap_orphans(&host).await {
        tracing::warn!(%err, "could not remove leftover sandboxes");
    }
    let recipe = Recipe::builtin(recipe).map_err(AgentError::sandbox("find its image recipe"))?;
    let method = BuildMethod::from_env().map_err(AgentError::sandbox("choose how to build its image"))?;
    let image = ensure_image(&host, &recipe, method, on_line).await.map_err(AgentError::sandbox("build its image"))?;
    let (runtime, chosen) = runtime(keep_network)?;
    let options = SandboxOptions { limits, keep_network, runtime: runtime.clone(), ..SandboxOptions::new(&image) };
    let sandbox = match DockerSandbox::create(&host, &options).await {
        Ok(sandbox) if runtime.is_some() => {
            on_line(&format!("the sandbox runs under gVisor (runsc); {RUNTIME_ENV}=runc runs it under runc"));
            sandbox
        }
        Ok(sandbox) => sandbox,
        // Chosen by default, not by the user: where Docker has no runsc, or it cannot start, runc can.
        Err(err) if runtime.is_some() && !chosen => {
            if !matches!(err, SandboxError::RuntimeMissing { .. }) {
                on_line(&format!(
                    "gVisor (runsc) could not start a sandbox here ({err}); using Docker's default runtime"
                ));
            }
            let options = SandboxOptions { runtime: None, ..options };
            DockerSandbox::create(&host, &options).await.map_err(AgentError::sandbox("start"))?
        }
        Err(err) => return Err(AgentError::sandbox("start")(err)),
    };
    Ok(Sandboxed { sandbox, image, took: started.elapsed() })
}

/// Chooses the sandbox's OCI runtime: `runc`, `runsc` (gVisor) or `auto` (the default: gVisor where
/// the Engine has it and the sandbox needs no network, as Fixbox registers it without).
pub const RUNTIME_ENV: &str = "FIXBOX_SANDBOX_RUNTIME";

/// The runtime a sandbox runs under (`None`: Docker's default, runc), and whether the user chose it.
/// gVisor answers the sandbox's system calls with its own kernel, so code in the sandbox never
/// reaches the host's. Whether Docker has it, creating the sandbox finds out.
fn runtime(needs_network: bool) -> Result<(Option<String>, bool), AgentError> {
    let chosen = std::env::var(RUNTIME_ENV).unwrap_or_default();
    match chosen.trim() {
        "runc" => Ok((None, true)),
        "runsc" => Ok((Some("runsc".into()), true)),
        "" | "auto" if needs_network => Ok((None, false)),
        "" | "auto" => Ok((Some("runsc".into()), false)),
        other => Err(AgentError::Config(format!("{RUNTIME_ENV}={other} is not a runtime: use runc, runsc or auto"))),
    }
}
