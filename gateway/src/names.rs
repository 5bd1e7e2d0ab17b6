//! Mailbox names between the wire and the store: IMAP's modified UTF-7 (RFC 3501
//! 5.1.3) to and from UTF-8 [`MailboxName`]s, and LIST wildcard matching.

use std::borrow::Cow;

use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use imap_codec::imap_types::core::{AString, IString, Literal, Quoted};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use pluto_backends::MailboxName;

use crate::response::{CmdError, code};

fn mutf7_engine() -> Result<GeneralPurpose, CmdError> {
    let alphabet =
        Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
            .map_err(|_| CmdError::no("internal: base64 alphabet"))?;
    Ok(GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(false),
    ))
}

/// Decodes modified UTF-7. Bytes that are already UTF-8 outside `&…-` runs are taken
/// as they are (some clients send UTF-8 names without UTF8=ACCEPT).
///
/// A name that is not valid modified UTF-7 is still valid syntax (an atom or string),
/// so it gets `NO`, not `BAD` (RFC 3501 7.1.3 keeps BAD for protocol errors), as
/// Dovecot answers.
pub fn decode_mutf7(input: &[u8]) -> Result<String, CmdError> {
    let invalid = || CmdError::no("Mailbox name is not valid mUTF-7");
    let text = std::str::from_utf8(input).map_err(|_| invalid())?;
    if !text.contains('&') {
        return Ok(text.to_owned());
    }
    let engine = mutf7_engine()?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp + 1..];
        let end = rest.find('-').ok_or_else(invalid)?;
        let encoded = &rest[..end];
        rest = &rest[end + 1..];
        if encoded.is_empty() {
            out.push('&');
            continue;
        }
        let bytes = engine.decode(encoded).map_err(|_| invalid())?;
        if bytes.len() % 2 != 0 {
            return Err(invalid());
        }
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        let decoded = String::from_utf16(&units).map_err(|_| invalid())?;
        // A run must not encode printable ASCII (RFC 3501: it MUST be sent as itself).
        if decoded.chars().any(|c| (' '..='~').contains(&c)) {
            return Err(invalid());
        }
        out.push_str(&decoded);
    }
    out.push_str(rest);
    Ok(out)
}

/// Encodes a UTF-8 name as modified UTF-7.
pub fn encode_mutf7(name: &str) -> String {
    let Ok(engine) = mutf7_engine() else {
        return name.to_owned();
    };
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if !pending.is_empty() {
            let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&engine.encode(bytes));
            out.push('-');
            pending.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn astring_bytes<'a>(value: &'a AString<'_>) -> Cow<'a, [u8]> {
    match value {
        AString::Atom(atom) => Cow::Borrowed(atom.inner().as_bytes()),
        AString::String(IString::Quoted(q)) => Cow::Borrowed(q.inner().as_bytes()),
        AString::String(IString::Literal(l)) => Cow::Borrowed(l.data()),
    }
}

/// The store's name for a mailbox the client named.
pub fn mailbox_name(mailbox: &Mailbox<'_>) -> Result<MailboxName, CmdError> {
    let raw = match mailbox {
        Mailbox::Inbox => return Ok(MailboxName::inbox()),
        Mailbox::Other(other) => astring_bytes(other.inner()),
    };
    let decoded = decode_mutf7(&raw)?;
    MailboxName::new(decoded)
        .map_err(|e| CmdError::no_code(code("CANNOT"), format!("Invalid mailbox name: {e}")))
}

/// The wire form of a store name.
pub fn to_wire(name: &MailboxName) -> Mailbox<'static> {
    if name.is_inbox() {
        return Mailbox::Inbox;
    }
    wire_text(name.as_str())
}

/// The wire form of any name-like text (a LIST root such as `Foo/` included).
pub fn wire_text(text: &str) -> Mailbox<'static> {
    let encoded = encode_mutf7(text);
    Mailbox::try_from(encoded.clone()).unwrap_or_else(|_| {
        // Not an atom (spaces, quotes, …): send it quoted, or as a literal.
        match Quoted::try_from(encoded.clone()) {
            Ok(q) => Mailbox::from(AString::String(IString::Quoted(q))),
            Err(_) => Mailbox::from(AString::String(IString::Literal(Literal::unvalidated(
                encoded.into_bytes(),
            )))),
        }
    })
}

/// `Folder/` without its trailing separator, when it has one.
pub fn strip_trailing_separator(mailbox: &Mailbox<'_>) -> Option<Mailbox<'static>> {
    let Mailbox::Other(other) = mailbox else {
        return None;
    };
    let raw = astring_bytes(other.inner());
    let stripped = raw.strip_suffix(b"/")?;
    if stripped.is_empty() {
        return None;
    }
    Mailbox::try_from(stripped.to_vec()).ok()
}

/// The raw text of a LIST pattern or reference.
pub fn list_pattern(pattern: &ListMailbox<'_>) -> Result<String, CmdError> {
    let raw: Cow<'_, [u8]> = match pattern {
        ListMailbox::Token(token) => Cow::Borrowed(token.as_ref()),
        ListMailbox::String(IString::Quoted(q)) => Cow::Borrowed(q.inner().as_bytes()),
        ListMailbox::String(IString::Literal(l)) => Cow::Borrowed(l.data()),
    };
    decode_mutf7(&raw)
}

