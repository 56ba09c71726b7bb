//! `metadata` checks the API server makes on every object (ObjectMeta decoding and
//! `ValidateObjectMeta`): known fields only, a DNS-1123 subdomain `name`, a DNS-1123 label
//! `namespace`, qualified-name keys in `labels` and `annotations`, and valid label values.

use super::schema::{ErrorType, FieldError};
use serde_json::Value;

/// The fields of `ObjectMeta` (k8s.io/apimachinery/pkg/apis/meta/v1).
const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// What the metadata checks found.
#[derive(Debug, Default)]
pub(crate) struct MetaCheck {
    /// Fields of `metadata` that ObjectMeta does not have (`metadata.foo`).
    pub unknown: Vec<String>,
    /// Validation errors, in the API server's form.
    pub errors: Vec<FieldError>,
}

/// `metadata.name`, when it is a string.
pub(crate) fn name(object: &Value) -> Option<&str> {
    object.get("metadata")?.get("name")?.as_str()
}

/// `metadata.namespace`, when it is a string.
pub(crate) fn namespace(object: &Value) -> Option<&str> {
    object.get("metadata")?.get("namespace")?.as_str()
}

/// Checks `metadata` of an object.
pub(crate) fn check(object: &Value) -> MetaCheck {
    let mut out = MetaCheck::default();
    let meta = match object.get("metadata") {
        None | Some(Value::Null) => {
            out.errors.push(required_name());
            return out;
        }
        Some(Value::Object(m)) => m,
        Some(other) => {
            out.errors.push(FieldError::new(
                "metadata",
                ErrorType::TypeInvalid,
                other.clone(),
                "metadata must be an object",
            ));
            return out;
        }
    };
    for key in meta.keys() {
        if !OBJECT_META_FIELDS.contains(&key.as_str()) {
            out.unknown.push(format!("metadata.{key}"));
        }
    }
    match meta.get("name") {
        None | Some(Value::Null) => out.errors.push(required_name()),
        Some(Value::String(n)) if n.is_empty() => out.errors.push(required_name()),
        Some(Value::String(n)) => {
            for msg in dns1123_subdomain(n) {
                out.errors.push(FieldError::new(
                    "metadata.name",
                    ErrorType::Invalid,
                    Value::from(n.as_str()),
                    msg,
                ));
            }
        }
        Some(other) => out.errors.push(not_a_string("metadata.name", other)),
    }
    match meta.get("namespace") {
        None | Some(Value::Null) => {}
        Some(Value::String(ns)) if ns.is_empty() => {}
        Some(Value::String(ns)) => {
            for msg in dns1123_label(ns) {
                out.errors.push(FieldError::new(
                    "metadata.namespace",
                    ErrorType::Invalid,
                    Value::from(ns.as_str()),
                    msg,
                ));
            }
        }
        Some(other) => out.errors.push(not_a_string("metadata.namespace", other)),
    }
    for map in ["labels", "annotations"] {
        let path = format!("metadata.{map}");
        match meta.get(map) {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                // The API server reports them in key order.
                let mut entries: Vec<_> = entries.iter().collect();
                entries.sort_by_key(|(k, _)| *k);
                for (k, v) in entries {
                    // ValidateLabels / ValidateAnnotations: qualified-name keys (annotation keys
                    // lowercased first), label values of at most 63 characters.
                    let key = if map == "labels" { k.clone() } else { k.to_lowercase() };
                    for msg in qualified_name(&key) {
                        out.errors.push(FieldError::new(
                            &path,
                            ErrorType::Invalid,
                            Value::from(k.as_str()),
                            msg,
                        ));
                    }
                    match v {
                        Value::String(v) if map == "labels" => {
                            for msg in label_value(v) {
                                out.errors.push(FieldError::new(
                                    &path,
                                    ErrorType::Invalid,
                                    Value::from(v.as_str()),
                                    msg,
                                ));
                            }
                        }
                        Value::String(_) => {}
                        other => out.errors.push(not_a_string(&format!("{path}.{k}"), other)),
                    }
                }
            }
            Some(other) => out.errors.push(FieldError::new(
                &format!("metadata.{map}"),
                ErrorType::TypeInvalid,
                other.clone(),
                "must be a map of strings",
            )),
        }
    }
    out
}

fn required_name() -> FieldError {
    FieldError::new("metadata.name", ErrorType::Required, Value::Null, "name or generateName is required")
}

