use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Stops and reaps its child when dropped, so a failing test leaves no process behind: SIGTERM first,
/// so a helper can stop its own children (tauri-driver stops WebKitWebDriver), then SIGKILL.
#[derive(Debug)]
pub struct ChildGuard {
    name: &'static str,
    child: Child,
}

impl ChildGuard {
    pub fn new(name: &'static str, child: Child) -> Self {
        Self { name, child }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited (with its status), so a helper that died on start
    /// is reported as such instead of as a timeout.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// Waits until something accepts connections on 127.0.0.1:`port`, checking that `owner` stays alive.
pub fn wait_for_port(port: u16, owner: &mut ChildGuard, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        owner.ensure_running()?;
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{} did not listen on port {port} within {timeout:?}", owner.name)
}
