//! The dependency rules of `docs/architecture.md`, checked on the source: which module may import
//! which, and no two files of `src/` importing each other in a loop.
//!
//! "A imports B" means a path in file A (a `use` item or a path in code, `crate::…`, `super::…`,
//! `self::…` or a child module's name) that resolves to file B: the longest prefix of the path
//! that names a module file. Comments and string literals are skipped; an inline `mod x { … }`
//! counts for `super::` and `self::` inside it. `mod x;` declarations are not imports, and
//! neither is a re-export alone (`pub use child::Item;`, a module's public face): a re-exported
//! name counts once the file's own code uses it. Unit tests (`#[cfg(test)] mod … { … }`) are left
//! out: a test may use what sits above the code it pins (a test of a wire view checks it against
//! the general path), which is no dependency of the code itself.
//!
//! The rules:
//! - `gateway` imports only `gateway`, `config` and `policy` (never `api`, `compile`,
//!   `manifest`, `workspace`, `explain`, `operator`, `serve`);
//! - a layer (`gateway/ai`, `gateway/mcp`, `gateway/agent`) never imports another layer, and the
//!   shared core (every other file of `gateway`) imports no layer;
//! - `config` and `policy` import nothing but each other (`policy` reads `config`);
//! - no cycle: the file graph of `src/` has no strongly connected component of two or more files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path, e.g. `["gateway", "ai", "proxy"]` for `src/gateway/ai/proxy.rs`.
type ModPath = Vec<String>;

const LAYERS: [&str; 3] = ["ai", "mcp", "agent"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of the library (not `main.rs`, a crate of its own) by module path.
fn files() -> BTreeMap<ModPath, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = src();
    let mut all = Vec::new();
    walk(&root, &mut all);
    let mut map = BTreeMap::new();
    for p in all {
        let rel = p.strip_prefix(&root).unwrap().with_extension("");
        let mut parts: ModPath = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        match parts.last().map(String::as_str) {
            Some("main") if parts.len() == 1 => continue,
            Some("lib") if parts.len() == 1 => parts.clear(),
            Some("mod") => {
                parts.pop();
            }
            _ => {}
        }
        map.insert(parts, p);
    }
    map
}

/// The code of a file with comments, string and char literals blanked out (same length, so
/// positions still line up).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                        depth += 1;
                        j += 2;
                    } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                let start = i + 2 + hashes;
                let end =
                    b[start..].windows(close.len()).position(|w| w == close).map_or(b.len(), |n| start + n);
                blank(&mut out, i, end + close.len());
                i = end + close.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i, j + 1);
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
                let end = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..].iter().position(|&c| c == b'\'').map(|n| i + 2 + n)
                } else {
                    let ch = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (b.get(i + 1 + ch) == Some(&b'\'')).then_some(i + 1 + ch)
                };
                match end {
                    Some(e) => {
                        blank(&mut out, i, e + 1);
                        i = e + 1;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).unwrap()
}

/// Inline modules (`mod name {`) as (start, end, name, whether `#[cfg(test)]`) byte ranges.
fn inline_modules(code: &str) -> Vec<(usize, usize, String, bool)> {
    let re = regex::Regex::new(r"(?-u:\b)mod\s+([0-9A-Za-z_]+)\s*\{").unwrap();
    let b = code.as_bytes();
    re.captures_iter(code)
        .map(|c| {
            let m = c.get(0).unwrap();
            let test = code[..m.start()].trim_end().ends_with("#[cfg(test)]");
            let (mut depth, mut j) = (1, m.end());
            while j < b.len() && depth > 0 {
                match b[j] {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    _ => {}
                }
                j += 1;
            }
            (m.start(), j, c[1].to_string(), test)
        })
        .collect()
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let renamed = regex::Regex::new(r"\s+as\s+[0-9A-Za-z_]+").unwrap();
    let tree: String = renamed.replace_all(tree, "").split_whitespace().collect();
    let Some(open) = tree.find('{') else { return vec![tree] };
    let prefix = &tree[..open];
    let close = tree.rfind('}').unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(|q| format!("{prefix}{q}")))
        .collect()
}

/// The file a path used in module `base` resolves to, if it names one of `files`.
fn resolve(path: &str, base: &[String], files: &BTreeMap<ModPath, PathBuf>) -> Option<ModPath> {
    let path = path.split(" as ").next().unwrap_or(path);
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty() && *s != "*").collect();
    let (mut at, rest): (ModPath, &[&str]) = match segs.first().copied() {
        Some("crate") => (vec![], &segs[1..]),
        Some("self") => (base.to_vec(), &segs[1..]),
        Some("super") => {
            let mut at = base.to_vec();
            let mut i = 0;
            while segs.get(i) == Some(&"super") {
                at.pop();
                i += 1;
            }
            (at, &segs[i..])
        }
        Some(first) => {
            // A child module of this one, named without `self::`.
            let mut child = base.to_vec();
            child.push(first.to_string());
            if !files.contains_key(&child) {
                return None;
            }
            (base.to_vec(), &segs[..])
        }
        None => return None,
    };
    let mut found = files.contains_key(&at).then(|| at.clone());
    for s in rest {
        at.push((*s).to_string());
        if files.contains_key(&at) {
            found = Some(at.clone());
        }
    }
    found
}

