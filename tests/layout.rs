//! The layout of the source tree, as README's "How it is built" draws it: folders named after
//! the process that runs them, each saying so at its top; layers that point one way; one
//! crate per job at the edges (rdkafka in `src/bus`, actix-web in `src/web`); small files.
//! These tests read the sources, so a change that breaks the map fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// No source file grows past this many lines: one sitting's reading.
const MAX_LINES: usize = 600;

/// The top-level modules each module may use. Anything else is an arrow pointing the wrong
/// way (a layer reaching up) and fails the test.
const MAY_USE: &[(&str, &[&str])] = &[
    ("messages", &[]),
    ("tls", &[]),
    ("link", &[]),
    ("proof", &[]),
    ("ocpp", &[]),
    ("domain", &["messages"]),
    ("configuration", &["domain", "link", "messages"]),
    ("cli", &[]),
    ("metrics", &["domain"]),
    ("store", &["messages", "domain"]),
    ("accounts", &["proof", "store"]),
    // The bus ships the store's changelog and applies what it reads of it there.
    (
        "bus",
        &[
            "configuration",
            "messages",
            "metrics",
            "domain",
            "proof",
            "store",
        ],
    ),
    ("harness", &[]),
    (
        "actors",
        &[
            "accounts",
            "bus",
            "configuration",
            "domain",
            "harness",
            "link",
            "messages",
            "metrics",
            "ocpp",
            "proof",
            "store",
        ],
    ),
    (
        "web",
        &[
            "accounts",
            "actors",
            "bus",
            "configuration",
            "domain",
            "messages",
            "metrics",
            "ocpp",
            "store",
            "tls",
        ],
    ),
    // The benchmark drives whole processes, as a role does, and reads the fleets' reports;
    // it makes the token that opens their control endpoints, as the demo does.
    (
        "bench",
        &[
            "accounts",
            "actors",
            "bus",
            "cli",
            "configuration",
            "harness",
            "messages",
        ],
    ),
];

/// Modules that use each other: an actor and the child actors it starts, which answer it.
const MUTUAL_ALLOWED: &[(&str, &str)] = &[
    (
        "actors::central::charge_point",
        "actors::central::cp_supervisor",
    ),
    (
        "actors::fleet::driver_fleet",
        "actors::fleet::simulated_driver",
    ),
    ("actors::gateway", "actors::gateway::charger"),
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// A file's module path under `src/`: `src/actors/cp/engine.rs` is `actors::cp::engine`.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The source without comments, so that a path named in prose is not an import.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module path a file names through `crate::…` or `super::…`, grouped imports
/// (`crate::{a::B, c}`) included, as lists of lower-case segments.
fn paths_named(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for root in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(root) {
            let before = rest[..at].chars().last();
            rest = &rest[at + root.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let base: Vec<String> = if root == "crate::" {
                Vec::new()
            } else {
                // `super` of module a::b (`a/b/mod.rs` or `a/b.rs`) is a.
                module[..module.len().saturating_sub(1)].to_vec()
            };
            let tail: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || "_:{}, \n".contains(*c))
                .collect();
            let tail = tail.split('}').next().unwrap_or("");
            let (head, group) = match tail.split_once('{') {
                Some((head, group)) => (head, Some(group)),
                None => (tail.split([',', ' ', '\n']).next().unwrap_or(""), None),
            };
            let head: Vec<String> = head
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let items: Vec<Vec<String>> = match group {
                Some(group) => group
                    .split(',')
                    .map(|item| {
                        item.trim()
                            .split("::")
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .collect(),
                None => vec![Vec::new()],
            };
            for item in items {
                let mut path = base.clone();
                path.extend(head.iter().cloned());
                path.extend(item);
                path.retain(|s| s != "self");
                let modules: Vec<String> = path
                    .into_iter()
                    .take_while(|s| s.starts_with(|c: char| c.is_lowercase()))
                    .collect();
                found.push(modules);
            }
        }
    }
    found
}

struct Tree {
    /// Module path → the source text.
    modules: BTreeMap<Vec<String>, (PathBuf, String)>,
}

impl Tree {
    fn read() -> Tree {
        let modules = rust_files(&src())
            .into_iter()
            .map(|file| {
                let text = std::fs::read_to_string(&file).unwrap();
                (module_of(&file), (file, text))
            })
            .collect();
        Tree { modules }
    }

    /// The longest module that `path` starts with.
    fn resolve(&self, path: &[String]) -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| self.modules.contains_key(m))
    }

    /// Module → the other modules it names (not its own ancestors or descendants).
    fn uses(&self) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
        let mut uses = BTreeMap::new();
        for (module, (_, text)) in &self.modules {
            let mut named = BTreeSet::new();
            for path in paths_named(module, &code_of(text)) {
                if let Some(target) = self.resolve(&path) {
                    let related = target.starts_with(module) || module.starts_with(&target);
                    if !related {
                        named.insert(target);
                    }
                }
            }
            uses.insert(module.clone(), named);
        }
        uses
    }
}

