//! The architecture, checked: reads the source of `host/src` and `src` (nothing is compiled or
//! run) and fails when
//! - a module of `host/src` imports one on a higher layer than its own, or one listed after it
//!   in its own layer, or a module not in the layer table of `docs/architecture.md` appears;
//! - files import each other in a loop (in `host/src`, between its top-level modules too);
//! - a table is written (INSERT, UPDATE, DELETE) by a module other than its documented owner;
//! - a source file is over 800 lines or a function over 120 (a trailing `#[cfg(test)]` module
//!   is not counted).
//!
//! It is a crate of its own (`tools/architecture`) because it needs nothing of the engine: it
//! builds in seconds and says what is wrong even when the engine does not compile.
//!
//! The table of layers is read from `docs/architecture.md`, so the document and this test
//! cannot drift: a row is `| N | `module`, … | owns `table`, … | … |`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 120;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn host_modules_import_only_their_layer_and_below() {
    let layers = Layers::from_doc(&root().join("docs/architecture.md"));
    let tree = Tree::read(&root().join("host/src"));
    let problems = layering(&tree, &layers);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_import_cycles() {
    let mut problems = Vec::new();
    for dir in ["host/src", "src"] {
        let tree = Tree::read(&root().join(dir));
        problems.extend(
            file_cycles(&tree)
                .into_iter()
                .map(|c| format!("{dir}: {c}")),
        );
    }
    let host = Tree::read(&root().join("host/src"));
    problems.extend(module_cycles(&host));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn each_table_is_written_by_its_owner_alone() {
    let layers = Layers::from_doc(&root().join("docs/architecture.md"));
    let tree = Tree::read(&root().join("host/src"));
    let problems = ownership(&tree, &layers);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn files_and_functions_stay_short() {
    let mut problems = Vec::new();
    for dir in ["host/src", "src"] {
        for file in Tree::read(&root().join(dir)).files {
            problems.extend(sizes(&format!("{dir}/{}", file.rel), &file.code));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checks themselves, on made-up sources: each must see what it is for, or the tests
/// above could pass by seeing nothing.
mod checks_can_fail {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        Tree {
            files: files
                .iter()
                .map(|(rel, text)| SourceFile::new(rel, text))
                .collect(),
        }
    }

    fn layers(doc: &str) -> Layers {
        Layers::parse(doc)
    }

    const DOC: &str = "\
| layer | modules | owns | may import |
|---|---|---|---|
| 1 | `store` | `jobs` | nothing |
| 2 | `traces`, `jobs` | `traces` | 1 |
| 3 | `engine` | | all |
";

    #[test]
    fn a_back_import_is_found() {
        let t = tree(&[
            ("store.rs", "use crate::traces::append;\n"),
            ("traces.rs", "use crate::store::Conn;\n"),
            ("jobs.rs", "use crate::traces::kind;\n"),
            ("engine.rs", "use crate::{jobs, traces::{self, kind}};\n"),
        ]);
        let found = layering(&t, &layers(DOC));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("store.rs imports `traces::append`"),
            "{found:?}"
        );
        // Within a layer, only what is listed before: `traces` comes before `jobs`.
        let t = tree(&[
            ("traces.rs", "fn f() { crate::jobs::run() }\n"),
            ("jobs.rs", ""),
        ]);
        let found = layering(&t, &layers(DOC));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("listed after `traces`"), "{found:?}");
    }

    #[test]
    fn an_unlisted_module_is_found() {
        let t = tree(&[("store.rs", ""), ("newcomer.rs", "")]);
        let found = layering(&t, &layers(DOC));
        assert!(found.iter().any(|p| p.contains("`newcomer`")), "{found:?}");
    }

    #[test]
    fn a_cycle_is_found_and_comments_and_tests_do_not_count() {
        let t = tree(&[
            ("a/mod.rs", "pub mod b;\npub mod c;\npub use b::X;\n"),
            ("a/b.rs", "use super::c::Y;\n// crate::a::c is fine here\n"),
            ("a/c.rs", "use crate::a::b::X;\n"),
            (
                "d.rs",
                "pub fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::a::b;\n}\n",
            ),
            ("e.rs", "/// See [`crate::d::f`].\nuse crate::d::f;\n"),
        ]);
        let found = file_cycles(&t);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("a/b.rs") && found[0].contains("a/c.rs"));
        let modules = module_cycles(&tree(&[
            ("x.rs", "use crate::y::f;\n"),
            ("y.rs", "fn g() { crate::x::h() }\n"),
        ]));
        assert_eq!(modules.len(), 1, "{modules:?}");
    }

    #[test]
    fn a_second_writer_of_a_table_is_found() {
        let t = tree(&[
            ("store.rs", "const Q: &str = \"UPDATE jobs SET x = 1\";\n"),
            (
                "traces.rs",
                "const Q: &str = \"INSERT INTO traces (a) VALUES (1)\";\n",
            ),
            (
                "engine.rs",
                "const Q: &str = \"DELETE FROM jobs WHERE id = $1\";\n",
            ),
        ]);
        let found = ownership(&t, &layers(DOC));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("`engine` writes `jobs`"), "{found:?}");
    }

    #[test]
    fn long_files_and_functions_are_found() {
        let body = "    let x = 1;\n".repeat(MAX_FN_LINES);
        let long_fn = format!("fn long() {{\n{body}}}\n\nfn short() {{\n}}\n");
        let found = sizes("f.rs", &SourceFile::new("f.rs", &long_fn).code);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("`long`"), "{found:?}");
        let long_file = "const A: u8 = 1;\n".repeat(MAX_FILE_LINES + 1);
        assert_eq!(
            sizes("g.rs", &SourceFile::new("g.rs", &long_file).code).len(),
            1
        );
        let tested = format!("fn a() {{}}\n#[cfg(test)]\nmod tests {{\n{}}}\n", long_file);
        assert!(sizes("h.rs", &SourceFile::new("h.rs", &tested).code).is_empty());
        let parent = SourceFile::new("a/h.rs", "fn a() {}\n#[cfg(test)]\nmod tests;\n");
        assert_eq!(parent.test_children(), vec![vec!["a", "h", "tests"]]);
    }
}

