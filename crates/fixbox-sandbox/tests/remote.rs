//! A remote Engine (`DOCKER_HOST=tcp://…`), plain and over mutual TLS. The "remote" is this machine's
//! Engine behind socat (plain) or stunnel (TLS) on a loopback port, so the whole path (TCP, TLS handshake, the API and exec's
//! connection upgrade) is real.
#![expect(clippy::unwrap_used, reason = "test helpers: a failure stops the test with its message")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fixbox_sandbox::{DockerEngine, DockerSandbox, ExecRequest, Sandbox, SandboxError, SandboxOptions};

struct Forwarder(Child);

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// socat from a loopback port to the local Engine's socket.
fn forward() -> (Forwarder, u16) {
    let port = free_port();
    let child = Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg("UNIX-CONNECT:/var/run/docker.sock")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(port, child)
}

/// stunnel from a loopback port to the local Engine's socket, requiring a client certificate signed
/// by the CA in `certs` (what `dockerd --tlsverify` does).
fn forward_tls(certs: &Path) -> (Forwarder, u16) {
    let port = free_port();
    let config = format!(
        "foreground = yes\npid =\n[docker]\naccept = 127.0.0.1:{port}\nconnect = /var/run/docker.sock\n\
         cert = {dir}/server-cert.pem\nkey = {dir}/server-key.pem\nCAfile = {dir}/ca.pem\nverifyChain = yes\nrequireCert = yes\n",
        dir = certs.display()
    );
    std::fs::write(certs.join("stunnel.conf"), config).unwrap();
    let child = Command::new("stunnel")
        .arg(certs.join("stunnel.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(port, child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(port: u16, child: Child) -> (Forwarder, u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (Forwarder(child), port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the forwarder did not listen on {port}");
}

async fn prove_it_works(engine: &DockerEngine, host: &str) {
    let version = engine.version().await.unwrap();
    assert_eq!(version.host, host);
    assert!(!version.version.is_empty());
    // Exec upgrades the HTTP connection to a raw stream: that must cross the tunnel too.
    let image = std::process::Command::new("docker")
        .args(["images", "--format", "{{.Repository}}:{{.Tag}}", "fixbox-sandbox-python"])
        .output()
        .unwrap();
    let image = String::from_utf8(image.stdout).unwrap().lines().next().map(String::from);
    let Some(image) = image else { return }; // the sandbox tests build it; the API round trip above suffices
    let sandbox = DockerSandbox::create(engine, &SandboxOptions::new(image)).await.unwrap();
    let out = sandbox.exec(ExecRequest::shell("echo over the wire")).await.unwrap().finish().await.unwrap();
    assert_eq!(out.stdout, "over the wire\n");
    sandbox.destroy().await.unwrap();
}

#[tokio::test]
async fn a_tcp_docker_host_works() {
    let (_socat, port) = forward();
    let host = format!("tcp://127.0.0.1:{port}");
    let engine = DockerEngine::connect_to(&host).await.unwrap();
    prove_it_works(&engine, &host).await;
}

#[tokio::test]
async fn a_tcp_docker_host_with_mutual_tls_works_and_refuses_a_stranger() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let (_stunnel, port) = forward_tls(certs.path());
    let host = format!("tcp://127.0.0.1:{port}");
    let engine = DockerEngine::connect_to_tls(&host, certs.path()).await.unwrap();
    prove_it_works(&engine, &host).await;

    // A client whose certificate the CA did not sign is turned away.
    let stranger = tempfile::tempdir().unwrap();
    make_certs(stranger.path());
    std::fs::copy(certs.path().join("ca.pem"), stranger.path().join("ca.pem")).unwrap();
    let err = DockerEngine::connect_to_tls(&host, stranger.path()).await.unwrap_err();
    assert!(matches!(err, SandboxError::Engine { .. } | SandboxError::Connect { .. }), "{err:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as `dockerd --tlsverify` uses.
fn make_certs(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=fixbox test CA",
    ]);
    for (name, ext) in [("server", "server.ext"), ("client", "client.ext")] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            &format!("{name}-cert.pem"),
            "-days",
            "1",
            "-extfile",
            ext,
        ]);
    }
    std::fs::rename(dir.join("client-cert.pem"), dir.join("cert.pem")).unwrap();
    std::fs::rename(dir.join("client-key.pem"), dir.join("key.pem")).unwrap();
}
