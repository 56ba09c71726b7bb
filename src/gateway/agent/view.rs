//! The few fields of a call and of an agent's answer the gateway reads (the JSON-RPC envelope,
//! task ids, skills, webhook URLs, errors), read in one pass through typed views: the gateway
//! never builds a document of a message to read them, and forwards the bytes as they came.
//!
//! Each view names only the fields the gateway reads; everything else is skipped without being
//! built. A field of an unexpected JSON type reads as absent, as a lookup in a document would (a
//! `message` that is a string has no `taskId`). A name that appears twice in an object the
//! gateway reads makes the read fail: which copy the agent would act on is unknown, so a call is
//! refused rather than authorized against one of them.
//!
//! About 520 lines of code, the rest its tests (the fields read of calls and answers, a field named
//! twice).

use super::method::Method;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Skips the rest of a sequence (an array where the gateway expected something else).
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A field's value if it is a JSON object (read as `T`); `present` whatever its type.
#[derive(Debug)]
struct Obj<T> {
    present: bool,
    value: Option<T>,
}

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj { present: false, value: None }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                let value = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Obj { present: true, value: Some(value) })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Obj<T>, A::Error> {
                skip_seq(seq)?;
                Ok(Obj { present: true, value: None })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Obj<T>, E> {
                Ok(Obj { present: true, value: None })
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Obj<T>, E> {
                self.visit_unit()
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Obj<T>, E> {
                self.visit_unit()
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Obj<T>, E> {
                self.visit_unit()
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Obj<T>, E> {
                self.visit_unit()
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Obj<T>, E> {
                self.visit_unit()
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A field's value if it is a JSON string; `None` for any other type.
#[derive(Debug, Default)]
struct Str(Option<String>);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Str, E> {
                Ok(Str(Some(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Str, E> {
                Ok(Str(Some(s)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Str, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Str(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Str, A::Error> {
                skip_seq(seq)?;
                Ok(Str(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Str, E> {
                Ok(Str(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Str, E> {
                self.visit_unit()
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Str, E> {
                self.visit_unit()
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Str, E> {
                self.visit_unit()
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Str, E> {
                self.visit_unit()
            }
        }
        d.deserialize_any(V)
    }
}

impl Str {
    /// The string, if it is a non-empty one.
    fn text(self) -> Option<String> {
        self.0.filter(|s| !s.is_empty())
    }
}

/// A webhook `url`: the string, or `<not a string>` for any other value (`null` included).
#[derive(Debug, Default)]
struct Url(Option<String>);

impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Str::deserialize(d)?;
        Ok(Url(Some(s.0.unwrap_or_else(|| "<not a string>".into()))))
    }
}

/// Metadata keys naming the skill a message invokes, in the order they are looked up: in
/// `message.metadata`, then in the request's `metadata`.
pub const SKILL_KEYS: &[&str] = &["skillId", "skill_id", "skill"];

/// An object that may name a skill ([`SKILL_KEYS`]).
#[derive(Deserialize, Debug, Default)]
struct SkillMeta {
    #[serde(default, rename = "skillId")]
    skill_id_camel: Str,
    #[serde(default)]
    skill_id: Str,
    #[serde(default)]
    skill: Str,
}

impl SkillMeta {
    fn skill(self) -> Option<String> {
        self.skill_id_camel.text().or_else(|| self.skill_id.text()).or_else(|| self.skill.text())
    }
}

/// A message: the task it continues and its metadata.
#[derive(Deserialize, Debug, Default)]
struct MessageView {
    #[serde(default, rename = "taskId")]
    task_id: Str,
    #[serde(default, rename = "contextId")]
    context_id: Str,
    #[serde(default)]
    metadata: Obj<SkillMeta>,
}

/// Something holding a webhook `url`, maybe under `pushNotificationConfig` too.
#[derive(Deserialize, Debug, Default)]
struct UrlHolder {
    #[serde(default)]
    url: Url,
    #[serde(default, rename = "pushNotificationConfig")]
    push_config: Obj<UrlOnly>,
}

#[derive(Deserialize, Debug, Default)]
struct UrlOnly {
    #[serde(default)]
    url: Url,
}

/// A send's `configuration`: its push-notification configs under both generations of names.
#[derive(Deserialize, Debug, Default)]
struct Configuration {
    #[serde(default, rename = "taskPushNotificationConfig")]
    task_push_config: Obj<UrlOnly>,
    #[serde(default, rename = "pushNotificationConfig")]
    push_config: Obj<UrlOnly>,
}

/// A call's params (or a REST body): every field any method's checks read.
#[derive(Deserialize, Debug, Default)]
pub struct Params {
    #[serde(default)]
    message: Obj<MessageView>,
    #[serde(default)]
    metadata: Obj<SkillMeta>,
    #[serde(default)]
    configuration: Obj<Configuration>,
    #[serde(default)]
    id: Str,
    #[serde(default, rename = "taskId")]
    task_id: Str,
    #[serde(default)]
    url: Url,
    #[serde(default, rename = "pushNotificationConfig")]
    push_config: Obj<UrlOnly>,
    #[serde(default)]
    config: Obj<UrlHolder>,
}

/// What the gateway reads of a call's params.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallFacts {
    /// Send methods: `message` is a JSON object (required).
    pub message_is_object: bool,
    /// Send methods: the existing task the message continues (`message.taskId`).
    pub message_task_id: Option<String>,
    /// Send methods: the context the message belongs to (`message.contextId`).
    pub context_id: Option<String>,
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

impl Params {
    /// The facts of these params for a call to `method`.
    pub fn facts(self, method: Method) -> CallFacts {
        let mut f = CallFacts::default();
        let urls = |o: Obj<UrlOnly>| o.value.and_then(|u| u.url.0);
        if method.sends() {
            f.message_is_object = self.message.value.is_some();
            let m = self.message.value.unwrap_or_default();
            f.message_task_id = m.task_id.text();
            f.context_id = m.context_id.text();
            f.skill = m.metadata.value.and_then(SkillMeta::skill);
            if f.skill.is_none() {
                f.skill = self.metadata.value.and_then(SkillMeta::skill);
            }
            let c = self.configuration.value.unwrap_or_default();
            f.webhook_urls.extend(urls(c.task_push_config));
            f.webhook_urls.extend(urls(c.push_config));
        }
        if method.on_task() {
            f.task_id = match method {
                Method::CreatePushConfig
                | Method::GetPushConfig
                | Method::ListPushConfigs
                | Method::DeletePushConfig => self.task_id.text().or_else(|| self.id.text()),
                _ => self.id.text(),
            };
        }
        if method == Method::CreatePushConfig {
            f.webhook_urls.extend(self.url.0);
            f.webhook_urls.extend(urls(self.push_config));
            if let Some(config) = self.config.value {
                f.webhook_urls.extend(config.url.0);
                f.webhook_urls.extend(urls(config.push_config));
            }
        }
        f
    }
}

/// Whether `body` is a JSON object (its first non-blank byte is `{`).
fn is_object(body: &[u8]) -> bool {
    body.trim_ascii_start().starts_with(b"{")
}

/// Reads `body` as the view `T`. Only broken JSON is a syntax (or EOF) error: a view also fails on
/// sound JSON when a number in a field it reads is beyond `f64`'s range (`1e999`: JSON's grammar
/// has no bound, serde_json's numbers do), and that is answered as a data error, like a field
/// named twice — the body is JSON the gateway cannot read, not a parse error.
fn read<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(body).map_err(|e| {
        match e.is_data() || serde_json::from_slice::<IgnoredAny>(body).is_err() {
            true => e,
            false => de::Error::custom(e),
        }
    })
}

/// Reads the params of a REST call (`body`, a JSON object). Fails when it is not JSON (a syntax
/// error) or not an object, or names a field the gateway reads twice, or a number it reads is
/// beyond range (data errors).
pub fn rest_params(body: &[u8]) -> Result<Params, serde_json::Error> {
    if !is_object(body) {
        // A derived struct would also read an array, positionally: refuse anything else first.
        serde_json::from_slice::<IgnoredAny>(body)?;
        return Err(de::Error::custom("not a JSON object"));
    }
    read(body)
}

/// A JSON-RPC request's `params`.
// It lives on the stack for one parse; boxing the large variant would be an allocation per call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Default)]
pub enum ParamsField {
    /// Absent.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// An object.
    Object(Params),
    /// Another JSON type.
    Other,
}

/// Marks an error found inside `params`, so that it is answered as invalid params.
const IN_PARAMS: &str = "'params': ";

impl<'de> Deserialize<'de> for ParamsField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Obj::<Params>::deserialize(d) {
            Ok(Obj { value: Some(p), .. }) => Ok(ParamsField::Object(p)),
            Ok(_) => Ok(ParamsField::Other),
            Err(e) => Err(de::Error::custom(format_args!("{IN_PARAMS}{e}"))),
        }
    }
}

/// A JSON-RPC request's envelope, as read by [`request`].
#[derive(Deserialize, Debug)]
pub struct Envelope {
    #[serde(default)]
    jsonrpc: Str,
    /// `id` (`None` when absent or `null`).
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    #[serde(default)]
    method: Str,
    /// `params`.
    #[serde(default, deserialize_with = "params_field")]
    pub params: ParamsField,
}

/// `params` as present: `null` is [`ParamsField::Null`] (an `Option` would read it as absent).
fn params_field<'de, D: Deserializer<'de>>(d: D) -> Result<ParamsField, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = ParamsField;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_unit<E: de::Error>(self) -> Result<ParamsField, E> {
            Ok(ParamsField::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<ParamsField, D::Error> {
            ParamsField::deserialize(d)
        }
        fn visit_none<E: de::Error>(self) -> Result<ParamsField, E> {
            Ok(ParamsField::Null)
        }
    }
    d.deserialize_option(V)
}

impl Envelope {
    /// `jsonrpc` is the string `"2.0"`.
    pub fn version_ok(&self) -> bool {
        self.jsonrpc.0.as_deref() == Some("2.0")
    }

    /// `method`, if it is a string.
    pub fn method(&mut self) -> Option<String> {
        self.method.0.take()
    }
}

/// Why a JSON-RPC request cannot be read.
#[derive(Debug)]
pub enum RequestError {
    /// Not JSON (the parser's message).
    Parse(String),
    /// JSON, but not an object (`true`: an array, a batch).
    NotAnObject { batch: bool },
    /// An envelope field named twice, or a number in one beyond range (the message).
    Envelope(String),
    /// A field inside `params` named twice (the message), with the request's `id` when it has a
    /// valid one.
    Params(String, Option<serde_json::Value>),
}

/// Whether `body` is UTF-8, as JSON must be: the views skip what they do not read without
/// checking it, so this is checked first. The error says where it is not.
pub fn utf8(body: &[u8]) -> Result<(), String> {
    std::str::from_utf8(body)
        .map(|_| ())
        .map_err(|e| format!("the body is not UTF-8 (invalid bytes at offset {})", e.valid_up_to()))
}

/// Reads a JSON-RPC request in one pass: its envelope and its params' fields.
pub fn request(body: &[u8]) -> Result<Envelope, RequestError> {
    utf8(body).map_err(RequestError::Parse)?;
    let e = match is_object(body) {
        true => match read::<Envelope>(body) {
            Ok(env) => return Ok(env),
            Err(e) => e,
        },
        false => match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => {
                return Err(RequestError::NotAnObject { batch: body.trim_ascii_start().starts_with(b"[") });
            }
            Err(e) => e,
        },
    };
    if !e.is_data() {
        return Err(RequestError::Parse(e.to_string()));
    }
    // Error paths from here on. An error inside `params` arrives as a data error (it was
    // marked), whatever it was: broken JSON there is still a parse error.
    if let Err(syntax) = serde_json::from_slice::<IgnoredAny>(body) {
        return Err(RequestError::Parse(syntax.to_string()));
    }
    let msg = e.to_string();
    match msg.strip_prefix(IN_PARAMS) {
        Some(inner) => {
            // The position is the marked error's; the inner message ends with its own.
            let inner = inner.split(" at line ").next().unwrap_or(inner);
            // The id alone: the rest (params included) is skipped, not read again.
            #[derive(Deserialize)]
            struct Id {
                id: Option<serde_json::Value>,
            }
            let id = serde_json::from_slice::<Id>(body).ok().and_then(|i| i.id);
            Err(RequestError::Params(inner.to_string(), id))
        }
        None => Err(RequestError::Envelope(msg)),
    }
}

/// An agent's answer: a JSON-RPC response, a REST body or a stream event's data. The answer
/// proper (a JSON-RPC `result`) has the same shape, read with the same type.
#[derive(Deserialize, Debug, Default)]
struct Answer {
    #[serde(default)]
    error: Obj<ErrorView>,
    #[serde(default)]
    result: Obj<Box<Answer>>,
    #[serde(default)]
    task: Obj<IdOnly>,
    #[serde(default, rename = "statusUpdate")]
    status_update: Obj<TaskIdOnly>,
    #[serde(default, rename = "artifactUpdate")]
    artifact_update: Obj<TaskIdOnly>,
    #[serde(default)]
    message: Obj<TaskIdOnly>,
    #[serde(default)]
    kind: Str,
    #[serde(default)]
    id: Str,
    #[serde(default, rename = "taskId")]
    task_id: Str,
    #[serde(default, rename = "contextId")]
    context_id: Obj<IgnoredAny>,
    #[serde(default)]
    status: Obj<IgnoredAny>,
}

#[derive(Deserialize, Debug, Default)]
struct ErrorView {
    #[serde(default)]
    message: Str,
}

#[derive(Deserialize, Debug, Default)]
struct IdOnly {
    #[serde(default)]
    id: Str,
    #[serde(default, rename = "contextId")]
    context_id: Str,
}

#[derive(Deserialize, Debug, Default)]
struct TaskIdOnly {
    #[serde(default, rename = "taskId")]
    task_id: Str,
}

impl Answer {
    /// The task id this answer carries: a 1.0 `task`, `statusUpdate`, `artifactUpdate` or
    /// `message` wrapper, or a 0.3 object with `kind` (`task`: `id`; others: `taskId`), or a bare
    /// 1.0 Task (GetTask / CancelTask result).
    fn task_id_of(self) -> Option<String> {
        if self.task.present {
            return self.task.value.and_then(|t| t.id.text());
        }
        for wrapper in [self.status_update, self.artifact_update, self.message] {
            if wrapper.present {
                return wrapper.value.and_then(|w| w.task_id.text());
            }
        }
        match self.kind.0.as_deref() {
            Some("task") => self.id.text(),
            Some(_) => self.task_id.text(),
            None if self.status.present && self.context_id.present => self.id.text(),
            None => None,
        }
    }
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
    /// The context id of the task the answer proper carries (a 1.0 `task` wrapper).
    pub context_id: Option<String>,
}

/// Reads the [`AnswerFacts`] of `body` (`rpc`: a JSON-RPC response). Fails only when `body` is
/// not JSON. JSON that is not an object, or whose objects name a field the gateway reads twice,
/// carries no facts: it is relayed as it is, and no task is recorded from it.
pub fn answer_facts(rpc: bool, body: &[u8]) -> Result<AnswerFacts, serde_json::Error> {
    let unread = || serde_json::from_slice::<IgnoredAny>(body).map(|_| AnswerFacts::default());
    if !is_object(body) {
        return unread();
    }
    let a = match read::<Answer>(body) {
        Ok(a) => a,
        Err(e) if e.is_data() => return unread(),
        Err(e) => return Err(e),
    };
    let mut a = a;
    let err = std::mem::take(&mut a.error);
    let error = err.present.then(|| err.value.and_then(|e| e.message.0));
    let has_result = a.result.present;
    let proper = if rpc { a.result.value.map(|r| *r) } else { Some(a) };
    let context_id = proper.as_ref().and_then(|p| p.task.value.as_ref()).and_then(|t| t.context_id.0.clone());
    let task_id = proper.and_then(Answer::task_id_of);
    Ok(AnswerFacts { error, has_result, task_id, context_id: context_id.filter(|c| !c.is_empty()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(m: Method, params: &str) -> CallFacts {
        rest_params(params.as_bytes()).unwrap().facts(m)
    }

    /// Found by the `a2a_jsonrpc` fuzz target: a key with bytes that are not UTF-8, in a field
    /// the views skip, read as a call although it is not JSON.
    #[test]
    fn a_body_that_is_not_utf8_is_a_parse_error() {
        let body = b"{\"jsonrpc\": \"2.0\", \"id\": 3, \"method\": \"GetTask\", \"params\": {\"tas\xc8kId\": \"t1\"}}";
        match request(body) {
            Err(RequestError::Parse(e)) => {
                assert_eq!(e, "the body is not UTF-8 (invalid bytes at offset 64)")
            }
            other => panic!("{other:?}"),
        }
        assert!(utf8(br#"{"a": "\ud800"}"#).is_ok(), "escapes are JSON's business, not UTF-8's");
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
        let p = call(Method::SendMessage, r#"{"message": {"taskId": 5, "metadata": {"skill": ["x"]}}}"#);
        assert_eq!((p.message_task_id, p.skill), (None, None), "other types read as absent");
        assert!(!call(Method::SendMessage, r#"{"message": null}"#).message_is_object);
        assert!(!call(Method::SendMessage, r#"{"message": "hi"}"#).message_is_object);
        assert!(!call(Method::SendMessage, r#"{"message": [{"taskId": "t"}]}"#).message_is_object);
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
        let e = rest_params(br#"{"message": {"taskId": "mine", "taskId": "yours"}}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `taskId`"), "{e}");
        let e = rest_params(br#"{"id": "a", "id": "b"}"#).unwrap_err();
        assert!(e.to_string().contains("duplicate field `id`"), "{e}");
        assert!(rest_params(b"{").unwrap_err().is_eof());
        assert!(rest_params(b"[1]").unwrap_err().is_data(), "valid JSON, not an object");
        assert!(rest_params(b"[1").unwrap_err().is_eof());
        // Fields the gateway does not read may repeat: they are the agent's business.
        assert!(rest_params(br#"{"message": {"parts": [], "parts": []}}"#).is_ok());
    }

    #[test]
    fn the_envelope() {
        let mut e =
            request(br#"{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {"taskId": "t"}}}"#)
                .unwrap();
        assert!(e.version_ok());
        assert_eq!(e.id, Some(serde_json::json!(1)));
        assert_eq!(e.method().as_deref(), Some("SendMessage"));
        let ParamsField::Object(p) = e.params else { panic!("{:?}", e.params) };
        assert_eq!(p.facts(Method::SendMessage).message_task_id.as_deref(), Some("t"));
        let mut e = request(br#"{"jsonrpc": "1.0", "method": 5, "params": null}"#).unwrap();
        assert!(!e.version_ok());
        assert!(e.id.is_none() && e.method().is_none());
        assert!(matches!(e.params, ParamsField::Null));
        assert!(matches!(request(br#"{"params": "x"}"#).unwrap().params, ParamsField::Other));
        assert!(matches!(request(br#"{}"#).unwrap().params, ParamsField::Absent));
        assert!(matches!(request(b"[1]"), Err(RequestError::NotAnObject { batch: true })));
        assert!(matches!(request(b" \"x\""), Err(RequestError::NotAnObject { batch: false })));
        assert!(matches!(request(b"{\"a\":"), Err(RequestError::Parse(_))));
        assert!(matches!(request(b"[1,"), Err(RequestError::Parse(_))));
        assert!(
            matches!(request(br#"{"id": 1, "id": 2}"#), Err(RequestError::Envelope(m)) if m.contains("duplicate field `id`"))
        );
        let e = request(br#"{"id": 3, "params": {"message": {"taskId": "a", "taskId": "b"}}}"#);
        let Err(RequestError::Params(m, id)) = e else { panic!("{e:?}") };
        assert!(m.starts_with("duplicate field `taskId`"), "{m}");
        assert_eq!(id, Some(serde_json::json!(3)));
        let e = request(br#"{"id": 3, "params": {"message": {"taskId": "a" "b"}}}"#);
        assert!(
            matches!(e, Err(RequestError::Parse(_))),
            "broken JSON inside params is a parse error: {e:?}"
        );
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
        assert_eq!(t(r#"{"id": "f", "contextId": null, "status": null}"#).as_deref(), Some("f"));
        assert_eq!(t(r#"{"id": "f", "status": {}}"#), None);
        assert_eq!(t(r#"{"task": "x", "statusUpdate": {"taskId": "b"}}"#), None, "a present task decides");

        let r = a(true, r#"{"jsonrpc": "2.0", "id": 1, "result": {"task": {"id": "t"}}}"#);
        assert_eq!(
            r,
            AnswerFacts { error: None, has_result: true, task_id: Some("t".into()), context_id: None }
        );
        let r =
            a(true, r#"{"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "no such task"}}"#);
        assert_eq!(r.error, Some(Some("no such task".into())));
        assert!(!r.has_result);
        assert_eq!(a(true, r#"{"error": null}"#).error, Some(None), "present, even null");
        assert!(a(true, r#"{"result": null}"#).has_result);
        assert_eq!(a(false, r#"{"error": {"message": "bad"}, "id": "x"}"#).error, Some(Some("bad".into())));
        // Valid JSON the gateway cannot read carries no facts; broken JSON is an error.
        assert_eq!(a(true, "[1, 2]"), AnswerFacts::default());
        assert_eq!(a(true, r#"{"result": {"task": {"id": "a", "id": "b"}}}"#), AnswerFacts::default());
        assert!(answer_facts(true, b"<html>").is_err());
        assert!(answer_facts(true, br#"{"result": "#).is_err());
    }

    /// Found by the `a2a_jsonrpc` fuzz target (in CI's short run): a number beyond `f64`'s range
    /// in a field the views read made sound JSON a parse error.
    #[test]
    fn a_number_beyond_range_is_json_the_gateway_cannot_read() {
        let e = request(b"{\"jsonrpc\": 444444444444444444444e444444\n}");
        let Err(RequestError::Envelope(m)) = e else { panic!("{e:?}") };
        assert_eq!(m, "number out of range at line 1 column 40");
        let e = request(br#"{"id": 1, "params": {"message": {"taskId": 1e999}}}"#);
        let Err(RequestError::Params(m, id)) = e else { panic!("{e:?}") };
        assert!(m.starts_with("number out of range"), "{m}");
        assert_eq!(id, Some(serde_json::json!(1)));
        let e = rest_params(br#"{"id": -1e400}"#).unwrap_err();
        assert!(e.is_data() && e.to_string().starts_with("number out of range"), "{e}");
        let a = answer_facts(true, br#"{"id": 1e999, "result": {"task": {"id": "t"}}}"#).unwrap();
        assert_eq!(a, AnswerFacts::default(), "relayed as it is, no facts");
        // A number nobody reads is the agent's business; a broken one is still a parse error.
        assert!(request(br#"{"jsonrpc": "2.0", "params": {"other": 1e999}}"#).is_ok());
        assert!(matches!(request(b"{\"id\": 1e}"), Err(RequestError::Parse(_))));
    }
}
