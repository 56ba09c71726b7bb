//! The guardrail scanners on any text and any JSON body: PII detection (`ai::pii::find`) never
//! panics and reports in-bounds, ordered, non-overlapping ranges on character boundaries; a
//! redacting rule leaves no finding of its detectors (nor of its regex) in what it returns, and
//! running it again changes nothing; a denying rule refuses exactly the texts in which the
//! detectors find something; bodies (`Guardrails::apply`) are walked without a panic.
//!
//! Input: one byte choosing the detectors (a bit each), then text (also tried as a JSON body).
#![no_main]

use cairn::config::{GuardrailActionConfig, GuardrailConfig, PiiDetector};
use cairn::gateway::ai::guardrails::{Direction, Guardrails};
use cairn::gateway::ai::pii;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::{LazyLock, OnceLock};

const ALL: [PiiDetector; 5] =
    [PiiDetector::Email, PiiDetector::Phone, PiiDetector::CreditCard, PiiDetector::Iban, PiiDetector::UsSsn];
const REGEX: &str = r"(?i)secret-[a-z0-9]{4}";

fn rules(kinds: &[PiiDetector], action: GuardrailActionConfig) -> Guardrails {
    Guardrails::new(&[GuardrailConfig {
        name: "g".into(),
        pii: kinds.to_vec(),
        regex: vec![REGEX.into()],
        action,
    }])
    .expect("the rule compiles")
}

/// The rules of each detector mask, compiled once (compiling a regex per input would make the
/// target a benchmark of the regex compiler).
static COMPILED: [OnceLock<(Guardrails, Guardrails)>; 32] = [const { OnceLock::new() }; 32];
static RE: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(REGEX).unwrap());

fuzz_target!(|data: &[u8]| {
    let Some((&mask, rest)) = data.split_first() else { return };
    let kinds: Vec<PiiDetector> = ALL.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, k)| *k).collect();
    let text = String::from_utf8_lossy(rest);

    let found = pii::find(&text, &kinds);
    let mut end = 0;
    for m in &found {
        assert!(m.start >= end && m.start < m.end && m.end <= text.len(), "{found:?}");
        assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end));
        assert!(kinds.contains(&m.kind));
        end = m.end;
    }

    let (redact, deny) = COMPILED[usize::from(mask & 31)]
        .get_or_init(|| (rules(&kinds, GuardrailActionConfig::Redact), rules(&kinds, GuardrailActionConfig::Deny)));
    let re = &*RE;
    let has_any = |t: &str| !pii::find(t, &kinds).is_empty() || re.is_match(t);
    let redacted = redact.check_text(Direction::Request, &text).expect("redacting never refuses");
    assert_eq!(matches!(redacted, Cow::Owned(_)), has_any(&text), "redacted exactly when something was found");
    assert!(!has_any(&redacted), "a finding survived redaction: {redacted:?}");
    assert!(
        matches!(redact.check_text(Direction::Request, &redacted), Ok(Cow::Borrowed(_))),
        "redacting twice changes nothing"
    );
    assert_eq!(deny.check_text(Direction::Response, &text).is_err(), has_any(&text));

    if let Ok(mut body) = serde_json::from_slice::<Value>(rest) {
        let before = body.clone();
        let changed = redact.apply(Direction::Request, &mut body).expect("redacting never refuses");
        assert_eq!(changed, body != before, "changed says whether the body changed");
        assert_eq!(deny.apply(Direction::Response, &mut body), Ok(false), "nothing left to refuse");
    }
});
