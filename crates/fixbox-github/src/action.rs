//! The GitHub Action's decision: whether the event a workflow runs on asks Fixbox to fix an issue. A
//! label (`fixbox`) on an issue asks; so does a comment that starts with `/fixbox` from the repository's
//! owners, members or collaborators. Anyone else's comment, and comments on pull requests, do not: a
//! stranger must not be able to set a self-hosted runner to work.

use serde::Deserialize;

use crate::api::{Label, PullRequestLink, User};
use crate::{GitHubError, IssueRef};

/// What the event asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Fix(IssueRef),
    /// Nothing, and why (said in the workflow's log).
    Skip(String),
}

#[derive(Deserialize)]
struct Event {
    action: String,
    issue: EventIssue,
    label: Option<Label>,
    comment: Option<EventComment>,
    repository: EventRepository,
}

#[derive(Deserialize)]
struct EventIssue {
    number: u64,
    state: String,
    pull_request: Option<PullRequestLink>,
}

#[derive(Deserialize)]
struct EventComment {
    body: String,
    user: User,
    author_association: String,
}

#[derive(Deserialize)]
struct EventRepository {
    full_name: String,
}

/// Who may ask by comment.
const TRUSTED: [&str; 3] = ["OWNER", "MEMBER", "COLLABORATOR"];

/// The decision for the event `name` (`GITHUB_EVENT_NAME`) with payload `payload` (the file at
/// `GITHUB_EVENT_PATH`).
pub fn decide(name: &str, payload: &str, label: &str, command: &str) -> Result<Decision, GitHubError> {
    if name != "issues" && name != "issue_comment" {
        return Ok(Decision::Skip(format!("this action runs on `issues` and `issue_comment` events, not `{name}`")));
    }
    let event: Event = serde_json::from_str(payload)
        .map_err(|e| GitHubError::Answer { action: format!("read the `{name}` event"), reason: e.to_string() })?;
    if event.issue.pull_request.is_some() {
        return Ok(Decision::Skip("the event is on a pull request, not an issue".into()));
    }
    if event.issue.state != "open" {
        return Ok(Decision::Skip(format!("issue #{} is {}", event.issue.number, event.issue.state)));
    }
    let asked = match (name, event.action.as_str()) {
        ("issues", "labeled") => match &event.label {
            Some(l) if l.name == label => Ok(()),
            Some(l) => Err(format!("the label added is `{}`, not `{label}`", l.name)),
            None => Err("the event names no label".to_string()),
        },
        ("issue_comment", "created") => match &event.comment {
            Some(c) if c.body.split_whitespace().next() != Some(command) => {
                Err(format!("the comment does not start with `{command}`"))
            }
            Some(c) if !TRUSTED.contains(&c.author_association.as_str()) => Err(format!(
                "only the repository's owners, members and collaborators can ask; {} is {}",
                c.user.login,
                c.author_association.to_lowercase().replace('_', " ")
            )),
            Some(_) => Ok(()),
            None => Err("the event has no comment".to_string()),
        },
        (_, action) => Err(format!("the issue was {action}")),
    };
    if let Err(why) = asked {
        return Ok(Decision::Skip(why));
    }
    let reference = format!("{}#{}", event.repository.full_name, event.issue.number).parse()?;
    Ok(Decision::Fix(reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(file: &str) -> String {
        let path = format!("{}/../../tests/fixtures/github/events/{file}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn decided(name: &str, file: &str) -> Decision {
        decide(name, &event(file), "fixbox", "/fixbox").unwrap()
    }

    #[test]
    fn a_label_or_a_trusted_comment_asks_and_nothing_else_does() {
        let seven = |repo: &str| Decision::Fix(IssueRef { owner: "octo".into(), repo: repo.into(), number: 7 });
        assert_eq!(decided("issues", "issues-labeled.json"), seven("cache"));
        assert_eq!(decided("issue_comment", "issue-comment-member.json"), seven("readonly"));
        let skipped = |d: Decision| match d {
            Decision::Skip(why) => why,
            Decision::Fix(r) => panic!("{r} was to be skipped"),
        };
        assert!(skipped(decided("issues", "issues-labeled-other.json")).contains("`bug`, not `fixbox`"));
        let stranger = skipped(decided("issue_comment", "issue-comment-stranger.json"));
        assert!(
            stranger.contains("owners, members and collaborators") && stranger.contains("mallory is none"),
            "{stranger}"
        );
        assert!(skipped(decided("issue_comment", "issue-comment-on-pull.json")).contains("pull request"));
        assert!(skipped(decided("push", "issues-labeled.json")).contains("not `push`"));
        // Another command word, or the word inside a sentence, is not the command.
        let other = event("issue-comment-member.json").replace("\"/fixbox\"", "\"please /fixbox\"");
        assert!(matches!(decide("issue_comment", &other, "fixbox", "/fixbox").unwrap(), Decision::Skip(_)));
        assert!(decide("issues", "{", "fixbox", "/fixbox").is_err());
    }
}
