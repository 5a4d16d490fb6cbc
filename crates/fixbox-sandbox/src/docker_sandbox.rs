//! [`Sandbox`] on a Docker Engine: one hardened container per sandbox (DESIGN.md, "Sandbox hardening").

mod container;
mod follower;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bollard::Docker;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use self::container::{container_config, remove_container};
use self::follower::{EXEC_MARKER, Follower, Started, collect_output, exit_code, next_stdout, start_exec};
use crate::exec::{Captured, ExecStatus, RunningExec, gone};
use crate::{CopyStats, Excludes, ExecRequest, FileWrite, Sandbox, SandboxError, SandboxHost, SandboxOptions, copy};

/// A running, hardened sandbox container.
pub struct DockerSandbox {
    docker: Docker,
    id: String,
    /// OOM kills already accounted for, so each is blamed on the exec it ended.
    oom_kills_seen: Arc<AtomicU64>,
    /// Set once the container is removed; until then `Drop` tries to remove it.
    removed: AtomicBool,
    /// A `tar -x` into /workspace already started and waiting on stdin (see the warm pool).
    workspace_receiver: tokio::sync::Mutex<Option<Started>>,
}

impl std::fmt::Debug for DockerSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerSandbox").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Where the repo goes.
const WORKSPACE: &str = "/workspace";

/// The command that unpacks a tar stream on stdin into `dir`, keeping modes.
///
/// `-m` (`--touch`) leaves each file the time it is written in the sandbox, by the sandbox's own clock,
/// rather than the archive's. Build tools decide what to rebuild by comparing mtimes (cargo: a source
/// newer than the start of the build that last compiled it; make: a prerequisite newer than its
/// target), so a file must never look older than a build that ran before it was written. A time from
/// the archive would: the repo's own (an old checkout copied in beside a cached build), or ours in
/// whole seconds (a patch written in the second a build started looked older than the build, and
/// `cargo test` ran the old binary).
fn unpack_cmd(dir: &str) -> [&str; 8] {
    ["tar", "-x", "-m", "-p", "-f", "-", "-C", dir]
}

impl DockerSandbox {
    /// Creates and starts a sandbox: no network (after the optional setup), no capabilities, no new
    /// privileges, read-only root, tmpfs `/workspace` and `/tmp`, a non-root user, memory/CPU/pids
    /// limits, no IPC namespace shared, an init process, and Fixbox's labels.
    pub async fn create(host: &SandboxHost, options: &SandboxOptions) -> Result<Self, SandboxError> {
        if let Some(runtime) = &options.runtime {
            let available = host.runtimes().await?;
            if !available.contains(runtime) {
                return Err(SandboxError::RuntimeMissing { runtime: runtime.clone(), available: available.join(", ") });
            }
        }
        let docker = host.docker().clone();
        let ca_bundle = if options.has_network() { container::host_ca_bundle() } else { None };
        let config = container_config(options, ca_bundle.is_some());
        let name = format!("fixbox-sandbox-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let start = async {
            let created = docker
                .create_container(Some(CreateContainerOptionsBuilder::default().name(&name).build()), config)
                .await
                .map_err(|e| SandboxError::docker("create the container", e))?;
            docker
                .start_container(&created.id, None)
                .await
                .map_err(|e| SandboxError::docker("start the container", e))?;
            Ok::<_, SandboxError>(created.id)
        };
        let id = match tokio::time::timeout(options.start_timeout, start).await {
            Ok(Ok(id)) => id,
            Ok(Err(err)) => {
                discard(&docker, &name).await;
                return Err(err);
            }
            Err(_) => {
                discard(&docker, &name).await;
                return Err(SandboxError::Sandbox {
                    op: "start",
                    reason: format!("Docker took longer than {} s", options.start_timeout.as_secs()),
                });
            }
        };
        let sandbox = Self {
            docker,
            id,
            oom_kills_seen: Arc::new(AtomicU64::new(0)),
            removed: AtomicBool::new(false),
            workspace_receiver: tokio::sync::Mutex::new(None),
        };
        let prepared = async {
            if let Some(bundle) = ca_bundle {
                sandbox.trust_host_certificates(bundle).await?;
            }
            if options.setup.is_empty() {
                Ok(())
            } else {
                sandbox.run_setup(&options.setup, options.keep_network).await
            }
        };
        if let Err(err) = prepared.await {
            let _ = sandbox.destroy_ref().await;
            return Err(err);
        }
        Ok(sandbox)
    }

