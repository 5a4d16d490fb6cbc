use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::ChildGuard;

/// An Xvfb X server of our own on a display number nobody else uses, so desktop tests run the same
/// with or without a desktop session (and never draw on the developer's screen).
#[derive(Debug)]
pub struct VirtualDisplay {
    pub display: String,
    _server: ChildGuard,
}

impl VirtualDisplay {
    pub fn start() -> Result<Self> {
        let number = (90..400)
            .find(|n| {
                !PathBuf::from(format!("/tmp/.X11-unix/X{n}")).exists()
                    && !PathBuf::from(format!("/tmp/.X{n}-lock")).exists()
            })
            .context("no free X display number in :90..:400")?;
        let display = format!(":{number}");
        let child = Command::new("Xvfb")
            .args([display.as_str(), "-screen", "0", "1280x900x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start Xvfb: install it (scripts/setup does: Debian package xvfb)")?;
        let mut server = ChildGuard::new("Xvfb", child);
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
        let start = Instant::now();
        while !socket.exists() {
            server.ensure_running()?;
            if start.elapsed() > Duration::from_secs(20) {
                bail!("Xvfb did not open {} within 20 s", socket.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { display, _server: server })
    }
}
