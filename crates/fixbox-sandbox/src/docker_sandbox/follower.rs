//! Following one exec to its end: its output, its hard timeout, signals to its whole process tree,
//! and whether the OOM killer ended it. Also the low-level exec calls the sandbox's plumbing uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::SandboxError;
use crate::exec::{Captured, Ending, ExecOutput, OutputChunk, Signal, gone, lock};
use crate::recipe::SANDBOX_UID;

/// Marks every process of one exec (it is inherited by all they start), so a timeout or Ctrl+C can
/// reach the whole tree, even processes that left its process group.
pub(super) const EXEC_MARKER: &str = "FIXBOX_EXEC";

/// Sends signal `$1` to every process whose environment holds `FIXBOX_EXEC=$2`, in up to `$3` rounds
/// (processes forked during a round are caught by the next). Exits 0 once none is left (or, for one
/// round, once it was sent), 3 when rounds ran out with some still there.
///
/// Perl (essential in every Debian image) does it without forking, so it works while a fork bomb holds
/// every pid the sandbox may have; only its own start needs one. Without perl, a shell loop does it
/// with one fork per round, and dies (exit 2) when that fork fails: the caller then tries again. It
/// goes by what grep printed, not its status: grep says 2 when a process it was reading exited, which
/// a fork bomb's processes do all the time.
const SIGNAL_TREE: &str = r#"command -v perl >/dev/null 2>&1 && exec perl -e "$4" "$1" "$2" "$3"
i=0
while [ "$i" -lt "$3" ]; do
  found=$(grep -lzxF "FIXBOX_EXEC=$2" /proc/[0-9]*/environ 2>/dev/null)
  [ -n "$found" ] || exit 0
  for f in $found; do p=${f#/proc/}; kill -s "$1" "${p%/environ}" 2>/dev/null; done
  i=$((i + 1))
done
[ "$3" -eq 1 ] || exit 3"#;

/// [`SIGNAL_TREE`] in Perl: the same arguments and exit codes.
const SIGNAL_TREE_PERL: &str = r#"my ($signal, $marker, $rounds) = @ARGV;
my $wanted = "\0FIXBOX_EXEC=$marker\0";
for (1 .. $rounds) {
    opendir(my $proc, "/proc") or exit 1;
    my @marked;
    for my $pid (grep { /^\d+$/ } readdir $proc) {
        open(my $environ, "<", "/proc/$pid/environ") or next;
        my $env = do { local $/; <$environ> } // "";
        push @marked, $pid if index("\0$env", $wanted) >= 0;
    }
    exit 0 unless @marked;
    kill $signal, @marked;
}
exit($rounds == 1 ? 0 : 3);"#;

/// Prints the memory cgroup's count of OOM kills (cgroup v2, then v1).
const OOM_KILLS: &str = r#"sed -n 's/^oom_kill //p' /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null | head -n 1"#;

/// How long after SIGKILL a command's output may stay open before we stop following it.
const KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Follows one exec to its end: collects output, enforces the hard timeout, forwards signals.
pub(super) struct Follower {
    pub(super) docker: Docker,
    pub(super) container: String,
    pub(super) exec_id: String,
    pub(super) marker: String,
    pub(super) captured: Arc<Mutex<Captured>>,
    pub(super) on_output: Option<mpsc::UnboundedSender<OutputChunk>>,
    pub(super) oom_kills_seen: Arc<AtomicU64>,
}

pub(super) type OutputStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + Send>>;

impl Follower {
    pub(super) async fn follow(
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
    /// process is left. The signaller is tried again while the sandbox has no pid to spare for it (to
    /// start, or to fork in the shell version) or processes outlived its rounds.
    async fn signal(&self, signal: Signal) -> Result<(), SandboxError> {
        let rounds = if signal == Signal::Kill { "200" } else { "1" };
        let cmd = ["sh", "-c", SIGNAL_TREE, "sh", signal.name(), &self.marker, rounds, SIGNAL_TREE_PERL];
        let mut last_error = None;
        for _ in 0..100 {
            match start_exec(&self.docker, &self.container, &cmd, Vec::new(), None, false).await {
                Ok((exec_id, output, _)) => {
                    let (_, stderr) = collect_output(output).await?;
                    match exit_code(&self.docker, &exec_id).await? {
                        Some(0) => return Ok(()),
                        code => {
                            let said = String::from_utf8_lossy(&stderr);
                            last_error = Some(SandboxError::Sandbox {
                                op: "signal a command",
                                reason: format!("the signaller exited with {code:?}: {}", said.trim()),
                            });
                        }
                    }
                }
                Err(err) => last_error = Some(err),
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err(last_error.unwrap_or_else(gone))
    }

    /// Whether the memory cgroup counts an OOM kill not yet blamed on an earlier exec.
    async fn new_oom_kill(&self) -> bool {
        let cmd = ["sh", "-c", OOM_KILLS];
        let Ok((_, output, _)) = start_exec(&self.docker, &self.container, &cmd, Vec::new(), None, false).await else {
            return false;
        };
        let Ok((stdout, _)) = collect_output(output).await else { return false };
        let count: u64 = String::from_utf8_lossy(&stdout).trim().parse().unwrap_or(0);
        self.oom_kills_seen.fetch_max(count, Ordering::SeqCst) < count
    }
}

pub(super) type Started = (String, OutputStream, Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>);

/// Creates and starts an attached exec as the sandbox user.
pub(super) async fn start_exec(
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

/// All of an exec's output, stdout and stderr apart, to its end.
pub(super) async fn collect_output(mut output: OutputStream) -> Result<(Vec<u8>, Vec<u8>), SandboxError> {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(message) = next_stdout(&mut output, &mut stderr).await? {
        stdout.extend_from_slice(&message);
    }
    Ok((stdout, stderr))
}

/// The next piece of a command's stdout, `None` at its end; what it writes to stderr meanwhile goes to
/// `stderr`.
pub(super) async fn next_stdout(
    output: &mut OutputStream,
    stderr: &mut Vec<u8>,
) -> Result<Option<bytes::Bytes>, SandboxError> {
    while let Some(item) = output.next().await {
        match item.map_err(|e| SandboxError::docker("read a command's output", e))? {
            bollard::container::LogOutput::StdOut { message } => return Ok(Some(message)),
            bollard::container::LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            _ => {}
        }
    }
    Ok(None)
}

/// How long Docker may take to record an exec's exit after its output ended. On a loaded machine it
/// takes seconds; reading "no exit code" instead would judge a passing run as failing.
const EXIT_RECORDED_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The exit code of a finished exec. Its output ends a moment before Docker records the exit.
pub(super) async fn exit_code(docker: &Docker, exec_id: &str) -> Result<Option<i64>, SandboxError> {
    let started = std::time::Instant::now();
    let mut wait = std::time::Duration::from_millis(2);
    loop {
        let inspect = docker.inspect_exec(exec_id).await.map_err(|e| SandboxError::docker("read an exit code", e))?;
        if inspect.running != Some(true) {
            return Ok(inspect.exit_code);
        }
        if started.elapsed() > EXIT_RECORDED_WITHIN {
            return Err(SandboxError::Sandbox {
                op: "read an exit code",
                reason: format!(
                    "Docker had not recorded the command's exit {} s after its output ended; the machine may be \
                     overloaded: run fewer sessions at once",
                    EXIT_RECORDED_WITHIN.as_secs()
                ),
            });
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_millis(250));
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    use super::{SIGNAL_TREE, SIGNAL_TREE_PERL};

    /// Three processes on this machine marked as an exec's would be: a shell and its two children (the
    /// `true` keeps the shell from becoming its last command).
    fn marked(marker: &str) -> Child {
        let shell =
            Command::new("sh").args(["-c", "sleep 60 & sleep 61; true"]).env("FIXBOX_EXEC", marker).spawn().unwrap();
        let started = Instant::now();
        while marked_left(marker) < 3 {
            assert!(started.elapsed() < Duration::from_secs(10), "the marked processes did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        shell
    }

    fn signal_tree(marker: &str, path: &str) -> Option<i32> {
        let status = Command::new("/bin/sh")
            .args(["-c", SIGNAL_TREE, "sh", "KILL", marker, "200", SIGNAL_TREE_PERL])
            .env("PATH", path)
            .status()
            .unwrap();
        status.code()
    }

    fn marked_left(marker: &str) -> usize {
        let needle = format!("FIXBOX_EXEC={marker}");
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| std::fs::read(entry.ok()?.path().join("environ")).ok())
            .filter(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
            .count()
    }

    /// Both versions of the signaller, Perl's and the shell's (taken where perl is missing), kill every
    /// marked process and no other.
    #[test]
    fn the_signaller_kills_the_marked_processes_and_no_others() {
        let no_perl = tempfile::tempdir().unwrap();
        for tool in ["grep", "sleep"] {
            let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap();
            let found = String::from_utf8(found.stdout).unwrap();
            std::os::unix::fs::symlink(found.trim(), no_perl.path().join(tool)).unwrap();
        }
        let full_path = std::env::var("PATH").unwrap();
        for path in [full_path.as_str(), no_perl.path().to_str().unwrap()] {
            let (marker, bystander_marker) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
            let (mut target, mut bystander) = (marked(&marker), marked(&bystander_marker));
            assert_eq!(signal_tree(&marker, path), Some(0), "PATH={path}");
            assert_eq!(marked_left(&marker), 0, "PATH={path}");
            target.wait().unwrap();
            assert_eq!(marked_left(&bystander_marker), 3, "PATH={path}");
            bystander.kill().unwrap();
            bystander.wait().unwrap();
            assert_eq!(signal_tree(&bystander_marker, path), Some(0), "its `sleep 60` is gone too");
        }
    }
}