// ---------------------------------------------------------------------------------------------
// The layer table.

struct Layers {
    /// Top-level module → its layer (1 is the ground) and its place in the layer's row: a
    /// module may import those listed before it in its own row, never after.
    layer: BTreeMap<String, (u32, usize)>,
    /// Table → the module that owns it.
    owner: BTreeMap<String, String>,
}

impl Layers {
    fn from_doc(path: &Path) -> Layers {
        let doc = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let layers = Layers::parse(&doc);
        assert!(
            !layers.layer.is_empty(),
            "{} has no layer table (rows `| N | `module`, … | … |`)",
            path.display()
        );
        layers
    }

    /// Rows whose first cell is a number: the second cell names modules, the third the tables
    /// they own (each owned table is credited to the row's first module unless the cell says
    /// `module: table, …` groups, separated by `;`).
    fn parse(doc: &str) -> Layers {
        let mut layer = BTreeMap::new();
        let mut owner = BTreeMap::new();
        for line in doc.lines() {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
            let Some(n) = cells.first().and_then(|c| c.trim().parse::<u32>().ok()) else {
                continue;
            };
            let modules = ticked(cells.get(1).copied().unwrap_or(""));
            for (place, m) in modules.iter().enumerate() {
                layer.insert(m.clone(), (n, place));
            }
            for group in cells.get(2).copied().unwrap_or("").split(';') {
                let (module, tables) = match group.split_once(':') {
                    Some((m, t)) => (ticked(m).into_iter().next(), t),
                    None => (modules.first().cloned(), group),
                };
                for t in ticked(tables) {
                    if let Some(m) = &module {
                        owner.insert(t, m.clone());
                    }
                }
            }
        }
        Layers { layer, owner }
    }
}

/// The names between backticks in a cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The source tree.

struct Tree {
    files: Vec<SourceFile>,
}

struct SourceFile {
    /// Path under the tree's root, with `/`.
    rel: String,
    /// The code: comments blanked, a trailing `#[cfg(test)]` module cut off.
    code: String,
    /// The code with comments blanked and nothing cut.
    raw: String,
}

impl Tree {
    /// Every `.rs` file under `dir` but the test modules kept in files of their own
    /// (`#[cfg(test)] mod tests;`): tests are no part of the layering or the size rule.
    fn read(dir: &Path) -> Tree {
        let mut files = Vec::new();
        walk(dir, dir, &mut files);
        let tests: BTreeSet<Vec<String>> =
            files.iter().flat_map(SourceFile::test_children).collect();
        files.retain(|f| !tests.contains(&f.module()));
        files.sort_by(|a: &SourceFile, b| a.rel.cmp(&b.rel));
        Tree { files }
    }

