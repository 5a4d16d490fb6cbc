//! [`Sandbox`] on a Docker Engine: one hardened container per sandbox (DESIGN.md, "Sandbox hardening").

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use crate::exec::{Captured, Ending, ExecOutput, ExecStatus, OutputChunk, RunningExec, Signal, lock};
use crate::recipe::SANDBOX_UID;
use crate::{CopyStats, DockerEngine, Excludes, ExecRequest, Sandbox, SandboxError, SandboxOptions, copy, labels};

/// Marks every process of one exec (it is inherited by all they start), so a timeout or Ctrl+C can
/// reach the whole tree, even processes that left its process group.
const EXEC_MARKER: &str = "FIXBOX_EXEC";

/// Sends signal `$1` to every process whose environment holds `FIXBOX_EXEC=$2`, in up to `$3` rounds
/// (processes forked during a round are caught by the next). One fork per round (grep); the rest are
/// shell builtins, so it still works when a fork bomb has taken nearly every pid.
const SIGNAL_TREE: &str = r#"i=0
while [ "$i" -lt "$3" ]; do
  found=$(grep -lzxF "FIXBOX_EXEC=$2" /proc/[0-9]*/environ 2>/dev/null) || exit 0
  for f in $found; do p=${f#/proc/}; kill -s "$1" "${p%/environ}" 2>/dev/null; done
  i=$((i + 1))
done"#;

/// Prints the memory cgroup's count of OOM kills (cgroup v2, then v1).
const OOM_KILLS: &str = r#"sed -n 's/^oom_kill //p' /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null | head -n 1"#;

/// How long after SIGKILL a command's output may stay open before we stop following it.
const KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

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
fn unpack_cmd(dir: &str) -> [&str; 7] {
    ["tar", "-x", "-p", "-f", "-", "-C", dir]
}

impl DockerSandbox {
    /// Creates and starts a sandbox: no network (after the optional setup), no capabilities, no new
    /// privileges, read-only root, tmpfs `/workspace` and `/tmp`, a non-root user, memory/CPU/pids
    /// limits, no IPC namespace shared, an init process, and Fixbox's labels.
    pub async fn create(engine: &DockerEngine, options: &SandboxOptions) -> Result<Self, SandboxError> {
        if let Some(runtime) = &options.runtime {
            let available = engine.runtimes().await?;
            if !available.contains(runtime) {
                return Err(SandboxError::RuntimeMissing { runtime: runtime.clone(), available: available.join(", ") });
            }
        }
        let docker = engine.docker().clone();
        let config = container_config(options);
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
                remove(&docker, &name).await;
                return Err(err);
            }
            Err(_) => {
                remove(&docker, &name).await;
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
        if !options.setup.is_empty()
            && let Err(err) = sandbox.run_setup(&options.setup).await
        {
            let _ = sandbox.destroy_ref().await;
            return Err(err);
        }
        Ok(sandbox)
    }

    /// Runs the setup commands with network, then cuts the network for good.
    async fn run_setup(&self, setup: &[ExecRequest]) -> Result<(), SandboxError> {
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
        let disconnect = bollard::models::NetworkDisconnectRequest { container: self.id.clone(), force: Some(true) };
        self.docker
            .disconnect_network("bridge", disconnect)
            .await
            .map_err(|e| SandboxError::docker("cut the network after setup", e))
    }

    /// The container's id.
    pub fn container_id(&self) -> &str {
        &self.id
    }

    /// Runs `cmd` to its end without limits on output: for the sandbox's own plumbing (tar, signals).
    async fn run_plumbing(&self, cmd: &[&str], stdin: Option<Vec<u8>>) -> Result<Plumbing, SandboxError> {
        let started = start_exec(&self.docker, &self.id, cmd, Vec::new(), None, stdin.is_some()).await?;
        self.finish_plumbing(started, stdin).await
    }

    /// Feeds `stdin` to a started plumbing command and collects its output and exit code.
    async fn finish_plumbing(&self, started: Started, stdin: Option<Vec<u8>>) -> Result<Plumbing, SandboxError> {
        let (exec_id, mut output, input) = started;
        let writer = async {
            if let (Some(bytes), Some(mut input)) = (stdin, input) {
                input.write_all(&bytes).await?;
                input.shutdown().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let reader = async {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(item) = output.next().await {
                match item.map_err(|e| SandboxError::docker("read a command's output", e))? {
                    bollard::container::LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                    bollard::container::LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    _ => {}
                }
            }
            Ok::<_, SandboxError>((stdout, stderr))
        };
        let (written, read) = tokio::join!(writer, reader);
        let (stdout, stderr) = read?;
        written.map_err(|e| SandboxError::Sandbox { op: "feed a command's input", reason: e.to_string() })?;
        let exit_code = exit_code(&self.docker, &exec_id).await?;
        Ok(Plumbing { stdout, stderr, exit_code })
    }

    /// Starts the `tar -x` that will receive a copy into `/workspace`, so that the copy itself (on a
    /// sandbox from the warm pool) does not wait for a process to start.
    pub(crate) async fn prepare_workspace_receiver(&self) -> Result<(), SandboxError> {
        let started = start_exec(&self.docker, &self.id, &unpack_cmd(WORKSPACE), Vec::new(), None, true).await?;
        *self.workspace_receiver.lock().await = Some(started);
        Ok(())
    }

    async fn destroy_ref(&self) -> Result<(), SandboxError> {
        self.docker
            .remove_container(&self.id, Some(RemoveContainerOptionsBuilder::default().force(true).v(true).build()))
            .await
            .map_err(|e| SandboxError::docker("remove the container", e))?;
        self.removed.store(true, Ordering::SeqCst);
        Ok(())
    }
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
        runtime.spawn(async move { remove(&docker, &id).await });
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

    async fn copy_out(&self, from: &str, to: &Path) -> Result<CopyStats, SandboxError> {
        let archive =
            self.run_plumbing(&["tar", "-c", "-f", "-", "-C", from, "."], None).await?.ok("pack the files")?;
        let to = to.to_path_buf();
        tokio::task::spawn_blocking(move || copy::unpack(&archive, &to))
            .await
            .map_err(|e| SandboxError::Sandbox { op: "unpack the files", reason: e.to_string() })?
    }

    async fn destroy(self) -> Result<(), SandboxError> {
        self.destroy_ref().await
    }
}

fn gone() -> SandboxError {
    SandboxError::Sandbox { op: "follow a command", reason: "the task following it ended unexpectedly".into() }
}

/// Follows one exec to its end: collects output, enforces the hard timeout, forwards signals.
struct Follower {
    docker: Docker,
    container: String,
    exec_id: String,
    marker: String,
    captured: Arc<Mutex<Captured>>,
    on_output: Option<mpsc::UnboundedSender<OutputChunk>>,
    oom_kills_seen: Arc<AtomicU64>,
}

type OutputStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + Send>>;

impl Follower {
    async fn follow(
        self,
        mut output: OutputStream,
        mut signals: mpsc::UnboundedReceiver<Signal>,
        started: Instant,
        hard_timeout: std::time::Duration,
    ) -> Result<ExecOutput, SandboxError> {
        // The hard timeout; once a kill was sent, the time left for the output to end.
        let deadline = tokio::time::sleep(hard_timeout);
        tokio::pin!(deadline);
        let mut ending = Ending::Exited;
        let mut killed = false;
        loop {
            tokio::select! {
                item = output.next() => match item {
                    Some(Ok(log)) => self.record(log),
                    Some(Err(err)) => return Err(SandboxError::docker("read a command's output", err)),
                    None => break,
                },
                () = &mut deadline => {
                    if killed {
                        tracing::warn!(exec = %self.exec_id, "output still open after SIGKILL; no longer following");
                        break;
                    }
                    ending = Ending::HardTimeout;
                    self.signal(Signal::Kill).await?;
                    killed = true;
                    deadline.as_mut().reset(tokio::time::Instant::now() + KILL_GRACE);
                }
                Some(signal) = signals.recv() => {
                    if ending == Ending::Exited {
                        ending = if signal == Signal::Interrupt { Ending::Interrupted } else { Ending::Killed };
                    }
                    self.signal(signal).await?;
                    if signal == Signal::Kill && !killed {
                        killed = true;
                        deadline.as_mut().reset(tokio::time::Instant::now() + KILL_GRACE);
                    }
                }
            }
        }
        // An interrupted command may leave processes that ignore SIGINT (background jobs of a script
        // do): once it has ended, they go too.
        if ending == Ending::Interrupted {
            self.signal(Signal::Kill).await?;
        }
        let exit_code = exit_code(&self.docker, &self.exec_id).await?;
        // 137 = killed by SIGKILL: by us, or by the kernel's OOM killer, which only the cgroup counts.
        let oom_killed = exit_code == Some(137) && self.new_oom_kill().await;
        let captured = lock(&self.captured);
        Ok(ExecOutput {
            exit_code,
            stdout: captured.stdout.text(),
            stderr: captured.stderr.text(),
            truncated: captured.stdout.truncated() || captured.stderr.truncated(),
            ending,
            oom_killed,
            duration: started.elapsed(),
        })
    }

    fn record(&self, log: bollard::container::LogOutput) {
        let chunk = match log {
            bollard::container::LogOutput::StdOut { message } => {
                lock(&self.captured).stdout.push(&message);
                OutputChunk::Stdout(message)
            }
            bollard::container::LogOutput::StdErr { message } => {
                lock(&self.captured).stderr.push(&message);
                OutputChunk::Stderr(message)
            }
            _ => return,
        };
        if let Some(sender) = &self.on_output {
            let _ = sender.send(chunk);
        }
    }

    /// Signals every process of this exec. SIGINT goes once, as Ctrl+C does; SIGKILL repeats until no
    /// process is left. Starting the signaller is retried while the sandbox has no pid to spare.
    async fn signal(&self, signal: Signal) -> Result<(), SandboxError> {
        let rounds = if signal == Signal::Kill { "200" } else { "1" };
        let cmd = ["sh", "-c", SIGNAL_TREE, "sh", signal.name(), &self.marker, rounds];
        let mut last_error = None;
        for _ in 0..100 {
            match start_exec(&self.docker, &self.container, &cmd, Vec::new(), None, false).await {
                Ok((_, mut output, _)) => {
                    while output.next().await.is_some() {}
                    return Ok(());
                }
                Err(err) => {
                    last_error = Some(err);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        Err(last_error.unwrap_or_else(gone))
    }

    /// Whether the memory cgroup counts an OOM kill not yet blamed on an earlier exec.
    async fn new_oom_kill(&self) -> bool {
        let Ok((_, mut output, _)) =
            start_exec(&self.docker, &self.container, &["sh", "-c", OOM_KILLS], Vec::new(), None, false).await
        else {
            return false;
        };
        let mut text = Vec::new();
        while let Some(Ok(bollard::container::LogOutput::StdOut { message })) = output.next().await {
            text.extend_from_slice(&message);
        }
        let count: u64 = String::from_utf8_lossy(&text).trim().parse().unwrap_or(0);
        self.oom_kills_seen.fetch_max(count, Ordering::SeqCst) < count
    }
}

type Started = (String, OutputStream, Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>);

/// Creates and starts an attached exec as the sandbox user.
async fn start_exec(
    docker: &Docker,
    container: &str,
    cmd: &[&str],
    env: Vec<String>,
    workdir: Option<String>,
    stdin: bool,
) -> Result<Started, SandboxError> {
    let options = CreateExecOptions {
        attach_stdin: Some(stdin),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(cmd.iter().map(|s| (*s).to_string()).collect()),
        env: Some(env),
        user: Some(format!("{SANDBOX_UID}:{SANDBOX_UID}")),
        working_dir: workdir,
        ..Default::default()
    };
    let exec = docker.create_exec(container, options).await.map_err(|e| SandboxError::docker("start a command", e))?;
    let started = docker
        .start_exec(&exec.id, Some(StartExecOptions { detach: false, tty: false, output_capacity: None }))
        .await
        .map_err(|e| SandboxError::docker("start a command", e))?;
    match started {
        StartExecResults::Attached { output, input } => Ok((exec.id, output, stdin.then_some(input))),
        StartExecResults::Detached => {
            Err(SandboxError::Sandbox { op: "start a command", reason: "Docker did not attach its output".into() })
        }
    }
}

/// The exit code of a finished exec. Its output ends a moment before Docker records the exit.
async fn exit_code(docker: &Docker, exec_id: &str) -> Result<Option<i64>, SandboxError> {
    for _ in 0..200 {
        let inspect = docker.inspect_exec(exec_id).await.map_err(|e| SandboxError::docker("read an exit code", e))?;
        if inspect.running != Some(true) {
            return Ok(inspect.exit_code);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(None)
}

async fn remove(docker: &Docker, name: &str) {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    if let Err(err) = docker.remove_container(name, Some(options)).await {
        tracing::warn!(%err, name, "could not remove a sandbox container");
    }
}

fn container_config(options: &SandboxOptions) -> ContainerCreateBody {
    let limits = &options.limits;
    let tmpfs = HashMap::from([
        (
            "/workspace".to_string(),
            format!("rw,exec,size={},mode=0755,uid={SANDBOX_UID},gid={SANDBOX_UID}", limits.workspace_bytes),
        ),
        ("/tmp".to_string(), format!("rw,exec,nosuid,size={},mode=1777", limits.tmp_bytes)),
    ]);
    let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
    let host_config = HostConfig {
        // A setup phase needs the network; it is disconnected before anything else runs.
        network_mode: Some(if options.setup.is_empty() { "none" } else { "bridge" }.to_string()),
        cap_drop: Some(vec!["ALL".to_string()]),
        security_opt: Some(vec!["no-new-privileges".to_string()]),
        readonly_rootfs: Some(true),
        tmpfs: Some(tmpfs),
        memory: Some(memory),
        memory_swap: Some(memory), // no swap on top
        nano_cpus: Some((limits.cpus * 1e9) as i64),
        pids_limit: Some(limits.pids),
        // No /dev/shm: the only writable places are /workspace and /tmp.
        ipc_mode: Some("none".to_string()),
        init: Some(true),
        runtime: options.runtime.clone(),
        ..Default::default()
    };
    let host = crate::reaper::this_host();
    let labels = HashMap::from([
        (labels::SANDBOX.to_string(), "1".to_string()),
        (labels::OWNER_PID.to_string(), std::process::id().to_string()),
        (labels::OWNER_HOST.to_string(), host),
        (labels::IMAGE.to_string(), options.image.clone()),
    ]);
    ContainerCreateBody {
        image: Some(options.image.clone()),
        user: Some(format!("{SANDBOX_UID}:{SANDBOX_UID}")),
        working_dir: Some("/workspace".to_string()),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_is_hardened_by_default() {
        let config = container_config(&SandboxOptions::new("img:1"));
        let host = config.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(host.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.memory, host.memory_swap);
        assert!(host.pids_limit.is_some_and(|p| p > 0));
        assert!(host.binds.is_none() && host.mounts.is_none(), "no host paths, no Docker socket");
        assert_eq!(config.user.as_deref(), Some("1000:1000"));
        assert_eq!(config.labels.unwrap().get(labels::SANDBOX).map(String::as_str), Some("1"));
    }
}
