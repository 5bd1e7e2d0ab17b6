//! Maildir file names: `unique:2,LETTERS`.
//!
//! The unique part is made as the Maildir spec says (`secs.MusecsPpidQn.host`, plus
//! Maildir++'s `,S=size`). The letters after `:2,` carry the system flags, sorted:
//! `D` \Draft, `F` \Flagged, `R` \Answered, `S` \Seen, `T` \Deleted. Letters we do not
//! map (`P` "passed", Dovecot's lower-case keyword letters) are kept as they are, so a
//! rename for a flag change never drops them. Keywords live in the index only.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::types::{Flag, Flags};

/// A parsed file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileName {
    pub unique: String,
    /// The letters after `:2,` (as found; may be unsorted when another program wrote them).
    pub letters: String,
}

impl FileName {
    pub(super) fn parse(name: &str) -> FileName {
        if let Some((unique, info)) = name.rsplit_once(':') {
            if let Some(letters) = info.strip_prefix("2,") {
                return FileName {
                    unique: unique.to_owned(),
                    letters: letters.to_owned(),
                };
            }
        }
        FileName {
            unique: name.to_owned(),
            letters: String::new(),
        }
    }
}

/// The file name in `cur/` for a message.
pub(crate) fn file_name(unique: &str, flags: &Flags, extra: &str) -> String {
    format!("{unique}:2,{}", letters(flags, extra))
}

const MAPPED: [(char, Flag); 5] = [
    ('D', Flag::Draft),
    ('F', Flag::Flagged),
    ('R', Flag::Answered),
    ('S', Flag::Seen),
    ('T', Flag::Deleted),
];

/// The sorted, de-duplicated letters for these flags plus the unmapped `extra` letters.
pub(crate) fn letters(flags: &Flags, extra: &str) -> String {
    let mut out: Vec<char> = MAPPED
        .iter()
        .filter(|(_, f)| flags.contains(f))
        .map(|(c, _)| *c)
        .chain(extra.chars())
        .collect();
    out.sort_unstable();
    out.dedup();
    out.into_iter().collect()
}

/// Splits letters into the system flags they stand for and the unmapped rest (sorted).
pub(crate) fn split_letters(letters: &str) -> (Flags, String) {
    let mut flags = Flags::new();
    let mut extra: Vec<char> = Vec::new();
    for c in letters.chars() {
        match MAPPED.iter().find(|(l, _)| *l == c) {
            Some((_, f)) => {
                flags.insert(f.clone());
            }
            // Only printable ASCII is kept: anything else cannot have been a flag.
            None if c.is_ascii_graphic() && c != '/' && c != ':' => extra.push(c),
            None => {}
        }
    }
    extra.sort_unstable();
    extra.dedup();
    (flags, extra.into_iter().collect())
}

/// `flags` with its system flags replaced by those in `system` (keywords kept).
pub(crate) fn with_system_flags(flags: &Flags, system: &Flags) -> Flags {
    let mut out: Flags = flags
        .iter()
        .filter(|f| matches!(f, Flag::Keyword(_)))
        .collect();
    for f in system.iter() {
        out.insert(f);
    }
    out
}

fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_else(|_| "localhost".to_owned());
        // The Maildir spec's escapes for '/' and ':'; drop anything else odd.
        let mut out = String::new();
        for c in raw.trim().chars() {
            match c {
                '/' => out.push_str("\\057"),
                ':' => out.push_str("\\072"),
                '.' | ',' => out.push('_'),
                c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => out.push(c),
                _ => {}
            }
        }
        if out.is_empty() {
            "localhost".to_owned()
        } else {
            out
        }
    })
}

/// A fresh unique name. One process holds the data-dir lock, and within it the counter
/// makes names distinct; time and pid make them distinct across restarts.
pub(crate) fn new_unique(size: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.M{}P{}Q{}.{},S={}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        hostname(),
        size
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::types::Keyword;

    #[test]
    fn letters_round_trip() {
        let flags: Flags = [
            Flag::Seen,
            Flag::Deleted,
            Flag::Answered,
            Flag::Keyword(Keyword::new("$Junk").unwrap()),
        ]
        .into_iter()
        .collect();
        assert_eq!(letters(&flags, "P"), "PRST");
        let (sys, extra) = split_letters("TSRPa");
        assert_eq!(extra, "Pa");
        assert_eq!(with_system_flags(&flags, &sys), flags);
        assert_eq!(file_name("u1", &flags, ""), "u1:2,RST");
    }

    #[test]
    fn parses_names() {
        assert_eq!(
            FileName::parse("123.M1P2.host,S=5:2,FS"),
            FileName {
                unique: "123.M1P2.host,S=5".into(),
                letters: "FS".into()
            }
        );
        assert_eq!(FileName::parse("plain").letters, "");
        assert_eq!(FileName::parse("x:1,abc").unique, "x:1,abc");
    }

    #[test]
    fn uniques_are_distinct() {
        let a = new_unique(10);
        let b = new_unique(10);
        assert_ne!(a, b);
        assert!(!a.contains('/') && !a.contains(':'));
    }
}
