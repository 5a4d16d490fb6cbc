//! How long to wait before trying a route again, or whether to move on.

use std::time::Duration;

use crate::error::LlmError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries of one route after its first, for failures a retry can fix.
    pub max_retries: u32,
    /// The first backoff; each further one doubles, up to `max_wait`, with jitter.
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// A `Retry-After` longer than this moves to the next route instead of waiting.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            first_wait: Duration::from_millis(500),
            max_wait: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first) after `error`; `None` moves on to the
    /// next route: the error is one retrying will not fix, the retries are spent, or the server asks
    /// for a longer wait than `max_retry_after`.
    pub fn wait(&self, retry: u32, error: &LlmError) -> Option<Duration> {
        if !error.is_retryable() || retry > self.max_retries {
            return None;
        }
        // "Equal jitter": half the exponential step, plus a random share of the other half, so clients
        // that failed together do not come back together.
        let step = self.first_wait.saturating_mul(1 << (retry - 1).min(16)).min(self.max_wait);
        let backoff = step / 2 + step.mul_f64(fastrand::f64() / 2.0);
        match error {
            LlmError::RateLimited { retry_after: Some(after), .. } if *after > self.max_retry_after => None,
            LlmError::RateLimited { retry_after: Some(after), .. } => Some(backoff.max(*after)),
            _ => Some(backoff),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate_limited(after: Option<u64>) -> LlmError {
        LlmError::RateLimited {
            provider: "p".into(),
            retry_after: after.map(Duration::from_secs),
            message: String::new(),
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_retry_after_is_honoured() {
        let policy = RetryPolicy::default();
        let server = LlmError::Server { provider: "p".into(), status: 503, message: String::new() };
        for _ in 0..50 {
            let first = policy.wait(1, &server).unwrap();
            assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500), "{first:?}");
            let third = policy.wait(3, &server).unwrap();
            assert!(third >= Duration::from_millis(1000) && third <= Duration::from_millis(2000), "{third:?}");
        }
        assert_eq!(policy.wait(4, &server), None, "retries spent");
        assert_eq!(policy.wait(1, &rate_limited(Some(7))), Some(Duration::from_secs(7)));
        assert_eq!(policy.wait(1, &rate_limited(Some(3600))), None, "too long a wait moves on");
        assert!(policy.wait(1, &rate_limited(None)).is_some());
        let auth = LlmError::Auth { provider: "p".into(), status: 401, message: String::new() };
        assert_eq!(policy.wait(1, &auth), None);
        let capped = RetryPolicy { max_retries: 30, ..policy };
        assert!(capped.wait(30, &server).unwrap() <= policy.max_wait);
    }
}
