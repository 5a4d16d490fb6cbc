/// What went wrong talking to Docker, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "Docker is not running (no socket at {socket}) — start Docker Desktop or run `sudo systemctl start docker`"
    )]
    NoDaemonSocket { socket: String },

    #[error(
        "permission denied on the Docker socket {socket} — add yourself to the `docker` group \
         (`sudo usermod -aG docker $USER`, then log in again) or use rootless Docker"
    )]
    SocketPermission { socket: String },

    #[error("Docker at {host} did not answer within {seconds} s — is the daemon starting, or is the host unreachable?")]
    Timeout { host: String, seconds: u64 },

    #[error("cannot connect to Docker at {host}: {source} — check DOCKER_HOST (and DOCKER_CERT_PATH for TLS)")]
    Connect { host: String, source: bollard::errors::Error },

    #[error("Docker at {host} answered with an error: {source}")]
    Engine { host: String, source: bollard::errors::Error },
}
