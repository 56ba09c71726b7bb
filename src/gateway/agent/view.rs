//! The few fields of a call and of an agent's answer the gateway reads (the JSON-RPC envelope,
//! task ids, skills, webhook URLs, errors), read through borrowed views: the gateway never builds
//! a document of a message to read them, and forwards the bytes as they came.
//!
//! A [`View`] is one JSON object level seen through the names the gateway cares about, each kept
//! as the raw JSON text of its value (`&RawValue`, borrowed from the body); everything else in
//! the object is skipped without being built. Nested objects are read the same way, one level at
//! a time. A name that appears twice in an object the gateway reads makes the read fail: which
//! copy the agent would act on is unknown, so a call is refused rather than authorized against
//! one of them (see [`call_facts`]).

use super::method::Method;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

type Raw<'a> = Option<&'a RawValue>;

/// A present field, `null` included (`Option<&RawValue>` alone would read `null` as absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Raw<'de>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// One object level, through every name the gateway reads at any level.
#[derive(Deserialize, Default)]
struct View<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    message: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    metadata: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    configuration: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present", rename = "taskId")]
    task_id: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    url: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present", rename = "pushNotificationConfig")]
    push_config: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present", rename = "taskPushNotificationConfig")]
    task_push_config: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    config: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present", rename = "skillId")]
    skill_id_camel: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    skill_id: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    skill: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    task: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present", rename = "statusUpdate")]
    status_update: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present", rename = "artifactUpdate")]
    artifact_update: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    kind: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present", rename = "contextId")]
    context_id: Raw<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    status: Raw<'a>,
}

/// Whether `raw` is a JSON object (its text starts with `{`: a `RawValue` holds no leading
/// whitespace).
fn is_object(raw: Raw) -> bool {
    raw.is_some_and(|r| r.get().starts_with('{'))
}

/// Reads the top-level object of `body` (a derived struct would also read an array,
/// positionally, so anything else is refused first: `Ok(None)` for JSON that is not an object).
fn top(body: &[u8]) -> Result<Option<View<'_>>, serde_json::Error> {
    if body.trim_ascii_start().starts_with(b"{") {
        return serde_json::from_slice(body).map(Some);
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body).map(|_| None)
}

impl<'a> View<'a> {
    /// The view of `raw`: empty when it is absent or not an object, an error when the object
    /// names a field the gateway reads twice.
    fn of(raw: Raw<'a>) -> Result<View<'a>, serde_json::Error> {
        match raw {
            Some(r) if is_object(raw) => serde_json::from_str(r.get()),
            _ => Ok(View::default()),
        }
    }
}

/// The string `raw` holds, if it is a JSON string.
fn string(raw: Raw) -> Option<String> {
    let r = raw?.get();
    if !r.starts_with('"') {
        return None;
    }
    if !r.contains('\\') {
        return Some(r[1..r.len() - 1].to_string());
    }
    serde_json::from_str(r).ok()
}

/// The string `raw` holds, if it is a non-empty JSON string.
fn text(raw: Raw) -> Option<String> {
    string(raw).filter(|s| !s.is_empty())
}

/// Metadata keys naming the skill a message invokes, in the order they are looked up: in
/// `message.metadata`, then in the request's `metadata`.
pub const SKILL_KEYS: &[&str] = &["skillId", "skill_id", "skill"];

impl View<'_> {
    /// The skill named under [`SKILL_KEYS`] (in that order), if any.
    fn skill(&self) -> Option<String> {
        text(self.skill_id_camel).or_else(|| text(self.skill_id)).or_else(|| text(self.skill))
    }

    /// The task id this answer (a JSON-RPC `result`, a REST body or a stream event) carries: a 1.0
    /// `task`, `statusUpdate`, `artifactUpdate` or `message` wrapper, or a 0.3 object with `kind`
    /// (`task`: `id`; others: `taskId`), or a bare 1.0 Task (GetTask / CancelTask result).
    fn task_id_of_answer(&self) -> Result<Option<String>, serde_json::Error> {
        if self.task.is_some() {
            return Ok(text(View::of(self.task)?.id));
        }
        for wrapper in [self.status_update, self.artifact_update, self.message] {
            if wrapper.is_some() {
                return Ok(text(View::of(wrapper)?.task_id));
            }
        }
        Ok(match string(self.kind).as_deref() {
            Some("task") => text(self.id),
            Some(_) => text(self.task_id),
            None if self.status.is_some() && self.context_id.is_some() => text(self.id),
            None => None,
        })
    }
}