#[test]
fn no_source_file_is_longer_than_one_sitting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = rust_files(&root.join("src"));
    files.extend(rust_files(&root.join("tests")));
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "longer than {MAX_LINES} lines: {long:?}");
}

#[test]
fn every_folder_says_what_runs_there() {
    let silent: Vec<String> = rust_files(&src())
        .into_iter()
        .filter(|file| file.ends_with("mod.rs"))
        .filter(|file| !std::fs::read_to_string(file).unwrap().starts_with("//!"))
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        silent.is_empty(),
        "a mod.rs without a //! header: {silent:?}"
    );
}

#[test]
fn layers_point_one_way() {
    let tree = Tree::read();
    let rules: BTreeMap<&str, &[&str]> = MAY_USE.iter().copied().collect();
    let mut wrong = Vec::new();
    for (module, named) in tree.uses() {
        let Some(top) = module.first() else { continue };
        for target in named {
            let to = &target[0];
            if to == top {
                continue;
            }
            match rules.get(top.as_str()) {
                // Roles start everything; nothing but the crate root starts roles.
                None if top == "roles" => {}
                None => wrong.push(format!("{top} has no rule in MAY_USE")),
                Some(allowed) if allowed.contains(&to.as_str()) => {}
                Some(_) => wrong.push(format!("{} uses {}", module.join("::"), target.join("::"))),
            }
            if to == "roles" {
                wrong.push(format!("{} uses {}", module.join("::"), target.join("::")));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "arrows against the layers: {wrong:#?}");
}

#[test]
fn no_two_modules_use_each_other_but_an_actor_and_its_children() {
    let uses = Tree::read().uses();
    let mut mutual = Vec::new();
    for (a, named) in &uses {
        for b in named {
            let back = uses.get(b).is_some_and(|n| n.contains(a));
            let (a, b) = (a.join("::"), b.join("::"));
            let allowed = MUTUAL_ALLOWED.iter().any(|&(x, y)| {
                (x, y) == (a.as_str(), b.as_str()) || (y, x) == (a.as_str(), b.as_str())
            });
            if back && a < b && !allowed {
                mutual.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(mutual.is_empty(), "modules that use each other: {mutual:?}");
}

#[test]
fn each_outside_framework_has_one_home() {
    let homes = [("rdkafka", "bus"), ("actix_web", "web")];
    let mut strays = Vec::new();
    for (module, (file, text)) in &Tree::read().modules {
        let code = code_of(text);
        for (krate, home) in homes {
            let at_home = module.first().is_some_and(|m| m == home);
            if !at_home && code.contains(&format!("{krate}::")) {
                strays.push(format!("{} uses {krate}", file.display()));
            }
        }
    }
    assert!(strays.is_empty(), "{strays:?}");
}

/// The checks above would pass on an empty tree; make sure they see the real one.
#[test]
fn the_layout_checks_see_the_real_tree() {
    let uses = Tree::read().uses();
    let engine = vec!["actors".to_string(), "cp".into(), "engine".into()];
    let named = &uses[&engine];
    assert!(named.contains(&vec!["bus".to_string()]), "{named:?}");
    assert!(
        named.contains(&vec!["store".to_string(), "supply_log".into()]),
        "{named:?}"
    );
}
