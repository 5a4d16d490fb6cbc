//! Processes on this machine, the same on Linux, macOS and Windows: whether the one that owns a
//! sandbox or supervises an engine still runs, and this machine's name (which owns a sandbox).

use sysinfo::{Pid, ProcessStatus, ProcessesToUpdate, System};

/// Whether the process `pid` runs: it exists and is neither a zombie nor dead. A killed process stays
/// in the table until its parent reaps it, which a parent that is itself stuck may never do.
pub fn process_alive(pid: u32) -> bool {
    let Ok(mut system) = System::new() else { return false };
    let pid = Pid::from_u32(pid);
    system.refresh_processes(ProcessesToUpdate::Some(&[pid]), true);
    system.process(pid).is_some_and(|p| !matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead))
}

/// This machine's name, or empty where the system does not say.
pub fn host_name() -> String {
    System::host_name().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_alive_until_it_ends_and_a_zombie_counts_as_ended() {
        assert!(process_alive(std::process::id()));
        let mut child =
            std::process::Command::new(if cfg!(windows) { "timeout" } else { "sleep" }).arg("60").spawn().unwrap();
        assert!(process_alive(child.id()));
        child.kill().unwrap();
        // Killed, not yet waited for: a zombie on Unix until `wait`, gone on Windows.
        let started = std::time::Instant::now();
        while process_alive(child.id()) {
            assert!(started.elapsed() < std::time::Duration::from_secs(5), "a killed process still counts as alive");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.wait().unwrap();
        assert!(!process_alive(child.id()));
        assert!(!host_name().is_empty());
    }
}
