//! Retry delays: exponential with jitter, so that objects that failed together do not retry
//! together. [`backoff_delay`] is the per-object one of the controllers (a failed reconcile) and
//! the compile stage (a failed Secret read): from 0.5 s, capped at 5 minutes, half to all of the
//! step. The answers' fetches use [`doubling`] with their own bounds.

use std::time::Duration;

/// The delay after the `attempt`th consecutive failure (1, 2, …): `first` doubling up to `cap`,
/// times a random factor in [`jitter_from`, 1).
pub fn doubling(first: Duration, cap: Duration, attempt: u32, jitter_from: f64) -> Duration {
    let step = first.saturating_mul(1 << attempt.saturating_sub(1).min(20)).min(cap);
    step.mul_f64(rand::random_range(jitter_from..1.0))
}

/// Exponential backoff with jitter for the `attempt`th consecutive failure: 0.5 s doubling to
/// 5 min, times a random factor in [0.5, 1).
pub fn backoff_delay(attempt: u32) -> Duration {
    doubling(Duration::from_millis(500), Duration::from_secs(300), attempt, 0.5)
}
