//! Guardrails: a route's list of [`GuardrailConfig`]s compiled once ([`Guardrails::new`]) and
//! applied to the text of a request or response body.
//!
//! A rule has PII detectors ([`super::pii`]) and/or regular expressions, and an action:
//! - `Deny`: any hit refuses the request (or the response) with a [`GuardrailViolation`] naming
//!   the rule and what matched: `request blocked by guardrail "no-pii" (CreditCard)`;
//! - `Redact`: every hit is replaced by `[REDACTED:<rule>]` and processing continues.
//!
//! Rules run in their configured order, each on the output of the previous one (a redacting rule
//! before a denying one hides what it redacted from it).
//!
//! What is text: [`Guardrails::apply`] walks any of the supported bodies (Chat Completions,
//! Anthropic Messages, Responses and Embeddings requests; their responses; stream chunks and
//! events) and visits the strings under the keys that carry prose: message `content` and parts'
//! `text`, `system`, `instructions`, `input`, `prompt`, tool-call `arguments`, tool-use `input`
//! values, `refusal`, `reasoning_content`, `thinking`, stream `delta`s and `partial_json`. Model
//! names, ids, roles, tool schemas, image and file data are not scanned.
//!
//! Streams: applied chunk by chunk, a redaction or denial sees one chunk's text only, so a value
//! split across two chunks is not detected. Routes that need certainty on responses should not
//! stream (or the gateway must buffer).

use super::pii::{self, detector_name};
use crate::config::{GuardrailActionConfig, GuardrailConfig, PiiDetector};
use regex::Regex;
use serde_json::Value;
use std::borrow::Cow;

/// Which side of the exchange is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The caller's request.
    Request,
    /// The provider's response.
    Response,
}

/// A `Deny` rule matched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} blocked by guardrail \"{rule}\" ({detector})", match .direction { Direction::Request => "request", Direction::Response => "response" })]
pub struct GuardrailViolation {
    /// Request or response.
    pub direction: Direction,
    /// The rule's name.
    pub rule: String,
    /// What matched: a PII detector's name (`CreditCard`) or `regex`.
    pub detector: String,
}

/// A rule could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("guardrail {rule:?}: invalid regular expression {pattern:?}: {source}")]
pub struct GuardrailBuildError {
    /// The rule's name.
    pub rule: String,
    /// The pattern.
    pub pattern: String,
    /// Why.
    #[source]
    pub source: regex::Error,
}

#[derive(Debug)]
struct Rule {
    name: String,
    pii: Vec<PiiDetector>,
    regexes: Vec<Regex>,
    action: GuardrailActionConfig,
    replacement: String,
}

/// A compiled list of guardrails.
#[derive(Debug, Default)]
pub struct Guardrails {
    rules: Vec<Rule>,
}

/// Upper bound on a compiled regex (guards against patterns that explode in size).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Most rounds of redaction of one text by one rule.
const MAX_REDACT_ROUNDS: usize = 4;

/// `text` with every hit (sorted by start) replaced by `replacement`; overlapping hits make one
/// replaced range.
fn redact(text: &str, hits: &[Hit], replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for h in hits {
        if h.start < pos {
            pos = pos.max(h.end);
            continue;
        }
        out.push_str(&text[pos..h.start]);
        out.push_str(replacement);
        pos = h.end;
    }
    out.push_str(&text[pos..]);
    out
}

#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    /// `None` for a regex.
    pii: Option<PiiDetector>,
}

impl Guardrails {
    /// Compiles the rules (each regex once).
    pub fn new(configs: &[GuardrailConfig]) -> Result<Self, GuardrailBuildError> {
        let mut rules = Vec::with_capacity(configs.len());
        for c in configs {
            let mut regexes = Vec::with_capacity(c.regex.len());
            for p in &c.regex {
                let re =
                    regex::RegexBuilder::new(p).size_limit(REGEX_SIZE_LIMIT).build().map_err(|source| {
                        GuardrailBuildError { rule: c.name.clone(), pattern: p.clone(), source }
                    })?;
                regexes.push(re);
            }
            rules.push(Rule {
                name: c.name.clone(),
                pii: c.pii.clone(),
                regexes,
                action: c.action,
                replacement: format!("[REDACTED:{}]", c.name),
            });
        }
        Ok(Guardrails { rules })
    }

