//! The extension syntax imap-codec does not read, read by the gateway itself for a
//! command imap-codec refused: SEARCH (SORT, THREAD) with ESEARCH's RETURN options,
//! SEARCHRES's `$` or nesting deeper than imap-codec follows ([`super::search_syntax`]);
//! FETCH's and STATUS's RFC 8474 and RFC 8970 items ([`super::extra_items`]); FETCH, STORE,
//! COPY and MOVE on `$` ([`super::saved_result`]); UNAUTHENTICATE (RFC 8437); CREATE
//! with a special use (RFC 6154 3: `CREATE name (USE (\Archive))`); LIST with RFC 5258's
//! options and several patterns ([`super::list_syntax`]).

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::mailbox::Mailbox;

/// A command in syntax imap-codec does not read (extensions), as the gateway's own
/// parsers read it.
#[derive(Debug)]
pub(crate) enum ExtendedBody {
    /// A command on the selected mailbox.
    OnMailbox(OnMailbox),
    /// UNAUTHENTICATE (RFC 8437).
    Unauthenticate,
    /// CREATE with RFC 6154's `(USE (\Attr …))`: the mailbox and the attributes asked for.
    CreateSpecialUse {
        mailbox: Mailbox<'static>,
        uses: Vec<String>,
    },
    /// LIST in RFC 5258's extended syntax.
    List(super::list_syntax::ListCommand),
    /// FETCH or STATUS with items imap-codec does not know ([`super::extra_items`]):
    /// imap-codec's reading of the rest, and those items.
    WithExtras(CommandBody<'static>, super::extra_items::Extras),
}

/// The extended commands of the selected state.
#[derive(Debug)]
pub(crate) enum OnMailbox {
    /// SEARCH with RETURN options, `$`, or nested deeper than imap-codec follows; SORT
    /// or THREAD with `$` or such nesting.
    Search(super::search_syntax::SearchCommand),
    /// FETCH, STORE, COPY or MOVE (UID too) on `$` (RFC 5182): imap-codec's reading
    /// with a placeholder set, which the session replaces by the saved result.
    OnSaved(CommandBody<'static>),
}

/// Why [`parse_extended`] read nothing.
pub(crate) enum ExtendedError {
    /// No extension syntax either: imap-codec's answer stands.
    NotExtended,
    /// The extension's syntax, refused with this reason (a BAD).
    Refused(String),
}

/// Reads a whole message (literals inline) that imap-codec refused, in the extension
/// syntax the gateway reads itself.
pub(crate) fn parse_extended(
    message: &[u8],
    max_nesting: usize,
) -> Result<(Tag<'static>, ExtendedBody), ExtendedError> {
    use super::search_syntax::SearchSyntaxError;
    match super::search_syntax::parse(message, max_nesting) {
        Ok((tag, search)) => {
            return Ok((tag, ExtendedBody::OnMailbox(OnMailbox::Search(search))));
        }
        Err(SearchSyntaxError::TooDeep(limit)) => {
            return Err(ExtendedError::Refused(format!(
                "Search keys nested deeper than the limit of {limit} levels"
            )));
        }
        Err(SearchSyntaxError::UnknownReturnOption(option)) => {
            return Err(ExtendedError::Refused(format!(
                "Unknown SEARCH RETURN option {option}"
            )));
        }
        Err(SearchSyntaxError::Invalid) => {}
    }
    match super::list_syntax::parse(message) {
        Ok((tag, list)) => return Ok((tag, ExtendedBody::List(list))),
        Err(super::list_syntax::ListSyntaxError::Refused(reason)) => {
            return Err(ExtendedError::Refused(reason));
        }
        Err(super::list_syntax::ListSyntaxError::NotList) => {}
    }
    if let Some(tag) = unauthenticate(message) {
        return Ok((tag, ExtendedBody::Unauthenticate));
    }
    if let Some((tag, mailbox, uses)) = create_special_use(message) {
        return Ok((tag, ExtendedBody::CreateSpecialUse { mailbox, uses }));
    }
    if let Some((tag, body)) = super::saved_result::parse_on_saved(message) {
        return Ok((tag, ExtendedBody::OnMailbox(OnMailbox::OnSaved(body))));
    }
    use super::extra_items::{Extras, ExtrasError, parse_fetch, parse_status};
    let extras = match parse_fetch(message) {
        Err(ExtrasError::NotExtended) => parse_status(message).map(|(tag, body, status)| {
            let extras = Extras {
                status,
                ..Extras::default()
            };
            (tag, body, extras)
        }),
        other => other.map(|(tag, body, fetch)| {
            let extras = Extras {
                fetch,
                ..Extras::default()
            };
            (tag, body, extras)
        }),
    };
    match extras {
        Ok((tag, body, extras)) => Ok((tag, ExtendedBody::WithExtras(body, extras))),
        Err(ExtrasError::Refused(why)) => Err(ExtendedError::Refused(why)),
        Err(ExtrasError::NotExtended) => Err(ExtendedError::NotExtended),
    }
}

impl ExtendedBody {
    /// The command's name, as imap-codec names its commands.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ExtendedBody::OnMailbox(OnMailbox::Search(search)) => match search.answer {
                super::search_syntax::Answer::Search => "SEARCH",
                super::search_syntax::Answer::Sort(_) => "SORT",
                super::search_syntax::Answer::Thread(_) => "THREAD",
            },
            ExtendedBody::OnMailbox(OnMailbox::OnSaved(body)) => body.name(),
            ExtendedBody::Unauthenticate => "UNAUTHENTICATE",
            ExtendedBody::CreateSpecialUse { .. } => "CREATE",
            ExtendedBody::List(_) => "LIST",
            ExtendedBody::WithExtras(body, _) => body.name(),
        }
    }
}

