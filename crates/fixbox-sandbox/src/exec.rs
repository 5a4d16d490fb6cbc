//! Running a command inside a sandbox: output streamed as it comes and kept up to a cap, a soft timeout
//! that hands back partial output while the command goes on, a hard timeout that kills it with
//! everything it started, and Ctrl+C.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::SandboxError;

/// Default cap on the output kept per stream: enough for a long test log, bounded for the prompt.
pub const DEFAULT_OUTPUT_LIMIT: usize = 256 * 1024;
/// Default hard timeout.
pub const DEFAULT_HARD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What to run and how long to let it run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// The program and its arguments (no shell unless you ask for one: see [`ExecRequest::shell`]).
    pub cmd: Vec<String>,
    /// Working directory; the sandbox's `/workspace` when `None`.
    pub workdir: Option<String>,
    pub env: Vec<(String, String)>,
    /// After this long, [`Sandbox::exec`](crate::Sandbox::exec) returns what the command printed so far
    /// while it keeps running.
    pub soft_timeout: Option<Duration>,
    /// After this long, the command and every process it started are killed.
    pub hard_timeout: Duration,
    /// Bytes kept per stream; the rest is cut from the middle and the cut is marked.
    pub output_limit: usize,
    /// Receives output chunks as they arrive.
    pub on_output: Option<mpsc::UnboundedSender<OutputChunk>>,
}

impl ExecRequest {
    pub fn new(cmd: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            cmd: cmd.into_iter().map(Into::into).collect(),
            workdir: None,
            env: Vec::new(),
            soft_timeout: None,
            hard_timeout: DEFAULT_HARD_TIMEOUT,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            on_output: None,
        }
    }

    /// `sh -c script`.
    pub fn shell(script: impl Into<String>) -> Self {
        Self::new(["sh".to_string(), "-c".to_string(), script.into()])
    }

    pub fn soft_timeout(mut self, after: Duration) -> Self {
        self.soft_timeout = Some(after);
        self
    }

    pub fn hard_timeout(mut self, after: Duration) -> Self {
        self.hard_timeout = after;
        self
    }

    pub fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    pub fn on_output(mut self, sender: mpsc::UnboundedSender<OutputChunk>) -> Self {
        self.on_output = Some(sender);
        self
    }
}

