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

/// How long a spend hash is kept after its window ends: about 13 months, so this month can be
/// compared with the same month a year ago.
pub const SPEND_RETENTION_SECONDS: u64 = 400 * 86_400;

/// Who spent, for the spend records of the shared store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpendRecord<'a> {
    /// The gateway's name.
    pub gateway: &'a str,
    /// The caller (an Agent's name, or [`crate::policy::ANONYMOUS`]).
    pub subject: &'a str,
    /// The model the client requested.
    pub model: &'a str,
}

/// One line of a spend report: what a subject spent on a model through a gateway in a window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpendLine {
    /// Gateway name.
    pub gateway: String,
    /// Caller.
    pub subject: String,
    /// Model requested.
    pub model: String,
    /// Micro-dollars.
    pub micros: u64,
}

/// The key prefix of every counter of the gateways of one namespace (they share budgets, limits
/// and spend records when they share a store): `cairn:<namespace>:`.
pub fn namespace_prefix(namespace: &str) -> String {
    format!("cairn:{namespace}:")
}

/// The spend hash of one window (`window` as [`crate::policy::window_key`] names it).
pub(super) fn spend_key(prefix: &str, window: &str) -> String {
    format!("{prefix}spend:{window}")
}

/// The field of a spend record in its hash: a JSON array, so that no name can be confused with
/// another whatever it contains.
pub(super) fn spend_field(r: &SpendRecord<'_>) -> String {
    serde_json::json!([r.gateway, r.subject, r.model]).to_string()
}

/// A spend hash field read back; `None` for a field this layout did not write.
pub(super) fn parse_spend_field(field: &str) -> Option<(String, String, String)> {
    serde_json::from_str(field).ok()
}

/// The spend hashes a call at `now` adds to (its day, ISO week and month), with their expiry.
pub(super) fn spend_keys(prefix: &str, now: u64) -> Vec<(String, u64)> {
    use crate::config::BudgetWindow;
    [BudgetWindow::Day, BudgetWindow::Week, BudgetWindow::Month]
        .into_iter()
        .map(|w| {
            let key = spend_key(prefix, &crate::policy::window_key(w, now));
            (key, crate::policy::window_end(w, now) + SPEND_RETENTION_SECONDS)
        })
        .collect()
}

pub(super) fn claim_key(prefix: &str, key: &str) -> String {
    [prefix, "claim:", key].concat()
}

/// When a rate-limit counter may go: the end of its window plus a minute of slack.
pub(super) fn rl_expiry(now: u64) -> u64 {
    (minute(now) + 2) * WINDOW_SECONDS
}
