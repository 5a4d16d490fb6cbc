//! Building sandbox images from recipes, once: an image is tagged by its recipe's hash and reused
//! while the recipe is unchanged.

mod offline;
mod online;

use crate::{Recipe, SandboxError, SandboxHost};

/// Chooses how images are built (`FIXBOX_SANDBOX_BUILD`: `online`, `offline` or `auto`).
pub const BUILD_METHOD_ENV: &str = "FIXBOX_SANDBOX_BUILD";

/// How to build an image that is not there yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMethod {
    /// A Dockerfile built by the Engine, pulling `debian:<suite>-slim` from a registry.
    Online,
    /// debootstrap from a Debian mirror, then the Engine's image import: no registry needed.
    Offline,
    /// Offline where debootstrap can run (Linux, as root), else online.
    Auto,
}

impl BuildMethod {
    pub fn from_env() -> Result<Self, SandboxError> {
        match std::env::var(BUILD_METHOD_ENV).as_deref() {
            Err(_) | Ok("" | "auto") => Ok(Self::Auto),
            Ok("online") => Ok(Self::Online),
            Ok("offline") => Ok(Self::Offline),
            Ok(other) => Err(SandboxError::BadSetting {
                name: BUILD_METHOD_ENV,
                value: other.to_string(),
                expected: "online, offline, auto",
            }),
        }
    }

    fn resolve(self) -> Self {
        match self {
            Self::Auto if offline::available() => Self::Offline,
            Self::Auto => Self::Online,
            chosen => chosen,
        }
    }
}

/// Returns the tag of `recipe`'s image, building it first if the Engine does not have it.
/// `progress` gets one line per build step (nothing when the image is reused).
pub async fn ensure_image(
    host: &SandboxHost,
    recipe: &Recipe,
    method: BuildMethod,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, SandboxError> {
    let tag = recipe.image_tag();
    if host.has_image(&tag).await? {
        return Ok(tag);
    }
    let method = method.resolve();
    progress(&format!("building sandbox image {tag} ({method:?}): {}", recipe.description));
    match method {
        BuildMethod::Offline => offline::build(host, recipe, &tag, progress).await?,
        BuildMethod::Online | BuildMethod::Auto => online::build(host, recipe, &tag, progress).await?,
    }
    progress(&format!("built sandbox image {tag}"));
    Ok(tag)
}
