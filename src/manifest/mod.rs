//! Reading YAML manifests and checking them as the API server would, offline.
//!
//! [`load`] takes files and folders (folders recursively: `*.yaml` and `*.yml`, in sorted order),
//! splits multi-document YAML, and checks each document in the API server's order:
//!
//! 1. **parse** ([`Stage::Parse`]): YAML syntax (with the line), `apiVersion` and `kind` (one of
//!    the eight Cairn kinds in `cairn.dev/v1alpha1`, or a `v1` Secret; a `v1` List is read item
//!    by item), one object per kind/namespace/name across all files, no empty file or folder;
//! 2. **schema** ([`Stage::Schema`]): `metadata` (a DNS-1123 `name`), unknown fields as
//!    `kubectl apply --validate=strict` reports them (`unknown field "spec.foo"`), then the CRD's
//!    `openAPIV3Schema` after the API server's null pruning and defaulting, with its messages
//!    (`spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer:
//!    "string"`);
//! 3. **cel** ([`Stage::Cel`]): the CRD's `x-kubernetes-validations` rules, evaluated with
//!    kube-cel on the defaulted object (`spec: Invalid value: <rule message>`).
//!
//! The schema and the rules come from [`crate::api::crds`], the same CRDs `cairn crds` writes, so
//! `cairn validate` refuses what the API server refuses, with the same words. What passes is
//! deserialized into [`crate::api::Object`] with its defaults applied, and kept with where it
//! came from ([`Document`]). Documents without `metadata.namespace` get the namespace of
//! [`Options`] (`default`). Secrets feed local mode, which has no cluster to read them from:
//! `data` is base64, `stringData` values may name environment variables as `${NAME}`.
//!
//! Nothing here panics on any input; every problem becomes a [`Problem`] that prints as
//! `file:line: Kind/name: field.path: message`.
//!
//! Every schema and CEL fixture in `tests/fixtures/invalid/` was checked against a real
//! kube-apiserver 1.35.4 (`kubectl create --validate=strict`), message for message; so were
//! YAML 1.1 scalars (`yes`, `0755`, `1e3` are not strings for kubectl either). Where this module
//! knowingly differs:
//!
//! - a value the API server stores but the Rust types cannot hold (3000000000 in an `int32`
//!   field: CRDs drop the `int32` format) is refused after validation, since the operator could
//!   not read the object back;
//! - problems come in a stable order (the API server's order follows Go map iteration), and each
//!   unknown field is its own problem (the API server joins them in one message);
//! - Secret checks (base64, `${NAME}`, keys) are Cairn's own, at the parse stage;
//! - not checked: string `format`s (only `status` uses one, and `status` is dropped as on
//!   create), `x-kubernetes-list-type` (unused by the CRDs), `generateName` (local mode needs
//!   names), `<Kind>List` wrappers (only the generic `v1` `List` is read).
//!
//! ```no_run
//! # use std::path::PathBuf;
//! let paths = [PathBuf::from("examples/quickstart")];
//! match cairn::manifest::load(&paths, &cairn::manifest::Options::default()) {
//!     Ok(manifests) => println!("{} objects", manifests.objects.len()),
//!     Err(problems) => problems.iter().for_each(|p| eprintln!("{p}")),
//! }
//! ```

mod cel;
mod format;
mod meta;
mod schema;
mod secret;
mod yaml;

pub use secret::Secret;

use crate::api::{
    AIBackend, AIGateway, AIRoute, API_VERSION, Agent, AgentGateway, AgentPolicy, KINDS, MCPGateway,
    MCPServer, Object,
};
use format::go_quote;
use schema::{FieldError, SchemaValidator};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

/// The namespace of documents that name none, as `kubectl` uses without `-n`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The step that refused a document, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Reading files, YAML syntax, `apiVersion`/`kind`, duplicates, Secrets (`data`,
    /// `stringData` and their `${ENV}`s).
    Parse,
    /// `metadata`, unknown fields and the OpenAPI schema of the CRD.
    Schema,
    /// The CEL rules (`x-kubernetes-validations`) of the CRD.
    Cel,
}

