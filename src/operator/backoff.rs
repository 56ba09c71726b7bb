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
