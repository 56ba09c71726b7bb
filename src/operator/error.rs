//! Why a reconcile failed. Each variant names the object it was working on; [`Error::category`]
//! is the low-cardinality label of the error metric. Problems of the user's objects are not
//! errors: they end up in status (and one Event) and the object waits for its next edit.

/// A failed reconcile (retried with per-object backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Server-side apply of a child failed.
    #[error("applying {kind} {name}: {source}")]
    Apply {
        /// Child kind.
        kind: &'static str,
        /// Child name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Deleting a child no longer rendered failed.
    #[error("pruning {kind} {name}: {source}")]
    Prune {
        /// Child kind.
        kind: &'static str,
        /// Child name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Writing status failed.
    #[error("writing the status of {kind} {name}: {source}")]
    Status {
        /// Object kind.
        kind: &'static str,
        /// Object name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// The object lacks a field every stored object has.
    #[error("the object has no {0}")]
    Malformed(&'static str),
}

impl Error {
    /// Low-cardinality name for metrics: the stage, and for API errors what kind of answer.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Apply { source, .. } => api_category("apply", source),
            Error::Prune { source, .. } => api_category("prune", source),
            Error::Status { source, .. } => api_category("status", source),
            Error::Malformed(_) => "malformed",
        }
    }
}

/// `<stage>_<answer>`: conflict, forbidden, invalid, unavailable (5xx, timeouts, no connection).
fn api_category(stage: &'static str, e: &kube::Error) -> &'static str {
    let answer = match e {
        kube::Error::Api(s) if s.code == 409 => "conflict",
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => "forbidden",
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => "invalid",
        kube::Error::Api(s) if s.code == 404 => "not_found",
        _ => "unavailable",
    };
    match (stage, answer) {
        ("apply", "conflict") => "apply_conflict",
        ("apply", "forbidden") => "apply_forbidden",
        ("apply", "invalid") => "apply_invalid",
        ("apply", "not_found") => "apply_not_found",
        ("apply", _) => "apply_unavailable",
        ("prune", "forbidden") => "prune_forbidden",
        ("prune", _) => "prune_unavailable",
        ("status", "conflict") => "status_conflict",
        ("status", "forbidden") => "status_forbidden",
        ("status", "invalid") => "status_invalid",
        ("status", "not_found") => "status_not_found",
        _ => "status_unavailable",
    }
}

/// Whether the API server refused the request's content (it will refuse it again until the
/// spec changes): 400 and 422.
pub fn is_invalid(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 422 || s.code == 400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure("no", "Reason").with_code(code)))
    }

    #[test]
    fn categories_name_the_stage_and_the_answer() {
        let e = Error::Apply { kind: "ConfigMap", name: "x".into(), source: api(422) };
        assert_eq!(e.category(), "apply_invalid");
        assert!(is_invalid(match &e {
            Error::Apply { source, .. } => source,
            _ => unreachable!(),
        }));
        assert_eq!(
            Error::Status { kind: "AIRoute", name: "r".into(), source: api(409) }.category(),
            "status_conflict"
        );
        assert_eq!(
            Error::Prune { kind: "ConfigMap", name: "x".into(), source: api(503) }.category(),
            "prune_unavailable"
        );
    }
}
