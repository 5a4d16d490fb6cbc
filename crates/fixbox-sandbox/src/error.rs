/// What went wrong with Docker or a sandbox, in words a user can act on.
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

    #[error(
        "the sandbox image {image} is not there — Fixbox builds it from its recipe; run the session again to build it"
    )]
    ImageMissing { image: String },

    #[error("Docker ran out of disk space while {what} — free space (`docker system prune`) and try again")]
    OutOfDisk { what: String },

    #[error("building the sandbox image {tag} failed: {reason}")]
    Build { tag: String, reason: String },

    #[error("no sandbox recipe named {name:?} (known: {known})")]
    UnknownRecipe { name: String, known: String },

    #[error("the sandbox recipe is not valid: {reason}")]
    BadRecipe { reason: String },

    #[error("{name}={value} is not a valid setting; use one of: {expected}")]
    BadSetting { name: &'static str, value: String, expected: &'static str },

    #[error("the sandbox could not {op}: {reason}")]
    Sandbox { op: &'static str, reason: String },

    #[error(
        "the sandbox runtime {runtime:?} is not installed in Docker (it has: {available}) — install it or turn it off"
    )]
    RuntimeMissing { runtime: String, available: String },

    #[error("cannot copy {path}: {source}")]
    Copy { path: String, source: std::io::Error },

    #[error(
        "Docker at {host} speaks Engine API {found}, older than Fixbox needs (1.41, Docker 20.10): update Docker \
         Engine (https://docs.docker.com/engine/install/)"
    )]
    TooOld { host: String, found: String },
}

impl SandboxError {
    pub(crate) fn build(tag: &str, reason: impl Into<String>) -> Self {
        Self::Build { tag: tag.to_string(), reason: reason.into() }
    }

    /// A Docker API failure during `op` on a sandbox, with out-of-disk and missing-image told apart.
    pub(crate) fn docker(op: &'static str, err: bollard::errors::Error) -> Self {
        let text = err.to_string();
        if text.contains("no space left on device") {
            return Self::OutOfDisk { what: op.to_string() };
        }
        if let bollard::errors::Error::DockerResponseServerError { status_code: 404, message } = &err
            && message.contains("No such image")
        {
            let image = message.rsplit(' ').next().unwrap_or_default().to_string();
            return Self::ImageMissing { image };
        }
        if let bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, message } = &err
            && (message.contains("is not running") || message.contains("No such container"))
        {
            return Self::Sandbox {
                op,
                reason: "its container stopped (Docker was restarted, or the container was stopped or removed \
                         outside Fixbox); run the session again"
                    .into(),
            };
        }
        Self::Sandbox { op, reason: text }
    }
}