pub fn reference_text(reference: &Mailbox<'_>) -> Result<String, CmdError> {
    match reference {
        Mailbox::Inbox => Ok("INBOX".to_owned()),
        Mailbox::Other(other) => decode_mutf7(&astring_bytes(other.inner())),
    }
}

/// The pattern a LIST/LSUB reference and mailbox pattern name together, joined as
/// Dovecot does: a pattern that starts with the hierarchy separator stands alone,
/// otherwise the two are concatenated, so `"RefTest" "*"` is `RefTest*` (RefTest and
/// its children) and `"INBOX" "*"` finds INBOX (RFC 3501 6.3.8 leaves this to the server).
pub fn join_reference(reference: &str, pattern: &str) -> String {
    if pattern.starts_with('/') {
        pattern.to_owned()
    } else {
        format!("{reference}{pattern}")
    }
}

/// The root LIST answers for an empty pattern: the reference up to and including its
/// last hierarchy separator (`"Foo/Bar" ""` → `Foo/`), else the empty name.
pub fn reference_root(reference: &str) -> &str {
    match reference.rfind('/') {
        Some(i) => &reference[..=i],
        None => "",
    }
}

/// Does `name` match a LIST pattern? `*` matches anything, `%` anything but the
/// hierarchy separator. INBOX matches case-insensitively.
pub fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = match (pattern.get(..5), pattern.get(5..)) {
        (Some(head), Some(rest))
            if head.eq_ignore_ascii_case("INBOX") && (rest.is_empty() || rest.starts_with('/')) =>
        {
            format!("INBOX{rest}").chars().collect()
        }
        _ => pattern.chars().collect(),
    };
    let name: Vec<char> = name.chars().collect();
    glob(&pattern, &name)
}

fn glob(p: &[char], n: &[char]) -> bool {
    // Iterative matching with backtracking over the last wildcard; `%` cannot cross '/'.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    let mut percent: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            percent = None;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            percent = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((ppi, pni)) = percent.filter(|&(_, pni)| n[pni] != '/') {
            percent = Some((ppi, pni + 1));
            pi = ppi + 1;
            ni = pni + 1;
        } else if let Some((spi, sni)) = star {
            star = Some((spi, sni + 1));
            percent = None;
            pi = spi + 1;
            ni = sni + 1;
        } else {
            return false;
        }
    }
    while pi < p.len() && (p[pi] == '*' || p[pi] == '%') {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutf7_round_trips() {
        for name in [
            "Entwürfe",
            "日本語",
            "a&b",
            "Trash",
            "~peter/mail/台北/日本語",
            "Ærø & co",
        ] {
            let encoded = encode_mutf7(name);
            assert!(encoded.is_ascii(), "{encoded}");
            assert_eq!(decode_mutf7(encoded.as_bytes()).ok().as_deref(), Some(name));
        }
        assert_eq!(encode_mutf7("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(
            encode_mutf7("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(encode_mutf7("a&b"), "a&-b");
    }

    #[test]
    fn mutf7_rejects_garbage() {
        assert!(decode_mutf7(b"&Jjo").is_err());
        assert!(decode_mutf7(b"&AGE-").is_err(), "encoded printable ASCII");
        assert!(decode_mutf7(b"&!!-").is_err());
    }

    #[test]
    fn references_join_like_dovecot() {
        assert_eq!(join_reference("RefTest", "*"), "RefTest*");
        assert_eq!(join_reference("RefTest/", "%"), "RefTest/%");
        assert_eq!(join_reference("RefTest", "/Child"), "/Child");
        assert_eq!(join_reference("", "*"), "*");
        assert_eq!(reference_root("Foo/Bar"), "Foo/");
        assert_eq!(reference_root("RefTest"), "");
        assert_eq!(reference_root("RefTest/"), "RefTest/");
    }

    #[test]
    fn list_wildcards() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("%", "a"));
        assert!(!matches("%", "a/b"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a/*", "a/b/c"));
        assert!(matches("inbox", "INBOX"));
        assert!(matches("%/%x", "a/bx"));
        assert!(!matches("%x", "a/x"));
        assert!(matches("*x", "a/x"));
        assert!(matches("S%t", "Sent"));
        assert!(!matches("Sent", "Sent2"));
        assert!(
            matches("日本語", "日本語"),
            "a multi-byte pattern must not panic"
        );
        assert!(matches("InBoX/a", "INBOX/a"));
    }
}
