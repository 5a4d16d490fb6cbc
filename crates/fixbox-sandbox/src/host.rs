use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use serde::Serialize;

use crate::SandboxError;

/// How long bollard waits for the response head of any request (streamed bodies are not limited).
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// How long to wait for the sandbox host to answer a ping or a version query.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to a sandbox host (a Docker daemon), with the API version negotiated down to what it
/// speaks.
#[derive(Debug, Clone)]
pub struct SandboxHost {
    docker: Docker,
    host: String,
}

/// Where the sandbox host is: the Docker daemon sandboxes run on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HostAddress {
    /// `DOCKER_HOST`, else this machine's daemon (see [`SandboxHost::connect`]).
    #[default]
    Local,
    /// A daemon at an address (`tcp://…`, `ssh://…`, `unix://…`); a `tcp://` one over mutual TLS
    /// with `ca.pem`, `cert.pem` and `key.pem` from `certs`.
    At { host: String, certs: Option<PathBuf> },
}

impl HostAddress {
    pub async fn connect(&self) -> Result<SandboxHost, SandboxError> {
        match self {
            Self::Local => SandboxHost::connect().await,
            Self::At { host, certs: Some(certs) } => SandboxHost::connect_to_tls(host, certs).await,
            Self::At { host, certs: None } => SandboxHost::connect_to(host).await,
        }
    }
}

impl std::fmt::Display for HostAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::At { host, .. } => f.write_str(host),
        }
    }
}

/// What the sandbox host says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct DockerVersion {
    /// Where we reached it, e.g. `unix:///var/run/docker.sock`.
    pub host: String,
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
    pub kernel: Option<String>,
}

impl SandboxHost {
    /// Connects to `DOCKER_HOST` when set (unix, tcp with `DOCKER_TLS_VERIFY`, https, ssh), else to the
    /// first local socket that exists: the system one, Docker Desktop's, rootless Docker's. Fails fast
    /// with a clear message when none does, and otherwise waits for the Engine to answer.
    pub async fn connect() -> Result<Self, SandboxError> {
        let host = match std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
            Some(host) => host,
            None => local_socket()?,
        };
        Self::connect_to(&host).await
    }

    /// Connects to one Engine address (`unix://…`, `tcp://…`, `https://…`, `ssh://…`). A `tcp://` host
    /// uses TLS when `DOCKER_TLS_VERIFY` is set, with the certificates in `DOCKER_CERT_PATH`, as the
    /// docker CLI does.
    pub async fn connect_to(host: &str) -> Result<Self, SandboxError> {
        if let Some(socket) = host.strip_prefix("unix://")
            && !std::path::Path::new(socket).exists()
        {
            return Err(SandboxError::NoDaemonSocket { socket: socket.to_string() });
        }
        let docker = Docker::connect_with_host(host)
            .map_err(|source| SandboxError::Connect { host: host.to_string(), source })?;
        Self::negotiate(docker, host).await
    }

    /// Connects to a `tcp://` Engine over mutual TLS with `ca.pem`, `cert.pem` and `key.pem` from
    /// `cert_dir` (what `dockerd --tlsverify` expects of its clients).
    pub async fn connect_to_tls(host: &str, cert_dir: &std::path::Path) -> Result<Self, SandboxError> {
        let docker = Docker::connect_with_ssl(
            host,
            &cert_dir.join("key.pem"),
            &cert_dir.join("cert.pem"),
            &cert_dir.join("ca.pem"),
            REQUEST_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|source| SandboxError::Connect { host: host.to_string(), source })?;
        Self::negotiate(docker, host).await
    }

    /// Settles on the highest API version both sides speak (an older Engine refuses newer paths).
    async fn negotiate(docker: Docker, host: &str) -> Result<Self, SandboxError> {
        let docker = tokio::time::timeout(ANSWER_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| SandboxError::Timeout { host: host.to_string(), seconds: ANSWER_TIMEOUT.as_secs() })?
            .map_err(|source| classify(host, source))?;
        let api = docker.client_version();
        check_api_floor(host, api.major_version, api.minor_version)?;
        Ok(Self { docker, host: host.to_string() })
    }

    /// The Engine's version and platform.
    pub async fn version(&self) -> Result<DockerVersion, SandboxError> {
        let version = tokio::time::timeout(ANSWER_TIMEOUT, self.docker.version())
            .await
            .map_err(|_| SandboxError::Timeout { host: self.host.clone(), seconds: ANSWER_TIMEOUT.as_secs() })?
            .map_err(|source| classify(&self.host, source))?;
        Ok(DockerVersion {
            host: self.host.clone(),
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            os: version.os.unwrap_or_default(),
            arch: version.arch.unwrap_or_default(),
            kernel: version.kernel_version,
        })
    }
}

