//! A remote Docker Engine (`DOCKER_HOST=tcp://…`), plain and over mutual TLS: this machine's Engine
//! behind a loopback forwarder (see `fixbox_e2e::docker_tls`).
#![expect(clippy::unwrap_used, reason = "a failure stops the test with its message")]

use fixbox_e2e::docker_tls::{forward, forward_tls, make_certs};
use fixbox_sandbox::{DockerSandbox, ExecRequest, Sandbox, SandboxError, SandboxHost, SandboxOptions};

async fn prove_it_works(docker: &SandboxHost, host: &str) {
    let version = docker.version().await.unwrap();
    assert_eq!(version.host, host);
    assert!(!version.version.is_empty());
    // Exec upgrades the HTTP connection to a raw stream: that must cross the tunnel too.
    let image = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}", "fixbox-sandbox-python"])
        .output()
        .unwrap();
    let image = String::from_utf8(image.stdout).unwrap().lines().next().map(String::from);
    let Some(image) = image else { return }; // the sandbox tests build it; the API round trip above suffices
    let sandbox = DockerSandbox::create(docker, &SandboxOptions::new(image)).await.unwrap();
    let out = sandbox.exec(ExecRequest::shell("echo over the wire")).await.unwrap().finish().await.unwrap();
    assert_eq!(out.stdout, "over the wire\n");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_tcp_docker_host_works() {
    let (_socat, port) = forward().unwrap();
    let host = format!("tcp://127.0.0.1:{port}");
    let docker = SandboxHost::connect_to(&host).await.unwrap();
    prove_it_works(&docker, &host).await;
}

#[tokio::test]
async fn a_tcp_docker_host_with_mutual_tls_works_and_refuses_a_stranger() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path()).unwrap();
    let (_stunnel, port) = forward_tls(certs.path()).unwrap();
    let host = format!("tcp://127.0.0.1:{port}");
    let docker = SandboxHost::connect_to_tls(&host, certs.path()).await.unwrap();
    prove_it_works(&docker, &host).await;

    // A client whose certificate the CA did not sign is turned away.
    let stranger = tempfile::tempdir().unwrap();
    make_certs(stranger.path()).unwrap();
    std::fs::copy(certs.path().join("ca.pem"), stranger.path().join("ca.pem")).unwrap();
    let err = SandboxHost::connect_to_tls(&host, stranger.path()).await.unwrap_err();
    assert!(matches!(err, SandboxError::Engine { .. } | SandboxError::Connect { .. }), "{err:?}");
}
