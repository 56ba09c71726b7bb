//! Helpers of the markdown reports: reading the JSON lines of a run back, and formatting.

use serde_json::Value;

/// The JSON lines of one run, and the target labels in order of appearance.
pub struct Runs {
    pub lines: Vec<Value>,
    pub labels: Vec<String>,
}

impl Runs {
    pub fn parse(s: &str) -> Runs {
        let lines: Vec<Value> = s.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let mut labels: Vec<String> = Vec::new();
        for l in &lines {
            if let Some(x) = l["label"].as_str()
                && !labels.iter().any(|y| y == x)
            {
                labels.push(x.to_string());
            }
        }
        Runs { lines, labels }
    }
    pub fn runs(&self, label: &str, scenario: &str) -> Vec<&Value> {
        self.lines
            .iter()
            .filter(|l| l["kind"] == "run" && l["label"] == label && l["scenario"] == scenario)
            .collect()
    }
    /// The last run of `scenario` by `label`.
    pub fn run(&self, label: &str, scenario: &str) -> Option<&Value> {
        self.runs(label, scenario).pop()
    }
    /// Whether any target ran `scenario`.
    pub fn any(&self, scenario: &str) -> bool {
        self.labels.iter().any(|l| self.run(l, scenario).is_some())
    }
    /// The last `kind: "rss"` line of `label` in `phase`, KiB.
    pub fn rss(&self, label: &str, phase: &str) -> Option<f64> {
        self.lines
            .iter()
            .rfind(|l| l["kind"] == "rss" && l["label"] == label && l["phase"] == phase)
            .and_then(|l| l["kib"].as_f64())
            .filter(|k| *k > 0.0)
    }
    /// The highest RSS sampled during any run of `label`, KiB.
    pub fn peak(&self, label: &str) -> Option<f64> {
        self.lines
            .iter()
            .filter(|l| l["kind"] == "run" && l["label"] == label)
            .filter_map(|l| l["rss_peak_kib"].as_f64())
            .reduce(f64::max)
    }
}

/// A finite number.
pub fn f(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

pub fn num(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
    }
}

/// µs, or ms from 10 ms on.
pub fn ms_or_us(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 10_000.0 => format!("{:.1} ms", x / 1000.0),
        other => num(other).to_string() + if other.is_some() { " µs" } else { "" },
    }
}

pub fn mib(kib: Option<f64>) -> String {
    kib.map_or("–".into(), |k| format!("{:.1} MiB", k / 1024.0))
}

pub fn sub(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

/// The errors of a run, e.g. `0` or `3 HTTP 502, 1 timeout`.
pub fn errors(r: &Value) -> String {
    let e = &r["errors"];
    let total = e["total"].as_u64().unwrap_or(0);
    if total == 0 {
        return "0".into();
    }
    let mut parts = Vec::new();
    for k in ["status", "timeout", "io", "body"] {
        let n = e[k].as_u64().unwrap_or(0);
        if n > 0 {
            parts.push(if k == "status" {
                format!("{n} HTTP {}", e["first_status"].as_u64().map_or("?".into(), |s| s.to_string()))
            } else {
                format!("{n} {k}")
            });
        }
    }
    parts.join(", ")
}

pub fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}
