//! Trace context of agent calls: the `traceparent` passed to the agent continues the caller's
//! trace with a new parent id (or starts one), and the random ids it and tokens need.

use http::HeaderMap;
use ring::rand::SecureRandom;

/// `n` random bytes from the system source, as hex (token ids).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    // The system random source does not fail on supported platforms; zeros would only make
    // the id non-random, never unsafe.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    hex::encode(b)
}

/// Appends a non-zero random id of 8 bytes as lowercase hex (trace and span ids): from the
/// thread's generator (`rand`), not the system source (a system call per id, twice per request).
fn push_trace_hex64(out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let v = loop {
        let v: u64 = rand::random();
        if v != 0 {
            break v;
        }
    };
    out.extend((0..16).rev().map(|i| HEX[((v >> (i * 4)) & 0xf) as usize] as char));
}

/// The outgoing `traceparent` (same trace, new parent id) and the trace id; a new trace when the
/// request carries none or an invalid one.
pub fn traceparent(headers: &HeaderMap) -> (String, String) {
    let incoming = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::trim);
    let mut tp = String::with_capacity(55);
    if let Some(parts) = incoming.map(|tp| tp.split('-').collect::<Vec<&str>>()) {
        let hex = |s: &str, n: usize| {
            s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        };
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        if parts.len() >= 4
            && hex(parts[0], 2)
            && parts[0] != "ff"
            && hex(parts[1], 32)
            && !zero(parts[1])
            && hex(parts[2], 16)
            && !zero(parts[2])
            && hex(parts[3], 2)
        {
            tp.extend(["00-", parts[1], "-"]);
            push_trace_hex64(&mut tp);
            tp.extend(["-", parts[3]]);
            return (tp, parts[1].to_string());
        }
    }
    tp.push_str("00-");
    push_trace_hex64(&mut tp);
    push_trace_hex64(&mut tp);
    let trace = tp[3..35].to_string();
    tp.push('-');
    push_trace_hex64(&mut tp);
    tp.push_str("-01");
    (tp, trace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn traceparent_is_continued_or_started() {
        let mut h = HeaderMap::new();
        let (tp, trace) = traceparent(&h);
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!((parts[0], parts[1], parts[3]), ("00", trace.as_str(), "01"));
        assert_eq!(parts[2].len(), 16);
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let (tp, trace) = traceparent(&h);
        assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!tp.contains("00f067aa0ba902b7"), "a new parent id");
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        );
        assert_ne!(traceparent(&h).1, "00000000000000000000000000000000");
    }
}