fn not_a_string(path: &str, value: &Value) -> FieldError {
    FieldError::new(path, ErrorType::TypeInvalid, value.clone(), "must be a string")
}

/// apimachinery's `RegexError`: the message, examples and the regular expression.
fn regex_error(msg: &str, regex: &str, examples: &[&str]) -> String {
    format!("{msg} (e.g. '{}', regex used for validation is '{regex}')", examples.join("',  or '"))
}

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsQualifiedName`: `[prefix/]name`, the prefix a DNS-1123 subdomain, the name at most 63
/// characters.
pub(crate) fn qualified_name(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                msgs.push("prefix part must be non-empty".to_owned());
            } else {
                msgs.extend(dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            msgs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return msgs;
        }
    };
    if name.is_empty() {
        msgs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        msgs.push("name part must be no more than 63 characters".to_owned());
    }
    if !is_qualified_name_part(name) {
        msgs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    msgs
}

/// `IsValidLabelValue`: empty, or a qualified-name part of at most 63 characters.
pub(crate) fn label_value(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push("must be no more than 63 characters".to_owned());
    }
    if !s.is_empty() && !is_qualified_name_part(s) {
        msgs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?",
            &["MyValue", "my_value", "12345"],
        ));
    }
    msgs
}

/// `IsDNS1123Subdomain`: the messages for a name that is not one (none when it is).
pub(crate) fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 253 {
        msgs.push("must be no more than 253 characters".to_owned());
    }
    if !s.split('.').all(is_dns1123_label) {
        msgs.push(DNS1123_SUBDOMAIN_MSG.to_owned());
    }
    msgs
}

/// `IsDNS1123Label`: the messages for a label that is not one (none when it is).
pub(crate) fn dns1123_label(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push("must be no more than 63 characters".to_owned());
    }
    if !is_dns1123_label(s) {
        msgs.push(DNS1123_LABEL_MSG.to_owned());
    }
    msgs
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, without the length limit.
fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bodies(object: Value) -> Vec<String> {
        check(&object).errors.iter().map(|e| format!("{}: {}", e.field(), e.body())).collect()
    }

    #[test]
    fn names_follow_dns_1123() {
        assert!(dns1123_subdomain("files.example-1").is_empty());
        assert!(!dns1123_subdomain("Files").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
        assert!(!dns1123_subdomain("-a").is_empty());
        assert_eq!(dns1123_subdomain(&"a".repeat(254)), ["must be no more than 253 characters"]);
        assert!(dns1123_label("team-a").is_empty());
        assert!(!dns1123_label("team.a").is_empty());
    }

    #[test]
    fn metadata_errors_read_like_the_api_server() {
        assert_eq!(bodies(json!({})), ["metadata.name: Required value: name or generateName is required"]);
        let msgs = bodies(json!({"metadata": {"name": "Bad_Name"}}));
        assert_eq!(msgs.len(), 1);
        assert!(
            msgs[0]
                .starts_with(r#"metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain"#)
        );
        assert!(
            bodies(json!({"metadata": {"name": "ok", "namespace": "team-a", "labels": {"a": "b"}}}))
                .is_empty()
        );
        assert_eq!(check(&json!({"metadata": {"name": "ok", "nmae": "x"}})).unknown, ["metadata.nmae"]);
        let msgs = bodies(
            json!({"metadata": {"name": "ok", "labels": {"team": "a b", "-x": "y"}, "annotations": {"Ok/Key": "v"}}}),
        );
        assert_eq!(msgs.len(), 2, "{msgs:#?}");
        assert!(msgs[0].starts_with(r#"metadata.labels: Invalid value: "-x": name part must consist of"#));
        assert!(
            msgs[1].starts_with(
                r#"metadata.labels: Invalid value: "a b": a valid label must be an empty string"#
            )
        );
    }

    #[test]
    fn qualified_names() {
        assert!(qualified_name("app.kubernetes.io/name").is_empty());
        assert!(qualified_name("team").is_empty());
        assert_eq!(qualified_name("/x"), ["prefix part must be non-empty"]);
        assert_eq!(qualified_name("a/b/c").len(), 1);
        assert!(!qualified_name(&"a".repeat(64)).is_empty());
        assert!(label_value("").is_empty());
        assert!(!label_value("a_").is_empty());
    }
}
