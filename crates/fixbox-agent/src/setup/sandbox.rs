//! A hardened sandbox for a session, with the image the repository's tests need; from a warm pool of
//! ready ones where the session needs no network.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fixbox_sandbox::{
    BuildMethod, DockerSandbox, HostAddress, Limits, Recipe, SandboxError, SandboxHost, SandboxOptions, SandboxPool,
    ensure_image, reap_orphans,
};

use crate::AgentError;

/// A sandbox ready for a session, how long getting it took, whether it came from a warm pool, and
/// whether the pool had restored the session's dependencies into it.
#[derive(Debug)]
pub struct Sandboxed {
    pub sandbox: DockerSandbox,
    pub image: String,
    pub took: Duration,
    pub warm: bool,
    pub restored: bool,
}

/// Sandboxes started ahead of time, so that a session without network starts without waiting for
/// Docker: `size` of each kind (sandbox host, recipe, limits, runtime, and the dependencies an earlier
/// session installed, restored into it) a session started cold with. The first session of a kind
/// starts the pool of it; the sandbox it then makes is the one that works (gVisor where the Engine has
/// it, runc where not). Cloning shares the pools.
#[derive(Debug, Clone, Default)]
pub struct WarmPools {
    size: usize,
    pools: Arc<Mutex<Vec<Pool>>>,
}

/// A pool, and the kind of sandbox it keeps.
type Pool = (Kind, Arc<SandboxPool>);

/// Pools of sandboxes with a repository's dependencies restored kept at once: each holds containers
/// for one repository.
const RESTORED_POOLS: usize = 4;

/// What makes two sessions' sandboxes interchangeable.
#[derive(Debug, Clone, PartialEq)]
struct Kind {
    docker: HostAddress,
    recipe: String,
    limits: Limits,
    /// The runtime the user chose ([`RUNTIME_ENV`]), as set.
    runtime: String,
    /// The archive of installed dependencies restored into it. Its name says what it holds (the
    /// repository, the setup command, the image and the manifests), so that one name is one content.
    restored: Option<PathBuf>,
}

impl Kind {
    fn new(docker: &HostAddress, recipe: &str, limits: &Limits, restore: Option<&Path>) -> Self {
        let runtime = std::env::var(RUNTIME_ENV).unwrap_or_default();
        let restored = restore.map(Path::to_path_buf);
        Self { docker: docker.clone(), recipe: recipe.to_string(), limits: limits.clone(), runtime, restored }
    }
}

impl WarmPools {
    /// Pools of `size` sandboxes each; 0 keeps none (every sandbox a cold start).
    pub fn new(size: usize) -> Self {
        Self { size, pools: Arc::default() }
    }

    fn pool(&self, kind: &Kind) -> Option<Arc<SandboxPool>> {
        let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.iter().find(|(k, _)| k == kind).map(|(_, pool)| Arc::clone(pool))
    }

    /// Starts a pool of `kind` made with `options` (which a session just made a sandbox with), unless
    /// there is one. Of the pools with restored dependencies (one per repository), the oldest goes
    /// where there would be more than [`RESTORED_POOLS`].
    fn start(&self, kind: Kind, host: &SandboxHost, options: &SandboxOptions) {
        // Looked up and added under one lock: two sessions of a kind may start cold at once.
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        if self.size == 0 || pools.iter().any(|(k, _)| *k == kind) {
            return;
        }
        let restored = |(k, _): &Pool| k.restored.is_some();
        if kind.restored.is_some()
            && pools.iter().filter(|p| restored(p)).count() >= RESTORED_POOLS
            && let Some(oldest) = pools.iter().position(restored)
        {
            let (_, pool) = pools.remove(oldest);
            tokio::spawn(remove(pool));
        }
        match SandboxPool::start_restoring(host.clone(), options.clone(), self.size, kind.restored.clone()) {
            Ok(pool) => pools.push((kind, Arc::new(pool))),
            Err(err) => tracing::warn!(%err, "no warm pool; every session's sandbox is a cold start"),
        }
    }

    /// The container ids of the sandboxes ready now, in every pool.
    pub fn ready_ids(&self) -> Vec<String> {
        let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        pools.iter().flat_map(|(_, pool)| pool.ready_ids()).collect()
    }

    /// Waits until every pool is full, or `timeout` passes; returns whether they are.
    pub async fn wait_until_full(&self, timeout: Duration) -> bool {
        let pools: Vec<Arc<SandboxPool>> = {
            let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
            pools.iter().map(|(_, pool)| Arc::clone(pool)).collect()
        };
        let deadline = Instant::now() + timeout;
        for pool in pools {
            if !pool.wait_until_full(deadline.saturating_duration_since(Instant::now())).await {
                return false;
            }
        }
        true
    }

    /// Stops every pool and removes the sandboxes nobody took.
    pub async fn shutdown(&self) {
        let pools: Vec<Pool> = self.pools.lock().unwrap_or_else(PoisonError::into_inner).drain(..).collect();
        for (_, pool) in pools {
            remove(pool).await;
        }
    }
}

