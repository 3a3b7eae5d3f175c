//! The layout stays as docs/architecture.md draws it: no import circle between the files of the
//! library, the compaction crate or the audit crate; at most eight files beside the folders of
//! `shared/src`; no function over 60 lines in any crate under `shared/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `.rs` files under `dir`, relative to it, sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).unwrap_or_else(|e| panic!("{}: {e}", next.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// The module path of a file of a crate whose root is `lib.rs`: `table/mod.rs` is `[table]`,
/// `table/item.rs` `[table, item]`, `lib.rs` `[]`.
fn module_of(file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    match last.as_str() {
        "mod.rs" | "lib.rs" | "main.rs" => {}
        name => parts.push(name.trim_end_matches(".rs").to_owned()),
    }
    parts
}

/// Every `use` path of a source, with its braces expanded one level deep (`a::{b, c::D}`), test
/// modules left out (they may take from anywhere), and re-exports of a module's own children
/// (`pub use child::Item;`) left out: the child is below the module, not beside it.
fn use_paths(source: &str) -> Vec<(bool, String)> {
    let code = source.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    let mut paths = Vec::new();
    let mut statement = String::new();
    for line in code.lines() {
        let trimmed = line.trim_start();
        if statement.is_empty() && !(trimmed.starts_with("use ") || trimmed.starts_with("pub use ")) {
            continue;
        }
        statement.push_str(trimmed);
        if !trimmed.ends_with(';') {
            continue;
        }
        let public = statement.starts_with("pub");
        let body = statement.trim_start_matches("pub ").trim_start_matches("use ").trim_end_matches(';').to_owned();
        statement.clear();
        match body.split_once("::{") {
            Some((prefix, rest)) => {
                let inner = rest.trim_end_matches('}');
                for item in inner.split(',').map(str::trim).filter(|item| !item.is_empty()) {
                    paths.push((public, format!("{prefix}::{item}")));
                }
            }
            None => paths.push((public, body)),
        }
    }
    paths
}

/// The file a `use` path of `module` leads to, among `files` (by module path), if any.
fn target(module: &[String], path: &str, files: &BTreeMap<Vec<String>, PathBuf>) -> Option<PathBuf> {
    let mut segments: Vec<&str> = path.split("::").map(|s| s.split(" as ").next().unwrap().trim()).collect();
    let mut base: Vec<String> = match *segments.first()? {
        "crate" => {
            segments.remove(0);
            Vec::new()
        }
        "super" => {
            // A `mod.rs` is its folder's module: its `super` is the folder above.
            let mut base = module.to_vec();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
            base
        }
        "self" => {
            segments.remove(0);
            module.to_vec()
        }
        _ => return None,
    };
    // The longest module path the segments name: what follows is an item of it.
    let mut best = files.get(&base).cloned();
    for segment in segments {
        base.push(segment.to_owned());
        match files.get(&base) {
            Some(file) => best = Some(file.clone()),
            None => break,
        }
    }
    best
}

/// The import graph of one crate: file -> the files it takes names from.
fn graph(crate_src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let files: BTreeMap<Vec<String>, PathBuf> = sources(crate_src)
        .into_iter()
        .filter(|file| !file.starts_with("bin") && file != Path::new("main.rs"))
        .map(|file| (module_of(&file), file))
        .collect();
    let mut edges = BTreeMap::new();
    for (module, file) in &files {
        let source = std::fs::read_to_string(crate_src.join(file)).unwrap();
        let mut to = BTreeSet::new();
        for (public, path) in use_paths(&source) {
            let child_reexport = public && !path.starts_with("crate") && !path.starts_with("super");
            if child_reexport {
                continue;
            }
            if let Some(target) = target(module, &path, &files) {
                if &target != file {
                    to.insert(target);
                }
            }
        }
        edges.insert(file.clone(), to);
    }
    edges
}

/// The circles of a graph: its strongly connected components of more than one file (Tarjan).
fn circles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct Walk<'g> {
        edges: &'g BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'g PathBuf, usize>,
        low: BTreeMap<&'g PathBuf, usize>,
        stack: Vec<&'g PathBuf>,
        on_stack: BTreeSet<&'g PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, file: &'g PathBuf) {
            let n = self.index.len();
            self.index.insert(file, n);
            self.low.insert(file, n);
            self.stack.push(file);
            self.on_stack.insert(file);
            for next in self.edges.get(file).into_iter().flatten() {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[next].min(self.low[file]);
                    self.low.insert(file, low);
                } else if self.on_stack.contains(next) {
                    let low = self.index[next].min(self.low[file]);
                    self.low.insert(file, low);
                }
            }
            if self.low[file] == self.index[file] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(top.clone());
                    if top == file {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for file in edges.keys() {
        if !walk.index.contains_key(file) {
            walk.visit(file);
        }
    }
    walk.found
}

