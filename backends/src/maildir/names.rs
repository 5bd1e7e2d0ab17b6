//! Mailbox names ↔ Maildir++ directory names.
//!
//! INBOX is the user's directory itself. Any other mailbox `A/B/C` lives in the
//! directory `.A.B.C` directly under the user's directory (Maildir++: flat, `.` as the
//! on-disk separator). Because a client's name may itself hold `.`, each part is
//! escaped before it is joined, reversibly:
//!
//! - `.` → `%2E`, `%` → `%25`, `~` → `%7E`, `\` → `%5C`, and every character that is
//!   not printable (controls, other non-graphic code points) → `%XX` per UTF-8 byte
//!   (upper-case hex);
//! - every other character, non-ASCII letters included, is kept as is.
//!
//! So an escaped part never contains `.` or `/`, the directory name is always a single
//! path component starting with `.`, and it is never `.` or `..`: a name cannot leave
//! the user's directory. Only the canonical spelling decodes (a directory made by hand
//! as `.a%2e` is ignored), so two directories never claim one name.

use std::path::{Path, PathBuf};

use crate::error::InvalidName;
use crate::types::MailboxName;

/// Longest directory name most filesystems accept.
const MAX_DIR_NAME: usize = 255;

fn needs_escape(c: char) -> bool {
    matches!(c, '.' | '%' | '~' | '\\' | '/') || c.is_control() || (c.is_whitespace() && c != ' ')
}

fn escape_part(part: &str, out: &mut String) {
    for c in part.chars() {
        if needs_escape(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
}

fn unescape_part(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The directory name of a mailbox other than INBOX (`.A.B`).
pub(crate) fn dir_name(name: &MailboxName) -> Result<String, InvalidName> {
    let mut out = String::with_capacity(name.as_str().len() + 1);
    for part in name.parts() {
        out.push('.');
        escape_part(part, &mut out);
    }
    if out.len() > MAX_DIR_NAME {
        return Err(InvalidName::new(
            "the mailbox name is too long for the Maildir store",
        ));
    }
    Ok(out)
}

/// The directory holding a mailbox: the user's directory for INBOX, else `.A.B` in it.
pub(crate) fn mailbox_dir(user_dir: &Path, name: &MailboxName) -> Result<PathBuf, InvalidName> {
    if name.is_inbox() {
        Ok(user_dir.to_path_buf())
    } else {
        Ok(user_dir.join(dir_name(name)?))
    }
}

/// The mailbox a directory entry of the user's directory stands for, if any.
pub(crate) fn parse_dir_name(dir: &str) -> Option<MailboxName> {
    let rest = dir.strip_prefix('.')?;
    let mut parts = Vec::new();
    for part in rest.split('.') {
        parts.push(unescape_part(part)?);
    }
    let name = MailboxName::new(parts.join("/")).ok()?;
    if name.is_inbox() {
        return None;
    }
    // Only the canonical spelling counts (see the module doc).
    (dir_name(&name).ok()? == dir).then_some(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn name(s: &str) -> MailboxName {
        MailboxName::new(s).unwrap()
    }

    #[test]
    fn round_trips_and_stays_one_component() {
        for s in [
            "Sent",
            "a.b/c",
            "...",
            "a/.../b",
            "~x\\z",
            "Entwürfe/日本",
            "sp ace",
            "INBOX/child",
            "x\u{2028}y",
        ] {
            let n = name(s);
            let d = dir_name(&n).unwrap();
            assert!(d.starts_with('.'), "{d}");
            assert!(!d.contains('/'), "{d}");
            assert!(d != "." && d != "..", "{d}");
            assert_eq!(d.matches('.').count(), n.parts().count(), "{d}");
            assert_eq!(parse_dir_name(&d), Some(n), "{d}");
        }
    }

    #[test]
    fn rejects_foreign_entries() {
        assert_eq!(parse_dir_name("cur"), None);
        assert_eq!(parse_dir_name("."), None);
        assert_eq!(parse_dir_name(".."), None);
        assert_eq!(parse_dir_name(".a..b"), None);
        assert_eq!(parse_dir_name(".a%2e"), None);
        assert_eq!(parse_dir_name(".INBOX"), None);
        assert_eq!(parse_dir_name(".%zz"), None);
        assert_eq!(parse_dir_name(".a.b"), Some(name("a/b")));
    }

    #[test]
    fn too_long_names_are_refused() {
        let long = "a".repeat(300);
        assert!(dir_name(&name(&long)).is_err());
    }
}
