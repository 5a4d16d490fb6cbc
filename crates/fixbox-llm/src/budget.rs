//! A session's running totals, and the budget that stops it before a call that could exceed it.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::usage::TokenUsage;

/// Limits for one task (a fix session); `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub max_cost_usd: Option<f64>,
    pub max_tokens: Option<u64>,
}

/// What a session's calls have used so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Totals {
    pub calls: u64,
    pub usage: TokenUsage,
    pub cost_usd: f64,
    /// What the local calls among them would have cost in the cloud.
    pub equivalent_cost_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "the {what} budget is {limit}; {spent} is spent and the next call could use up to {next}. Raise the budget or narrow the task"
)]
pub struct BudgetExceeded {
    /// `cost` or `token`.
    pub what: String,
    pub limit: String,
    pub spent: String,
    pub next: String,
}

/// A session's totals against its budget; shared by the session's calls.
#[derive(Debug, Default)]
pub struct Meter {
    budget: Budget,
    totals: Mutex<Totals>,
}

impl Meter {
    pub fn new(budget: Budget) -> Self {
        Self { budget, totals: Mutex::default() }
    }

    pub fn budget(&self) -> Budget {
        self.budget
    }

    pub fn totals(&self) -> Totals {
        self.lock().clone()
    }

    /// Refuses a call that, at its worst (`tokens` in all, costing `cost_usd`), would take the session
    /// past its budget.
    pub fn check(&self, tokens: u64, cost_usd: f64) -> Result<(), BudgetExceeded> {
        let totals = self.lock();
        if let Some(limit) = self.budget.max_tokens
            && totals.usage.total() + tokens > limit
        {
            return Err(BudgetExceeded {
                what: "token".into(),
                limit: format!("{limit} tokens"),
                spent: format!("{} tokens", totals.usage.total()),
                next: format!("{tokens} tokens"),
            });
        }
        if let Some(limit) = self.budget.max_cost_usd
            && totals.cost_usd + cost_usd > limit
        {
            return Err(BudgetExceeded {
                what: "cost".into(),
                limit: format!("${limit:.4}"),
                spent: format!("${:.4}", totals.cost_usd),
                next: format!("${cost_usd:.4}"),
            });
        }
        Ok(())
    }

    pub(crate) fn record(&self, usage: &TokenUsage, cost_usd: f64, equivalent_cost_usd: f64) {
        let mut totals = self.lock();
        totals.calls += 1;
        totals.usage.add(usage);
        totals.cost_usd += cost_usd;
        totals.equivalent_cost_usd += equivalent_cost_usd;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        // Totals stay consistent even if a holder panicked: every update is a few additions.
        self.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_that_could_exceed_the_budget_is_refused_before_it_runs() {
        let meter = Meter::new(Budget { max_cost_usd: Some(0.01), max_tokens: Some(1000) });
        meter.check(600, 0.004).unwrap();
        meter.record(&TokenUsage { prompt: 500, completion: 100, ..TokenUsage::default() }, 0.004, 0.0);
        meter.check(400, 0.004).unwrap();
        let tokens = meter.check(401, 0.0).unwrap_err();
        assert_eq!(tokens.what, "token");
        assert!(tokens.to_string().contains("1000 tokens; 600 tokens is spent"), "{tokens}");
        let cost = meter.check(10, 0.007).unwrap_err();
        assert_eq!(cost.what, "cost");
        assert_eq!(meter.totals().calls, 1);
    }
}