    /// Gives a sandbox with network this machine's certificate authorities (the image's own lack a
    /// company's TLS proxy, so `pip install` would fail there as it does not here), at the path the
    /// container's environment names for pip, requests, curl, git, cargo and Node.
    async fn trust_host_certificates(&self, bundle: Vec<u8>) -> Result<(), SandboxError> {
        let file = FileWrite { path: container::CA_BUNDLE_NAME.into(), content: bundle, executable: false };
        self.write_files(container::CA_BUNDLE_DIR, &[file]).await
    }

    /// Runs the setup commands with network, then cuts the network for good unless it is to be kept.
    async fn run_setup(&self, setup: &[ExecRequest], keep_network: bool) -> Result<(), SandboxError> {
        for request in setup {
            let output = self.exec(request.clone()).await?.finish().await?;
            if output.exit_code != Some(0) {
                return Err(SandboxError::Sandbox {
                    op: "run its setup",
                    reason: format!(
                        "`{}` exited with {:?}: {}",
                        request.cmd.join(" "),
                        output.exit_code,
                        output.stderr
                    ),
                });
            }
        }
        if keep_network { Ok(()) } else { self.cut_network().await }
    }

    /// The container's id.
    pub fn container_id(&self) -> &str {
        &self.id
    }

    /// Whether its container is still running: one kept for later may have been stopped since (a
    /// Docker restart, a user's `docker rm`).
    pub async fn is_running(&self) -> bool {
        let inspected = self.docker.inspect_container(&self.id, None).await;
        inspected.ok().and_then(|c| c.state).and_then(|s| s.running).unwrap_or(false)
    }

    /// Runs `cmd` to its end without limits on output: for the sandbox's own plumbing (tar, signals).
    async fn run_plumbing(&self, cmd: &[&str], stdin: Option<Vec<u8>>) -> Result<Plumbing, SandboxError> {
        let started = start_exec(&self.docker, &self.id, cmd, Vec::new(), None, stdin.is_some()).await?;
        self.finish_plumbing(started, stdin).await
    }

    /// Feeds `stdin` to a started plumbing command and collects its output and exit code, in at most
    /// [`PLUMBING_TIMEOUT`]: a Docker that stops answering mid-copy must not hold a session forever.
    async fn finish_plumbing(&self, started: Started, stdin: Option<Vec<u8>>) -> Result<Plumbing, SandboxError> {
        self.finish_plumbing_from(started, stdin.map(std::io::Cursor::new)).await
    }

    /// [`finish_plumbing`](Self::finish_plumbing) with its input read from `stdin` as it goes.
    async fn finish_plumbing_from(
        &self,
        started: Started,
        stdin: Option<impl AsyncRead + Unpin + Send>,
    ) -> Result<Plumbing, SandboxError> {
        let (exec_id, output, input) = started;
        within_plumbing_limit(async move {
            let writer = async {
                if let (Some(mut reader), Some(mut input)) = (stdin, input) {
                    tokio::io::copy(&mut reader, &mut input).await?;
                    input.shutdown().await?;
                }
                Ok::<_, std::io::Error>(())
            };
            let (written, read) = tokio::join!(writer, collect_output(output));
            let (stdout, stderr) = read?;
            written.map_err(|e| SandboxError::Sandbox { op: "feed a command's input", reason: e.to_string() })?;
            let exit_code = exit_code(&self.docker, &exec_id).await?;
            Ok(Plumbing { stdout, stderr, exit_code })
        })
        .await
    }

    /// Starts the `tar -x` that will receive a copy into `/workspace`, so that the copy itself (on a
    /// sandbox from the warm pool) does not wait for a process to start.
    pub(crate) async fn prepare_workspace_receiver(&self) -> Result<(), SandboxError> {
        let started = start_exec(&self.docker, &self.id, &unpack_cmd(WORKSPACE), Vec::new(), None, true).await?;
        *self.workspace_receiver.lock().await = Some(started);
        Ok(())
    }

