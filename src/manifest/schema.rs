//! The structural-schema walker: unknown fields, null pruning, defaulting and OpenAPI validation of
//! one custom resource against its CRD's `openAPIV3Schema`, with the API server's messages.
//!
//! Written by hand on purpose: no Rust crate validates Kubernetes structural schemas with the
//! API server's semantics and wording. JSON-Schema validators (`jsonschema`, `boon`, …) speak
//! draft 2020-12, know nothing of `nullable`, `x-kubernetes-int-or-string` or
//! `x-kubernetes-preserve-unknown-fields`, and word their errors differently; kube-cel only
//! evaluates the CEL rules. What this file mirrors, and from where:
//!
//! - unknown fields: the API server's pruning under `fieldValidation=Strict` (what
//!   `kubectl apply --validate=strict` asks for): `unknown field "spec.foo"`;
//! - nulls and defaults: `PruneNonNullableNullsWithoutDefaults` then `Default`
//!   (k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting);
//! - validation: k8s.io/kube-openapi/pkg/validation/validate (type, string, number, slice, enum
//!   and object validators, in their order, with their `… in body should …` messages), turned
//!   into `field.Error`s as k8s.io/apiextensions-apiserver/pkg/apiserver/validation does.
//!
//! About 590 lines of code and 160 of tests: one walk over one schema, whose steps share its
//! state and messages; the tests pin each message beside the walker that makes it.

use super::format::{go_float, go_quote, go_value};
use super::yaml::{child_path, index_path};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The `field.ErrorType`s the schema and CEL validation produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorType {
    /// `Required value`
    Required,
    /// `Invalid value`
    Invalid,
    /// `Invalid value`, for a value of the wrong type
    TypeInvalid,
    /// `Unsupported value`
    NotSupported,
    /// `Too long`
    TooLong,
    /// `Too many`
    TooMany,
}

/// One `field.Error` (k8s.io/apimachinery/pkg/util/validation/field).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldError {
    /// The field path; empty for the object itself, which the API server prints as `<nil>`.
    pub path: String,
    pub kind: ErrorType,
    /// The bad value, printed after the type for `Invalid`, `Unsupported` and `Too many`;
    /// `None` when the API server omits it (CEL rule failures, since Kubernetes 1.33 or so).
    pub value: Option<Value>,
    pub detail: String,
}

impl FieldError {
    pub(crate) fn new(path: &str, kind: ErrorType, value: Value, detail: impl Into<String>) -> Self {
        Self { path: path.to_owned(), kind, value: Some(value), detail: detail.into() }
    }

    /// An error whose message leaves the bad value out (`spec: Invalid value: <detail>`).
    pub(crate) fn without_value(path: &str, kind: ErrorType, detail: impl Into<String>) -> Self {
        Self { path: path.to_owned(), kind, value: None, detail: detail.into() }
    }

    /// The path as the API server prints it.
    pub(crate) fn field(&self) -> &str {
        if self.path.is_empty() { "<nil>" } else { &self.path }
    }

