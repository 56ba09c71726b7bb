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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_half_a_second_to_five_minutes_with_jitter() {
        for (attempt, base) in [(1, 0.5), (2, 1.0), (3, 2.0), (10, 256.0), (11, 300.0), (40, 300.0)] {
            for _ in 0..50 {
                let d = backoff_delay(attempt).as_secs_f64();
                assert!(d >= base * 0.5 && d < base, "attempt {attempt}: {d}");
            }
        }
        let spread: std::collections::BTreeSet<u128> =
            (0..20).map(|_| backoff_delay(5).as_micros()).collect();
        assert!(spread.len() > 10, "jittered: {spread:?}");
    }
}