    /// No rules: nothing to do.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn hits(rule: &Rule, text: &str) -> Vec<Hit> {
        let mut hits: Vec<Hit> = pii::find(text, &rule.pii)
            .into_iter()
            .map(|m| Hit { start: m.start, end: m.end, pii: Some(m.kind) })
            .collect();
        for re in &rule.regexes {
            hits.extend(re.find_iter(text).filter(|m| !m.is_empty()).map(|m| Hit {
                start: m.start(),
                end: m.end(),
                pii: None,
            }));
        }
        hits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
        hits
    }

    /// Applies every rule to one text. `Ok(Cow::Borrowed)` when nothing was redacted.
    pub fn check_text<'a>(
        &self,
        direction: Direction,
        text: &'a str,
    ) -> Result<Cow<'a, str>, GuardrailViolation> {
        let mut cur: Cow<'a, str> = Cow::Borrowed(text);
        for rule in &self.rules {
            let hits = Self::hits(rule, &cur);
            let Some(first) = hits.first() else { continue };
            match rule.action {
                GuardrailActionConfig::Deny => {
                    return Err(GuardrailViolation {
                        direction,
                        rule: rule.name.clone(),
                        detector: first.pii.map_or("regex", detector_name).to_owned(),
                    });
                }
                GuardrailActionConfig::Redact => {
                    // Redacting can bring to light a candidate that an overlapping match hid
                    // from the scan: what is left (never the replacements) is scanned again, a
                    // few times at most.
                    // Text built to keep forming new candidates past the last round is
                    // replaced whole: a redacting rule never lets a finding through.
                    let mut hits = hits;
                    for _ in 0..MAX_REDACT_ROUNDS {
                        cur = Cow::Owned(redact(&cur, &hits, &rule.replacement));
                        let placed: Vec<(usize, usize)> = cur
                            .match_indices(rule.replacement.as_str())
                            .map(|(i, r)| (i, i + r.len()))
                            .collect();
                        hits = Self::hits(rule, &cur);
                        hits.retain(|h| !placed.iter().any(|&(s, e)| h.start < e && s < h.end));
                        if hits.is_empty() {
                            break;
                        }
                    }
                    if !hits.is_empty() {
                        cur = Cow::Owned(rule.replacement.clone());
                    }
                }
            }
        }
        Ok(cur)
    }

    /// Applies the rules to every text of a JSON body (see the module doc for what is text).
    /// Returns whether anything was redacted (the body must then be re-serialised).
    pub fn apply(&self, direction: Direction, body: &mut Value) -> Result<bool, GuardrailViolation> {
        if self.is_empty() {
            return Ok(false);
        }
        let mut changed = false;
        walk(body, false, &mut |s: &mut String| {
            if let Cow::Owned(new) = self.check_text(direction, s)? {
                *s = new;
                changed = true;
            }
            Ok(())
        })?;
        Ok(changed)
    }
}

/// Keys whose values hold prose (strings directly under them are visited) or lead to it.
const FOLLOW: &[&str] = &[
    "messages",
    "choices",
    "message",
    "delta",
    "tool_calls",
    "function",
    "output",
    "item",
    "response",
    "content_block",
    "content",
    "text",
    "system",
    "input",
    "instructions",
    "prompt",
    "arguments",
    "refusal",
    "reasoning_content",
    "thinking",
    "partial_json",
];

type Visit<'f> = dyn FnMut(&mut String) -> Result<(), GuardrailViolation> + 'f;

