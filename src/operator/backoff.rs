//! Per-object retry delays: exponential from 0.5 s, capped at 5 minutes, with jitter (half to all
//! of the step) so objects that failed together do not retry together. Shared by the controllers
//! (a failed reconcile) and the compile stage (a failed Secret read).

use std::time::Duration;

/// Exponential backoff with jitter for the `attempt`th consecutive failure: 0.5 s doubling to
/// 5 min, times a random factor in [0.5, 1).
pub fn backoff_delay(attempt: u32) -> Duration {
    let base = 0.5 * 2f64.powi(attempt.saturating_sub(1).min(12) as i32);
    Duration::from_secs_f64(base.min(300.0) * rand::random_range(0.5..1.0))
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
