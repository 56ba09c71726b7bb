//! The CEL rules (`x-kubernetes-validations`) of a CRD, evaluated with kube-cel (re-exported as
//! `kube::core::cel`), reported as the API server (1.35) reports them: `<path>: Invalid value:
//! <message>`, the value left out, with `<nil>` as the path of a rule on the object itself.

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
                FieldError::without_value(&e.field_path, ErrorType::Invalid, detail)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failures_carry_the_path_and_message() {
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
            ["<nil>: Invalid value: name must start with x", "spec: Invalid value: a must not exceed b"]
        );
    }
}
