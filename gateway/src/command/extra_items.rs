//! The FETCH and STATUS items imap-codec does not read: FETCH EMAILID and THREADID
//! (RFC 8474 5) and PREVIEW with its LAZY modifier (RFC 8970 3.1), STATUS MAILBOXID
//! (RFC 8474 4.2). When imap-codec refuses a FETCH or STATUS, the items are found in
//! the command's line as whole atoms (outside quoted strings, literals and the brackets
//! of `BODY[…]`), taken out, and imap-codec reads what is left, so everything else is
//! as strict as before. An item list left empty gets a placeholder item (`UID` for
//! FETCH, `MESSAGES` for STATUS) whose answer the handler then leaves out.

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;

/// The extension items a FETCH asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FetchExtras {
    pub(crate) email_id: bool,
    pub(crate) thread_id: bool,
    pub(crate) preview: bool,
    /// The list held nothing else: imap-codec read `UID` in its place, which the
    /// answer leaves out (unless it is a UID FETCH, which answers UID anyway).
    pub(crate) placeholder: bool,
}

/// The extension items a STATUS asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StatusExtras {
    pub(crate) mailbox_id: bool,
    /// The list held nothing else: imap-codec read `MESSAGES` in its place.
    pub(crate) placeholder: bool,
}

/// A command's extension items, whichever command it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Extras {
    pub(crate) fetch: FetchExtras,
    pub(crate) status: StatusExtras,
}

/// Why the items could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ExtrasError {
    /// Not a FETCH or STATUS with these items: imap-codec's answer stands.
    NotExtended,
    /// The items' syntax is wrong (a BAD with this reason).
    Refused(String),
}

/// A FETCH (or UID FETCH) with extension items: the command as imap-codec read it
/// without them, and the items.
pub(crate) fn parse_fetch(
    message: &[u8],
) -> Result<(Tag<'static>, CommandBody<'static>, FetchExtras), ExtrasError> {
    if !is_command(message, &[b"FETCH"]) {
        return Err(ExtrasError::NotExtended);
    }
    let (rest, found) = take_items(message, &["EMAILID", "THREADID", "PREVIEW"])?;
    let mut extras = FetchExtras::default();
    for item in &found {
        match item.name {
            "EMAILID" => extras.email_id = true,
            "THREADID" => extras.thread_id = true,
            _ => extras.preview = true,
        }
    }
    let (command, placeholder) = decode_with_placeholder(&rest, b"UID")?;
    extras.placeholder = placeholder;
    match command.body {
        CommandBody::Fetch { .. } => Ok((command.tag, command.body, extras)),
        _ => Err(ExtrasError::NotExtended),
    }
}

/// A STATUS with MAILBOXID: the command as imap-codec read it without it, and the item.
pub(crate) fn parse_status(
    message: &[u8],
) -> Result<(Tag<'static>, CommandBody<'static>, StatusExtras), ExtrasError> {
    if !is_command(message, &[b"STATUS"]) {
        return Err(ExtrasError::NotExtended);
    }
    let (rest, _) = take_items(message, &["MAILBOXID"])?;
    let (command, placeholder) = decode_with_placeholder(&rest, b"MESSAGES")?;
    match command.body {
        CommandBody::Status { .. } => Ok((
            command.tag,
            command.body,
            StatusExtras {
                mailbox_id: true,
                placeholder,
            },
        )),
        _ => Err(ExtrasError::NotExtended),
    }
}

/// `tag NAME …` or `tag UID NAME …` for one of `names`.
fn is_command(message: &[u8], names: &[&[u8]]) -> bool {
    let mut words = message.split(|&b| b == b' ' || b == b'\r' || b == b'\n');
    words.next();
    let mut name = words.next().unwrap_or_default();
    if name.eq_ignore_ascii_case(b"UID") {
        name = words.next().unwrap_or_default();
    }
    names.iter().any(|n| name.eq_ignore_ascii_case(n))
}

struct Found {
    name: &'static str,
}

