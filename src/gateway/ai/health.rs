//! What the AI layer remembers about its backends across config versions: health (consecutive
//! failures, ejection until a cooldown ends) by `gateway/backend`, and each gateway's retry
//! budget. A reload builds a new runtime around the same [`Health`], so neither resets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Retries a gateway may make before its budget must be refilled by traffic.
pub const RETRY_RESERVE: f64 = 10.0;

/// Backend health and retry budgets of the process.
#[derive(Default)]
pub struct Health {
    /// Backend health by `gateway/backend`.
    backends: Mutex<HashMap<String, BackendHealth>>,
    /// Retry budgets by gateway.
    retry: Mutex<HashMap<String, RetryBudget>>,
}

#[derive(Default, Clone, Copy)]
struct BackendHealth {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
}

/// Retries allowed: a reserve of [`RETRY_RESERVE`], refilled by `percent`% of each request.
struct RetryBudget {
    tokens: f64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Health {
    /// Whether a backend is ejected now.
    pub fn is_ejected(&self, key: &str) -> bool {
        lock(&self.backends).get(key).and_then(|h| h.ejected_until).is_some_and(|t| t > Instant::now())
    }

    /// Records a successful attempt: the failure streak ends.
    pub fn record_success(&self, key: &str) {
        let mut map = lock(&self.backends);
        if let Some(h) = map.get_mut(key) {
            *h = BackendHealth::default();
        }
    }

    /// Records a failed attempt; ejects the backend for `cooldown` after `threshold` consecutive
    /// failures (0: never). Returns whether this failure ejected it.
    pub fn record_failure(&self, key: &str, threshold: u32, cooldown: Duration) -> bool {
        let mut map = lock(&self.backends);
        let h = map.entry(key.to_string()).or_default();
        h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        if threshold > 0 && h.consecutive_failures >= threshold {
            h.consecutive_failures = 0;
            h.ejected_until = Some(Instant::now() + cooldown);
            return true;
        }
        false
    }

    /// Deposits a request's share into the gateway's retry budget.
    pub fn retry_deposit(&self, gateway: &str, percent: u32) {
        let mut map = lock(&self.retry);
        let b = map.entry(gateway.to_string()).or_insert(RetryBudget { tokens: RETRY_RESERVE });
        b.tokens = (b.tokens + f64::from(percent) / 100.0).min(RETRY_RESERVE);
    }

    /// Takes one retry from the budget, if it has one.
    pub fn retry_take(&self, gateway: &str) -> bool {
        let mut map = lock(&self.retry);
        let b = map.entry(gateway.to_string()).or_insert(RetryBudget { tokens: RETRY_RESERVE });
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