/// A piece of output, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChunk {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// How a command's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited by itself (with any exit code).
    Exited,
    /// The hard timeout killed it.
    HardTimeout,
    /// It was interrupted (SIGINT, as Ctrl+C does) and then exited.
    Interrupted,
    /// It was killed on request.
    Killed,
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` only when Docker could not say (the container went away).
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    /// Whether some output was cut to stay within the limit (the cut is marked in the text).
    pub truncated: bool,
    pub ending: Ending,
    /// The kernel's OOM killer ended a process of this command (exit code 137 then).
    pub oom_killed: bool,
    pub duration: Duration,
}

/// What a command printed up to the soft timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialOutput {
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
    pub elapsed: Duration,
}

/// The result of [`Sandbox::exec`](crate::Sandbox::exec).
#[derive(Debug)]
pub enum ExecStatus {
    Finished(ExecOutput),
    /// The soft timeout passed: here is the output so far, and the command, still running.
    StillRunning {
        partial: PartialOutput,
        running: RunningExec,
    },
}

impl ExecStatus {
    /// Waits for the command to end (or its hard timeout), whatever the soft timeout said.
    pub async fn finish(self) -> Result<ExecOutput, SandboxError> {
        match self {
            Self::Finished(output) => Ok(output),
            Self::StillRunning { running, .. } => running.wait().await,
        }
    }
}

/// A command still running after its soft timeout. Dropping it leaves the command running until it
/// ends or its hard timeout kills it.
#[derive(Debug)]
pub struct RunningExec {
    pub(crate) signals: mpsc::UnboundedSender<Signal>,
    pub(crate) done: oneshot::Receiver<Result<ExecOutput, SandboxError>>,
    pub(crate) output: Arc<Mutex<Captured>>,
    pub(crate) started: Instant,
}

impl RunningExec {
    /// Waits for the command to end or be killed by its hard timeout.
    pub async fn wait(self) -> Result<ExecOutput, SandboxError> {
        self.done.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Ctrl+C: SIGINT to the command and every process it started, then waits for it to end (the hard
    /// timeout still applies to one that ignores it).
    pub async fn interrupt(self) -> Result<ExecOutput, SandboxError> {
        let _ = self.signals.send(Signal::Interrupt);
        self.wait().await
    }

    /// SIGKILL to the command and every process it started.
    pub async fn kill(self) -> Result<ExecOutput, SandboxError> {
        let _ = self.signals.send(Signal::Kill);
        self.wait().await
    }

    /// The output so far.
    pub fn partial(&self) -> PartialOutput {
        lock(&self.output).partial(self.started.elapsed())
    }
}

pub(crate) fn gone() -> SandboxError {
    SandboxError::Sandbox { op: "follow a command", reason: "the task following it ended unexpectedly".into() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Interrupt,
    Kill,
}

impl Signal {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "INT",
            Self::Kill => "KILL",
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Both streams of one command, each capped.
#[derive(Debug)]
pub(crate) struct Captured {
    pub stdout: CappedBuffer,
    pub stderr: CappedBuffer,
}

impl Captured {
    pub fn new(limit: usize) -> Self {
        Self { stdout: CappedBuffer::new(limit), stderr: CappedBuffer::new(limit) }
    }

    pub fn partial(&self, elapsed: Duration) -> PartialOutput {
        PartialOutput {
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
            truncated: self.stdout.truncated() || self.stderr.truncated(),
            elapsed,
        }
    }
}

/// Keeps the first and the last `limit / 2` bytes of a stream: a test log's start says what ran, its
/// end says what failed. What is cut from the middle is counted.
#[derive(Debug)]
pub(crate) struct CappedBuffer {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    half: usize,
    cut: u64,
}

impl CappedBuffer {
    pub fn new(limit: usize) -> Self {
        let half = limit / 2;
        Self { head: Vec::new(), tail: std::collections::VecDeque::new(), half, cut: 0 }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        let room = self.half.saturating_sub(self.head.len());
        let to_head = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        bytes = &bytes[to_head..];
        if bytes.len() >= self.half {
            self.cut += (self.tail.len() + bytes.len() - self.half) as u64;
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.half..]);
            return;
        }
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(self.half);
        self.tail.drain(..over);
        self.cut += over as u64;
    }

    pub fn truncated(&self) -> bool {
        self.cut > 0
    }

    /// The kept text; a cut shows as `[… N bytes cut …]` where it was made.
    pub fn text(&self) -> String {
        let mut bytes = self.head.clone();
        if self.cut > 0 {
            bytes.extend_from_slice(format!("\n[… {} bytes cut …]\n", self.cut).as_bytes());
        }
        bytes.extend(self.tail.iter());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole() {
        let mut buf = CappedBuffer::new(100);
        buf.push(b"hello ");
        buf.push(b"world");
        assert_eq!(buf.text(), "hello world");
        assert!(!buf.truncated());
    }

    #[test]
    fn long_output_keeps_head_and_tail_and_marks_the_cut() {
        let mut buf = CappedBuffer::new(10);
        for chunk in [&b"abc"[..], b"defgh", b"ijklmnop", b"qrstuvwxyz"] {
            buf.push(chunk);
        }
        assert!(buf.truncated());
        assert_eq!(buf.text(), "abcde\n[… 16 bytes cut …]\nvwxyz");
    }

    #[test]
    fn one_huge_chunk_is_capped_too() {
        let mut buf = CappedBuffer::new(8);
        buf.push(&[b'x'; 1000]);
        assert_eq!(buf.text(), format!("xxxx\n[… {} bytes cut …]\nxxxx", 1000 - 8));
    }
}