    fn paths(&self) -> BTreeSet<&str> {
        self.files.iter().map(|f| f.rel.as_str()).collect()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let text = fs::read_to_string(&path).unwrap();
            out.push(SourceFile::new(&rel, &text));
        }
    }
}

impl SourceFile {
    fn new(rel: &str, text: &str) -> SourceFile {
        let raw = blank_comments(text);
        SourceFile {
            rel: rel.to_string(),
            code: without_tests(&raw),
            raw,
        }
    }

    /// The module path of this file: `a/b.rs` and `a/b/mod.rs` are `[a, b]`.
    fn module(&self) -> Vec<String> {
        let trimmed = self.rel.trim_end_matches(".rs");
        let mut parts: Vec<String> = trimmed.split('/').map(str::to_string).collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        parts
    }

    /// The modules this file declares under `#[cfg(test)]` with their code in another file.
    fn test_children(&self) -> Vec<Vec<String>> {
        let mut children = Vec::new();
        let mut rest = self.raw.as_str();
        while let Some(p) = rest.find("#[cfg(test)]") {
            rest = &rest[p + "#[cfg(test)]".len()..];
            let declared = rest
                .trim_start()
                .strip_prefix("mod ")
                .and_then(|r| r.split_once(';'));
            if let Some((name, _)) =
                declared.filter(|(n, _)| n.chars().all(|c| c.is_alphanumeric() || c == '_'))
            {
                let mut module = self.module();
                module.push(name.to_string());
                children.push(module);
            }
        }
        children
    }

    fn top(&self) -> Option<String> {
        self.module().into_iter().next()
    }

    /// Every `crate::…` and `super::…` path the code names, made absolute (segments after
    /// `crate`), groups `{a, b::c}` expanded.
    fn imports(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let code = self.code.as_bytes();
        let mut i = 0;
        while i < code.len() {
            let starts_word = i == 0 || !is_ident(code[i - 1]) && code[i - 1] != b':';
            let rest = &code[i..];
            if starts_word && (rest.starts_with(b"crate::") || rest.starts_with(b"super::")) {
                // At an ASCII byte, so a char boundary.
                let (paths, used) = parse_path(&self.code[i..]);
                for p in paths {
                    if let Some(abs) = self.absolute(p) {
                        out.push(abs);
                    }
                }
                i += used.max(1);
            } else {
                i += 1;
            }
        }
        out
    }

    fn absolute(&self, path: Vec<String>) -> Option<Vec<String>> {
        let mut segs = path.into_iter();
        let mut base = match segs.next()?.as_str() {
            "crate" => Vec::new(),
            _ => {
                // `super` from `a/b.rs` (module a::b) is `a`; from `a/mod.rs` it is the root.
                let mut m = self.module();
                m.pop()?;
                m
            }
        };
        for s in segs {
            if s == "super" {
                base.pop()?;
            } else if s != "self" {
                base.push(s);
            }
        }
        Some(base)
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parses `crate::a::b::{c, d::{e}}` at the start of `s`: the paths, and the bytes used.
fn parse_path(s: &str) -> (Vec<Vec<String>>, usize) {
    let b = s.as_bytes();
    let mut segs = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        if i == start {
            break;
        }
        segs.push(s[start..i].to_string());
        if s[i..].starts_with("::{") {
            i += 3;
            let mut out = Vec::new();
            loop {
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return (out, i + 1);
                }
                let (inner, used) = parse_path(&s[i..]);
                out.extend(inner.into_iter().map(|p| {
                    let mut whole = segs.clone();
                    whole.extend(p);
                    whole
                }));
                i += used.max(1);
                // `x as y`, `*`: nothing more to read of this item.
                while i < b.len() && b[i] != b',' && b[i] != b'}' {
                    i += 1;
                }
            }
        }
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            break;
        }
    }
    (vec![segs], i)
}