impl Stage {
    /// `parse`, `schema` or `cel`: the stage names of the fixtures and of metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Schema => "schema",
            Stage::Cel => "cel",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A place in the manifests: a file as it was named (relative paths stay relative) and a
/// 1-based line, 0 when the problem is about the whole file or folder.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The file (or folder), as given or as found under a given folder.
    pub file: PathBuf,
    /// 1-based line; 0 for the file as a whole.
    pub line: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// Why a document (or a file) was refused. Prints as `file:line: Kind/name: field.path: message`,
/// leaving out the parts it does not have; `field.path` and `message` together are the API
/// server's own message for schema and CEL problems.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {}{}{message}", object_prefix(.object), field_prefix(.field))]
pub struct Problem {
    /// The step that found it.
    pub stage: Stage,
    /// Where: the document's line, or the line of the field when it has one.
    pub position: Position,
    /// `Kind/name` of the document, when it has them.
    pub object: Option<String>,
    /// The field path in the API server's notation (`spec.rules[0].backends`; `<nil>` for the
    /// object itself), when the message is about one field.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

fn object_prefix(object: &Option<String>) -> String {
    object.as_ref().map(|o| format!("{o}: ")).unwrap_or_default()
}

fn field_prefix(field: &Option<String>) -> String {
    field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default()
}

impl Problem {
    /// A low-cardinality label for metrics and events: the stage.
    pub fn category(&self) -> &'static str {
        self.stage.as_str()
    }
}

/// One object from the manifests and where it came from.
#[derive(Clone, Debug)]
pub struct Document<T> {
    /// Where the document starts (its first line of content).
    pub position: Position,
    /// The kind, e.g. `AIRoute` or `Secret`.
    pub kind: &'static str,
    /// `metadata.namespace`, or the default namespace.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The object, with the schema's defaults applied.
    pub value: T,
}

/// Everything the manifests hold, checked, in file and document order.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    /// The Cairn objects.
    pub objects: Vec<Document<Object>>,
    /// The `v1` Secrets.
    pub secrets: Vec<Document<Secret>>,
}

impl Manifests {
    /// The Secret `name` in `namespace`.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets.iter().find(|d| d.namespace == namespace && d.name == name).map(|d| &d.value)
    }
}

/// How to read manifests.
#[derive(Clone, Debug)]
pub struct Options {
    /// Namespace of documents that name none.
    pub default_namespace: String,
    /// Environment for `${NAME}` in Secret `stringData`; `None` reads the process environment.
    pub env: Option<BTreeMap<String, String>>,
}

impl Default for Options {
    fn default() -> Self {
        Self { default_namespace: DEFAULT_NAMESPACE.to_owned(), env: None }
    }
}

impl Options {
    /// Sets the namespace of documents that name none.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.default_namespace = namespace.into();
        self
    }

    /// Uses these variables instead of the process environment for `${NAME}` in Secrets.
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    fn lookup(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(vars) => vars.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }
}

/// Reads and checks the manifests under `paths`. `Ok` only when every document passes; `Err`
/// lists every problem found in every file (not only the first).
pub fn load(paths: &[PathBuf], options: &Options) -> Result<Manifests, Vec<Problem>> {
    let (manifests, problems) = load_lenient(paths, options);
    if problems.is_empty() { Ok(manifests) } else { Err(problems) }
}

/// Like [`load`], but keeps the documents that passed next to the problems of those that did
/// not: for callers that go on with the good objects (a bad object never breaks the others).
pub fn load_lenient(paths: &[PathBuf], options: &Options) -> (Manifests, Vec<Problem>) {
    let mut loader = Loader::new(options);
    let mut files = Vec::new();
    for path in paths {
        loader.collect(path, &mut files);
    }
    let mut seen = std::collections::HashSet::new();
    for file in files {
        if seen.insert(file.clone()) {
            loader.file(&file);
        }
    }
    (loader.manifests, loader.problems)
}

/// Checks the manifests in `text` as if read from `file` (which is only used in messages).
pub fn load_str(file: impl AsRef<Path>, text: &str, options: &Options) -> Result<Manifests, Vec<Problem>> {
    let mut loader = Loader::new(options);
    loader.text(file.as_ref(), text);
    if loader.problems.is_empty() { Ok(loader.manifests) } else { Err(loader.problems) }
}

