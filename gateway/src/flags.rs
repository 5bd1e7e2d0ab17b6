//! Flags between the wire and the store.

use std::borrow::Cow;

use imap_codec::imap_types::core::Atom;
use imap_codec::imap_types::flag::{Flag as WireFlag, FlagFetch, FlagPerm};
use pluto_backends::{Flag, Flags, Keyword};

use crate::response::CmdError;

pub fn to_wire(flag: &Flag) -> WireFlag<'static> {
    match flag {
        Flag::Seen => WireFlag::Seen,
        Flag::Answered => WireFlag::Answered,
        Flag::Flagged => WireFlag::Flagged,
        Flag::Deleted => WireFlag::Deleted,
        Flag::Draft => WireFlag::Draft,
        Flag::Keyword(k) => WireFlag::Keyword(Atom::unvalidated(Cow::Owned(k.as_str().to_owned()))),
    }
}

pub fn to_wire_fetch(flags: &Flags) -> Vec<FlagFetch<'static>> {
    flags.iter().map(|f| FlagFetch::Flag(to_wire(&f))).collect()
}

/// The store's flag for a client's. `\Recent` cannot be set (it is the server's), and
/// an unknown system flag is an error.
pub fn from_wire(flag: &WireFlag<'_>) -> Result<Flag, CmdError> {
    Ok(match flag {
        WireFlag::Seen => Flag::Seen,
        WireFlag::Answered => Flag::Answered,
        WireFlag::Flagged => Flag::Flagged,
        WireFlag::Deleted => Flag::Deleted,
        WireFlag::Draft => Flag::Draft,
        WireFlag::Keyword(atom) => Flag::Keyword(
            Keyword::new(atom.inner().to_owned())
                .map_err(|e| CmdError::bad(format!("Invalid keyword: {e}")))?,
        ),
        WireFlag::Extension(ext) => {
            return Err(CmdError::bad(format!(
                "Flag {} cannot be set",
                WireFlag::Extension(ext.clone())
            )));
        }
    })
}

pub fn from_wire_list(flags: &[WireFlag<'_>]) -> Result<Flags, CmdError> {
    flags.iter().map(from_wire).collect()
}

/// `FLAGS` and `PERMANENTFLAGS` for a mailbox: the system flags plus the keywords in use.
pub fn mailbox_flags(keywords: &[Keyword]) -> Vec<WireFlag<'static>> {
    let mut out = vec![
        WireFlag::Answered,
        WireFlag::Flagged,
        WireFlag::Deleted,
        WireFlag::Seen,
        WireFlag::Draft,
    ];
    out.extend(keywords.iter().map(|k| to_wire(&Flag::Keyword(k.clone()))));
    out
}

pub fn permanent_flags(keywords: &[Keyword]) -> Vec<FlagPerm<'static>> {
    let mut out: Vec<FlagPerm<'static>> = mailbox_flags(keywords)
        .into_iter()
        .map(FlagPerm::Flag)
        .collect();
    out.push(FlagPerm::Asterisk);
    out
}
