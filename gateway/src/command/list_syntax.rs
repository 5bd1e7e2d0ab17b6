//! LIST in the extended syntax of RFC 5258 (LIST-EXTENDED), which imap-codec does not
//! read: `tag LIST [(selection…) ]reference pattern|(pattern…)[ RETURN (return…)]`,
//! with RFC 5819's `STATUS (items)` return option and RFC 6154's SPECIAL-USE selection
//! and return options. The frame is read here (with [`Parser`]); the reference, each
//! pattern and the STATUS items are read by imap-codec, so they are exactly as strict
//! as in the basic LIST and in STATUS. What RFC 5258 3 makes a BAD is refused here:
//! an unknown option, RECURSIVEMATCH without a selection option it could qualify, and
//! (the bound on what one command costs) more than [`MAX_PATTERNS`] patterns.

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::status::StatusDataItemName;

use super::search_syntax::Parser;

/// The most patterns one LIST may name: each is matched against every mailbox.
pub(crate) const MAX_PATTERNS: usize = 64;

/// The selection options (RFC 5258 3.1, RFC 6154 3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    pub(crate) subscribed: bool,
    /// Accepted; there are no remote mailboxes (RFC 2193).
    pub(crate) remote: bool,
    pub(crate) recursive_match: bool,
    pub(crate) special_use: bool,
}

/// The return options (RFC 5258 3.2, RFC 5819, RFC 6154 3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Returns {
    pub(crate) subscribed: bool,
    pub(crate) children: bool,
    pub(crate) special_use: bool,
    /// `STATUS (items)`: a STATUS answer after each selectable mailbox listed.
    pub(crate) status: Option<Vec<StatusDataItemName>>,
}

/// An extended LIST as the client sent it.
#[derive(Debug)]
pub(crate) struct ListCommand {
    pub(crate) reference: Mailbox<'static>,
    pub(crate) patterns: Vec<ListMailbox<'static>>,
    pub(crate) selection: Selection,
    pub(crate) returns: Returns,
}

/// Why [`parse`] read no extended LIST.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ListSyntaxError {
    /// Not a LIST: the caller keeps imap-codec's answer.
    NotList,
    /// A LIST that is not valid: a BAD with this reason.
    Refused(String),
}

type Parsed<T> = Result<T, ListSyntaxError>;

fn refused<T>(reason: impl Into<String>) -> Parsed<T> {
    Err(ListSyntaxError::Refused(reason.into()))
}

/// Reads a whole `tag LIST …\r\n` message (literals inline, as the client sent them).
pub(crate) fn parse(message: &[u8]) -> Parsed<(Tag<'static>, ListCommand)> {
    let mut p = Parser::new(message);
    let tag = p.word().map_err(|_| ListSyntaxError::NotList)?;
    let tag = Tag::try_from(tag.to_vec())
        .map_err(|_| ListSyntaxError::NotList)?
        .into_static();
    p.space().map_err(|_| ListSyntaxError::NotList)?;
    let name = p.word().map_err(|_| ListSyntaxError::NotList)?;
    if !name.eq_ignore_ascii_case(b"LIST") {
        return Err(ListSyntaxError::NotList);
    }
    let syntax = || ListSyntaxError::Refused("Invalid LIST arguments (RFC 5258 6)".into());
    p.space().map_err(|_| syntax())?;
    let mut selection = Selection::default();
    if p.eat(b'(') {
        for option in options(&mut p)? {
            match option.to_ascii_uppercase().as_slice() {
                b"SUBSCRIBED" => selection.subscribed = true,
                b"REMOTE" => selection.remote = true,
                b"RECURSIVEMATCH" => selection.recursive_match = true,
                b"SPECIAL-USE" => selection.special_use = true,
                _ => {
                    return refused(format!(
                        "Unknown LIST selection option {}",
                        String::from_utf8_lossy(option)
                    ));
                }
            }
        }
        p.space().map_err(|_| syntax())?;
    }
    if selection.recursive_match && !selection.subscribed && !selection.special_use {
        return refused("RECURSIVEMATCH needs another selection option (RFC 5258 3)");
    }
    let start = p.pos();
    p.astring().map_err(|_| syntax())?;
    let reference = decode_reference(&message[start..p.pos()]).ok_or_else(syntax)?;
    p.space().map_err(|_| syntax())?;
    let mut raw_patterns = Vec::new();
    let several = p.eat(b'(');
    loop {
        let start = p.pos();
        p.astring().map_err(|_| syntax())?;
        raw_patterns.push(&message[start..p.pos()]);
        if raw_patterns.len() > MAX_PATTERNS {
            return refused(format!(
                "More than {MAX_PATTERNS} mailbox patterns in one LIST"
            ));
        }
        if !several || p.eat(b')') {
            break;
        }
        p.space().map_err(|_| syntax())?;
    }
    let patterns = raw_patterns
        .into_iter()
        .map(decode_pattern)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(syntax)?;
    let mut returns = Returns::default();
    if !p.at_end() {
        p.space().map_err(|_| syntax())?;
        let word = p.word().map_err(|_| syntax())?;
        if !word.eq_ignore_ascii_case(b"RETURN") {
            return Err(syntax());
        }
        p.space().map_err(|_| syntax())?;
        if !p.eat(b'(') {
            return Err(syntax());
        }
        return_options(&mut p, &mut returns)?;
    }
    if !p.at_end() {
        return Err(syntax());
    }
    Ok((
        tag,
        ListCommand {
            reference,
            patterns,
            selection,
            returns,
        },
    ))
}