/// The schema and compiled rules of one kind.
struct Kind {
    kind: &'static str,
    schema: Value,
    rules: cel::KindRules,
}

/// The kinds, built once per process: generating the CRDs and compiling their rules is the
/// slow part of a load (a few hundred milliseconds in a debug build).
fn kinds() -> &'static [Kind] {
    static KINDS_CACHE: std::sync::OnceLock<Vec<Kind>> = std::sync::OnceLock::new();
    KINDS_CACHE.get_or_init(|| {
        crate::api::crds()
            .into_iter()
            .filter_map(|crd| {
                let kind = KINDS.iter().copied().find(|k| *k == crd.spec.names.kind)?;
                let version = crd.spec.versions.first()?;
                let schema = version.schema.as_ref()?.open_api_v3_schema.as_ref()?;
                let schema = serde_json::to_value(schema).ok()?;
                let rules = cel::KindRules::new(&schema, &crd.spec.group, &version.name, kind);
                Some(Kind { kind, schema, rules })
            })
            .collect()
    })
}

struct Loader<'a> {
    options: &'a Options,
    kinds: &'static [Kind],
    schemas: SchemaValidator,
    cel: kube::core::cel::Validator,
    seen: HashMap<(&'static str, String, String), Position>,
    manifests: Manifests,
    problems: Vec<Problem>,
}

