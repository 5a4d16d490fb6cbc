//! The container a sandbox is: hardened as DESIGN.md's "Sandbox hardening" says.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::RemoveContainerOptionsBuilder;

use crate::recipe::SANDBOX_UID;
use crate::{SandboxOptions, labels};

pub(super) fn container_config(options: &SandboxOptions) -> ContainerCreateBody {
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

/// Removes a container and its anonymous volumes, running or not.
pub(super) async fn remove_container(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    docker.remove_container(id, Some(RemoveContainerOptionsBuilder::default().force(true).v(true).build())).await
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