/// The words of an option list up to its `)` (the `(` already taken).
fn options<'a>(p: &mut Parser<'a>) -> Parsed<Vec<&'a [u8]>> {
    let syntax = || ListSyntaxError::Refused("Invalid LIST option list".into());
    let mut words = Vec::new();
    while !p.eat(b')') {
        if !words.is_empty() {
            p.space().map_err(|_| syntax())?;
        }
        words.push(p.word().map_err(|_| syntax())?);
    }
    Ok(words)
}

/// `SUBSCRIBED CHILDREN SPECIAL-USE STATUS (items)…)` (the `(` already taken).
fn return_options(p: &mut Parser<'_>, returns: &mut Returns) -> Parsed<()> {
    let syntax = || ListSyntaxError::Refused("Invalid LIST RETURN options".into());
    let mut first = true;
    while !p.eat(b')') {
        if !first {
            p.space().map_err(|_| syntax())?;
        }
        first = false;
        let option = p.word().map_err(|_| syntax())?;
        match option.to_ascii_uppercase().as_slice() {
            b"SUBSCRIBED" => returns.subscribed = true,
            b"CHILDREN" => returns.children = true,
            b"SPECIAL-USE" => returns.special_use = true,
            b"STATUS" => {
                p.space().map_err(|_| syntax())?;
                if !p.eat(b'(') {
                    return refused("LIST RETURN STATUS needs a list of STATUS items");
                }
                let items = options(p)?;
                returns.status = Some(decode_status_items(&items).ok_or_else(|| {
                    ListSyntaxError::Refused("Invalid STATUS items in LIST RETURN".into())
                })?);
            }
            _ => {
                return refused(format!(
                    "Unknown LIST return option {}",
                    String::from_utf8_lossy(option)
                ));
            }
        }
    }
    Ok(())
}

/// imap-codec's reading of a basic `LIST reference pattern`.
fn decode_list(
    reference: &[u8],
    pattern: &[u8],
) -> Option<(Mailbox<'static>, ListMailbox<'static>)> {
    let mut line = b"x LIST ".to_vec();
    line.extend_from_slice(reference);
    line.push(b' ');
    line.extend_from_slice(pattern);
    line.extend_from_slice(b"\r\n");
    match CommandCodec::default().decode(&line) {
        Ok((
            [],
            Command {
                body:
                    CommandBody::List {
                        reference,
                        mailbox_wildcard,
                    },
                ..
            },
        )) => Some((reference.into_static(), mailbox_wildcard.into_static())),
        _ => None,
    }
}

fn decode_reference(raw: &[u8]) -> Option<Mailbox<'static>> {
    decode_list(raw, b"\"\"").map(|(reference, _)| reference)
}