/// What the gateway reads of a call's params.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallFacts {
    /// Send methods: `message` is a JSON object (required).
    pub message_is_object: bool,
    /// Send methods: the existing task the message continues (`message.taskId`).
    pub message_task_id: Option<String>,
    /// Send methods: the skill the message names ([`SKILL_KEYS`] in `message.metadata`, then in
    /// `metadata`).
    pub skill: Option<String>,
    /// Methods on a task: the task named by the params (`taskId` for the push-config methods,
    /// else `id`).
    pub task_id: Option<String>,
    /// Every push-notification webhook URL the call carries (both generations of field names);
    /// `<not a string>` for a `url` that is not a string.
    pub webhook_urls: Vec<String>,
}

/// Reads the [`CallFacts`] of `params`, the JSON object of a call to `method`. Fails when the
/// text is not JSON (a syntax error) or not an object, or when an object the gateway reads names
/// one of its fields twice (data errors; the message says which).
pub fn call_facts(method: Method, params: &[u8]) -> Result<CallFacts, serde_json::Error> {
    let Some(p) = top(params)? else {
        return Err(serde::de::Error::custom("not a JSON object"));
    };
    let mut f = CallFacts::default();
    let url = |cfg: Raw| -> Result<Option<String>, serde_json::Error> {
        let u = View::of(cfg)?.url;
        Ok(u.map(|u| string(Some(u)).unwrap_or_else(|| "<not a string>".into())))
    };
    if method.sends() {
        f.message_is_object = is_object(p.message);
        let m = View::of(p.message)?;
        f.message_task_id = text(m.task_id);
        f.skill = View::of(m.metadata)?.skill();
        if f.skill.is_none() {
            f.skill = View::of(p.metadata)?.skill();
        }
        let c = View::of(p.configuration)?;
        for cfg in [c.task_push_config, c.push_config] {
            f.webhook_urls.extend(url(cfg)?);
        }
    }
    if method.on_task() {
        f.task_id = match method {
            Method::CreatePushConfig
            | Method::GetPushConfig
            | Method::ListPushConfigs
            | Method::DeletePushConfig => text(p.task_id).or_else(|| text(p.id)),
            _ => text(p.id),
        };
    }
    if method == Method::CreatePushConfig {
        f.webhook_urls.extend(p.url.map(|u| string(Some(u)).unwrap_or_else(|| "<not a string>".into())));
        let config = View::of(p.config)?;
        for cfg in [p.push_config, p.config, config.push_config] {
            f.webhook_urls.extend(url(cfg)?);
        }
    }
    Ok(f)
}

/// A JSON-RPC request's envelope, as read by [`envelope`].
#[derive(Debug)]
pub struct Envelope<'a> {
    /// `jsonrpc` is the string `"2.0"`.
    pub version_ok: bool,
    /// `id` as its JSON text, if present.
    pub id: Option<&'a RawValue>,
    /// `method`, if it is a string.
    pub method: Option<String>,
    /// `params` as its JSON text, if present and not `null`.
    pub params: Option<&'a RawValue>,
}

/// Reads the envelope of a JSON-RPC request. `Err(None)` when the body is JSON but not an object
/// (an array is a batch); `Err(Some(e))` when it is not JSON or names an envelope field twice.
pub fn envelope(body: &[u8]) -> Result<Envelope<'_>, Option<serde_json::Error>> {
    let v = top(body).map_err(Some)?.ok_or(None)?;
    Ok(Envelope {
        version_ok: v
            .jsonrpc
            .is_some_and(|j| j.get() == "\"2.0\"" || string(Some(j)).as_deref() == Some("2.0")),
        id: v.id,
        method: string(v.method),
        params: v.params.filter(|p| p.get() != "null"),
    })
}

/// What the gateway reads of an agent's answer: a JSON-RPC response, a REST body or the data of
/// a stream event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AnswerFacts {
    /// `error` is present; with `error.message` when that is a string.
    pub error: Option<Option<String>>,
    /// JSON-RPC: `result` is present.
    pub has_result: bool,
    /// The task id the answer proper carries (JSON-RPC: `result`; REST: the whole body).
    pub task_id: Option<String>,
}