/// `tag UNAUTHENTICATE` (RFC 8437 3: no arguments); its tag.
fn unauthenticate(message: &[u8]) -> Option<Tag<'static>> {
    let line = message
        .strip_suffix(b"\r\n")
        .or_else(|| message.strip_suffix(b"\n"))?;
    let (tag, name) = line.split_at(line.iter().position(|&b| b == b' ')?);
    if !name[1..].eq_ignore_ascii_case(b"UNAUTHENTICATE") {
        return None;
    }
    let tag = std::str::from_utf8(tag).ok()?;
    Tag::try_from(tag.to_owned()).ok()
}

/// `tag CREATE mailbox (USE (attr…))` (RFC 6154 6, RFC 4466 2.2): the mailbox as
/// imap-codec reads it, and the attributes (an empty list asks for none).
fn create_special_use(message: &[u8]) -> Option<(Tag<'static>, Mailbox<'static>, Vec<String>)> {
    let line = message
        .strip_suffix(b"\r\n")
        .or_else(|| message.strip_suffix(b"\n"))?;
    let upper = line.to_ascii_uppercase();
    let at = upper.windows(7).rposition(|w| w == b" (USE (")?;
    let list = line[at + 7..].strip_suffix(b"))")?;
    let list = std::str::from_utf8(list).ok()?;
    let uses: Vec<String> = list
        .split(' ')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    let well_formed = uses.iter().all(|a| {
        a.len() > 1
            && a.starts_with('\\')
            && a[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !well_formed || list.contains("  ") || list.starts_with(' ') || list.ends_with(' ') {
        return None;
    }
    let mut create = line[..at].to_vec();
    create.extend_from_slice(b"\r\n");
    match CommandCodec::default().decode(&create) {
        Ok((
            [],
            Command {
                tag,
                body: CommandBody::Create { mailbox },
            },
        )) => Some((tag.into_static(), mailbox.into_static(), uses)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn create_reads_the_use_list() {
        let (tag, mailbox, uses) =
            create_special_use(b"t1 CREATE MyArchive (USE (\\Archive))\r\n").unwrap();
        assert_eq!(tag.inner(), "t1");
        assert_eq!(mailbox, Mailbox::try_from("MyArchive").unwrap());
        assert_eq!(uses, ["\\Archive"]);
        let (_, _, uses) =
            create_special_use(b"t CREATE {4}\r\nA (B (USE (\\Sent \\Drafts))\r\n").unwrap();
        assert_eq!(uses, ["\\Sent", "\\Drafts"]);
        let (_, _, uses) = create_special_use(b"t create x (use ())\r\n").unwrap();
        assert!(uses.is_empty());
        for bad in [
            "t CREATE x (USE (Archive))\r\n",
            "t CREATE x (USE (\\Archive)\r\n",
            "t CREATE x (USE (\\A  \\B))\r\n",
            "t CREATE (USE (\\Archive))\r\n",
            "t DELETE x (USE (\\Archive))\r\n",
        ] {
            assert!(create_special_use(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }
}