fn decode_pattern(raw: &[u8]) -> Option<ListMailbox<'static>> {
    decode_list(b"\"\"", raw).map(|(_, pattern)| pattern)
}

/// imap-codec's reading of STATUS items (at least one; RFC 5819 4).
fn decode_status_items(items: &[&[u8]]) -> Option<Vec<StatusDataItemName>> {
    let mut line = b"x STATUS INBOX (".to_vec();
    line.extend_from_slice(&items.join(&b' '));
    line.extend_from_slice(b")\r\n");
    match CommandCodec::default().decode(&line) {
        Ok((
            [],
            Command {
                body: CommandBody::Status { item_names, .. },
                ..
            },
        )) if !item_names.is_empty() => Some(item_names.into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn reason(message: &str) -> String {
        match parse(message.as_bytes()) {
            Err(ListSyntaxError::Refused(reason)) => reason,
            other => panic!("{message:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn reads_selection_patterns_and_returns() {
        let (tag, c) = parse(
            b"t1 LIST (subscribed RECURSIVEMATCH Remote) \"\" (INBOX \"Fruit/%\" {3}\r\nA*B) RETURN (CHILDREN STATUS (MESSAGES UNSEEN) special-use)\r\n",
        )
        .unwrap();
        assert_eq!(tag.inner(), "t1");
        assert!(c.selection.subscribed && c.selection.recursive_match && c.selection.remote);
        assert!(!c.selection.special_use);
        assert_eq!(c.patterns.len(), 3);
        assert!(c.returns.children && c.returns.special_use && !c.returns.subscribed);
        assert_eq!(
            c.returns.status.unwrap(),
            [StatusDataItemName::Messages, StatusDataItemName::Unseen]
        );
        let (_, c) = parse(b"t LIST () Work/ %\r\n").unwrap();
        assert_eq!(c.selection, Selection::default());
        assert_eq!(c.returns, Returns::default());
        assert_eq!(c.reference, Mailbox::try_from("Work/").unwrap());
        let (_, c) = parse(b"t LIST \"\" * RETURN ()\r\n").unwrap();
        assert_eq!(c.returns, Returns::default());
    }

    #[test]
    fn refuses_what_rfc_5258_makes_a_bad() {
        assert!(reason("t LIST (RECURSIVEMATCH) \"\" %\r\n").contains("RECURSIVEMATCH"));
        assert!(reason("t LIST (REMOTE RECURSIVEMATCH) \"\" %\r\n").contains("RECURSIVEMATCH"));
        assert!(reason("t LIST (BOGUS) \"\" %\r\n").contains("BOGUS"));
        assert!(reason("t LIST \"\" % RETURN (BOGUS)\r\n").contains("BOGUS"));
        for bad in [
            "t LIST \"\" % RETURN (STATUS)\r\n",
            "t LIST \"\" % RETURN (STATUS ())\r\n",
            "t LIST \"\" % RETURN (STATUS (BOGUS))\r\n",
            "t LIST \"\" % RETURN CHILDREN\r\n",
            "t LIST \"\" % RETURN (CHILDREN) extra\r\n",
            "t LIST \"\" ()\r\n",
            "t LIST (SUBSCRIBED \"\" %\r\n",
            "t LIST () \"\" (a  b)\r\n",
            "t LIST () \"\"\r\n",
            "t LIST \"\" {5}\r\nab\r\n",
        ] {
            reason(bad);
        }
        let many = format!(
            "t LIST \"\" ({})\r\n",
            vec!["a"; MAX_PATTERNS + 1].join(" ")
        );
        assert!(reason(&many).contains("patterns"));
        let most = format!("t LIST \"\" ({})\r\n", vec!["a"; MAX_PATTERNS].join(" "));
        assert_eq!(
            parse(most.as_bytes()).unwrap().1.patterns.len(),
            MAX_PATTERNS
        );
        assert_eq!(
            parse(b"t LSUB () \"\" %\r\n").unwrap_err(),
            ListSyntaxError::NotList
        );
    }
}