/// Replaces `//` and `/* */` comments with spaces (newlines kept, so lines still count) and
/// leaves strings alone (an SQL string is what the ownership check reads).
fn blank_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                out.push(if b[i] == b'\n' { b'\n' } else { b' ' });
                i += 1;
            }
            out.extend_from_slice(b"  ");
            i += 2;
        } else if b[i] == b'"' || (b[i] == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#'))) {
            let end = string_end(b, i);
            out.extend_from_slice(&b[i..end]);
            i = end;
        } else if b[i] == b'\'' {
            // A char literal ('"', '{') or a lifetime ('a): copy a literal whole.
            let end = char_end(b, i);
            out.extend_from_slice(&b[i..end]);
            i = end;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The index just past the string literal starting at `i` (`"…"`, `r"…"`, `r#"…"#`).
fn string_end(b: &[u8], mut i: usize) -> usize {
    if b[i] == b'r' {
        i += 1;
        let mut hashes = 0;
        while b.get(i) == Some(&b'#') {
            hashes += 1;
            i += 1;
        }
        if b.get(i) != Some(&b'"') {
            return i; // an identifier starting with r, not a raw string
        }
        i += 1;
        while i < b.len() {
            if b[i] == b'"'
                && b[i + 1..]
                    .iter()
                    .take(hashes)
                    .filter(|&&c| c == b'#')
                    .count()
                    == hashes
            {
                return i + 1 + hashes;
            }
            i += 1;
        }
        return b.len();
    }
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

fn char_end(b: &[u8], i: usize) -> usize {
    if b.get(i + 1) == Some(&b'\\') {
        let close = b[i + 2..]
            .iter()
            .position(|&c| c == b'\'')
            .map(|p| i + 3 + p);
        return close.unwrap_or(i + 1);
    }
    if b.get(i + 2) == Some(&b'\'') {
        return i + 3;
    }
    // Multi-byte chars ('é') end within 5 bytes; otherwise a lifetime.
    match b[i + 1..b.len().min(i + 6)]
        .iter()
        .position(|&c| c == b'\'')
    {
        Some(p) if !b[i + 1].is_ascii() => i + 2 + p,
        _ => i + 1,
    }
}

/// Cuts a trailing test module: from a `#[cfg(test)]` followed by `mod NAME {` to its end.
fn without_tests(code: &str) -> String {
    let mut search = 0;
    while let Some(p) = code[search..].find("#[cfg(test)]") {
        let at = search + p;
        let after = code[at + "#[cfg(test)]".len()..].trim_start();
        if after.starts_with("mod ") && after.split('\n').next().is_some_and(|l| l.contains('{')) {
            return code[..at].to_string();
        }
        search = at + 1;
    }
    code.to_string()
}

/// Which file a path names: the longest prefix of it that is a file of the tree.
fn resolve<'a>(paths: &BTreeSet<&'a str>, module: &[String]) -> Option<&'a str> {
    for len in (1..=module.len()).rev() {
        let stem = module[..len].join("/");
        for candidate in [format!("{stem}.rs"), format!("{stem}/mod.rs")] {
            if let Some(found) = paths.get(candidate.as_str()) {
                return Some(found);
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The checks.

fn layering(tree: &Tree, layers: &Layers) -> Vec<String> {
    let mut problems = BTreeSet::new();
    for file in &tree.files {
        let Some(top) = file.top() else { continue };
        let Some(&own) = layers.layer.get(&top) else {
            problems.insert(format!(
                "module `{top}` is in no layer of docs/architecture.md"
            ));
            continue;
        };
        for import in file.imports() {
            let Some(target) = import.first() else {
                continue;
            };
            if *target == top {
                continue;
            }
            match layers.layer.get(target) {
                Some(&(theirs, _)) if theirs > own.0 => {
                    problems.insert(format!(
                        "{} imports `{}` (layer {theirs}) from layer {}",
                        file.rel,
                        import.join("::"),
                        own.0
                    ));
                }
                Some(&(theirs, place)) if theirs == own.0 && place > own.1 => {
                    problems.insert(format!(
                        "{} imports `{}`, listed after `{top}` in layer {theirs}",
                        file.rel,
                        import.join("::")
                    ));
                }
                _ => {}
            }
        }
    }
    problems.into_iter().collect()
}

/// Import edges between files, leaving out a `mod.rs`'s own children: a folder's index that
/// declares and re-exports its files is their owner, not a dependency.
fn file_edges(tree: &Tree) -> BTreeMap<&str, BTreeSet<&str>> {
    let paths = tree.paths();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for file in &tree.files {
        let from = file.rel.as_str();
        let folder = from.strip_suffix("mod.rs");
        for import in file.imports() {
            let Some(to) = resolve(&paths, &import) else {
                continue;
            };
            let own_child = folder.is_some_and(|f| to.starts_with(f));
            if to != from && !own_child {
                edges.entry(from).or_default().insert(to);
            }
        }
    }
    edges
}

fn file_cycles(tree: &Tree) -> Vec<String> {
    let edges = file_edges(tree);
    cycles(&edges)
        .into_iter()
        .map(|c| format!("files import each other in a loop: {}", c.join(", ")))
        .collect()
}

fn module_cycles(tree: &Tree) -> Vec<String> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &tree.files {
        let Some(top) = file.top() else { continue };
        for import in file.imports() {
            if let Some(target) = import.first().filter(|t| **t != top) {
                edges.entry(top.clone()).or_default().insert(target.clone());
            }
        }
    }
    let borrowed: BTreeMap<&str, BTreeSet<&str>> = edges
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    cycles(&borrowed)
        .into_iter()
        .map(|c| format!("modules import each other in a loop: {}", c.join(", ")))
        .collect()
}

/// The strongly connected components of more than one node (Tarjan), each listed as
/// its members in name order, so a message names every file in the loop.
fn cycles<'a>(edges: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, edges: &BTreeMap<&'a str, BTreeSet<&'a str>>, s: &mut State<'a>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, edges, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for &v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(v, edges, &mut s);
        }
    }
    s.found
}