/// The oldest Engine API Fixbox works with: 1.41, Docker 20.10 (tmpfs options, `init`, cgroup v2).
const API_FLOOR: (usize, usize) = (1, 41);

fn check_api_floor(host: &str, major: usize, minor: usize) -> Result<(), SandboxError> {
    if (major, minor) >= API_FLOOR {
        return Ok(());
    }
    Err(SandboxError::TooOld { host: host.to_string(), found: format!("{major}.{minor}") })
}

impl SandboxHost {
    /// The bollard handle, for the sandbox code in this crate.
    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Whether the Engine has an image with this tag.
    pub async fn has_image(&self, tag: &str) -> Result<bool, SandboxError> {
        match self.docker.inspect_image(tag).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(source) => Err(classify(&self.host, source)),
        }
    }

    /// The OCI runtimes the Engine offers (`runc`, and `runsc` where gVisor is installed).
    pub async fn runtimes(&self) -> Result<Vec<String>, SandboxError> {
        let info = self.docker.info().await.map_err(|source| classify(&self.host, source))?;
        let mut names: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        names.sort();
        Ok(names)
    }
}

/// The first local Engine socket that exists, or the system one (for its error message) when none does.
fn local_socket() -> Result<String, SandboxError> {
    let system = PathBuf::from("/var/run/docker.sock");
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let candidates = [
        Some(system.clone()),
        home.map(|h| h.join(".docker/run/docker.sock")), // Docker Desktop (macOS, Linux)
        std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("docker.sock")), // rootless
    ];
    if cfg!(windows) {
        return Ok("npipe:////./pipe/docker_engine".to_string());
    }
    let found = candidates.into_iter().flatten().find(|p| p.exists());
    match found {
        Some(path) => Ok(format!("unix://{}", path.display())),
        None => Err(SandboxError::NoDaemonSocket { socket: system.display().to_string() }),
    }
}

fn classify(host: &str, source: bollard::errors::Error) -> SandboxError {
    if let Some(socket) = host.strip_prefix("unix://") {
        match io_error_kind(&source) {
            Some(std::io::ErrorKind::PermissionDenied) => {
                return SandboxError::SocketPermission { socket: socket.to_string() };
            }
            // A socket file left behind by a daemon that is gone.
            Some(std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound) => {
                return SandboxError::NoDaemonSocket { socket: socket.to_string() };
            }
            _ => {}
        }
    }
    SandboxError::Engine { host: host.to_string(), source }
}

/// The kind of the first I/O error in `err`'s source chain (bollard wraps hyper, which wraps it).
fn io_error_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_older_than_docker_20_10_is_refused_naming_both_versions() {
        assert!(check_api_floor("unix:///var/run/docker.sock", 1, 41).is_ok());
        assert!(check_api_floor("unix:///var/run/docker.sock", 1, 47).is_ok());
        let err = check_api_floor("tcp://old:2376", 1, 40).unwrap_err().to_string();
        assert!(err.contains("API 1.40, older than Fixbox needs (1.41, Docker 20.10)"), "{err}");
    }
}
