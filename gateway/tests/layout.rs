//! The gateway's source layout, as a newcomer looks for things: every IMAP command is
//! found by file name in `src/command/` (one file per command or tight pair), each
//! file opens with a `//!` line that names its command and RFC, and the files of
//! `src/` import each other without circles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

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
    ("CLOSE", "close.rs"),
    ("UNSELECT", "close.rs"),
    ("EXPUNGE", "expunge.rs"),
    ("UID EXPUNGE", "expunge.rs"),
    ("SEARCH", "search.rs"),
    ("FETCH", "fetch.rs"),
    ("STORE", "store.rs"),
    ("COPY", "copy.rs"),
    ("MOVE", "copy.rs"),
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
        let rel = path.strip_prefix(src()).unwrap().to_string_lossy().into_owned();
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
