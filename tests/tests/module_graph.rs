//! The module graph of each crate, and the rule that it has no circles: a module never imports,
//! directly or through others, a module that imports it. Layers stay layers, so a newcomer can
//! change one module knowing what is above and below it.
//!
//! A module is a top-level file or directory of a crate's `src` (its submodules count as part of
//! it); an import is a `crate::<module>` path outside comments and `#[cfg(test)]` code.
//!
//! To see the graph (the shape ARCHITECTURE.md's code map describes):
//!
//! ```text
//! cargo test -p overture-tests --test module_graph -- --nocapture
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use overture_tests::crate_dir;

/// The crates whose module graphs are checked, by their `src` directory.
const CRATES: [&str; 7] =
    ["actors/core/src", "actors/src", "raft/src", "api/src", "actors/script/src", "node/src", "node/bench/src"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a source directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its tests and comments.
fn code(source: &str) -> String {
    let without_tests = source.split("#[cfg(test)]").next().unwrap_or_default();
    without_tests
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `code` imports: `crate::name` and each name of `crate::{a, b::c}`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level paths of the group: split at commas outside nested braces.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(first_segment(group[start..i].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(first_segment(group[start..i].trim()));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(first_segment(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect()
}

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let module_of = |file: &Path| -> String {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative.components().next().expect("a path").as_os_str().to_string_lossy();
        first.trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).filter(|m| m != "lib" && m != "main").collect();
    let mut graph: Graph = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for file in &files {
        let module = module_of(file);
        let Some(edges) = graph.get_mut(&module) else { continue };
        let source = fs::read_to_string(file).expect("a readable source file");
        for target in imports(&code(&source)) {
            if target != module && modules.contains(&target) {
                edges.insert(target);
            }
        }
    }
    graph
}

/// Groups of modules that reach each other (Tarjan's strongly connected components, of more
/// than one module).
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in &self.graph[v] {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_crate_has_a_module_circle() {
    let root = crate_dir().join("..");
    let mut problems = Vec::new();
    for src in CRATES {
        let graph = graph(&root.join(src));
        println!("{src}");
        for (module, imports) in &graph {
            let imports: Vec<&str> = imports.iter().map(String::as_str).collect();
            println!("  {module} -> {}", imports.join(", "));
        }
        for circle in circles(&graph) {
            problems.push(format!("{src}: {}", circle.join(" <-> ")));
        }
    }
    assert!(
        problems.is_empty(),
        "modules that import each other (directly or through others):\n{}",
        problems.join("\n")
    );
}

/// The checker itself finds a circle, through a third module too, and reads grouped imports.
#[test]
fn a_circle_is_found() {
    let graph: Graph = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
        .into_iter()
        .map(|(m, to)| (m.to_owned(), to.into_iter().map(str::to_owned).collect()))
        .collect();
    assert_eq!(circles(&graph), vec![vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
    let found =
        imports(&code("use crate::{cf, keys::{self, x}, io_err};\n// crate::comment\nlet x = crate::disk::f();"));
    assert_eq!(found, ["cf", "disk", "io_err", "keys"].into_iter().map(str::to_owned).collect());
}