    async fn destroy_ref(&self) -> Result<(), SandboxError> {
        remove_container(&self.docker, &self.id).await.map_err(|e| SandboxError::docker("remove the container", e))?;
        self.removed.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// The longest a copy into or out of a sandbox may take.
const PLUMBING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// `copy`'s result, or an error once it has taken [`PLUMBING_TIMEOUT`].
async fn within_plumbing_limit<T>(copy: impl Future<Output = Result<T, SandboxError>>) -> Result<T, SandboxError> {
    tokio::time::timeout(PLUMBING_TIMEOUT, copy).await.map_err(|_| SandboxError::Sandbox {
        op: "copy files",
        reason: format!(
            "Docker did not finish the copy in {} minutes; check that it still answers (`docker ps`), or restart it",
            PLUMBING_TIMEOUT.as_secs() / 60
        ),
    })?
}

/// A best effort for a sandbox dropped without [`Sandbox::destroy`] (a panic, an early return): its
/// removal is started on the current runtime, if there is one. What this misses, the reaper removes at
/// the next start.
impl Drop for DockerSandbox {
    fn drop(&mut self) {
        if self.removed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (docker, id) = (self.docker.clone(), self.id.clone());
        runtime.spawn(async move { discard(&docker, &id).await });
    }
}

struct Plumbing {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_code: Option<i64>,
}

impl Plumbing {
    fn ok(self, op: &'static str) -> Result<Vec<u8>, SandboxError> {
        if self.exit_code == Some(0) {
            Ok(self.stdout)
        } else {
            let stderr = String::from_utf8_lossy(&self.stderr);
            Err(SandboxError::Sandbox { op, reason: format!("exit code {:?}: {}", self.exit_code, stderr.trim()) })
        }
    }
}

impl Sandbox for DockerSandbox {
    fn id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    async fn exec(&self, request: ExecRequest) -> Result<ExecStatus, SandboxError> {
        let marker = uuid::Uuid::now_v7().simple().to_string();
        let mut env: Vec<String> = request.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("{EXEC_MARKER}={marker}"));
        let cmd: Vec<&str> = request.cmd.iter().map(String::as_str).collect();
        let (exec_id, output, _) =
            start_exec(&self.docker, &self.id, &cmd, env, request.workdir.clone(), false).await?;

        let started = Instant::now();
        let captured = Arc::new(Mutex::new(Captured::new(request.output_limit)));
        let (signals_tx, signals_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        let follower = Follower {
            docker: self.docker.clone(),
            container: self.id.clone(),
            exec_id,
            marker,
            captured: captured.clone(),
            on_output: request.on_output.clone(),
            oom_kills_seen: self.oom_kills_seen.clone(),
        };
        tokio::spawn(async move {
            let result = follower.follow(output, signals_rx, started, request.hard_timeout).await;
            let _ = done_tx.send(result);
        });
        let mut running = RunningExec { signals: signals_tx, done: done_rx, output: captured, started };
        let Some(soft) = request.soft_timeout else {
            return running.wait().await.map(ExecStatus::Finished);
        };
        match tokio::time::timeout(soft, &mut running.done).await {
            Ok(result) => result.unwrap_or_else(|_| Err(gone())).map(ExecStatus::Finished),
            Err(_) => Ok(ExecStatus::StillRunning { partial: running.partial(), running }),
        }
    }

    async fn copy_in(&self, from: &Path, to: &str, excludes: &Excludes) -> Result<CopyStats, SandboxError> {
        let (from, excludes) = (from.to_path_buf(), excludes.clone());
        let (archive, stats) = tokio::task::spawn_blocking(move || copy::pack(&from, &excludes))
            .await
            .map_err(|e| SandboxError::Sandbox { op: "pack the files", reason: e.to_string() })??;
        let prepared = if to == WORKSPACE { self.workspace_receiver.lock().await.take() } else { None };
        let started = match prepared {
            Some(started) => started,
            None => start_exec(&self.docker, &self.id, &unpack_cmd(to), Vec::new(), None, true).await?,
        };
        self.finish_plumbing(started, Some(archive)).await?.ok("unpack the files")?;
        Ok(stats)
    }

    async fn write_files(&self, to: &str, files: &[FileWrite]) -> Result<(), SandboxError> {
        let archive = copy::pack_files(files)?;
        self.run_plumbing(&unpack_cmd(to), Some(archive)).await?.ok("write the files")?;
        Ok(())
    }

    /// Streams the archive into the unpacker as it comes, so the workspace is never held in memory.
    async fn copy_out(&self, from: &str, to: &Path) -> Result<CopyStats, SandboxError> {
        let copying = async {
            let tar = ["tar", "-c", "-f", "-", "-C", from, "."];
            let (exec_id, mut output, _) = start_exec(&self.docker, &self.id, &tar, Vec::new(), None, false).await?;
            let (chunks, received) = mpsc::channel(16);
            let to = to.to_path_buf();
            let unpacking = tokio::task::spawn_blocking(move || copy::unpack(copy::ChunkReader::new(received), &to));
            let mut stderr = Vec::new();
            while let Some(message) = next_stdout(&mut output, &mut stderr).await? {
                // A send fails when the unpacker stopped: its error says why.
                if chunks.send(message).await.is_err() {
                    break;
                }
            }
            drop(chunks);
            let stats = unpacking
                .await
                .map_err(|e| SandboxError::Sandbox { op: "unpack the files", reason: e.to_string() })??;
            let exit_code = exit_code(&self.docker, &exec_id).await?;
            Plumbing { stdout: Vec::new(), stderr, exit_code }.ok("pack the files")?;
            Ok(stats)
        };
        within_plumbing_limit(copying).await
    }

    async fn save(&self, paths: &[String], to: &Path) -> Result<u64, SandboxError> {
        let mut tar = vec!["tar", "-c", "-f", "-", "-C", "/"];
        tar.extend(paths.iter().map(|p| p.trim_start_matches('/')).filter(|p| !p.is_empty()));
        let failed = |e: std::io::Error| SandboxError::Copy { path: to.display().to_string(), source: e };
        let saving = async {
            let (exec_id, mut output, _) = start_exec(&self.docker, &self.id, &tar, Vec::new(), None, false).await?;
            let mut file = tokio::fs::File::create(to).await.map_err(failed)?;
            let (mut bytes, mut stderr) = (0u64, Vec::new());
            while let Some(message) = next_stdout(&mut output, &mut stderr).await? {
                file.write_all(&message).await.map_err(failed)?;
                bytes += message.len() as u64;
            }
            file.sync_all().await.map_err(failed)?;
            let exit_code = exit_code(&self.docker, &exec_id).await?;
            Plumbing { stdout: Vec::new(), stderr, exit_code }.ok("pack the files")?;
            Ok(bytes)
        };
        within_plumbing_limit(saving).await
    }

    async fn restore(&self, from: &Path) -> Result<(), SandboxError> {
        let file = tokio::fs::File::open(from)
            .await
            .map_err(|e| SandboxError::Copy { path: from.display().to_string(), source: e })?;
        let started = start_exec(&self.docker, &self.id, &unpack_cmd("/"), Vec::new(), None, true).await?;
        self.finish_plumbing_from(started, Some(file)).await?.ok("unpack the saved files")?;
        Ok(())
    }

    async fn cut_network(&self) -> Result<(), SandboxError> {
        let disconnect = bollard::models::NetworkDisconnectRequest { container: self.id.clone(), force: Some(true) };
        self.docker
            .disconnect_network("bridge", disconnect)
            .await
            .map_err(|e| SandboxError::docker("cut the network after setup", e))
    }

    async fn destroy(self) -> Result<(), SandboxError> {
        self.destroy_ref().await
    }
}

/// Removes a container nobody will use, logging (not returning) a failure: the reaper gets it later.
async fn discard(docker: &Docker, id: &str) {
    if let Err(err) = remove_container(docker, id).await {
        tracing::warn!(%err, id, "could not remove a sandbox container");
    }
}
