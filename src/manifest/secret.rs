//! `v1` Secrets in the manifests: local mode has no cluster to read credentials from, so the
//! files carry them, with `${ENV_VAR}` in `stringData` values taken from the environment (keys
//! stay out of the files that way).

use super::meta;
use super::yaml::child_path;
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;

/// A Secret read from the manifests, its values decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// `metadata.namespace`, defaulted like every other object.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// Every key: `data` decoded from base64, then `stringData` (which wins on the same key, as
    /// on the API server) with `${ENV_VAR}` expanded.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl Secret {
    /// The bytes of one key.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.data.get(key).map(Vec::as_slice)
    }

    /// One key as UTF-8 text (`None` when missing or not UTF-8).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|b| std::str::from_utf8(b).ok())
    }
}

/// Never print credentials: `Debug` shows the keys only.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A problem with one field of a Secret: its path (empty for the object) and the message.
pub(crate) type SecretProblem = (String, String);

const TOP_LEVEL_FIELDS: [&str; 7] =
    ["apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"];
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// Reads a Secret document. `env` looks up environment variables for `stringData`.
pub(crate) fn read(
    object: &Value,
    default_namespace: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, Vec<SecretProblem>> {
    let mut problems = Vec::new();
    if let Some(map) = object.as_object() {
        for key in map.keys().filter(|k| !TOP_LEVEL_FIELDS.contains(&k.as_str())) {
            problems.push((String::new(), format!("unknown field {}", super::format::go_quote(key))));
        }
    }
    let m = meta::check(object);
    for u in &m.unknown {
        problems.push((String::new(), format!("unknown field {}", super::format::go_quote(u))));
    }
    for e in &m.errors {
        problems.push((e.path.clone(), e.body()));
    }
    let mut data = BTreeMap::new();
    if let Some(d) = field_map(object, "data", &mut problems) {
        for (key, value) in d {
            let path = format!("data[{key}]");
            check_key(key, &path, &mut problems);
            match value.as_str().map(|s| base64::engine::general_purpose::STANDARD.decode(s)) {
                Some(Ok(bytes)) => {
                    data.insert(key.clone(), bytes);
                }
                Some(Err(e)) => {
                    problems.push((path, format!("illegal base64 data at input byte {}", offset(&e))))
                }
                None => problems.push((path, "must be a base64 string".into())),
            }
        }
    }
    if let Some(d) = field_map(object, "stringData", &mut problems) {
        for (key, value) in d {
            let path = format!("stringData[{key}]");
            check_key(key, &path, &mut problems);
            match value.as_str() {
                Some(s) => match expand_env(s, env) {
                    Ok(expanded) => {
                        data.insert(key.clone(), expanded.into_bytes());
                    }
                    Err(unset) => problems.push((path, unset.to_string())),
                },
                None => problems.push((path, "must be a string".into())),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Secret {
        namespace: meta::namespace(object).filter(|n| !n.is_empty()).unwrap_or(default_namespace).to_owned(),
        name: meta::name(object).unwrap_or_default().to_owned(),
        data,
    })
}

/// `object[field]` as a map; `None` when absent or null, a problem when it is something else.
fn field_map<'a>(
    object: &'a Value,
    field: &str,
    problems: &mut Vec<SecretProblem>,
) -> Option<&'a serde_json::Map<String, Value>> {
    match object.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => {
            problems.push((child_path("", field), "must be a map of keys to values".into()));
            None
        }
    }
}

fn check_key(key: &str, path: &str, problems: &mut Vec<SecretProblem>) {
    let ok =
        !key.is_empty() && key.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !ok || key == "." || key == ".." || key.len() > 253 {
        problems.push((
            path.to_owned(),
            format!("Invalid value: {}: {CONFIG_KEY_MSG}", super::format::go_quote(key)),
        ));
    }
}

fn offset(e: &base64::DecodeError) -> usize {
    match e {
        base64::DecodeError::InvalidByte(o, _) | base64::DecodeError::InvalidLastSymbol(o, _) => *o,
        base64::DecodeError::InvalidLength(l) => *l,
        base64::DecodeError::InvalidPadding => 0,
    }
}

/// An environment variable a manifest names that is not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {0} is not set")]
pub(crate) struct UnsetVar(pub String);

/// Expands `${NAME}` from `env`; `$${` is a literal `${`. A `$` followed by anything else is
/// kept as written. `Err` names the first variable that is not set.
pub(crate) fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, UnsetVar> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${")
            && let Some(end) = tail.find('}')
            && is_var_name(&tail[..end])
        {
            let name = &tail[..end];
            out.push_str(&env(name).ok_or_else(|| UnsetVar(name.to_owned()))?);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "sk-123".to_owned())
    }

    #[test]
    fn env_vars_expand_and_missing_ones_are_named() {
        assert_eq!(expand_env("Bearer ${KEY}", &env).unwrap(), "Bearer sk-123");
        assert_eq!(expand_env("$${KEY} $HOME $ ${not valid}", &env).unwrap(), "${KEY} $HOME $ ${not valid}");
        let unset = expand_env("${NOPE}", &env).unwrap_err();
        assert_eq!(unset.0, "NOPE");
        assert_eq!(unset.to_string(), "environment variable NOPE is not set");
    }

    #[test]
    fn data_and_string_data_are_merged() {
        let s = read(
            &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"},
                    "data": {"a": "aGVsbG8=", "b": "eA=="}, "stringData": {"b": "${KEY}"}}),
            "default",
            &env,
        )
        .unwrap();
        assert_eq!(s.namespace, "default");
        assert_eq!(s.get_str("a"), Some("hello"));
        assert_eq!(s.get_str("b"), Some("sk-123"));
        assert!(!format!("{s:?}").contains("sk-123"));
    }

    #[test]
    fn bad_secrets_are_refused() {
        let e = read(
            &json!({"metadata": {"name": "k"}, "data": {"a": "!!"}, "stringData": {"b": "${NOPE}"}, "extra": 1}),
            "default",
            &env,
        )
        .unwrap_err();
        let msgs: Vec<String> = e.iter().map(|(p, m)| format!("{p}: {m}")).collect();
        assert_eq!(
            msgs,
            [
                r#": unknown field "extra""#,
                "data[a]: illegal base64 data at input byte 0",
                "stringData[b]: environment variable NOPE is not set"
            ]
        );
    }
}
