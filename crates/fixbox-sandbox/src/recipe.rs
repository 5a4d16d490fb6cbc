//! Sandbox image recipes (`resources/sandbox/<name>/recipe.toml`): which Debian release and packages an
//! image holds. One recipe feeds both builds — a Dockerfile for machines that reach a registry, and
//! debootstrap + image import for machines that do not — so the two cannot drift apart.

use std::fmt::Write as _;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::SandboxError;

/// The user commands run as inside a sandbox: never root.
pub const SANDBOX_UID: u32 = 1000;
pub const SANDBOX_USER: &str = "fixbox";

/// Bumped when the way images are built changes, so that every recipe gets a new tag.
const BUILDER_VERSION: &str = "2";

/// The recipes that ship with Fixbox, by name.
const BUILTIN: &[(&str, &str)] = &[
    ("python", include_str!("../../../resources/sandbox/python/recipe.toml")),
    ("node", include_str!("../../../resources/sandbox/node/recipe.toml")),
    ("rust", include_str!("../../../resources/sandbox/rust/recipe.toml")),
    ("go", include_str!("../../../resources/sandbox/go/recipe.toml")),
];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    pub description: String,
    /// Debian release, e.g. `bookworm`.
    pub suite: String,
    /// Debian packages on top of the base system.
    pub packages: Vec<String>,
    #[serde(skip)]
    source: String,
}

impl Recipe {
    /// A recipe that ships with Fixbox.
    pub fn builtin(name: &str) -> Result<Self, SandboxError> {
        let (_, source) = BUILTIN.iter().find(|(n, _)| *n == name).ok_or_else(|| SandboxError::UnknownRecipe {
            name: name.to_string(),
            known: BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        })?;
        Self::parse(source)
    }

    /// Reads a recipe from its TOML text.
    pub fn parse(source: &str) -> Result<Self, SandboxError> {
        let mut recipe: Recipe =
            toml::from_str(source).map_err(|e| SandboxError::BadRecipe { reason: e.to_string() })?;
        let valid_name =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let valid_package =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !valid_name(&recipe.name) || !valid_name(&recipe.suite) {
            return Err(SandboxError::BadRecipe {
                reason: "name and suite must be lowercase letters, digits and -".into(),
            });
        }
        if let Some(bad) = recipe.packages.iter().find(|p| !valid_package(p)) {
            return Err(SandboxError::BadRecipe { reason: format!("{bad:?} is not a Debian package name") });
        }
        recipe.source = source.to_string();
        Ok(recipe)
    }

    /// The image tag: `fixbox-sandbox-<name>:<first 12 hex digits of the recipe's hash>`. The same recipe
    /// always gives the same tag, so a built image is found again and reused.
    pub fn image_tag(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(BUILDER_VERSION.as_bytes());
        hasher.update(b"\0");
        hasher.update(self.source.as_bytes());
        let digest = hasher.finalize();
        let hex = digest.iter().take(6).fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        format!("fixbox-sandbox-{}:{hex}", self.name)
    }

    /// The Dockerfile of the online build.
    pub fn dockerfile(&self) -> String {
        format!(
            "FROM debian:{suite}-slim\n\
             RUN apt-get update \\\n && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\\n \
             && rm -rf /var/lib/apt/lists/*\n\
             RUN echo '{user}:x:{uid}:{uid}:Fixbox sandbox:/tmp:/bin/sh' >> /etc/passwd \\\n \
             && echo '{user}:x:{uid}:' >> /etc/group\n\
             {config}",
            suite = self.suite,
            packages = self.packages.join(" "),
            user = SANDBOX_USER,
            uid = SANDBOX_UID,
            config = IMAGE_CONFIG.iter().map(|line| format!("{line}\n")).collect::<String>(),
        )
    }
}

/// Image settings both builds apply (Dockerfile lines, and `changes` of the offline import).
pub(crate) const IMAGE_CONFIG: &[&str] = &[
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV HOME=/tmp",
    "ENV PYTHONDONTWRITEBYTECODE=1",
    "WORKDIR /workspace",
    "CMD [\"sleep\", \"infinity\"]",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_python_recipe_parses_and_has_a_stable_tag() {
        let recipe = Recipe::builtin("python").unwrap();
        assert!(recipe.packages.iter().any(|p| p == "python3-pytest"));
        let tag = recipe.image_tag();
        assert!(tag.starts_with("fixbox-sandbox-python:"), "{tag}");
        assert_eq!(tag.len(), "fixbox-sandbox-python:".len() + 12);
        assert_eq!(Recipe::builtin("python").unwrap().image_tag(), tag);
    }

    #[test]
    fn any_change_to_a_recipe_changes_its_tag() {
        let a =
            Recipe::parse("name = \"x\"\ndescription = \"\"\nsuite = \"bookworm\"\npackages = [\"git\"]\n").unwrap();
        let b =
            Recipe::parse("name = \"x\"\ndescription = \"\"\nsuite = \"bookworm\"\npackages = [\"git\", \"make\"]\n")
                .unwrap();
        assert_ne!(a.image_tag(), b.image_tag());
    }

    #[test]
    fn bad_recipes_say_what_is_wrong() {
        let err =
            Recipe::parse("name = \"x\"\ndescription = \"\"\nsuite = \"bookworm\"\npackages = [\"git; rm -rf /\"]\n")
                .unwrap_err();
        assert!(err.to_string().contains("not a Debian package name"), "{err}");
        let err = Recipe::builtin("cobol").unwrap_err();
        assert!(err.to_string().contains("python"), "{err}");
        assert!(Recipe::parse("name = \"x\"").is_err());
    }

    #[test]
    fn the_dockerfile_installs_the_packages_and_adds_the_user() {
        let dockerfile = Recipe::builtin("python").unwrap().dockerfile();
        assert!(dockerfile.starts_with("FROM debian:bookworm-slim\n"));
        assert!(dockerfile.contains("python3-pytest"));
        assert!(dockerfile.contains("fixbox:x:1000:1000"));
        assert!(dockerfile.contains("CMD [\"sleep\", \"infinity\"]"));
    }
}
