//! Reading YAML text into JSON values with the line of every field, the way `kubectl` sends it.
//!
//! `kubectl` converts YAML to JSON before the API server sees it (sigs.k8s.io/yaml), and the API
//! server decodes JSON numbers as `int64` when they parse as one and as `float64` otherwise. So a
//! whole float such as `2.0` reaches validation as the integer `2`; [`to_json`] does the same, so
//! that type checks and the `minimum`/`maximum` arithmetic behave as on a cluster.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::fmt;

/// One YAML node as parsed, before conversion to JSON.
#[derive(Debug)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Node>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
                Ok(Node::UInt(v))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
                Ok(i64::try_from(v).map(Node::Int).unwrap_or(Node::Float(v as f64)))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
                Ok(u64::try_from(v).map(Node::UInt).unwrap_or(Node::Float(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
                Ok(Node::Str(String::from_utf8_lossy(v).into_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = a.next_entry()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}

/// A YAML syntax error, with the 1-based line it was found on (when the parser knows it).
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub line: Option<u64>,
    pub message: String,
}

/// Parses every document of a YAML stream. Empty documents (nothing, only comments, or `~`)
/// are skipped, as `kubectl` skips them.
pub(crate) fn parse_stream(text: &str) -> Result<Vec<Spanned<Node>>, SyntaxError> {
    serde_saphyr::from_multiple::<Spanned<Node>>(text).map_err(|e| SyntaxError {
        line: e.location().map(|l| l.line()).filter(|l| *l > 0),
        // The parser's advice is for its API's users, not for someone editing a manifest.
        message: e
            .without_snippet()
            .to_string()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", ""),
    })
}

/// The line of each field of a document, keyed by its path in the API server's notation
/// (`spec.rules[0].backends`). The empty path is the document itself.
#[derive(Debug, Default, Clone)]
pub struct LineIndex {
    lines: HashMap<String, u64>,
}

impl LineIndex {
    /// The index of the value at `prefix` (`items[0]`), its paths relative to it.
    pub(crate) fn sub(&self, prefix: &str) -> LineIndex {
        let lines = self
            .lines
            .iter()
            .filter_map(|(path, line)| {
                let rest = path.strip_prefix(prefix)?;
                let rest = match rest.as_bytes().first() {
                    None => "",
                    Some(b'.') => &rest[1..],
                    Some(b'[') => rest,
                    Some(_) => return None,
                };
                Some((rest.to_owned(), *line))
            })
            .collect();
        LineIndex { lines }
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<u64> {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return Some(*line);
            }
            if p.is_empty() {
                return None;
            }
            p = parent_path(p);
        }
    }
}

/// `spec.rules[0].name` → `spec.rules[0]` → `spec.rules` → `spec` → ``.
fn parent_path(path: &str) -> &str {
    if path.ends_with(']')
        && let Some(i) = path.rfind('[')
    {
        return &path[..i];
    }
    match path.rfind('.') {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Joins a field name onto a path: `spec` + `url` → `spec.url`.
pub(crate) fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Joins a list index onto a path: `spec.rules` + 0 → `spec.rules[0]`.
pub(crate) fn index_path(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A value YAML can hold and JSON cannot (`.nan`, `.inf`, a mapping used as a key).
#[derive(Debug)]
pub(crate) struct ConvertError {
    pub line: u64,
    pub message: String,
}

/// Converts a parsed document to the JSON the API server would decode, recording the line of
/// every field.
pub(crate) fn to_json(node: &Spanned<Node>) -> Result<(Value, LineIndex), ConvertError> {
    let mut index = LineIndex::default();
    let value = convert(node, String::new(), &mut index)?;
    Ok((value, index))
}

fn convert(node: &Spanned<Node>, path: String, index: &mut LineIndex) -> Result<Value, ConvertError> {
    let line = node.referenced.line();
    index.lines.entry(path.clone()).or_insert(line);
    Ok(match &node.value {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::from(*i),
        Node::UInt(u) => match i64::try_from(*u) {
            Ok(i) => Value::from(i),
            Err(_) => float(*u as f64, line)?,
        },
        Node::Float(f) => float(*f, line)?,
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(item, index_path(&path, i), index))
                .collect::<Result<_, _>>()?,
        ),
        Node::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let key_line = key.referenced.line();
                let name = key_string(&key.value).ok_or_else(|| ConvertError {
                    line: key_line,
                    message: "a mapping key must be a scalar (string, number or boolean)".into(),
                })?;
                let field = child_path(&path, &name);
                index.lines.insert(field.clone(), key_line);
                let converted = convert(value, field, index)?;
                map.insert(name, converted);
            }
            Value::Object(map)
        }
    })
}

/// Keys become strings, as sigs.k8s.io/yaml turns them when it converts YAML to JSON.
fn key_string(node: &Node) -> Option<String> {
    match node {
        Node::Str(s) => Some(s.clone()),
        Node::Bool(b) => Some(b.to_string()),
        Node::Int(i) => Some(i.to_string()),
        Node::UInt(u) => Some(u.to_string()),
        Node::Float(f) => Some(super::format::go_float(*f)),
        Node::Null => Some("null".into()),
        Node::Seq(_) | Node::Map(_) => None,
    }
}

/// A YAML float as the API server sees it after the JSON round trip: whole numbers that Go
/// prints without an exponent come back as integers.
fn float(f: f64, line: u64) -> Result<Value, ConvertError> {
    if !f.is_finite() {
        return Err(ConvertError {
            line,
            message: format!("unsupported value: {f} (JSON has no NaN or infinity)"),
        });
    }
    if f.fract() == 0.0 && f.abs() < 1e21 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
        return Ok(Value::from(f as i64));
    }
    Ok(Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> (Value, LineIndex) {
        let docs = parse_stream(text).unwrap();
        assert_eq!(docs.len(), 1);
        to_json(&docs[0]).unwrap()
    }

    #[test]
    fn whole_floats_become_integers_like_the_json_round_trip() {
        let (v, _) = one("a: 2.0\nb: 0.5\nc: 7\nd: -0.0\n");
        assert_eq!(v, serde_json::json!({"a": 2, "b": 0.5, "c": 7, "d": 0}));
        assert!(v["a"].is_i64());
    }

    #[test]
    fn every_field_knows_its_line() {
        let (_, idx) = one("# c\nkind: X\nspec:\n  rules:\n    - name: a\n    - name: b\n      x: 1\n");
        assert_eq!(idx.line_of(""), Some(2));
        assert_eq!(idx.line_of("spec"), Some(3));
        assert_eq!(idx.line_of("spec.rules[1].name"), Some(6));
        assert_eq!(idx.line_of("spec.rules[1].x"), Some(7));
        assert_eq!(idx.line_of("spec.rules[1].missing"), Some(6));
        assert_eq!(idx.line_of("nothing.here"), Some(2));
        let rule = idx.sub("spec.rules[1]");
        assert_eq!(rule.line_of(""), Some(6));
        assert_eq!(rule.line_of("x"), Some(7));
        assert_eq!(idx.sub("spec.rules[10]").line_of(""), None);
    }

    #[test]
    fn empty_documents_are_skipped_and_errors_carry_the_line() {
        assert_eq!(parse_stream("---\n# only a comment\n---\n").unwrap().len(), 0);
        let e = parse_stream("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        let e = parse_stream("kind: A\nkind: B\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.starts_with("duplicate mapping key: kind at line 2"), "{}", e.message);
    }

    #[test]
    fn non_finite_numbers_and_complex_keys_are_refused() {
        // Refused by the parser or by the conversion, never accepted.
        for text in ["a: .nan\n", "a: -.inf\n", "? [a, b]\n: 1\n"] {
            let refused = parse_stream(text).map(|docs| to_json(&docs[0]).is_err()).unwrap_or(true);
            assert!(refused, "{text:?} was accepted");
        }
    }
}