/// Reads the [`AnswerFacts`] of `body` (`rpc`: a JSON-RPC response). Fails only when `body` is
/// not JSON. JSON that is not an object, or whose objects name a field the gateway reads twice,
/// carries no facts: it is relayed as it is, and no task is recorded from it.
pub fn answer_facts(rpc: bool, body: &[u8]) -> Result<AnswerFacts, serde_json::Error> {
    let read = || -> Result<AnswerFacts, serde_json::Error> {
        let Some(v) = top(body)? else { return Ok(AnswerFacts::default()) };
        let error = match v.error {
            Some(e) => Some(string(View::of(Some(e))?.message)),
            None => None,
        };
        let task_id = if rpc { View::of(v.result)?.task_id_of_answer()? } else { v.task_id_of_answer()? };
        Ok(AnswerFacts { error, has_result: v.result.is_some(), task_id })
    };
    read().or_else(|e| match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        Ok(_) => Ok(AnswerFacts::default()),
        Err(_) => Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(m: Method, params: &str) -> CallFacts {
        call_facts(m, params.as_bytes()).unwrap()
    }

    #[test]
    fn fields_the_gateway_reads_of_a_call() {
        let p = call(
            Method::SendMessage,
            r#"{"message": {"taskId": "t9", "metadata": {"skillId": "refund"}, "parts": [{"text": "x"}]}}"#,
        );
        assert!(p.message_is_object);
        assert_eq!(p.message_task_id.as_deref(), Some("t9"));
        assert_eq!(p.skill.as_deref(), Some("refund"));
        let p = call(Method::SendMessage, r#"{"message": {"metadata": {}}, "metadata": {"skill": "s"}}"#);
        assert_eq!(p.skill.as_deref(), Some("s"), "the request's metadata when the message names none");
        let p = call(
            Method::SendMessage,
            r#"{"message": {"metadata": {"skill_id": "a"}}, "metadata": {"skill": "b"}}"#,
        );
        assert_eq!(p.skill.as_deref(), Some("a"));
        let p = call(Method::SendMessage, r#"{"message": {"taskId": "", "metadata": "x"}}"#);
        assert_eq!((p.message_task_id, p.skill), (None, None));
        assert!(!call(Method::SendMessage, r#"{"message": null}"#).message_is_object);
        assert!(!call(Method::SendMessage, r#"{"message": "hi"}"#).message_is_object);
        assert!(!call(Method::SendMessage, r#"{}"#).message_is_object);
        let p = call(Method::SendMessage, r#"{"message": {"taskId": "t\u0031"}}"#);
        assert_eq!(p.message_task_id.as_deref(), Some("t1"), "escapes are read");

        assert_eq!(call(Method::GetTask, r#"{"id": "t1"}"#).task_id.as_deref(), Some("t1"));
        assert_eq!(call(Method::GetTask, r#"{"id": 7}"#).task_id, None);
        assert_eq!(
            call(Method::GetPushConfig, r#"{"taskId": "t1", "id": "c"}"#).task_id.as_deref(),
            Some("t1")
        );
        assert_eq!(
            call(Method::GetPushConfig, r#"{"id": "t1", "pushNotificationConfigId": "c"}"#)
                .task_id
                .as_deref(),
            Some("t1")
        );
        assert_eq!(call(Method::SendMessage, r#"{"id": "t1", "message": {}}"#).task_id, None);
    }

    #[test]
    fn webhook_urls_in_both_generations_of_names() {
        let send = r#"{"message": {}, "configuration": {"taskPushNotificationConfig": {"url": "http://a"}, "pushNotificationConfig": {"url": "http://b"}}}"#;
        assert_eq!(call(Method::SendMessage, send).webhook_urls, vec!["http://a", "http://b"]);
        let set = r#"{"taskId": "t", "pushNotificationConfig": {"url": "http://c"}}"#;
        assert_eq!(call(Method::CreatePushConfig, set).webhook_urls, vec!["http://c"]);
        let set = r#"{"taskId": "t", "config": {"url": "http://d", "pushNotificationConfig": {"url": "http://e"}}}"#;
        assert_eq!(call(Method::CreatePushConfig, set).webhook_urls, vec!["http://d", "http://e"]);
        assert_eq!(
            call(Method::CreatePushConfig, r#"{"taskId": "t", "url": 5}"#).webhook_urls,
            vec!["<not a string>"]
        );
        assert_eq!(
            call(Method::CreatePushConfig, r#"{"taskId": "t", "url": null}"#).webhook_urls,
            vec!["<not a string>"]
        );
        assert!(call(Method::GetTask, r#"{"id": "t", "url": "http://x"}"#).webhook_urls.is_empty());
    }

    #[test]
    fn a_field_named_twice_is_refused_not_guessed() {
        let e = call_facts(Method::SendMessage, br#"{"message": {"taskId": "mine", "taskId": "yours"}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("duplicate field `taskId`"), "{e}");
        let e = call_facts(Method::GetTask, br#"{"id": "a", "id": "b"}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `id`"), "{e}");
        assert!(call_facts(Method::GetTask, b"{").is_err());
        // Fields the gateway does not read may repeat: they are the agent's business.
        assert!(call_facts(Method::SendMessage, br#"{"message": {"parts": [], "parts": []}}"#).is_ok());
    }

    #[test]
    fn the_envelope() {
        let e =
            envelope(br#"{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"a": 1}}"#).unwrap();
        assert!(e.version_ok);
        assert_eq!(e.id.map(|i| i.get()), Some("1"));
        assert_eq!(e.method.as_deref(), Some("SendMessage"));
        assert_eq!(e.params.map(|p| p.get()), Some(r#"{"a": 1}"#));
        let e = envelope(br#"{"jsonrpc": "1.0", "method": 5, "params": null}"#).unwrap();
        assert!(!e.version_ok);
        assert!(e.id.is_none() && e.method.is_none() && e.params.is_none());
        assert!(matches!(envelope(b"[1]"), Err(None)), "a batch");
        assert!(matches!(envelope(b" \"x\""), Err(None)));
        assert!(matches!(envelope(b"{\"a\":"), Err(Some(_))));
        assert!(matches!(envelope(br#"{"id": 1, "id": 2}"#), Err(Some(_))));
    }

    #[test]
    fn task_ids_and_errors_of_answers() {
        let a = |rpc, s: &str| answer_facts(rpc, s.as_bytes()).unwrap();
        let t = |s: &str| a(false, s).task_id;
        assert_eq!(t(r#"{"task": {"id": "a"}}"#).as_deref(), Some("a"));
        assert_eq!(t(r#"{"statusUpdate": {"taskId": "b"}}"#).as_deref(), Some("b"));
        assert_eq!(t(r#"{"artifactUpdate": {"taskId": "c"}}"#).as_deref(), Some("c"));
        assert_eq!(t(r#"{"message": {"messageId": "m"}}"#), None);
        assert_eq!(t(r#"{"kind": "task", "id": "d"}"#).as_deref(), Some("d"));
        assert_eq!(t(r#"{"kind": "status-update", "taskId": "e"}"#).as_deref(), Some("e"));
        assert_eq!(t(r#"{"id": "f", "contextId": "c", "status": {}}"#).as_deref(), Some("f"));
        assert_eq!(t(r#"{"id": "f", "status": {}}"#), None);
        assert_eq!(t(r#"{"task": "x"}"#), None);

        let r = a(true, r#"{"jsonrpc": "2.0", "id": 1, "result": {"task": {"id": "t"}}}"#);
        assert_eq!(r, AnswerFacts { error: None, has_result: true, task_id: Some("t".into()) });
        let r =
            a(true, r#"{"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "no such task"}}"#);
        assert_eq!(r.error, Some(Some("no such task".into())));
        assert!(!r.has_result);
        assert_eq!(a(true, r#"{"error": null}"#).error, Some(None), "present, even null");
        assert_eq!(a(false, r#"{"error": {"message": "bad"}, "id": "x"}"#).error, Some(Some("bad".into())));
        // Valid JSON the gateway cannot read carries no facts; broken JSON is an error.
        assert_eq!(a(true, "[1, 2]"), AnswerFacts::default());
        assert_eq!(a(true, r#"{"result": {"task": {"id": "a", "id": "b"}}}"#), AnswerFacts::default());
        assert!(answer_facts(true, b"<html>").is_err());
    }
}
