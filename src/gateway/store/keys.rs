//! What both stores share: the requests they answer (limits, budgets), their answer, their
//! error, and the names of their counters.

/// Most sequenced lists the memory store holds at once.
pub const MAX_SEQ_LISTS: usize = 65_536;

/// Seconds in a rate-limit window.
pub const WINDOW_SECONDS: u64 = 60;

/// A request- and token-per-minute limit to enforce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitReq {
    /// Counter key (the policy's limit key).
    pub key: String,
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
}

/// A budget to check or charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetReq {
    /// Counter key including the window (`<budget key>/<window key>`).
    pub key: String,
    /// Amount in micro-dollars.
    pub limit_micros: u64,
    /// Whether an exhausted budget refuses calls (`Block`), or only reports.
    pub block: bool,
    /// Unix seconds at which the window ends (the counter expires then).
    pub expires_at: u64,
}

/// The answer to an admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Proceed (the request was counted).
    Allowed,
    /// A request or token limit is exhausted for the current window.
    RateLimited {
        /// The limit key.
        key: String,
        /// `requests` or `tokens`.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// A blocking budget is spent.
    OverBudget {
        /// The budget key.
        key: String,
    },
}

/// The store could not answer.
#[derive(Debug, thiserror::Error)]
#[error("limits store unavailable: {0}")]
pub struct StoreError(pub String);

/// Rate-limit window of a unix time.
pub fn minute(now: u64) -> u64 {
    now / WINDOW_SECONDS
}

/// Seconds until the current window ends (at least 1).
pub fn retry_after(now: u64) -> u64 {
    (WINDOW_SECONDS - now % WINDOW_SECONDS).max(1)
}

/// Counter names: `<prefix>rl:<key>:<minute>:r|t` and `<prefix>budget:<key>`.
pub(super) fn rpm_key(prefix: &str, key: &str, now: u64) -> String {
    format!("{prefix}rl:{key}:{}:r", minute(now))
}

pub(super) fn tpm_key(prefix: &str, key: &str, now: u64) -> String {
    format!("{prefix}rl:{key}:{}:t", minute(now))
}

pub(super) fn budget_key(prefix: &str, key: &str) -> String {
    format!("{prefix}budget:{key}")
}

pub(super) fn claim_key(prefix: &str, key: &str) -> String {
    [prefix, "claim:", key].concat()
}

/// When a rate-limit counter may go: the end of its window plus a minute of slack.
pub(super) fn rl_expiry(now: u64) -> u64 {
    (minute(now) + 2) * WINDOW_SECONDS
}