    /// `field.Error.ErrorBody()`: the message without the field path.
    pub(crate) fn body(&self) -> String {
        let with_value = |kind: &str| match &self.value {
            Some(v) => format!("{kind}: {}", go_value(v)),
            None => kind.to_owned(),
        };
        let mut s = match self.kind {
            ErrorType::Required => "Required value".to_owned(),
            ErrorType::TooLong => "Too long".to_owned(),
            ErrorType::Invalid | ErrorType::TypeInvalid => with_value("Invalid value"),
            ErrorType::NotSupported => with_value("Unsupported value"),
            ErrorType::TooMany => with_value("Too many"),
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// Errors after which the API server does not run the CEL rules (`hasBlockingErr`): the
    /// object is too far from its schema for the rules to see what they expect.
    pub(crate) fn blocks_cel(&self) -> bool {
        matches!(
            self.kind,
            ErrorType::NotSupported
                | ErrorType::Required
                | ErrorType::TooLong
                | ErrorType::TooMany
                | ErrorType::TypeInvalid
        )
    }
}

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

/// `additionalProperties` when it is a schema (a map's value schema).
fn additional_schema(schema: &Value) -> Option<&Value> {
    schema.get("additionalProperties").filter(|a| a.is_object())
}

/// Paths of the fields the schema does not declare, as strict field validation reports them.
/// At the root, `apiVersion`, `kind` and `metadata` are the API server's own and not checked here.
pub(crate) fn unknown_fields(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Object(map) = value {
        let props = properties(schema);
        for (key, child) in map {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(key)) {
                Some(s) => walk_unknown(s, child, key, &mut out),
                None => out.push(key.clone()),
            }
        }
    }
    out
}

fn walk_unknown(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields");
            let props = properties(schema);
            let additional = schema.get("additionalProperties");
            for (key, child) in map {
                let field = child_path(path, key);
                if let Some(s) = props.and_then(|p| p.get(key)) {
                    walk_unknown(s, child, &field, out);
                } else if let Some(s) = additional.filter(|a| a.is_object()) {
                    walk_unknown(s, child, &field, out);
                } else if !(preserve || additional.and_then(Value::as_bool) == Some(true)) {
                    out.push(field);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                for (i, item) in items.iter().enumerate() {
                    walk_unknown(s, item, &index_path(path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// Drops `null`s the schema does not allow and has no default for, then fills in defaults:
/// what the API server does to a custom resource before it validates it.
pub(crate) fn prune_nulls_and_default(schema: &Value, value: &mut Value) {
    prune_nulls(schema, value);
    default(schema, value);
}

fn drops_null(schema: &Value) -> bool {
    schema.get("default").is_none() && !is_true(schema, "nullable")
}

fn prune_nulls(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let props = properties(schema);
            let additional = additional_schema(schema);
            map.retain(|key, child| {
                if !child.is_null() {
                    return true;
                }
                match (props.and_then(|p| p.get(key)), additional) {
                    (Some(s), _) | (None, Some(s)) => !drops_null(s),
                    (None, None) => true,
                }
            });
            for (key, child) in map.iter_mut() {
                if let Some(s) = props.and_then(|p| p.get(key)).or(additional) {
                    prune_nulls(s, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                for item in items {
                    prune_nulls(s, item);
                }
            }
        }
        _ => {}
    }
}

fn default(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let props = properties(schema);
            if let Some(props) = props {
                for (key, s) in props {
                    if let Some(d) = s.get("default") {
                        let missing = match map.get(key) {
                            None => true,
                            Some(v) => v.is_null() && !is_true(s, "nullable"),
                        };
                        if missing {
                            map.insert(key.clone(), d.clone());
                        }
                    }
                }
            }
            let additional = additional_schema(schema);
            for (key, child) in map.iter_mut() {
                if let Some(s) = props.and_then(|p| p.get(key)).or(additional) {
                    default(s, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items").filter(|s| s.is_object()) {
                for item in items {
                    if item.is_null()
                        && !is_true(s, "nullable")
                        && let Some(d) = s.get("default")
                    {
                        *item = d.clone();
                    }
                    default(s, item);
                }
            }
        }
        _ => {}
    }
}

/// The JSON type name kube-openapi infers for a decoded value.
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The schema `format`, as the API server keeps it: `StripUnsupportedFormatsPostProcess` drops
/// every format CRDs do not support, which includes `int32`, `int64`, `float` and `double`. So
/// no number is range-checked against its Go type here, exactly as on a cluster.
fn supported_format(schema: &Value) -> &str {
    const SUPPORTED: [&str; 23] = [
        "bsonobjectid",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
        "uuid3",
        "uuid4",
        "uuid5",
        "isbn",
        "isbn10",
        "isbn13",
        "creditcard",
        "ssn",
        "hexcolor",
        "rgbcolor",
        "byte",
        "password",
        "date",
        "duration",
    ];
    let format = schema.get("format").and_then(Value::as_str).unwrap_or_default();
    let normalized = format.replace('-', "");
    if SUPPORTED.contains(&normalized.as_str()) || normalized == "datetime" { format } else { "" }
}

/// Validates custom resources against structural schemas. Holds compiled `pattern`s.
#[derive(Default)]
pub(crate) struct SchemaValidator {
    patterns: HashMap<String, Option<Pattern>>,
}

/// A compiled schema `pattern`. Go's RE2 and the `regex` crate agree on the syntax CRDs use;
/// ASCII-only byte matching keeps `\s`, `\d` and `\w` ASCII, as in Go.
enum Pattern {
    Ascii(regex::bytes::Regex),
    Unicode(regex::Regex),
}

impl Pattern {
    fn compile(pattern: &str) -> Option<Self> {
        if let Ok(re) = regex::bytes::RegexBuilder::new(pattern).unicode(false).build() {
            return Some(Pattern::Ascii(re));
        }
        regex::Regex::new(pattern).ok().map(Pattern::Unicode)
    }

    fn is_match(&self, s: &str) -> bool {
        match self {
            Pattern::Ascii(re) => re.is_match(s.as_bytes()),
            Pattern::Unicode(re) => re.is_match(s),
        }
    }
}

impl SchemaValidator {
    /// Validates `value` (already pruned and defaulted) against `schema`; the root is the object.
    pub(crate) fn validate(&mut self, schema: &Value, value: &Value) -> Vec<FieldError> {
        let mut out = Vec::new();
        self.node(schema, value, "", &mut out);
        out
    }

    fn node(&mut self, schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldError>) {
        let types: Vec<&str> = if is_true(schema, "x-kubernetes-int-or-string") {
            vec!["integer", "string"]
        } else {
            schema.get("type").and_then(Value::as_str).into_iter().collect()
        };
        if value.is_null() {
            // kube-openapi's early exit for null: only the type and the enum are checked.
            if !types.is_empty() && !is_true(schema, "nullable") {
                out.push(type_error(path, &types.join(","), "null"));
            }
            self.enumeration(schema, value, path, out);
            return;
        }
        self.type_check(schema, &types, value, path, out);
        match value {
            Value::String(s) => self.string(schema, s, path, out),
            Value::Number(_) => number(schema, value, path, out),
            Value::Array(items) => self.array(schema, items, path, out),
            Value::Object(map) => self.object(schema, map, path, out),
            Value::Bool(_) | Value::Null => {}
        }
        self.enumeration(schema, value, path, out);
    }

    fn type_check(
        &self,
        schema: &Value,
        types: &[&str],
        value: &Value,
        path: &str,
        out: &mut Vec<FieldError>,
    ) {
        if types.is_empty() {
            return;
        }
        let actual = type_of(value);
        let int_as_number = actual == "integer" && types.contains(&"number");
        let fits = types.contains(&actual) || int_as_number;
        // kube-openapi's typeValidator, for the (string) formats the API server keeps.
        let format = supported_format(schema);
        let string_or_list = matches!(value, Value::String(_) | Value::Array(_));
        if !format.is_empty() && !string_or_list && !fits {
            out.push(type_error(path, format, ""));
            return;
        }
        let numeric = types.contains(&"number") || types.contains(&"integer");
        if !format.is_empty() && !numeric && string_or_list {
            return;
        }
        if !fits {
            out.push(type_error(path, &types.join(","), actual));
        }
    }

    fn string(&mut self, schema: &Value, s: &str, path: &str, out: &mut Vec<FieldError>) {
        let chars = s.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && chars > max
        {
            out.push(FieldError::new(
                path,
                ErrorType::TooLong,
                Value::Null,
                format!("may not be more than {max} {}", if max == 1 { "byte" } else { "bytes" }),
            ));
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && chars < min
        {
            out.push(invalid(
                path,
                Value::from(s),
                format!("{} in body should be at least {min} chars long", name(path)),
            ));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            let compiled =
                self.patterns.entry(pattern.to_owned()).or_insert_with(|| Pattern::compile(pattern));
            match compiled {
                Some(re) if re.is_match(s) => {}
                Some(_) => out.push(invalid(
                    path,
                    Value::from(s),
                    format!("{} in body should match '{pattern}'", name(path)),
                )),
                None => out.push(invalid(
                    path,
                    Value::from(s),
                    format!("{} in body should match '{pattern}, but pattern is invalid'", name(path)),
                )),
            }
        }
    }

    fn array(&mut self, schema: &Value, items: &[Value], path: &str, out: &mut Vec<FieldError>) {
        if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
            for (i, item) in items.iter().enumerate() {
                self.node(item_schema, item, &index_path(path, i), out);
            }
        }
        let len = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && len < min
        {
            out.push(invalid(
                path,
                Value::from(len),
                format!("{} in body should have at least {min} items", name(path)),
            ));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && len > max
        {
            out.push(FieldError::new(
                path,
                ErrorType::TooMany,
                Value::from(len),
                format!("must have at most {max} {}", if max == 1 { "item" } else { "items" }),
            ));
        }
        if is_true(schema, "uniqueItems") {
            let duplicate = items.iter().enumerate().any(|(i, a)| items[..i].contains(a));
            if duplicate {
                out.push(invalid(
                    path,
                    Value::from(""),
                    format!("{} in body shouldn't contain duplicates", name(path)),
                ));
            }
        }
    }

    fn object(&mut self, schema: &Value, map: &Map<String, Value>, path: &str, out: &mut Vec<FieldError>) {
        let props = properties(schema);
        if let Some(additional) = additional_schema(schema) {
            for (key, child) in map {
                if props.is_none_or(|p| !p.contains_key(key)) {
                    self.node(additional, child, &child_path(path, key), out);
                }
            }
        }
        if let Some(props) = props {
            for (key, child_schema) in props {
                if let Some(child) = map.get(key) {
                    self.node(child_schema, child, &child_path(path, key), out);
                }
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(key) {
                    out.push(FieldError::new(&child_path(path, key), ErrorType::Required, Value::Null, ""));
                }
            }
        }
    }

    fn enumeration(&self, schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldError>) {
        let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
            return;
        };
        if !value.is_null() && allowed.iter().any(|a| same_value(a, value)) {
            return;
        }
        let supported: Vec<String> = allowed
            .iter()
            .map(|a| match a {
                Value::String(s) => go_quote(s),
                other => go_quote(&other.to_string()),
            })
            .collect();
        let detail = if supported.is_empty() {
            String::new()
        } else {
            format!("supported values: {}", supported.join(", "))
        };
        out.push(FieldError::new(path, ErrorType::NotSupported, value.clone(), detail));
    }
}

/// Enum membership as Go's `reflect.DeepEqual` after conversion: numbers compare by value.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn number(schema: &Value, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    let int = value.as_i64();
    let float = value.as_f64().unwrap_or_default();
    if let Some(factor) = schema.get("multipleOf").and_then(Value::as_f64)
        && factor > 0.0
    {
        let fits = match int {
            Some(i) if factor.fract() == 0.0 => i % (factor as i64).max(1) == 0,
            _ => {
                let m = if factor < 1.0 { 1.0 / factor * float } else { float / factor };
                m.fract() == 0.0
            }
        };
        if !fits {
            out.push(invalid(
                path,
                value.clone(),
                format!("{} in body should be a multiple of {}", name(path), go_float(factor)),
            ));
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
        let exclusive = is_true(schema, "exclusiveMaximum");
        // MaximumNativeType: an integer is compared with the bound truncated to an integer.
        let (over, bound) = match int {
            Some(i) => {
                let m = max as i64;
                (if exclusive { i >= m } else { i > m }, m.to_string())
            }
            None => (if exclusive { float >= max } else { float > max }, go_float(max)),
        };
        if over {
            let op = if exclusive { "less than" } else { "less than or equal to" };
            out.push(invalid(path, value.clone(), format!("{} in body should be {op} {bound}", name(path))));
        }
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
        let exclusive = is_true(schema, "exclusiveMinimum");
        // MinimumNativeType: an integer is compared with the bound truncated to an integer,
        // so `minimum: 0.01` lets the integer 0 through, on a cluster as here.
        let (under, bound) = match int {
            Some(i) => {
                let m = min as i64;
                (if exclusive { i <= m } else { i < m }, m.to_string())
            }
            None => (if exclusive { float <= min } else { float < min }, go_float(min)),
        };
        if under {
            let op = if exclusive { "greater than" } else { "greater than or equal to" };
            out.push(invalid(path, value.clone(), format!("{} in body should be {op} {bound}", name(path))));
        }
    }
}

/// The path as kube-openapi names it inside its messages.
fn name(path: &str) -> &str {
    path
}

fn invalid(path: &str, value: Value, detail: String) -> FieldError {
    FieldError::new(path, ErrorType::Invalid, value, detail)
}

fn type_error(path: &str, expected: &str, actual: &str) -> FieldError {
    FieldError::new(
        path,
        ErrorType::TypeInvalid,
        Value::from(actual),
        format!("{} in body must be of type {expected}: {}", name(path), go_quote(actual)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(schema: &Value, value: Value) -> Vec<String> {
        let mut v = value;
        prune_nulls_and_default(schema, &mut v);
        SchemaValidator::default()
            .validate(schema, &v)
            .iter()
            .map(|e| format!("{}: {}", e.field(), e.body()))
            .collect()
    }

    fn spec(props: Value, required: &[&str]) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props, "required": required}}})
    }

    #[test]
    fn type_mismatches_read_like_the_api_server() {
        let s = spec(json!({"replicas": {"type": "integer", "format": "int32"}}), &[]);
        assert_eq!(
            messages(&s, json!({"spec": {"replicas": "two"}})),
            [
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
            ]
        );
        assert_eq!(
            messages(&s, json!({"spec": {"replicas": 1.5}})),
            [
                r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#
            ]
        );
        // `int32` is not a format CRDs keep: the API server does not range-check it (the typed
        // deserialization after validation reports it instead).
        assert!(messages(&s, json!({"spec": {"replicas": 3_000_000_000i64}})).is_empty());
        let s = spec(json!({"at": {"type": "string", "format": "date-time"}}), &[]);
        assert_eq!(
            messages(&s, json!({"spec": {"at": true}})),
            [r#"spec.at: Invalid value: "": spec.at in body must be of type date-time: """#]
        );
        let s = spec(json!({"x": {"type": "object"}}), &[]);
        assert_eq!(
            messages(&s, json!({"spec": {"x": [1]}})),
            [r#"spec.x: Invalid value: "array": spec.x in body must be of type object: "array""#]
        );
    }

    #[test]
    fn enums_patterns_and_lengths() {
        let s = spec(
            json!({
                "provider": {"type": "string", "enum": ["OpenAI", "Echo"]},
                "url": {"type": "string", "pattern": "^https?://[^\\s]+$"},
                "name": {"type": "string", "minLength": 1, "maxLength": 3},
            }),
            &[],
        );
        assert_eq!(
            messages(&s, json!({"spec": {"provider": "Foo", "url": "ftp://x", "name": "abcd"}})),
            [
                r#"spec.provider: Unsupported value: "Foo": supported values: "OpenAI", "Echo""#,
                r#"spec.url: Invalid value: "ftp://x": spec.url in body should match '^https?://[^\s]+$'"#,
                "spec.name: Too long: may not be more than 3 bytes",
            ]
        );
        assert_eq!(
            messages(&s, json!({"spec": {"name": ""}})),
            [r#"spec.name: Invalid value: "": spec.name in body should be at least 1 chars long"#]
        );
    }

    #[test]
    fn numbers_compare_like_go_openapi() {
        let s = spec(
            json!({
                "price": {"type": "number", "format": "double", "minimum": 0.0},
                "amount": {"type": "number", "format": "double", "minimum": 0.01},
                "bytes": {"type": "integer", "format": "int64", "minimum": 1024.0, "maximum": 104857600.0},
            }),
            &[],
        );
        assert_eq!(
            messages(&s, json!({"spec": {"price": -1, "amount": 0.005, "bytes": 1}})),
            [
                "spec.price: Invalid value: -1: spec.price in body should be greater than or equal to 0",
                "spec.amount: Invalid value: 0.005: spec.amount in body should be greater than or equal to 0.01",
                "spec.bytes: Invalid value: 1: spec.bytes in body should be greater than or equal to 1024",
            ]
        );
        // go-openapi truncates the bound for integers: 0 passes `minimum: 0.01`.
        assert!(messages(&s, json!({"spec": {"amount": 0}})).is_empty());
        let s = spec(json!({"w": {"type": "number", "maximum": 1000000.0}}), &[]);
        assert_eq!(
            messages(&s, json!({"spec": {"w": 1000000.5}})),
            ["spec.w: Invalid value: 1.0000005e+06: spec.w in body should be less than or equal to 1e+06"]
        );
    }

    #[test]
    fn lists_required_and_nulls() {
        let s = spec(
            json!({
                "refs": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}},
                "opt": {"type": "string", "nullable": true},
                "plain": {"type": "string"},
            }),
            &["refs", "rules"],
        );
        assert_eq!(
            messages(
                &s,
                json!({"spec": {"refs": [{}, {"name": "a"}, {"name": "b"}], "opt": null, "plain": null}})
            ),
            [
                "spec.refs[0].name: Required value",
                "spec.refs: Too many: 3: must have at most 2 items",
                "spec.rules: Required value"
            ]
        );
        assert_eq!(
            messages(&s, json!({"spec": {"refs": [], "rules": 1}})),
            ["spec.refs: Invalid value: 0: spec.refs in body should have at least 1 items"]
        );
        assert_eq!(messages(&s, json!({})), Vec::<String>::new());
        assert_eq!(
            messages(&json!({"type": "object", "required": ["spec"]}), json!({})),
            ["spec: Required value"]
        );
    }

    #[test]
    fn defaults_apply_recursively_and_replace_non_nullable_nulls() {
        let s = spec(
            json!({
                "telemetry": {"type": "object", "default": {}, "properties": {"accessLog": {"type": "boolean", "default": true}}},
                "port": {"type": "integer", "default": 8080},
                "gone": {"type": "string"},
            }),
            &[],
        );
        let mut v = json!({"spec": {"port": null, "gone": null}});
        prune_nulls_and_default(&s, &mut v);
        assert_eq!(v, json!({"spec": {"port": 8080, "telemetry": {"accessLog": true}}}));
    }

    #[test]
    fn unknown_fields_are_listed_with_their_full_path() {
        let s = spec(
            json!({
                "rules": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }),
            &[],
        );
        let v = json!({
            "apiVersion": "x", "kind": "y", "metadata": {"name": "n"},
            "spec": {"rules": [{"name": "a", "nmae": "b"}], "labels": {"any": "x"}, "free": {"a": 1}, "foo": 1},
            "extra": true,
        });
        assert_eq!(unknown_fields(&s, &v), ["spec.rules[0].nmae", "spec.foo", "extra"]);
    }
}
