//! One JSON line per request on stdout, and the request's metrics. Never prompt or answer bodies,
//! never keys: only who, what, where it went, how it ended, tokens, cost and timings.

use crate::gateway::ai::usage::Usage;
use crate::gateway::metrics::{CostLabels, Metrics, RequestLabels, TimingLabels, TokenLabels};
use serde::Serialize;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What is known about a request when it ends.
#[derive(Debug, Clone)]
pub struct Record {
    /// When it arrived.
    pub started: Instant,
    /// Gateway `namespace/name`.
    pub gateway: Arc<str>,
    /// Method.
    pub method: http::Method,
    /// Path.
    pub path: String,
    /// Operation (`chat`, `embeddings`, `responses`, `messages`, `models`).
    pub op: &'static str,
    /// Caller, once identified.
    pub subject: Arc<str>,
    /// Requested model.
    pub model: Arc<str>,
    /// Route name.
    pub route: Arc<str>,
    /// Rule name.
    pub rule: Arc<str>,
    /// Backend that answered last.
    pub backend: Arc<str>,
    /// Model sent upstream.
    pub upstream_model: String,
    /// Stream requested.
    pub stream: bool,
    /// Upstream attempts made.
    pub attempts: u32,
    /// Final status sent.
    pub status: u16,
    /// Outcome category.
    pub outcome: &'static str,
    /// Error message, when it failed.
    pub error: Option<String>,
    /// Usage, when known.
    pub usage: Option<Usage>,
    /// Cost in micro-dollars.
    pub cost_micros: u64,
    /// Time to the first content chunk (streams).
    pub ttft: Option<Duration>,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    gateway: &'a str,
    method: &'a str,
    path: &'a str,
    op: &'a str,
    subject: &'a str,
    model: &'a str,
    route: &'a str,
    rule: &'a str,
    backend: &'a str,
    upstream_model: &'a str,
    stream: bool,
    attempts: u32,
    status: u16,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    input_tokens: Option<u64>,
    cached_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    tokens_estimated: bool,
    cost_usd: f64,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttft_ms: Option<f64>,
}

impl Record {
    /// A record for a request that just arrived.
    pub fn new(gateway: &Arc<str>, method: &http::Method, path: String) -> Record {
        static NONE: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
        let none = NONE.clone();
        Record {
            started: Instant::now(),
            gateway: gateway.clone(),
            method: method.clone(),
            path,
            op: "",
            subject: none.clone(),
            model: none.clone(),
            route: none.clone(),
            rule: none.clone(),
            backend: none,
            upstream_model: String::new(),
            stream: false,
            attempts: 0,
            status: 0,
            outcome: "ok",
            error: None,
            usage: None,
            cost_micros: 0,
            ttft: None,
        }
    }

    /// Emits metrics and, when enabled, the access log line.
    pub fn finish(&self, metrics: &Metrics, access_log: bool) {
        let elapsed = self.started.elapsed();
        if !self.op.is_empty() && self.op != "models" {
            let labels = RequestLabels {
                gateway: self.gateway.clone(),
                route: self.route.clone(),
                backend: self.backend.clone(),
                model: self.model.clone(),
                subject: self.subject.clone(),
                outcome: self.outcome,
            };
            metrics.requests.get_or_create(&labels).inc();
            metrics.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
            if let Some(u) = &self.usage {
                let estimated = if u.estimated { "true" } else { "false" };
                let mut tokens = TokenLabels {
                    gateway: labels.gateway,
                    route: labels.route,
                    backend: labels.backend,
                    model: labels.model,
                    subject: labels.subject,
                    gen_ai_token_type: "input",
                    estimated,
                };
                for (ty, n) in [("input", u.input), ("output", u.output), ("cached_input", u.cached_input)] {
                    if ty == "cached_input" && n == 0 {
                        continue;
                    }
                    tokens.gen_ai_token_type = ty;
                    metrics.tokens.get_or_create(&tokens).observe(n as f64);
                }
                let TokenLabels { gateway, route, backend, model, subject, .. } = tokens;
                if self.cost_micros > 0 {
                    metrics
                        .cost
                        .get_or_create(&CostLabels {
                            gateway: gateway.clone(),
                            route: route.clone(),
                            backend: backend.clone(),
                            model: model.clone(),
                            subject,
                        })
                        .inc_by(self.cost_micros as f64 / 1e6);
                }
                if let Some(ttft) = self.ttft {
                    let timing = TimingLabels { gateway, route, backend, model };
                    metrics.ttft.get_or_create(&timing).observe(ttft.as_secs_f64());
                    if u.output > 1 {
                        let rest = elapsed.saturating_sub(ttft).as_secs_f64();
                        metrics.tpot.get_or_create(&timing).observe(rest / (u.output - 1) as f64);
                    }
                }
            }
        }
        if access_log {
            self.write(elapsed);
        }
    }

    fn write(&self, elapsed: Duration) {
        let line = Line {
            ts: rfc3339(SystemTime::now()),
            gateway: &self.gateway,
            method: self.method.as_str(),
            path: &self.path,
            op: self.op,
            subject: &self.subject,
            model: &self.model,
            route: &self.route,
            rule: &self.rule,
            backend: &self.backend,
            upstream_model: &self.upstream_model,
            stream: self.stream,
            attempts: self.attempts,
            status: self.status,
            outcome: self.outcome,
            error: self.error.as_deref(),
            input_tokens: self.usage.map(|u| u.input),
            cached_input_tokens: self.usage.map(|u| u.cached_input),
            output_tokens: self.usage.map(|u| u.output),
            tokens_estimated: self.usage.is_some_and(|u| u.estimated),
            cost_usd: self.cost_micros as f64 / 1e6,
            duration_ms: elapsed.as_secs_f64() * 1e3,
            ttft_ms: self.ttft.map(|d| d.as_secs_f64() * 1e3),
        };
        if let Ok(mut s) = serde_json::to_string(&line) {
            s.push('\n');
            let _ = std::io::stdout().lock().write_all(s.as_bytes());
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, sec, ms) = (rem / 3600, rem % 3600 / 60, rem % 60, u64::from(d.subsec_millis()));
    if !(0..=9999).contains(&year) {
        return format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}.{ms:03}Z");
    }
    // Digits into a fixed buffer: this runs once per request and per audit line, where `format!`
    // with seven padded fields cost more than the rest of the line.
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, h);
    put(14, 2, m);
    put(17, 2, sec);
    put(20, 3, ms);
    b.iter().map(|&c| c as char).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_utc() {
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_996_800_123);
        assert_eq!(super::rfc3339(t), "2026-11-30T00:00:00.123Z");
        let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(951_827_696_007);
        assert_eq!(super::rfc3339(t), "2000-02-29T12:34:56.007Z");
        assert_eq!(super::rfc3339(std::time::SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
