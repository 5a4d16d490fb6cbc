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

/// Folders of test fixtures: a key or a `.env` in them is a test's, made up for it.
const FIXTURE_DIRS: &[&str] = &["test", "tests", "testdata", "test_data", "fixtures", "testing", "spec", "__tests__"];

/// Whether a file of this name holds credentials, as far as its name tells.
pub fn is_secret_file(name: &str) -> bool {
    !TEMPLATE_SUFFIXES.iter().any(|s| name.ends_with(s)) && SECRET_NAMES.iter().any(|p| matches(p, name))
}

/// Whether the file at `relative` (with `/`) stays out of a sandbox: its name says it holds
/// credentials, it is not in a folder of test fixtures, and the user did not share it. `shared`:
/// patterns matched against the path or the name, a `*` at one end matching anything (`*.pem`,
/// `certs/*`, `.env.test`).
pub fn is_withheld(relative: &str, shared: &[String]) -> bool {
    let (folders, name) = relative.rsplit_once('/').unwrap_or(("", relative));
    is_secret_file(name)
        && !folders.split('/').any(|folder| FIXTURE_DIRS.contains(&folder))
        && !shared.iter().any(|pattern| matches(pattern, relative) || matches(pattern, name))
}

fn matches(pattern: &str, text: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(end), _) => text.ends_with(end),
        (_, Some(start)) => text.starts_with(start),
        _ => text == pattern,
    }
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
    fn fixtures_of_tests_and_what_the_user_shares_go_in() {
        assert!(is_withheld("deploy/id_ed25519", &[]));
        assert!(is_withheld(".env", &[]));
        assert!(!is_withheld("tests/certs/server.pem", &[]), "a test's made-up key");
        assert!(!is_withheld("src/testdata/.env", &[]));
        let shared = vec!["certs/*".to_string(), ".env.test".to_string()];
        assert!(!is_withheld("certs/ca.pem", &shared));
        assert!(!is_withheld(".env.test", &shared));
        assert!(is_withheld(".env", &shared));
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
