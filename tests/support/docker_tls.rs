//! A remote Docker Engine on this machine: its API on a loopback TCP port, plain (socat) or over mutual
//! TLS (stunnel, with a CA and certificates made for the test), in front of the local Engine's socket.
//! The whole client path (TCP, the TLS handshake, the API, exec's connection upgrade) is real.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::{ChildGuard, free_port, wait_for_port};

/// socat from a loopback port to the local Engine's socket; the port.
pub fn forward() -> Result<(ChildGuard, u16)> {
    let port = free_port()?;
    let child = Command::new("socat")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg("UNIX-CONNECT:/var/run/docker.sock")
        .stderr(Stdio::null())
        .spawn()?;
    listening(ChildGuard::new("socat", child), port)
}

/// stunnel from a loopback port to the local Engine's socket, requiring a client certificate signed
/// by the CA in `certs` (what `dockerd --tlsverify` does); the port.
pub fn forward_tls(certs: &Path) -> Result<(ChildGuard, u16)> {
    let port = free_port()?;
    let config = format!(
        "foreground = yes\npid =\n[docker]\naccept = 127.0.0.1:{port}\nconnect = /var/run/docker.sock\n\
         cert = {dir}/server-cert.pem\nkey = {dir}/server-key.pem\nCAfile = {dir}/ca.pem\nverifyChain = yes\nrequireCert = yes\n",
        dir = certs.display()
    );
    std::fs::write(certs.join("stunnel.conf"), config)?;
    let child =
        Command::new("stunnel").arg(certs.join("stunnel.conf")).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    listening(ChildGuard::new("stunnel", child), port)
}

fn listening(mut guard: ChildGuard, port: u16) -> Result<(ChildGuard, u16)> {
    wait_for_port(port, &mut guard, Duration::from_secs(5))?;
    Ok((guard, port))
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as `dockerd --tlsverify` uses.
pub fn make_certs(dir: &Path) -> Result<()> {
    let openssl = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl").args(args).current_dir(dir).output()?;
        ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")?;
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")?;
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
    ])?;
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
        ])?;
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
        ])?;
    }
    std::fs::rename(dir.join("client-cert.pem"), dir.join("cert.pem"))?;
    std::fs::rename(dir.join("client-key.pem"), dir.join("key.pem"))?;
    Ok(())
}