impl<'a> Loader<'a> {
    fn new(options: &'a Options) -> Self {
        let kinds = kinds();
        Self {
            options,
            kinds,
            schemas: SchemaValidator::default(),
            cel: kube::core::cel::Validator::new(),
            seen: HashMap::new(),
            manifests: Manifests::default(),
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, stage: Stage, file: &Path, line: u64, object: Option<String>, message: String) {
        self.problems.push(Problem {
            stage,
            position: Position { file: file.to_owned(), line },
            object,
            field: None,
            message,
        });
    }

    /// Adds `path` (a file, or every manifest under a folder) to `files`.
    fn collect(&mut self, path: &Path, files: &mut Vec<PathBuf>) {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                let before = files.len();
                if let Err(e) = walk(path, files) {
                    self.problem(Stage::Parse, path, 0, None, format!("cannot read folder: {e}"));
                } else if files.len() == before {
                    self.problem(
                        Stage::Parse,
                        path,
                        0,
                        None,
                        "no manifests (*.yaml or *.yml) in this folder".into(),
                    );
                }
            }
            Ok(_) => files.push(path.to_owned()),
            Err(e) => self.problem(Stage::Parse, path, 0, None, format!("cannot read: {e}")),
        }
    }

    fn file(&mut self, file: &Path) {
        match std::fs::read(file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => self.text(file, &text),
                Err(_) => self.problem(Stage::Parse, file, 0, None, "not UTF-8 text".into()),
            },
            Err(e) => self.problem(Stage::Parse, file, 0, None, format!("cannot read: {e}")),
        }
    }

    fn text(&mut self, file: &Path, text: &str) {
        let docs = match yaml::parse_stream(text) {
            Ok(docs) => docs,
            Err(e) => {
                let message = format!("malformed YAML: {}", e.message);
                return self.problem(Stage::Parse, file, e.line.unwrap_or(0), None, message);
            }
        };
        if docs.is_empty() {
            return self.problem(Stage::Parse, file, 0, None, "empty file: no manifests in it".into());
        }
        for doc in &docs {
            self.document(file, doc);
        }
    }

    fn document(&mut self, file: &Path, doc: &serde_saphyr::Spanned<yaml::Node>) {
        let line = doc.referenced.line();
        let (value, index) = match yaml::to_json(doc) {
            Ok(v) => v,
            Err(e) => {
                return self.problem(
                    Stage::Parse,
                    file,
                    e.line,
                    None,
                    format!("malformed YAML: {}", e.message),
                );
            }
        };
        // A `v1` List (what `kubectl get -o yaml` writes) holds its objects in `items`; kubectl
        // applies each of them.
        let is_list = value.get("kind").and_then(Value::as_str) == Some("List")
            && value.get("apiVersion").and_then(Value::as_str) == Some("v1");
        match value {
            Value::Object(mut list) if is_list => match list.remove("items") {
                Some(Value::Array(items)) => {
                    for (i, item) in items.into_iter().enumerate() {
                        let index = index.sub(&format!("items[{i}]"));
                        let line = index.line_of("").unwrap_or(line);
                        self.object(file, line, item, &index);
                    }
                }
                None | Some(Value::Null) => {}
                Some(_) => {
                    let message = "a v1 List needs `items`, a list of manifests".to_owned();
                    self.problem(Stage::Parse, file, line, Some("List/?".into()), message);
                }
            },
            value => self.object(file, line, value, &index),
        }
    }

    /// Checks one object (a document, or an item of a List) that starts at `line`.
    fn object(&mut self, file: &Path, line: u64, mut value: Value, index: &yaml::LineIndex) {
        if !value.is_object() {
            let message = "a manifest must be a mapping with apiVersion, kind and metadata".to_owned();
            return self.problem(Stage::Parse, file, line, None, message);
        }
        let name = meta::name(&value).map(str::to_owned);
        let kind = match value.get("kind") {
            Some(Value::String(k)) if !k.is_empty() => k.clone(),
            _ => {
                let message = "missing \"kind\": every manifest needs apiVersion and kind".to_owned();
                return self.problem(Stage::Parse, file, line, name.map(|n| format!("?/{n}")), message);
            }
        };
        let object = Some(format!("{kind}/{}", name.as_deref().unwrap_or("?")));
        let api_version = match value.get("apiVersion") {
            Some(Value::String(v)) if !v.is_empty() => v.clone(),
            _ => {
                let message = "missing \"apiVersion\": every manifest needs apiVersion and kind".to_owned();
                return self.problem(Stage::Parse, file, line, object, message);
            }
        };
        let known = self.kinds.iter().position(|k| k.kind == kind);
        let (kind, want): (&'static str, &str) = match known {
            Some(i) => (self.kinds[i].kind, API_VERSION),
            None if kind == "Secret" => ("Secret", "v1"),
            None => {
                let message = format!(
                    "no matches for kind {} in version {}: cairn reads {} ({API_VERSION}) and v1 Secret",
                    go_quote(&kind),
                    go_quote(&api_version),
                    KINDS.join(", ")
                );
                return self.problem(Stage::Parse, file, line, object, message);
            }
        };
        if api_version != want {
            let message = format!(
                "no matches for kind {} in version {}: {kind} is served as {want}",
                go_quote(kind),
                go_quote(&api_version)
            );
            return self.problem(Stage::Parse, file, line, object, message);
        }
        let namespace = match meta::namespace(&value) {
            Some(ns) if !ns.is_empty() => ns.to_owned(),
            _ => self.options.default_namespace.clone(),
        };
        let position = Position { file: file.to_owned(), line };
        if let Some(name) = &name {
            let key = (kind, namespace.clone(), name.clone());
            if let Some(first) = self.seen.get(&key) {
                let message = format!(
                    "duplicate: {kind} {} in namespace {} is also defined at {first}",
                    go_quote(name),
                    go_quote(&namespace)
                );
                return self.problem(Stage::Parse, file, line, object, message);
            }
            self.seen.insert(key, position.clone());
        }

        let Some(i) = known else {
            let options = self.options;
            match secret::read(&value, &options.default_namespace, &|n| options.lookup(n)) {
                Ok(secret) => self.manifests.secrets.push(Document {
                    position,
                    kind: "Secret",
                    namespace: secret.namespace.clone(),
                    name: secret.name.clone(),
                    value: secret,
                }),
                Err(problems) => {
                    for (path, message) in problems {
                        // Parse stage: what is wrong here is local to Cairn (a missing
                        // variable, bad base64), not something the API server checks the same way.
                        self.problems.push(Problem {
                            stage: Stage::Parse,
                            position: Position {
                                file: file.to_owned(),
                                // `data[key]` is the field `data.key` of the document.
                                line: index.line_of(&path.replace('[', ".").replace(']', "")).unwrap_or(line),
                            },
                            object: object.clone(),
                            field: (!path.is_empty()).then_some(path),
                            message,
                        });
                    }
                }
            }
            return;
        };

        // Strict decoding: unknown fields refuse the object before any validation runs.
        let checked_meta = meta::check(&value);
        let mut unknown = checked_meta.unknown;
        unknown.extend(schema::unknown_fields(&self.kinds[i].schema, &value));
        if !unknown.is_empty() {
            for path in unknown {
                let at = index.line_of(&path).unwrap_or(line);
                self.problem(
                    Stage::Schema,
                    file,
                    at,
                    object.clone(),
                    format!("unknown field {}", go_quote(&path)),
                );
            }
            return;
        }

        // What the API server does before validating a create: set the namespace, drop
        // `status` (a subresource), prune nulls, apply defaults.
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        }
        if let Some(map) = value.as_object_mut() {
            map.remove("status");
        }
        schema::prune_nulls_and_default(&self.kinds[i].schema, &mut value);

        let mut errors = checked_meta.errors;
        errors.extend(self.schemas.validate(&self.kinds[i].schema, &value));
        let before = self.problems.len();
        self.field_errors(Stage::Schema, file, index, &object, &errors);
        if errors.iter().any(FieldError::blocks_cel) {
            let note = FieldError::new(
                "",
                schema::ErrorType::Invalid,
                Value::Null,
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            );
            self.field_errors(Stage::Schema, file, index, &object, &[note]);
        } else {
            let cel_errors = self.kinds[i].rules.check(&self.cel, &value);
            self.field_errors(Stage::Cel, file, index, &object, &cel_errors);
        }
        if self.problems.len() > before {
            return;
        }

        match typed(kind, value) {
            Ok(typed) => self.manifests.objects.push(Document {
                position,
                kind,
                namespace,
                name: name.unwrap_or_default(),
                value: typed,
            }),
            Err(e) => self.problem(
                Stage::Schema,
                file,
                line,
                object,
                format!("passes the API server's checks but cannot be read as a {kind}: {e}"),
            ),
        }
    }

    fn field_errors(
        &mut self,
        stage: Stage,
        file: &Path,
        index: &yaml::LineIndex,
        object: &Option<String>,
        errors: &[FieldError],
    ) {
        for e in errors {
            self.problems.push(Problem {
                stage,
                position: Position { file: file.to_owned(), line: index.line_of(&e.path).unwrap_or(0) },
                object: object.clone(),
                field: Some(e.field().to_owned()),
                message: e.body(),
            });
        }
    }
}

