use fixbox_sandbox::SandboxHost;

use crate::{Check, CheckId};

pub(crate) async fn docker() -> Check {
    let version = match SandboxHost::connect().await {
        Ok(docker) => docker.version().await,
        Err(err) => Err(err),
    };
    match version {
        Ok(v) => Check::ok(CheckId::Docker, format!("Docker Engine {} reachable at {}", v.version, v.host))
            .with_details([
                format!("API {}, {}/{}", v.api_version, v.os, v.arch),
                format!("kernel {}", v.kernel.as_deref().unwrap_or("unknown")),
            ]),
        Err(err) => {
            Check::failed(CheckId::Docker, "Docker is not reachable: fix sessions cannot run", Some(err.to_string()))
        }
    }
}
