//! Manifests on disk, compiled: what `cairn validate`, `cairn explain` and `cairn run` share.
//!
//! Loading is lenient: documents that fail their own checks are reported and left out, and the
//! rest still compile, exactly as in a cluster where the API server refuses one object and the
//! operator compiles the others.

use crate::api::ObjectRef;
use crate::compile::{self, Mode, Output, Secrets, Severity};
use crate::manifest::{self, Manifests, Options, Position, Problem};
use std::path::PathBuf;

/// Manifests read from files and compiled.
#[derive(Debug)]
pub struct Workspace {
    /// The documents that passed their own checks.
    pub manifests: Manifests,
    /// Problems of single documents (parse, schema, CEL).
    pub problems: Vec<Problem>,
    /// The compile step's result over the documents that passed.
    pub output: Output,
}

impl Workspace {
    /// Reads `paths` and compiles what they hold for `mode`.
    pub fn load(paths: &[PathBuf], options: &Options, mode: &Mode) -> Self {
        let (manifests, problems) = manifest::load_lenient(paths, options);
        let output = compile_manifests(&manifests, mode);
        Workspace { manifests, problems, output }
    }

    /// Where an object was defined.
    pub fn position(&self, object: &ObjectRef) -> Option<&Position> {
        self.manifests
            .objects
            .iter()
            .find(|d| d.kind == object.kind && d.namespace == object.namespace && d.name == object.name)
            .map(|d| &d.position)
    }

    /// Every problem and diagnostic as `file:line: Kind/name: field.path: message`, problems of
    /// single documents first, then cross-object diagnostics.
    pub fn report(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        for d in &self.output.diagnostics {
            let at = self.position(&d.object).map(|p| format!("{p}: ")).unwrap_or_default();
            lines.push(format!("{at}{d}"));
        }
        lines
    }

    /// Whether anything is an error (warnings do not count).
    pub fn has_errors(&self) -> bool {
        !self.problems.is_empty() || self.output.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }
}

/// Compiles checked manifests: their objects plus their Secrets (values that are not UTF-8 text
/// are left out, so a reference to them reports a missing key).
pub fn compile_manifests(manifests: &Manifests, mode: &Mode) -> Output {
    let objects: Vec<_> = manifests.objects.iter().map(|d| d.value.clone()).collect();
    let mut secrets = Secrets::new();
    for s in &manifests.secrets {
        let data = secrets.entry((s.namespace.clone(), s.name.clone())).or_default();
        for (key, bytes) in &s.value.data {
            if let Ok(v) = std::str::from_utf8(bytes) {
                data.insert(key.clone(), v.to_string());
            }
        }
    }
    compile::compile(compile::Input { objects: &objects, secrets: &secrets, mode })
}