/// Stops `pool` and removes the sandboxes nobody took; one that cannot be removed is said and left to
/// the next start.
async fn remove(pool: Arc<SandboxPool>) {
    if let Err(err) = pool.shutdown().await {
        tracing::warn!(%err, "could not remove a warm sandbox; the next start removes it");
    }
}

/// A sandbox for a session, made on the sandbox host at `docker` (no warm pool): see
/// [`WarmPools::sandbox`].
pub async fn sandbox(
    docker: &HostAddress,
    recipe: &str,
    limits: Limits,
    keep_network: bool,
    on_line: &(dyn Fn(&str) + Send + Sync),
) -> Result<Sandboxed, AgentError> {
    WarmPools::default().sandbox(docker, recipe, limits, keep_network, None, on_line).await
}

impl WarmPools {
    /// A sandbox for a session: without network (`keep_network` false) a ready one of this kind
    /// where there is one; else one made on the sandbox host at `docker`, after removing sandboxes a
    /// crashed run left behind and building the recipe's image unless it is built already (its build
    /// lines go to `on_line`), with `limits`, and with network if `keep_network` (for a setup the
    /// caller runs, then cuts it). One made without network starts the pool of its kind, which
    /// restores `restore` (the archive of what an earlier session installed, which the session is to
    /// restore) into each of its sandboxes: [`Sandboxed::restored`] says whether this one holds it.
    pub async fn sandbox(
        &self,
        docker: &HostAddress,
        recipe: &str,
        limits: Limits,
        keep_network: bool,
        restore: Option<&Path>,
        on_line: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Sandboxed, AgentError> {
        let started = Instant::now();
        let kind = Kind::new(docker, recipe, &limits, restore.filter(|_| !keep_network));
        if !keep_network
            && let Some(pool) = self.pool(&kind)
            && let Some(sandbox) = pool.take_ready().await
        {
            let image = pool.options().image.clone();
            let restored = kind.restored.is_some();
            return Ok(Sandboxed { sandbox, image, took: started.elapsed(), warm: true, restored });
        }
        let host = docker.connect().await.map_err(AgentError::sandbox("reach Docker"))?;
        if let Err(err) = reap_orphans(&host).await {
            tracing::warn!(%err, "could not remove leftover sandboxes");
        }
        let recipe = Recipe::builtin(recipe).map_err(AgentError::sandbox("find its image recipe"))?;
        let method = BuildMethod::from_env().map_err(AgentError::sandbox("choose how to build its image"))?;
        let image =
            ensure_image(&host, &recipe, method, on_line).await.map_err(AgentError::sandbox("build its image"))?;
        let (runtime, chosen) = runtime(keep_network)?;
        let options = SandboxOptions { limits, keep_network, runtime: runtime.clone(), ..SandboxOptions::new(&image) };
        let (sandbox, options) = match DockerSandbox::create(&host, &options).await {
            Ok(sandbox) if runtime.is_some() => {
                on_line(&format!("the sandbox runs under gVisor (runsc); {RUNTIME_ENV}=runc runs it under runc"));
                (sandbox, options)
            }
            Ok(sandbox) => (sandbox, options),
            // Chosen by default, not by the user: where Docker has no runsc, or it cannot start, runc can.
            Err(err) if runtime.is_some() && !chosen => {
                if !matches!(err, SandboxError::RuntimeMissing { .. }) {
                    on_line(&format!(
                        "gVisor (runsc) could not start a sandbox here ({err}); using Docker's default runtime"
                    ));
                }
                let options = SandboxOptions { runtime: None, ..options };
                (DockerSandbox::create(&host, &options).await.map_err(AgentError::sandbox("start"))?, options)
            }
            Err(err) => return Err(AgentError::sandbox("start")(err)),
        };
        if !keep_network {
            self.start(kind, &host, &options);
        }
        Ok(Sandboxed { sandbox, image, took: started.elapsed(), warm: false, restored: false })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Pools of an image that is not there: their fillers fail and wait, and no container is made.
    #[tokio::test]
    async fn at_most_four_pools_keep_restored_dependencies_and_the_oldest_goes() {
        let host = HostAddress::Local.connect().await;
        let Ok(host) = host else { panic!("Docker is needed (scripts/setup starts it): {host:?}") };
        let pools = WarmPools::new(1);
        let options = SandboxOptions::new("fixbox-test-no-such-image:0");
        let kind =
            |archive: Option<PathBuf>| Kind::new(&HostAddress::Local, "python", &Limits::default(), archive.as_deref());
        let archives: Vec<PathBuf> = (0..5).map(|n| PathBuf::from(format!("/nowhere/{n}.tar"))).collect();
        pools.start(kind(None), &host, &options);
        for archive in &archives {
            pools.start(kind(Some(archive.clone())), &host, &options);
        }
        let kept: Vec<Option<PathBuf>> = pools
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, _)| k.restored.clone())
            .collect();
        let mut expected = vec![None];
        expected.extend(archives[1..].iter().cloned().map(Some));
        assert_eq!(kept, expected, "the plain pool stays; of the five restored, the first went");
        pools.shutdown().await;
    }
}
