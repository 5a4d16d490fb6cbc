use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;

use crate::{Recipe, SandboxError, SandboxHost};

/// Builds `recipe`'s Dockerfile through the Engine API (the base image comes from the registry).
pub(crate) async fn build(
    host: &SandboxHost,
    recipe: &Recipe,
    tag: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), SandboxError> {
    let context = dockerfile_context(&recipe.dockerfile()).map_err(|e| SandboxError::build(tag, e.to_string()))?;
    let options = BuildImageOptionsBuilder::default().t(tag).rm(true).forcerm(true).build();
    let mut stream = host.docker().build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| SandboxError::build(tag, e.to_string()))?;
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            return Err(SandboxError::build(tag, error));
        }
        if let Some(line) = info.stream.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            progress(line);
        }
    }
    Ok(())
}

/// A build context holding only the Dockerfile, as a tar archive.
fn dockerfile_context(dockerfile: &str) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    archive.into_inner()
}
