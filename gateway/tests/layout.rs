//! The gateway's source layout, as a newcomer looks for things: every IMAP command is
//! found by file name in `src/command/` (one file per command or tight pair), each
//! file opens with a `//!` line that names its command and RFC, and the files of
//! `src/` import each other without circles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every command the session dispatches, and the file that holds it.
const COMMANDS: &[(&str, &str)] = &[
    ("CAPABILITY", "capability.rs"),
    ("NOOP", "noop.rs"),
    ("CHECK", "noop.rs"),
    ("LOGOUT", "logout.rs"),
    ("ID", "id.rs"),
    ("STARTTLS", "starttls.rs"),
    ("LOGIN", "login.rs"),
    ("AUTHENTICATE", "authenticate.rs"),
    ("ENABLE", "enable.rs"),
    ("NAMESPACE", "namespace.rs"),
    ("SELECT", "select.rs"),
    ("EXAMINE", "select.rs"),
    ("CREATE", "create.rs"),
    ("DELETE", "delete.rs"),
    ("RENAME", "rename.rs"),
    ("SUBSCRIBE", "subscribe.rs"),
    ("UNSUBSCRIBE", "subscribe.rs"),
    ("LIST", "list.rs"),
    ("LSUB", "list.rs"),
    ("STATUS", "status.rs"),
    ("APPEND", "append.rs"),
    ("IDLE", "idle.rs"),
    ("GETQUOTA", "quota.rs"),
    ("GETQUOTAROOT", "quota.rs"),
    ("SETQUOTA", "quota.rs"),
    ("CLOSE", "close.rs"),
    ("UNSELECT", "close.rs"),
    ("EXPUNGE", "expunge.rs"),
    ("UID EXPUNGE", "expunge.rs"),
    ("SEARCH", "search.rs"),
    ("FETCH", "fetch.rs"),
    ("STORE", "store.rs"),
    ("COPY", "copy.rs"),
    ("MOVE", "copy.rs"),
    ("UNAUTHENTICATE", "unauthenticate.rs"),
    ("SORT", "sort.rs"),
    ("THREAD", "thread.rs"),
];

#[test]
fn every_command_has_its_file_and_its_file_names_it() {
    let dir = src().join("command");
    let mut wrong = Vec::new();
    for (command, file) in COMMANDS {
        let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
            wrong.push(format!("{command}: no command/{file}"));
            continue;
        };
        // The module doc's first paragraph names the command and its RFC section.
        let doc: String = text
            .lines()
            .take_while(|l| l.starts_with("//!") && l.trim() != "//!")
            .collect::<Vec<_>>()
            .join(" ");
        if !doc.contains(command) || !doc.contains("RFC") {
            wrong.push(format!(
                "{command}: command/{file} does not open with a //! line naming it and its RFC"
            ));
        }
        let stem = file.trim_end_matches(".rs");
        let handled = text.contains(&format!("async fn cmd_{stem}"))
            || text.contains(&format!("async fn cmd_{}", command.to_lowercase()));
        if !handled {
            wrong.push(format!("{command}: command/{file} has no cmd_ handler"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn handlers_live_only_in_their_command_files() {
    // No `cmd_…` handler outside `command/`, and none in a file not named for it.
    let mut wrong = Vec::new();
    for path in rust_files(&src()) {
        let text = std::fs::read_to_string(&path).unwrap();
        let rel = path
            .strip_prefix(src())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for line in text.lines() {
            let Some(at) = line.find("async fn cmd_") else {
                continue;
            };
            let name: String = line[at + "async fn cmd_".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let in_command = rel.starts_with("command/");
            let file_known = COMMANDS.iter().any(|(_, f)| rel == format!("command/{f}"));
            if !in_command || !file_known {
                wrong.push(format!("cmd_{name} in {rel}"));
            }
        }
    }
    assert!(wrong.is_empty(), "handlers outside their files: {wrong:?}");
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The module path of a file under `src/`: `cli/mod.rs` is `cli`, `command/fetch.rs`
/// is `command::fetch`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap().with_extension("");
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    parts.join("::")
}

/// Which files each file names through `crate::…` paths (the longest module that
/// exists), tests left out.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(&src());
    let modules: BTreeSet<String> = files.iter().map(|p| module_of(p)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let from = module_of(path);
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let to = edges.entry(from.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let target = (1..=segments.len())
                .rev()
                .map(|k| segments[..k].join("::"))
                .find(|m| modules.contains(m));
            if let Some(target) = target {
                if target != from {
                    to.insert(target);
                }
            }
        }
    }
    edges
}

#[test]
fn source_files_import_each_other_without_circles() {
    let edges = imports();
    let is_parent = |a: &str, b: &str| b.starts_with(&format!("{a}::"));
    // Depth-first search for a way back to where it started.
    fn reaches(
        edges: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        goal: &str,
        seen: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> bool {
        for next in edges.get(from).into_iter().flatten() {
            if next == goal {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if reaches(edges, next, goal, seen, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut circles = Vec::new();
    for start in edges.keys() {
        let mut path = vec![start.clone()];
        if reaches(&edges, start, start, &mut BTreeSet::new(), &mut path) {
            // A module and its own submodules may name each other (a parent re-exports,
            // a child uses the parent's types); that is one unit, not a circle.
            let unit = path
                .iter()
                .all(|m| is_parent(start, m) || is_parent(m, start) || m == start);
            if !unit {
                circles.push(path.join(" → "));
            }
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn the_import_check_sees_the_crate() {
    // The circle check is only worth something if it finds the imports that exist.
    let edges = imports();
    assert!(edges["session"].contains("shared"), "{edges:#?}");
    assert!(edges["node"].contains("route"), "{edges:#?}");
    assert!(edges["command::fetch"].contains("session"), "{edges:#?}");
}