/// Every `*.yaml`/`*.yml` file under `dir`, recursively, in sorted order. Hidden entries
/// (`.git`, …) and symbolic links to folders are skipped.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(&path, files)?;
        } else if (ty.is_file() || (ty.is_symlink() && path.is_file()))
            && path.extension().is_some_and(|e| e == "yaml" || e == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}

/// Deserializes a checked object into its type.
fn typed(kind: &str, value: Value) -> Result<Object, serde_json::Error> {
    use serde::de::Error as _;
    Ok(match kind {
        "AIGateway" => Object::AIGateway(serde_json::from_value::<AIGateway>(value)?),
        "AIBackend" => Object::AIBackend(serde_json::from_value::<AIBackend>(value)?),
        "AIRoute" => Object::AIRoute(serde_json::from_value::<AIRoute>(value)?),
        "MCPGateway" => Object::MCPGateway(serde_json::from_value::<MCPGateway>(value)?),
        "MCPServer" => Object::MCPServer(serde_json::from_value::<MCPServer>(value)?),
        "AgentGateway" => Object::AgentGateway(serde_json::from_value::<AgentGateway>(value)?),
        "Agent" => Object::Agent(serde_json::from_value::<Agent>(value)?),
        "AgentPolicy" => Object::AgentPolicy(serde_json::from_value::<AgentPolicy>(value)?),
        other => return Err(serde_json::Error::custom(format!("unknown kind {other}"))),
    })
}
