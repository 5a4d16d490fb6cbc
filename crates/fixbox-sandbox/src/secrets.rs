//! What of a repository stays on the host: files that hold credentials (`.env`, private keys,
//! `.netrc`) and the credentials in `.git/config`. A sandbox runs code no one reviewed, and what it
//! sees can reach a cloud model's prompt.

/// File names (a `*` at one end matches any start or end) withheld by default.
const SECRET_NAMES: &[&str] = &[
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".pgpass",
];

/// Templates of secret files, which hold placeholders and which tests may read.
const TEMPLATE_SUFFIXES: &[&str] = &[".example", ".sample", ".template", ".dist"];

/// Whether a file of this name holds credentials, as far as its name tells.
pub fn is_secret_file(name: &str) -> bool {
    if TEMPLATE_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return false;
    }
    SECRET_NAMES.iter().any(|pattern| match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(end), _) => name.ends_with(end),
        (_, Some(start)) => name.starts_with(start),
        _ => name == *pattern,
    })
}

/// `.git/config` without credentials: user and password dropped from URLs, and `extraheader` lines
/// (where CI keeps an `Authorization` header) left out.
pub fn redact_git_config(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().to_ascii_lowercase().starts_with("extraheader"))
        .map(|line| {
            let Some(scheme) = line.find("://") else { return line.to_string() };
            let rest = &line[scheme + 3..];
            let host_end = rest.find(['/', ' ', '"']).unwrap_or(rest.len());
            match rest[..host_end].rfind('@') {
                Some(at) => format!("{}{}", &line[..scheme + 3], &rest[at + 1..]),
                None => line.to_string(),
            }
        })
        .map(|line| line + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_told_by_name_and_templates_are_not() {
        for name in [".env", ".env.production", "server.pem", "tls.key", "id_ed25519", ".netrc", ".npmrc"] {
            assert!(is_secret_file(name), "{name}");
        }
        for name in [".env.example", "env.py", "keys.py", "id_ed25519.pub", "monkey.py", "README.md", ".envrc.sample"] {
            assert!(!is_secret_file(name), "{name}");
        }
    }

    #[test]
    fn git_config_keeps_its_remotes_without_their_credentials() {
        let config = "[remote \"origin\"]\n\turl = https://ci:ghp_secret@github.com/o/r.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic c2VjcmV0\n[remote \"mirror\"]\n\turl = git@github.com:o/r.git\n";
        let redacted = redact_git_config(config);
        assert!(!redacted.contains("secret") && !redacted.contains("c2VjcmV0"), "{redacted}");
        assert!(redacted.contains("\turl = https://github.com/o/r.git\n"), "{redacted}");
        assert!(redacted.contains("\turl = git@github.com:o/r.git\n"), "an SSH remote has no password: {redacted}");
    }
}