/// Tables written (INSERT INTO, UPDATE, DELETE FROM) in the SQL of each top-level module.
fn ownership(tree: &Tree, layers: &Layers) -> Vec<String> {
    let mut problems = BTreeSet::new();
    for file in &tree.files {
        let Some(top) = file.top() else { continue };
        for table in written_tables(&file.code) {
            match layers.owner.get(&table) {
                Some(owner) if *owner == top => {}
                Some(owner) => {
                    problems.insert(format!(
                        "`{top}` writes `{table}` ({}), which `{owner}` owns",
                        file.rel
                    ));
                }
                None => {
                    problems.insert(format!(
                        "`{top}` writes `{table}` ({}), which has no owner in docs/architecture.md",
                        file.rel
                    ));
                }
            }
        }
    }
    problems.into_iter().collect()
}

fn written_tables(code: &str) -> BTreeSet<String> {
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut tables = BTreeSet::new();
    for (i, w) in words.iter().enumerate() {
        let table = match *w {
            "INSERT" | "DELETE" if matches!(words.get(i + 1), Some(&"INTO" | &"FROM")) => {
                words.get(i + 2)
            }
            // `UPDATE t SET`, so that prose or `ON CONFLICT … DO UPDATE SET` is not a table.
            "UPDATE" if words.get(i + 2) == Some(&"SET") => words.get(i + 1),
            _ => None,
        };
        if let Some(t) = table.filter(|t| t.chars().all(|c| c.is_ascii_lowercase() || c == '_')) {
            tables.insert(t.to_string());
        }
    }
    tables
}

fn sizes(name: &str, code: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let lines: Vec<&str> = code.lines().collect();
    if lines.len() > MAX_FILE_LINES {
        let n = lines.len();
        problems.push(format!("{name}: {n} lines (at most {MAX_FILE_LINES})"));
    }
    let mut offset = 0;
    for (start, line) in lines.iter().enumerate() {
        let here = offset;
        offset += line.len() + 1;
        let Some(fn_name) = fn_name(line) else {
            continue;
        };
        let Some(end) = body_end(code, here) else {
            continue;
        };
        let length = end - start + 1;
        if length > MAX_FN_LINES {
            problems.push(format!(
                "{name}:{}: fn `{fn_name}` is {length} lines (at most {MAX_FN_LINES})",
                start + 1
            ));
        }
    }
    problems
}

/// The name of a function declared on this line, if one is.
fn fn_name(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.next() {
        let qualifier = w.starts_with("pub")
            || matches!(
                w,
                "async" | "const" | "unsafe" | "extern" | "\"C\"" | "default"
            );
        if w == "fn" {
            let next = words.next()?;
            let end = next.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
            return Some(&next[..end]);
        }
        if !qualifier {
            return None;
        }
    }
    None
}

/// The line (0-based) on which the body of the function declared at byte `from` closes,
/// counting braces outside strings and char literals; `None` for a declaration without a body.
fn body_end(code: &str, from: usize) -> Option<usize> {
    let b = code.as_bytes();
    let mut depth = 0i64;
    let mut opened = false;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'"' | b'r' if b[i] == b'"' || (i > 0 && !is_ident(b[i - 1])) => {
                let end = string_end(b, i);
                i = end.max(i + 1);
                continue;
            }
            b'\'' => {
                i = char_end(b, i);
                continue;
            }
            b'{' => {
                depth += 1;
                opened = true;
            }
            b'}' => {
                depth -= 1;
                if opened && depth == 0 {
                    return Some(code[..i].matches('\n').count());
                }
            }
            b';' if !opened && depth == 0 => return None,
            _ => {}
        }
        i += 1;
    }
    None
}