/// `text`: strings here are prose. Objects are entered through [`FOLLOW`] keys only, except a
/// tool-use `input` object, all of whose string values are the model's (or caller's) data.
fn walk(v: &mut Value, text: bool, f: &mut Visit<'_>) -> Result<(), GuardrailViolation> {
    match v {
        Value::String(s) if text => f(s),
        Value::Array(items) => items.iter_mut().try_for_each(|x| walk(x, text, f)),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "input" && x.is_object() {
                    walk_all(x, f)?;
                } else if FOLLOW.contains(&k.as_str()) {
                    walk(x, true, f)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn walk_all(v: &mut Value, f: &mut Visit<'_>) -> Result<(), GuardrailViolation> {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().try_for_each(|x| walk_all(x, f)),
        Value::Object(o) => o.values_mut().try_for_each(|x| walk_all(x, f)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(
        name: &str,
        pii: &[PiiDetector],
        regex: &[&str],
        action: GuardrailActionConfig,
    ) -> GuardrailConfig {
        GuardrailConfig {
            name: name.into(),
            pii: pii.to_vec(),
            regex: regex.iter().map(|s| s.to_string()).collect(),
            action,
        }
    }

    use GuardrailActionConfig::{Deny, Redact};

    #[test]
    fn deny_names_the_rule_and_the_detector() {
        let g = Guardrails::new(&[rule("no-pii", &[PiiDetector::Email, PiiDetector::CreditCard], &[], Deny)])
            .unwrap();
        let err = g.check_text(Direction::Request, "my card is 4111 1111 1111 1111").unwrap_err();
        assert_eq!(err.to_string(), r#"request blocked by guardrail "no-pii" (CreditCard)"#);
        assert_eq!(err.rule, "no-pii");
        let err = g.check_text(Direction::Response, "mail bob@example.com").unwrap_err();
        assert_eq!(err.to_string(), r#"response blocked by guardrail "no-pii" (Email)"#);
        assert!(matches!(
            g.check_text(Direction::Request, "nothing here"),
            Ok(Cow::Borrowed("nothing here"))
        ));
    }

    #[test]
    fn regex_deny_reports_regex() {
        let g = Guardrails::new(&[rule("secrets", &[], &[r"sk-[A-Za-z0-9]{8,}"], Deny)]).unwrap();
        let err = g.check_text(Direction::Request, "key sk-abcdefgh1234").unwrap_err();
        assert_eq!(err.to_string(), r#"request blocked by guardrail "secrets" (regex)"#);
    }

    #[test]
    fn redact_replaces_every_hit_and_rules_chain() {
        let g = Guardrails::new(&[
            rule("pii", &[PiiDetector::Email, PiiDetector::UsSsn], &[], Redact),
            rule("words", &[], &[r"(?i)\bproject x\b", r"Project"], Redact),
        ])
        .unwrap();
        let out = g
            .check_text(Direction::Request, "a@example.com and b@example.org, ssn 123-45-6789; Project X")
            .unwrap();
        assert_eq!(out, "[REDACTED:pii] and [REDACTED:pii], ssn [REDACTED:pii]; [REDACTED:words]");
        // A deny rule after a redact rule does not see what was redacted.
        let g = Guardrails::new(&[
            rule("r", &[PiiDetector::Email], &[], Redact),
            rule("d", &[PiiDetector::Email], &[], Deny),
        ])
        .unwrap();
        assert_eq!(g.check_text(Direction::Request, "x@example.com").unwrap(), "[REDACTED:r]");
    }

    /// Found by the `guardrails` fuzz target: candidates of different kinds overlapping, where
    /// the redacted text kept a finding.
    #[test]
    fn redaction_leaves_no_finding_of_its_detectors() {
        let all = [
            PiiDetector::Email,
            PiiDetector::Phone,
            PiiDetector::CreditCard,
            PiiDetector::Iban,
            PiiDetector::UsSsn,
        ];
        let g = Guardrails::new(&[rule("g", &all, &[r"(?i)secret-[a-z0-9]{4}"], Redact)]).unwrap();
        for text in [
            "card 4111 1111 seC1 1111, iabn GB82 WEST 1234 511 1131 1111 111ard 4111 1111 seC1 1111, iabn GB82 WE\u{ff15}-\u{fffd}b12",
            "call 415-555-0100 4111 1111 1111 1111 now",
        ] {
            let out = g.check_text(Direction::Request, text).unwrap();
            let left = pii::find(&out, &all);
            assert!(left.is_empty(), "{text:?} redacted to {out:?} still has {left:?}");
            assert!(matches!(g.check_text(Direction::Request, &out), Ok(Cow::Borrowed(_))), "{out:?}");
        }
    }

    /// Found by the `guardrails` fuzz target (1M-execution campaign): phone candidates that
    /// keep forming across the replacements until the last round; such a text is replaced whole.
    #[test]
    fn text_that_outlasts_the_redaction_rounds_is_replaced_whole() {
        use base64::Engine as _;
        let all = [
            PiiDetector::Email,
            PiiDetector::Phone,
            PiiDetector::CreditCard,
            PiiDetector::Iban,
            PiiDetector::UsSsn,
        ];
        let g = Guardrails::new(&[rule("g", &all, &[r"(?i)secret-[a-z0-9]{4}"], Redact)]).unwrap();
        let input = base64::engine::general_purpose::STANDARD.decode("H2NhMjIyMv///////////////////////////////////////////////////////////////////////////////zIyMjIxxMTExMTExMTExMTEasTExMTExMTExMTExMTExMTExMTExMTExMTExMTEMTExIDExMTExMSAsMiwg////////////////////////////////////////////MjNBIDUrNjk4IDI4IDc2NTQgMzExIDExMTE2MTgrMSAxMTExNjE4KzEgMTExMTY5OCs3NjU0IDMxMSAxNzY1PCD///////////////////////+qqqqq").unwrap();
        let text = String::from_utf8_lossy(&input[1..]);
        let out = g.check_text(Direction::Request, &text).unwrap();
        assert!(pii::find(&out, &all).is_empty(), "{out:?}");
        assert_eq!(out, "[REDACTED:g]");
        assert!(matches!(g.check_text(Direction::Request, &out), Ok(Cow::Borrowed(_))), "{out:?}");
    }

    #[test]
    fn bad_regex_is_a_build_error() {
        let e = Guardrails::new(&[rule("bad", &[], &["(unclosed"], Deny)]).unwrap_err();
        assert!(
            e.to_string().starts_with(r#"guardrail "bad": invalid regular expression "(unclosed""#),
            "{e}"
        );
    }

    #[test]
    fn applies_to_openai_chat_request_text_only() {
        let g = Guardrails::new(&[rule("pii", &[PiiDetector::Email], &[], Redact)]).unwrap();
        let mut body = json!({"model": "a@example.com", "user": "u@example.com", "messages": [
            {"role": "system", "content": "admin is root@example.com"},
            {"role": "user", "content": [{"type": "text", "text": "mail me at me@example.com"},
                {"type": "image_url", "image_url": {"url": "https://x.example/a@example.com.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "send", "arguments": "{\"to\":\"z@example.com\"}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "sent to z@example.com"}
        ], "tools": [{"type": "function", "function": {"name": "send", "description": "mail x@example.com"}}]});
        assert!(g.apply(Direction::Request, &mut body).unwrap());
        assert_eq!(
            body,
            json!({"model": "a@example.com", "user": "u@example.com", "messages": [
                {"role": "system", "content": "admin is [REDACTED:pii]"},
                {"role": "user", "content": [{"type": "text", "text": "mail me at [REDACTED:pii]"},
                    {"type": "image_url", "image_url": {"url": "https://x.example/a@example.com.png"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function",
                    "function": {"name": "send", "arguments": "{\"to\":\"[REDACTED:pii]\"}"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "sent to [REDACTED:pii]"}
            ], "tools": [{"type": "function", "function": {"name": "send", "description": "mail x@example.com"}}]})
        );
        let mut clean = json!({"messages": [{"role": "user", "content": "hi"}]});
        assert!(!g.apply(Direction::Request, &mut clean).unwrap());
    }

    #[test]
    fn applies_to_anthropic_bodies_and_responses() {
        let g = Guardrails::new(&[rule("cards", &[PiiDetector::CreditCard], &[], Redact)]).unwrap();
        let card = "4111111111111111";
        let mut req = json!({"system": [{"type": "text", "text": format!("c {card}")}], "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": card}]},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": card}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": {"nested": {"card": card}}}]}]});
        assert!(g.apply(Direction::Request, &mut req).unwrap());
        assert_eq!(req["system"][0]["text"], json!("c [REDACTED:cards]"));
        assert_eq!(req["messages"][0]["content"][0]["content"][0]["text"], json!("[REDACTED:cards]"));
        assert_eq!(req["messages"][0]["content"][1]["source"]["data"], json!(card), "image data is not text");
        assert_eq!(req["messages"][1]["content"][0]["input"]["nested"]["card"], json!("[REDACTED:cards]"));

        let mut resp = json!({"content": [{"type": "text", "text": card}]});
        assert!(g.apply(Direction::Response, &mut resp).unwrap());
        assert_eq!(resp["content"][0]["text"], json!("[REDACTED:cards]"));
        let mut chat = json!({"choices": [{"message": {"content": format!("{card}!")}}]});
        g.apply(Direction::Response, &mut chat).unwrap();
        assert_eq!(chat["choices"][0]["message"]["content"], json!("[REDACTED:cards]!"));
        let mut chunk = json!({"choices": [{"delta": {"content": card}}]});
        g.apply(Direction::Response, &mut chunk).unwrap();
        assert_eq!(chunk["choices"][0]["delta"]["content"], json!("[REDACTED:cards]"));
        let mut ev = json!({"type": "content_block_delta", "delta": {"type": "text_delta", "text": card}});
        g.apply(Direction::Response, &mut ev).unwrap();
        assert_eq!(ev["delta"]["text"], json!("[REDACTED:cards]"));
    }

    #[test]
    fn applies_to_embeddings_and_responses_api() {
        let g = Guardrails::new(&[rule("ssn", &[PiiDetector::UsSsn], &[], Deny)]).unwrap();
        let mut emb = json!({"model": "e", "input": ["fine", "ssn 123-45-6789"]});
        assert_eq!(g.apply(Direction::Request, &mut emb).unwrap_err().detector, "USSSN");
        let mut tokens = json!({"model": "e", "input": [[1, 2, 3]]});
        assert!(!g.apply(Direction::Request, &mut tokens).unwrap());
        let mut resp_req = json!({"instructions": "x", "input": [{"role": "user", "content": [{"type": "input_text", "text": "123-45-6789"}]}]});
        assert!(g.apply(Direction::Request, &mut resp_req).is_err());
        let mut resp_out = json!({"output": [{"type": "message", "content": [{"type": "output_text", "text": "123 45 6789"}]}]});
        assert!(g.apply(Direction::Response, &mut resp_out).is_err());
        let mut delta = json!({"type": "response.output_text.delta", "delta": "123-45-6789"});
        assert!(g.apply(Direction::Response, &mut delta).is_err());
    }

    #[test]
    fn empty_guardrails_do_nothing() {
        let g = Guardrails::new(&[]).unwrap();
        assert!(g.is_empty());
        let mut b = json!({"messages": [{"role": "user", "content": "4111111111111111"}]});
        assert!(!g.apply(Direction::Request, &mut b).unwrap());
    }
}
