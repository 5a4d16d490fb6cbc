//! Removes sandbox containers left behind by a Fixbox process that died without cleaning up.

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};

use crate::{SandboxError, SandboxHost, labels};

/// Removes every container labelled as a Fixbox sandbox whose owner process, on this host, is gone.
/// Containers owned by a live process, or by another host sharing a remote Engine, are left alone.
/// Returns the names removed.
pub async fn reap_orphans(host: &SandboxHost) -> Result<Vec<String>, SandboxError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{}=1", labels::SANDBOX)])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let containers =
        host.docker().list_containers(Some(options)).await.map_err(|e| SandboxError::docker("list sandboxes", e))?;
    let this_host = this_host();
    let mut removed = Vec::new();
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        let owner_host = labels.get(labels::OWNER_HOST).map(String::as_str).unwrap_or_default();
        let owner_pid = labels.get(labels::OWNER_PID).and_then(|p| p.parse::<u32>().ok());
        let orphaned = owner_host == this_host && owner_pid.is_some_and(|pid| !fixbox_hardware::process_alive(pid));
        let Some(id) = container.id.filter(|_| orphaned) else { continue };
        let name = container.names.and_then(|n| n.into_iter().next()).unwrap_or_else(|| id.clone());
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match host.docker().remove_container(&id, Some(options)).await {
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
    fixbox_hardware::host_name()
}