/// The message without the atoms `names` (and PREVIEW's `(LAZY)`), each taken out with
/// one space beside it; and which were there. `NotExtended` when none was.
fn take_items(
    message: &[u8],
    names: &[&'static str],
) -> Result<(Vec<u8>, Vec<Found>), ExtrasError> {
    let mut out = Vec::with_capacity(message.len());
    let mut found = Vec::new();
    let mut i = 0;
    let mut brackets = 0usize;
    while i < message.len() {
        let b = message[i];
        match b {
            b'"' => {
                // A quoted string, copied whole.
                let start = i;
                i += 1;
                while i < message.len() && message[i] != b'"' {
                    i += if message[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(message.len());
                out.extend_from_slice(&message[start..i]);
                continue;
            }
            b'{' => {
                // A literal: `{n}` or `{n+}`, the line end, then n bytes, copied whole.
                let close = message[i..].iter().position(|&c| c == b'}');
                let length = close.and_then(|c| {
                    let digits = &message[i + 1..i + c];
                    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
                    std::str::from_utf8(digits).ok()?.parse::<usize>().ok()
                });
                if let (Some(c), Some(n)) = (close, length) {
                    let mut end = i + c + 1;
                    if message[end..].starts_with(b"\r\n") {
                        end += 2;
                    } else if message[end..].starts_with(b"\n") {
                        end += 1;
                    }
                    let end = end.saturating_add(n).min(message.len());
                    out.extend_from_slice(&message[i..end]);
                    i = end;
                    continue;
                }
            }
            b'[' => brackets += 1,
            b']' => brackets = brackets.saturating_sub(1),
            _ => {}
        }
        let at_token =
            brackets == 0 && b.is_ascii_alphabetic() && matches!(out.last(), Some(b' ' | b'('));
        if at_token {
            let len = message[i..]
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.'))
                .unwrap_or(message.len() - i);
            let word = &message[i..i + len];
            let ends = matches!(message.get(i + len), Some(b' ' | b')' | b'\r' | b'\n'));
            if let Some(name) = names
                .iter()
                .find(|n| word.eq_ignore_ascii_case(n.as_bytes()))
            {
                if ends {
                    let mut end = i + len;
                    if *name == "PREVIEW" && message[end..].starts_with(b" (") {
                        end = preview_modifiers(message, end + 2)?;
                    }
                    found.push(Found { name });
                    // One space beside the item goes with it.
                    if out.last() == Some(&b' ') {
                        out.pop();
                    } else if message.get(end) == Some(&b' ') {
                        end += 1;
                    }
                    i = end;
                    continue;
                }
            }
            out.extend_from_slice(word);
            i += len;
            continue;
        }
        out.push(b);
        i += 1;
    }
    if found.is_empty() {
        return Err(ExtrasError::NotExtended);
    }
    Ok((out, found))
}

/// PREVIEW's modifier list from `at` (just inside its parenthesis): only LAZY exists
/// (RFC 8970 3.1; any other is a BAD). Returns where the list ends.
fn preview_modifiers(message: &[u8], at: usize) -> Result<usize, ExtrasError> {
    let close = message[at..]
        .iter()
        .position(|&b| b == b')')
        .ok_or_else(|| ExtrasError::Refused("PREVIEW's modifier list is not closed".into()))?;
    let list = &message[at..at + close];
    let words: Vec<&[u8]> = list.split(|&b| b == b' ').collect();
    if words.iter().any(|w| !w.eq_ignore_ascii_case(b"LAZY")) {
        return Err(ExtrasError::Refused(format!(
            "Unknown PREVIEW modifier in ({})",
            String::from_utf8_lossy(list)
        )));
    }
    Ok(at + close + 1)
}

/// imap-codec's reading of `message`; where the items were all there was (`()` left,
/// or nothing after the set), with `placeholder` in their place.
fn decode_with_placeholder(
    message: &[u8],
    placeholder: &[u8],
) -> Result<(Command<'static>, bool), ExtrasError> {
    if let Some(command) = decode(message) {
        return Ok((command, false));
    }
    let filled = if let Some(at) = message.windows(2).position(|w| w == b"()") {
        [&message[..at + 1], placeholder, &message[at + 1..]].concat()
    } else {
        let body = message
            .strip_suffix(b"\r\n")
            .or_else(|| message.strip_suffix(b"\n"))
            .unwrap_or(message);
        [body, b" ", placeholder, b"\r\n"].concat()
    };
    decode(&filled)
        .map(|c| (c, true))
        .ok_or(ExtrasError::NotExtended)
}

fn decode(message: &[u8]) -> Option<Command<'static>> {
    match CommandCodec::default().decode(message) {
        Ok(([], command)) => Some(command.into_static()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};

    fn names(body: &CommandBody<'_>) -> Vec<MessageDataItemName<'static>> {
        match body {
            CommandBody::Fetch {
                macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(n),
                ..
            } => n.iter().map(|n| n.clone().into_static()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fetch_items_are_taken_out() {
        let (tag, body, x) =
            parse_fetch(b"a1 FETCH 1:* (FLAGS EMAILID THREADID PREVIEW (LAZY))\r\n").unwrap();
        assert_eq!(tag.inner(), "a1");
        assert_eq!(names(&body), [MessageDataItemName::Flags]);
        assert!(x.email_id && x.thread_id && x.preview && !x.placeholder);

        // imap-codec takes an empty list; UID FETCH adds the UID itself.
        let (_, body, x) = parse_fetch(b"a UID FETCH 1 (EMAILID)\r\n").unwrap();
        assert!(names(&body).is_empty());
        assert!(x.email_id && !x.placeholder);

        let (_, body, x) = parse_fetch(b"a fetch 1 preview\r\n").unwrap();
        assert!(matches!(
            body,
            CommandBody::Fetch {
                macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(_),
                ..
            }
        ));
        assert!(x.preview && x.placeholder);

        let (_, body, x) =
            parse_fetch(b"a FETCH 1 (BODY.PEEK[HEADER.FIELDS (EMAILID)] EMAILID)\r\n").unwrap();
        assert_eq!(names(&body).len(), 1, "the header field name stays");
        assert!(x.email_id);
    }

    #[test]
    fn what_is_not_these_items_is_left_to_imap_codec() {
        for no in [
            &b"a FETCH 1 (FLAGS)\r\n"[..],
            b"a FETCH 1 (EMAILIDX)\r\n",
            b"a STORE 1 +FLAGS (EMAILID)\r\n",
            b"a FETCH 1 (BODY[HEADER.FIELDS (EMAILID)])\r\n",
        ] {
            assert_eq!(
                parse_fetch(no).map(|_| ()),
                Err(ExtrasError::NotExtended),
                "{}",
                String::from_utf8_lossy(no)
            );
        }
        assert!(matches!(
            parse_fetch(b"a FETCH 1 (PREVIEW (FUZZY))\r\n"),
            Err(ExtrasError::Refused(_))
        ));
        assert!(matches!(
            parse_fetch(b"a FETCH 1 (PREVIEW (LAZY)\r\n"),
            Err(ExtrasError::Refused(_)) | Err(ExtrasError::NotExtended)
        ));
    }

    #[test]
    fn status_mailboxid() {
        let (_, body, x) = parse_status(b"s STATUS INBOX (MESSAGES MAILBOXID)\r\n").unwrap();
        assert!(x.mailbox_id && !x.placeholder);
        assert!(matches!(body, CommandBody::Status { item_names, .. } if item_names.len() == 1));
        let (_, body, x) = parse_status(b"s STATUS {9}\r\nMAILBOXID (MAILBOXID)\r\n").unwrap();
        assert!(x.mailbox_id);
        assert!(
            format!("{body:?}").contains("data: b\"MAILBOXID\""),
            "the mailbox named MAILBOXID stays: {body:?}"
        );
        assert_eq!(
            parse_status(b"s STATUS \"MAILBOXID\" (MESSAGES)\r\n").map(|_| ()),
            Err(ExtrasError::NotExtended)
        );
    }
}
