//! The container a sandbox is: hardened as DESIGN.md's "Sandbox hardening" says.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::RemoveContainerOptionsBuilder;

use crate::recipe::SANDBOX_UID;
use crate::{SandboxOptions, labels};

/// Where a sandbox with network finds this machine's certificate authorities (see
/// `DockerSandbox::trust_host_certificates`), and the variables that point its tools there.
pub(super) const CA_BUNDLE_DIR: &str = "/tmp";
pub(super) const CA_BUNDLE_NAME: &str = "fixbox-ca-certificates.pem";
const CA_ENV: &[&str] = &[
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "CARGO_HTTP_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    "npm_config_cafile",
];

/// This machine's bundle of trusted certificate authorities, where the platform keeps one as a file.
pub(super) fn host_ca_bundle() -> Option<Vec<u8>> {
    let given = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let known = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];
    given.into_iter().chain(known.iter().map(std::path::PathBuf::from)).find_map(|path| std::fs::read(path).ok())
}

/// `ca_bundle`: whether the sandbox gets this machine's certificate authorities (see `CA_ENV`).
pub(super) fn container_config(options: &SandboxOptions, ca_bundle: bool) -> ContainerCreateBody {
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
        network_mode: Some(
            if options.setup.is_empty() && !options.keep_network { "none" } else { "bridge" }.to_string(),
        ),
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
        env: ca_bundle.then(ca_env),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}

fn ca_env() -> Vec<String> {
    CA_ENV.iter().map(|var| format!("{var}={CA_BUNDLE_DIR}/{CA_BUNDLE_NAME}")).collect()
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
        let config = container_config(&SandboxOptions::new("img:1"), false);
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