/// Which files each file imports.
fn graph() -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let files = files();
    let use_re = regex::Regex::new(r"((?-u:\b)pub(?:\([^)]*\))?\s+)?(?-u:\b)use\s+([^;]+);").unwrap();
    let path_re = regex::Regex::new(r"(?-u:\b)(?:crate|super|self)(?:::[0-9A-Za-z_]+)+").unwrap();
    let mut out = BTreeMap::new();
    for (module, file) in &files {
        let code = code_only(&std::fs::read_to_string(file).unwrap());
        let inline = inline_modules(&code);
        // The module a byte position is in: the file's, plus the inline modules around it.
        let base_at = |pos: usize| {
            let mut base = module.clone();
            for (s, e, name, _) in &inline {
                if *s < pos && pos < *e {
                    base.push(name.clone());
                }
            }
            base
        };
        let in_test = |pos: usize| inline.iter().any(|(s, e, _, test)| *test && *s < pos && pos < *e);
        let mut deps = BTreeSet::new();
        let mut in_use = Vec::new();
        let mut reexports = Vec::new();
        for c in use_re.captures_iter(&code) {
            let m = c.get(0).unwrap();
            in_use.push(m.range());
            if in_test(m.start()) {
                continue;
            }
            let base = base_at(m.start());
            for p in expand(&c[2]) {
                match (c.get(1), resolve(&p, &base, &files)) {
                    (Some(_), Some(to)) => {
                        reexports.push((p.rsplit("::").next().unwrap_or("").to_string(), to))
                    }
                    (None, Some(to)) => {
                        deps.insert(to);
                    }
                    (_, None) => {}
                }
            }
        }
        for (item, to) in reexports {
            let used = regex::Regex::new(&format!(r"(?-u:\b){}(?-u:\b)", regex::escape(&item))).unwrap();
            if item != "*" && used.find_iter(&code).any(|m| !in_use.iter().any(|r| r.contains(&m.start()))) {
                deps.insert(to);
            }
        }
        for m in path_re.find_iter(&code) {
            if in_use.iter().any(|r| r.contains(&m.start())) || in_test(m.start()) {
                continue;
            }
            deps.extend(resolve(m.as_str(), &base_at(m.start()), &files));
        }
        deps.remove(module);
        out.insert(module.clone(), deps);
    }
    out
}

fn name(m: &[String]) -> String {
    if m.is_empty() { "lib".into() } else { m.join("/") }
}

fn is_layer(m: &[String]) -> Option<&str> {
    (m.len() >= 2 && m[0] == "gateway" && LAYERS.contains(&m[1].as_str())).then(|| m[1].as_str())
}

#[test]
fn modules_import_only_what_their_stage_may_see() {
    let mut wrong = Vec::new();
    for (from, deps) in graph() {
        let top = from.first().map(String::as_str).unwrap_or("");
        for to in &deps {
            let to_top = to.first().map(String::as_str).unwrap_or("");
            let why = match top {
                "gateway" if !matches!(to_top, "gateway" | "config" | "policy") => {
                    Some("gateway sees only config and policy")
                }
                "gateway" => match (is_layer(&from), is_layer(to)) {
                    (Some(a), Some(b)) if a != b => Some("a layer never imports another layer"),
                    (None, Some(_)) => Some("the gateway core never imports a layer"),
                    _ => None,
                },
                "config" if to_top != "config" => Some("config knows nothing but itself"),
                "policy" if !matches!(to_top, "policy" | "config") => Some("policy reads only config"),
                _ => None,
            };
            if let Some(why) = why {
                wrong.push(format!("{} imports {}: {why}", name(&from), name(to)));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against docs/architecture.md:\n  {}", wrong.join("\n  "));
}

#[test]
fn no_files_import_each_other_in_a_loop() {
    let g = graph();
    // Tarjan's strongly connected components.
    struct T<'a> {
        g: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on: BTreeSet<&'a ModPath>,
        next: usize,
        loops: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a ModPath) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(name(w));
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.loops.push(scc);
            }
        }
    }
    let mut t = T {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        next: 0,
        loops: vec![],
    };
    for v in g.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    let text: Vec<String> = t.loops.iter().map(|l| l.join(", ")).collect();
    assert!(text.is_empty(), "files importing each other in a loop:\n  {}", text.join("\n  "));
}

/// The checker itself: use trees expand to their paths, comments and strings are skipped, and
/// paths resolve to the longest module prefix that is a file.
#[test]
fn the_checker_reads_use_trees_and_skips_comments_and_strings() {
    assert_eq!(expand("a::{b, c::{d, e}, f as g}"), ["a::b", "a::c::d", "a::c::e", "a::f"]);
    let code =
        code_only("let s = \"crate::x\"; // crate::y\nlet c = '\"'; let r = r#\"super::z\"#; crate::w");
    assert!(!code.contains("crate::x") && !code.contains("crate::y") && !code.contains("super::z"));
    assert!(code.contains("crate::w"));
    let m = |p: &str| p.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect::<ModPath>();
    let files: BTreeMap<ModPath, PathBuf> =
        ["", "a", "a/b", "a/b/c", "d"].iter().map(|p| (m(p), PathBuf::new())).collect();
    assert_eq!(resolve("crate::a::b::Thing", &m("d"), &files), Some(m("a/b")));
    assert_eq!(resolve("super::super::Item", &m("a/b/c"), &files), Some(m("a")));
    assert_eq!(resolve("super::c::f", &m("a/b/c"), &files), Some(m("a/b/c")));
    assert_eq!(resolve("b::Thing", &m("a"), &files), Some(m("a/b")), "a child module by its name");
    assert_eq!(resolve("std::sync::Arc", &m("a"), &files), None);
}
