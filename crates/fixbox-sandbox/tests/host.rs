//! Against the real Docker Engine that `scripts/setup` starts.

use fixbox_sandbox::{SandboxError, SandboxHost};

#[tokio::test]
async fn connects_and_reads_the_engine_version() {
    let host = SandboxHost::connect().await.expect("scripts/setup starts a Docker daemon");
    let version = host.version().await.unwrap();
    assert!(!version.version.is_empty());
    assert!(version.api_version.starts_with("1."), "{version:?}");
    assert_eq!(version.os, "linux");
    assert!(version.host.starts_with("unix://") || version.host.contains("://"), "{version:?}");
}

#[tokio::test]
async fn a_missing_socket_says_docker_is_not_running_and_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let err = SandboxHost::connect_to(&format!("unix://{}", socket.display())).await.unwrap_err();
    assert!(matches!(err, SandboxError::NoDaemonSocket { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("Docker is not running"), "{message}");
    assert!(message.contains("systemctl start docker"), "{message}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_socket_left_by_a_dead_daemon_is_reported_as_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap()); // the file stays, nobody listens
    let err = SandboxHost::connect_to(&format!("unix://{}", socket.display())).await.unwrap_err();
    assert!(matches!(err, SandboxError::NoDaemonSocket { .. }), "{err:?}");
}
