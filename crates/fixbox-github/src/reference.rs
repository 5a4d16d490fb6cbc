use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::GitHubError;

/// One issue of one repository: `owner/repo#123`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRef {
    pub owner: String,
    pub repo: String,
    pub number: u64,
}

impl IssueRef {
    /// Whether `text` names a GitHub issue rather than a folder (`github:…` or a github.com URL).
    pub fn is_issue(text: &str) -> bool {
        text.starts_with("github:") || text.starts_with("https://github.com/") || text.starts_with("http://github.com/")
    }
}

impl FromStr for IssueRef {
    type Err = GitHubError;

    /// `owner/repo#123`, `github:owner/repo#123`, or `https://github.com/owner/repo/issues/123`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || GitHubError::NotAnIssue(text.to_string());
        let trimmed = text.trim();
        let (path, number) = if let Some(url) =
            trimmed.strip_prefix("https://github.com/").or_else(|| trimmed.strip_prefix("http://github.com/"))
        {
            let url = url.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
            let mut parts = url.splitn(4, '/');
            let (owner, repo) = (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
            if parts.next() != Some("issues") {
                return Err(bad());
            }
            (format!("{owner}/{repo}"), parts.next().ok_or_else(bad)?.to_string())
        } else {
            let short = trimmed.strip_prefix("github:").unwrap_or(trimmed);
            let (path, number) = short.split_once('#').ok_or_else(bad)?;
            (path.to_string(), number.to_string())
        };
        let (owner, repo) = path.split_once('/').ok_or_else(bad)?;
        let name = |s: &str| {
            !s.is_empty()
                && s.len() <= 100
                && s != "."
                && s != ".."
                && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let number: u64 = number.parse().map_err(|_| bad())?;
        if !name(owner) || !name(repo) || number == 0 {
            return Err(bad());
        }
        Ok(Self { owner: owner.to_string(), repo: repo.trim_end_matches(".git").to_string(), number })
    }
}

impl fmt::Display for IssueRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.owner, self.repo, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issue_is_named_the_ways_people_paste_it() {
        let want = IssueRef { owner: "octo-org".into(), repo: "hello.world".into(), number: 123 };
        for text in [
            "octo-org/hello.world#123",
            "github:octo-org/hello.world#123",
            "https://github.com/octo-org/hello.world/issues/123",
            "https://github.com/octo-org/hello.world/issues/123/",
            "https://github.com/octo-org/hello.world/issues/123#issuecomment-1",
            " github:octo-org/hello.world#123\n",
        ] {
            assert_eq!(text.parse::<IssueRef>().unwrap(), want, "{text}");
        }
        assert_eq!(want.to_string(), "octo-org/hello.world#123");
        for bad in [
            "octo/hello",
            "octo#1",
            "octo/hello#0",
            "octo/hello#x",
            "../etc/passwd#1",
            "octo/..#1",
            "octo/a b#1",
            "https://github.com/octo/hello/pull/4",
            "https://github.com/octo",
        ] {
            let err = bad.parse::<IssueRef>().unwrap_err().to_string();
            assert!(err.contains("owner/repo#123"), "{bad}: {err}");
        }
        assert!(IssueRef::is_issue("github:a/b#1") && IssueRef::is_issue("https://github.com/a/b/issues/1"));
        assert!(!IssueRef::is_issue("./repo") && !IssueRef::is_issue("a/b"));
    }
}
