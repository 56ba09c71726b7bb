//! A condition before it is stamped with generation and time: what every status stage (and the
//! answers of [`crate::operator::answers`]) builds conditions from.

use serde_json::{Value, json};

/// Longest condition message the API accepts.
const MAX_MESSAGE: usize = 32 * 1024;

/// A condition before it is stamped with generation and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Type, e.g. `Accepted`.
    pub type_: &'static str,
    /// `True` or `False`.
    pub ok: bool,
    /// PascalCase reason.
    pub reason: String,
    /// For a person.
    pub message: String,
}

impl Cond {
    /// A condition; a message past the API's limit is cut.
    pub fn new(type_: &'static str, ok: bool, reason: &str, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE - 3;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...");
        }
        Cond { type_, ok, reason: reason.into(), message }
    }

    /// Whether this condition reports a problem (kstatus reads `Stalled=True` and
    /// `Reconciling=True` as not healthy; the Gateway-API conditions the other way round).
    pub(super) fn is_bad(&self) -> bool {
        match self.type_ {
            "Stalled" => self.ok,
            "Reconciling" | "Ready" => false,
            _ => !self.ok,
        }
    }

    /// As it appears in status (before [`super::stamp`]).
    pub fn to_json(&self) -> Value {
        json!({"type": self.type_, "status": if self.ok { "True" } else { "False" },
               "reason": self.reason, "message": self.message})
    }
}
