//! A warm pool: sandboxes created ahead of time, so a session starts without waiting for Docker.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::exec::lock;
use crate::{DockerSandbox, Sandbox, SandboxError, SandboxHost, SandboxOptions};

/// Keeps `size` started sandboxes of one kind ready. [`SandboxPool::take`] hands one out at once and a
/// background task makes its replacement.
#[derive(Debug)]
pub struct SandboxPool {
    host: SandboxHost,
    options: SandboxOptions,
    shared: Arc<Shared>,
    filler: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    idle: Mutex<VecDeque<DockerSandbox>>,
    size: usize,
    /// Wakes the filler when a sandbox was taken.
    taken: Notify,
    /// Wakes waiters when a sandbox was added.
    added: Notify,
}

/// How long the filler waits after a sandbox was taken before it makes the replacement: creating a
/// container is heavy work for the Engine, and should not compete with the session that just started.
const REFILL_DELAY: Duration = Duration::from_millis(500);

/// How long the filler waits after Docker refused to create a sandbox before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

impl SandboxPool {
    /// Starts filling a pool of `size` sandboxes made with `options` (which must not have a setup
    /// phase: setup is per session). A size of 0 makes every `take` a cold start.
    pub fn start(host: SandboxHost, options: SandboxOptions, size: usize) -> Result<Self, SandboxError> {
        Self::start_restoring(host, options, size, None)
    }

    /// [`SandboxPool::start`], with `archive` (what [`Sandbox::save`] wrote: a session's installed
    /// dependencies) restored into each sandbox before it is ready. A pool whose archive cannot be
    /// restored stops filling.
    pub fn start_restoring(
        host: SandboxHost,
        options: SandboxOptions,
        size: usize,
        archive: Option<PathBuf>,
    ) -> Result<Self, SandboxError> {
        if !options.setup.is_empty() {
            return Err(SandboxError::Sandbox {
                op: "pool sandboxes",
                reason: "sandboxes with a setup phase are made per session, not ahead of time".into(),
            });
        }
        let shared =
            Arc::new(Shared { idle: Mutex::new(VecDeque::new()), size, taken: Notify::new(), added: Notify::new() });
        let filler = tokio::spawn(fill(host.clone(), options.clone(), archive, shared.clone()));
        Ok(Self { host, options, shared, filler })
    }

    /// A ready sandbox from the pool, or a new one when the pool is empty.
    pub async fn take(&self) -> Result<DockerSandbox, SandboxError> {
        match self.take_ready().await {
            Some(sandbox) => Ok(sandbox),
            None => DockerSandbox::create(&self.host, &self.options).await,
        }
    }

    /// A ready sandbox from the pool, if it has one still running (one that is not is removed).
    pub async fn take_ready(&self) -> Option<DockerSandbox> {
        loop {
            let ready = lock(&self.shared.idle).pop_front();
            self.shared.taken.notify_one();
            let sandbox = ready?;
            if sandbox.is_running().await {
                return Some(sandbox);
            }
            tracing::info!(container = sandbox.container_id(), "a sandbox of the warm pool stopped; removing it");
            let _ = sandbox.destroy().await;
        }
    }

    /// How many sandboxes are ready now.
    pub fn ready(&self) -> usize {
        lock(&self.shared.idle).len()
    }

    /// What its sandboxes are made with.
    pub fn options(&self) -> &SandboxOptions {
        &self.options
    }

    /// The container ids of the sandboxes ready now.
    pub fn ready_ids(&self) -> Vec<String> {
        lock(&self.shared.idle).iter().map(|s| s.container_id().to_string()).collect()
    }

    /// Waits until the pool is full, or `timeout` passes; returns whether it is full.
    pub async fn wait_until_full(&self, timeout: Duration) -> bool {
        let full = async {
            loop {
                let added = self.shared.added.notified();
                if self.ready() >= self.shared.size {
                    return;
                }
                added.await;
            }
        };
        tokio::time::timeout(timeout, full).await.is_ok()
    }

    /// Stops refilling and removes the sandboxes nobody took. A sandbox the filler was making is
    /// left to [`reap_orphans`](crate::reap_orphans) at the next start.
    pub async fn shutdown(&self) -> Result<(), SandboxError> {
        self.filler.abort();
        let idle: Vec<DockerSandbox> = lock(&self.shared.idle).drain(..).collect();
        for sandbox in idle {
            sandbox.destroy().await?;
        }
        Ok(())
    }
}

async fn fill(host: SandboxHost, options: SandboxOptions, archive: Option<PathBuf>, shared: Arc<Shared>) {
    loop {
        let taken = shared.taken.notified();
        while lock(&shared.idle).len() < shared.size {
            match DockerSandbox::create(&host, &options).await {
                Ok(sandbox) => {
                    if let Some(archive) = &archive
                        && let Err(err) = sandbox.restore(archive).await
                    {
                        // Gone or broken (a session that restores it then removes it): sessions of
                        // this kind start cold.
                        tracing::warn!(%err, "could not restore a session's dependencies into a warm sandbox; the pool stops filling");
                        let _ = sandbox.destroy().await;
                        return;
                    }
                    if let Err(err) = sandbox.prepare_workspace_receiver().await {
                        tracing::debug!(%err, "no prepared copy receiver; the copy will start its own");
                    }
                    lock(&shared.idle).push_back(sandbox);
                    shared.added.notify_waiters();
                }
                Err(err) => {
                    tracing::warn!(%err, "could not make a sandbox for the warm pool; trying again shortly");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        }
        taken.await;
        tokio::time::sleep(REFILL_DELAY).await;
    }
}
