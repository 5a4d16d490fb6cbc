//! Removes sandbox containers left behind by a Fixbox process that died without cleaning up.

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};

use crate::{DockerEngine, SandboxError, labels};

/// Removes every container labelled as a Fixbox sandbox whose owner process, on this host, is gone.
/// Containers owned by a live process, or by another host sharing a remote Engine, are left alone.
/// Returns the names removed.
pub async fn reap_orphans(engine: &DockerEngine) -> Result<Vec<String>, SandboxError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{}=1", labels::SANDBOX)])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let containers =
        engine.docker().list_containers(Some(options)).await.map_err(|e| SandboxError::docker("list sandboxes", e))?;
    let this_host = this_host();
    let mut removed = Vec::new();
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        let owner_host = labels.get(labels::OWNER_HOST).map(String::as_str).unwrap_or_default();
        let owner_pid = labels.get(labels::OWNER_PID).and_then(|p| p.parse::<i32>().ok());
        let orphaned = owner_host == this_host && owner_pid.is_some_and(|pid| !process_alive(pid));
        let Some(id) = container.id.filter(|_| orphaned) else { continue };
        let name = container.names.and_then(|n| n.into_iter().next()).unwrap_or_else(|| id.clone());
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match engine.docker().remove_container(&id, Some(options)).await {
            Ok(()) => {
                tracing::info!(container = %name, pid = ?owner_pid, "removed a sandbox whose owner is gone");
                removed.push(name.trim_start_matches('/').to_string());
            }
            Err(err) => tracing::warn!(%err, container = %name, "could not remove an orphaned sandbox"),
        }
    }
    Ok(removed)
}

pub(crate) fn this_host() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Whether a process with this pid exists (signal 0 checks without sending anything) and is not a
/// zombie: a killed process stays in the table until its parent reaps it, which a parent that is itself
/// stuck may never do.
fn process_alive(pid: i32) -> bool {
    let exists = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(errno) => errno != nix::errno::Errno::ESRCH,
    };
    exists && !is_zombie(pid)
}

/// Linux: the state in `/proc/<pid>/stat` is Z (zombie) or X (dead).
fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some("Z" | "X"))
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    #[test]
    fn a_killed_process_its_parent_has_not_reaped_counts_as_gone() {
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        assert!(process_alive(pid));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
        // Not waited for: a zombie until `wait`.
        let started = std::time::Instant::now();
        while !is_zombie(pid) {
            assert!(started.elapsed() < std::time::Duration::from_secs(5), "never became a zombie");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!process_alive(pid));
        child.wait().unwrap();
        assert!(!process_alive(pid));
    }
}
