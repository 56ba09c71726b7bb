//! The CEL rules (`x-kubernetes-validations`) of a CRD, evaluated with kube-cel (re-exported as
//! `kube::core::cel`), reported as the API server reports them:
//! `<path>: Invalid value: "<type>": <message>`, with `<nil>` as the path of a rule on the object
//! itself.

use super::schema::{ErrorType, FieldError};
use kube::core::cel::{CompiledSchema, ErrorKind, RootContext, Validator, compile_schema};
use serde_json::Value;

/// The compiled rules of one kind.
pub(crate) struct KindRules {
    compiled: CompiledSchema,
    root: RootContext,
}

impl KindRules {
    /// Compiles every rule of `schema` once, for the kind `kind` in `group/version`.
    pub(crate) fn new(schema: &Value, group: &str, version: &str, kind: &str) -> Self {
        Self {
            compiled: compile_schema(schema),
            root: RootContext {
                api_version: format!("{group}/{version}"),
                api_group: group.to_owned(),
                kind: kind.to_owned(),
            },
        }
    }

    /// Evaluates the rules against a pruned and defaulted object.
    pub(crate) fn check(&self, validator: &Validator, object: &Value) -> Vec<FieldError> {
        let Err(errors) =
            validator.validate_compiled_with_context(&self.compiled, object, None, Some(&self.root))
        else {
            return Vec::new();
        };
        errors
            .iter()
            .map(|e| {
                let detail = match e.kind {
                    ErrorKind::ValidationFailure => e.message.clone(),
                    _ => format!("{} (rule: {})", e.message, e.rule),
                };
                let ty = lookup(object, &e.field_path).map(type_name).unwrap_or("object");
                FieldError::new(&e.field_path, ErrorType::Invalid, Value::from(ty), detail)
            })
            .collect()
    }
}

/// The schema type the API server names in CEL errors (`sts.Type`).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

/// The value at a path such as `spec.rules[0].backends`.
fn lookup<'a>(mut v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    for part in path.split('.') {
        let (field, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            v = v.get(field)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            v = v.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_resolve_into_lists() {
        let v = json!({"spec": {"rules": [{"a": 1}, {"b": [true]}]}});
        assert_eq!(lookup(&v, "spec.rules[1].b[0]"), Some(&json!(true)));
        assert_eq!(lookup(&v, ""), Some(&v));
        assert_eq!(lookup(&v, "spec.nope"), None);
    }

    #[test]
    fn failures_carry_the_path_type_and_message() {
        let schema = json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.a <= self.b", "message": "a must not exceed b"}],
            }},
            "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('x')", "message": "name must start with x"}],
        });
        let rules = KindRules::new(&schema, "cairn.dev", "v1alpha1", "T");
        let errs =
            rules.check(&Validator::new(), &json!({"metadata": {"name": "y"}, "spec": {"a": 2, "b": 1}}));
        let msgs: Vec<String> = errs.iter().map(|e| format!("{}: {}", e.field(), e.body())).collect();
        assert_eq!(
            msgs,
            [
                r#"<nil>: Invalid value: "object": name must start with x"#,
                r#"spec: Invalid value: "object": a must not exceed b"#
            ]
        );
    }
}