#[test]
fn no_file_of_the_library_the_compaction_or_the_audit_imports_in_a_circle() {
    for crate_src in ["shared/src", "shared/compact/src", "shared/audit/src"] {
        // GIVEN the imports between the files of the crate
        let edges = graph(&root().join(crate_src));
        assert!(edges.len() > 5, "{crate_src}: {} files", edges.len());
        // THEN no file takes names, directly or through others, from a file that takes from it
        let found = circles(&edges);
        assert!(found.is_empty(), "{crate_src}: import circles {found:?}");
    }
}

#[test]
fn the_circle_check_finds_a_circle() {
    // GIVEN two files that take from each other, and a third that only takes
    let files = |names: &[(&str, &[&str])]| -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        names.iter().map(|(from, to)| (PathBuf::from(from), to.iter().map(PathBuf::from).collect())).collect()
    };
    let edges = files(&[("a.rs", &["b.rs"]), ("b.rs", &["a.rs"]), ("c.rs", &["a.rs"])]);
    // THEN the two are a circle, the third is not in it
    let found = circles(&edges);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].iter().collect::<BTreeSet<_>>(), [&PathBuf::from("a.rs"), &PathBuf::from("b.rs")].into());
    // AND the paths of a `use` lead to the files that hold them
    let modules: BTreeMap<Vec<String>, PathBuf> = ["lib.rs", "run/mod.rs", "run/pass.rs", "run/state.rs", "model.rs"]
        .iter()
        .map(|file| (module_of(Path::new(file)), PathBuf::from(file)))
        .collect();
    let pass = module_of(Path::new("run/pass.rs"));
    assert_eq!(target(&pass, "super::state::Leaves", &modules), Some(PathBuf::from("run/state.rs")));
    assert_eq!(target(&pass, "crate::model::Scope", &modules), Some(PathBuf::from("model.rs")));
    assert_eq!(target(&pass, "super::Trigger", &modules), Some(PathBuf::from("run/mod.rs")));
    assert_eq!(target(&pass, "tokio::sync::Mutex", &modules), None);
    let paths = use_paths("use crate::history::{object_key, HistoryKind};\npub use request::RunRequest;\n");
    assert_eq!(
        paths,
        [
            (false, "crate::history::object_key".to_owned()),
            (false, "crate::history::HistoryKind".to_owned()),
            (true, "request::RunRequest".to_owned())
        ]
    );
}

#[test]
fn the_library_shows_its_layers_at_most_eight_files_beside_its_folders() {
    let top: Vec<String> = std::fs::read_dir(root().join("shared/src"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(top.len() <= 8, "shared/src has {} files beside its folders: {top:?}", top.len());
}

/// Each function under `dir` longer than `limit` lines, with where it starts: from its `fn` line
/// to the closing brace at its indentation.
fn long_functions(dir: &Path, limit: usize) -> Vec<String> {
    let mut long = Vec::new();
    for file in sources(dir) {
        let text = std::fs::read_to_string(dir.join(&file)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (start, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let is_fn = ["fn ", "pub fn ", "async fn ", "pub async fn ", "pub(crate) fn ", "pub(super) fn "]
                .iter()
                .chain(["pub(crate) async fn ", "pub(super) async fn "].iter())
                .any(|prefix| trimmed.starts_with(prefix));
            if !is_fn {
                continue;
            }
            let indent = line.len() - trimmed.len();
            let Some(open) = (start..lines.len())
                .find(|&i| lines[i].trim_end().ends_with('{') || lines[i].trim_end().ends_with(';'))
            else {
                continue;
            };
            if lines[open].trim_end().ends_with(';') {
                continue;
            }
            let close = (open + 1..lines.len()).find(|&i| {
                let l = lines[i];
                l.len() - l.trim_start().len() == indent && l.trim_start().starts_with('}')
            });
            if let Some(close) = close {
                if close - start + 1 > limit {
                    long.push(format!("{}:{} ({} lines)", file.display(), start + 1, close - start + 1));
                }
            }
        }
    }
    long
}

#[test]
fn no_function_under_shared_is_over_sixty_lines() {
    let long = long_functions(&root().join("shared"), 60);
    assert!(long.is_empty(), "functions over 60 lines: {long:?}");
    // AND the count itself sees a long one
    let dir = std::env::temp_dir().join(format!("layout-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body = "    let x = 1;\n".repeat(61);
    std::fs::write(dir.join("long.rs"), format!("fn long() {{\n{body}}}\n")).unwrap();
    assert_eq!(long_functions(&dir, 60).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
