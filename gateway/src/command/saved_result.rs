//! SEARCHRES (RFC 5182): the search result a `SEARCH RETURN (SAVE)` keeps for the
//! session, and the `$` that later commands name it by.
//!
//! The result ([`crate::searchres::SavedResult`]) is kept in the selected mailbox's
//! view (`MailboxView::saved`), so it is empty after every SELECT and EXAMINE (RFC
//! 5182 2.1) and gone with the view. `$` is resolved against the messages in view, so
//! a message expunged since drops out by itself (a UID is never used twice under one
//! UIDVALIDITY).
//!
//! In FETCH, STORE, COPY and MOVE (and their UID forms) and UID EXPUNGE `$` is the
//! whole sequence set (as Dovecot reads RFC 5182's `sequence-set =/
//! seq-last-command`); imap-codec does not read it, so [`parse_on_saved`] reads the command with `$` standing in for a
//! placeholder set, and the session puts the saved messages in its place. In SEARCH,
//! `$` and `UID $` are keys ([`search_syntax`](super::search_syntax)), all of them
//! sharing one copy of the result.

use std::num::NonZeroU32;

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::{Tag, Vec1};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use crate::searchres::ranges;
use crate::selected::MailboxView;

/// The saved messages still in view as a sequence set of UIDs (`uid`) or sequence
/// numbers; `None` when there are none.
pub(crate) fn saved_sequence_set(view: &MailboxView, uid: bool) -> Option<SequenceSet> {
    let numbers = view
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| view.saved.contains(m.uid.get()))
        .map(|(i, m)| if uid { m.uid.get() } else { i as u32 + 1 });
    sequence_set(&ranges(numbers))
}

fn sequence_set(ranges: &[(u32, u32)]) -> Option<SequenceSet> {
    let value = |n: u32| NonZeroU32::new(n).map(SeqOrUid::Value);
    let sequences: Option<Vec<Sequence>> = ranges
        .iter()
        .map(|&(lo, hi)| {
            Some(if lo == hi {
                Sequence::Single(value(lo)?)
            } else {
                Sequence::Range(value(lo)?, value(hi)?)
            })
        })
        .collect();
    Vec1::try_from(sequences?).ok().map(SequenceSet)
}

/// Reads `tag [UID] FETCH|STORE|COPY|MOVE $ …` or `tag UID EXPUNGE $` (UIDPLUS;
/// literals inline): the command as
/// imap-codec reads it with a placeholder set for `$`, which the session replaces.
/// `None` for anything else.
pub(crate) fn parse_on_saved(message: &[u8]) -> Option<(Tag<'static>, CommandBody<'static>)> {
    let mut words = message.splitn(4, |&b| b == b' ');
    let _tag = words.next()?;
    let mut name = words.next()?.to_ascii_uppercase();
    let mut consumed = 2;
    if name == b"UID" {
        name = words.next()?.to_ascii_uppercase();
        consumed = 3;
    }
    let expunge = consumed == 3 && name == b"EXPUNGE";
    if !expunge && !matches!(name.as_slice(), b"FETCH" | b"STORE" | b"COPY" | b"MOVE") {
        return None;
    }
    // Where the set starts: after the words read and their spaces.
    let start = message
        .split(|&b| b == b' ')
        .take(consumed)
        .map(|w| w.len() + 1)
        .sum::<usize>();
    // `$` and the command's other arguments; UID EXPUNGE has none.
    let after = if expunge { &b"$\r\n"[..] } else { &b"$ "[..] };
    if message.get(start..start + after.len()) != Some(after) {
        return None;
    }
    let mut line = message[..start].to_vec();
    line.push(b'1');
    line.extend_from_slice(&message[start + 1..]);
    match CommandCodec::default().decode(&line) {
        Ok(([], command)) => {
            let command = command.into_static();
            matches!(
                command.body,
                CommandBody::Fetch { .. }
                    | CommandBody::Store { .. }
                    | CommandBody::Copy { .. }
                    | CommandBody::Move { .. }
                    | CommandBody::ExpungeUid { .. }
            )
            .then_some((command.tag, command.body))
        }
        _ => None,
    }
}

/// Puts `set` in place of the sequence set of a command [`parse_on_saved`] read.
pub(crate) fn replace_set(body: &mut CommandBody<'static>, set: SequenceSet) {
    match body {
        CommandBody::Fetch { sequence_set, .. }
        | CommandBody::Store { sequence_set, .. }
        | CommandBody::Copy { sequence_set, .. }
        | CommandBody::Move { sequence_set, .. }
        | CommandBody::ExpungeUid { sequence_set } => *sequence_set = set,
        _ => {}
    }
}

/// Whether a command read by [`parse_on_saved`] is a UID command.
pub(crate) fn is_uid(body: &CommandBody<'_>) -> bool {
    matches!(
        body,
        CommandBody::Fetch { uid: true, .. }
            | CommandBody::Store { uid: true, .. }
            | CommandBody::Copy { uid: true, .. }
            | CommandBody::Move { uid: true, .. }
            | CommandBody::ExpungeUid { .. }
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dollar_is_read_as_the_whole_set_of_four_commands() {
        let (tag, body) = parse_on_saved(b"a UID FETCH $ (FLAGS)\r\n").unwrap();
        assert_eq!(tag.inner(), "a");
        assert!(matches!(body, CommandBody::Fetch { uid: true, .. }));
        let (_, body) = parse_on_saved(b"b COPY $ {5}\r\nTrash\r\n").unwrap();
        assert!(matches!(body, CommandBody::Copy { uid: false, .. }));
        assert!(parse_on_saved(b"c store $ +FLAGS (\\Seen)\r\n").is_some());
        assert!(parse_on_saved(b"d MOVE $ Trash\r\n").is_some());
        let (_, body) = parse_on_saved(b"f uid expunge $\r\n").unwrap();
        assert!(matches!(body, CommandBody::ExpungeUid { .. }) && is_uid(&body));
        for other in [
            "e FETCH 1 (FLAGS)\r\n",
            "e FETCH $,1 (FLAGS)\r\n",
            "e FETCH $ BOGUS\r\n",
            "e EXPUNGE $\r\n",
            "e UID EXPUNGE $ 1\r\n",
            "e SEARCH $\r\n",
            "e UID\r\n",
        ] {
            assert!(parse_on_saved(other.as_bytes()).is_none(), "{other:?}");
        }
    }
}
