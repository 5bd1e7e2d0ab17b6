//! How each string is represented on the wire. imap-codec writes an `IString` as we build
//! it (quoted or literal), so these helpers make the same choice Dovecot's `imap-quote.c`
//! makes: quoted when possible, a literal for 8-bit data, line breaks, or more than four
//! characters that would need escaping; "for humans" strings (subject, display names) have
//! whitespace collapsed and go literal at the first quote or backslash.

use std::borrow::Cow;

use imap_types::core::{IString, Literal, NString, Quoted};

/// Dovecot switches from quoted to literal after this many quoted-specials.
const QUOTED_MAX_ESCAPE_CHARS: usize = 4;

/// Appends `bytes` to `out` as a literal may carry them: IMAP literals cannot hold NUL,
/// and Dovecot sends 0x80 in its place (the length does not change). The one path by
/// which message bytes become literal bytes.
pub fn extend_literal_safe(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.contains(&0) {
        out.extend(bytes.iter().map(|&b| if b == 0 { 0x80 } else { b }));
    } else {
        out.extend_from_slice(bytes);
    }
}

fn literal(bytes: Vec<u8>) -> IString<'static> {
    let mut safe = Vec::with_capacity(bytes.len());
    extend_literal_safe(&mut safe, &bytes);
    IString::Literal(Literal::unvalidated(safe))
}

fn quoted(bytes: &[u8]) -> IString<'static> {
    // Only called on 7-bit text without CR, LF or NUL, which `Quoted` accepts.
    let text: String = bytes.iter().map(|&b| b as char).collect();
    IString::Quoted(Quoted::unvalidated(text))
}

/// `imap_append_string`.
pub(crate) fn string(bytes: &[u8]) -> IString<'static> {
    let mut escapes = 0;
    for &c in bytes {
        match c {
            b'"' | b'\\' => {
                escapes += 1;
                if escapes > QUOTED_MAX_ESCAPE_CHARS {
                    return literal(bytes.to_vec());
                }
            }
            b'\r' | b'\n' | 0 => return literal(bytes.to_vec()),
            c if c >= 0x80 => return literal(bytes.to_vec()),
            _ => {}
        }
    }
    quoted(bytes)
}

/// `imap_append_nstring`.
pub(crate) fn nstring(bytes: Option<&[u8]>) -> NString<'static> {
    NString(bytes.map(string))
}

/// `imap_append_nstring_nolf`: line breaks dropped, a space kept between folded lines.
pub(crate) fn nstring_nolf(bytes: Option<&[u8]>) -> NString<'static> {
    NString(bytes.map(|b| string(&remove_newlines(b))))
}

pub(crate) fn remove_newlines(src: &[u8]) -> Cow<'_, [u8]> {
    if !src.iter().any(|&c| c == b'\r' || c == b'\n') {
        return Cow::Borrowed(src);
    }
    let mut out = Vec::with_capacity(src.len());
    for (i, &c) in src.iter().enumerate() {
        if c != b'\r' && c != b'\n' {
            out.push(c);
        } else if !matches!(src.get(i + 1), None | Some(b' ' | b'\t' | b'\r' | b'\n')) {
            out.push(b' ');
        }
    }
    Cow::Owned(out)
}

/// `imap_append_string_for_humans`.
pub(crate) fn for_humans(src: &[u8]) -> IString<'static> {
    let mut modify = false;
    let mut last_lwsp = true;
    let mut whitespace_prefix = true;
    let mut remove_count = 0;
    for &c in src {
        match c {
            0 => {
                last_lwsp = false;
                modify = true;
            }
            b'\r' | b'\n' | b'\t' | b' ' => {
                if c != b' ' {
                    modify = true;
                }
                if last_lwsp {
                    modify = true;
                    remove_count += 1;
                }
                last_lwsp = true;
            }
            b'"' | b'\\' => {
                modify = true;
                last_lwsp = false;
            }
            c => {
                if c & 0x80 != 0 {
                    modify = true;
                }
                last_lwsp = false;
            }
        }
        if !last_lwsp {
            whitespace_prefix = false;
        }
    }
    if last_lwsp && !src.is_empty() && !whitespace_prefix {
        modify = true;
        remove_count += 1;
    }
    if !modify {
        return quoted(src);
    }
    if src.len() == remove_count {
        return quoted(b"");
    }
    let mut out = Vec::with_capacity(src.len());
    let mut last_lwsp = true;
    for &c in src {
        match c {
            0 => {
                out.push(0x80);
                last_lwsp = false;
            }
            b'\r' | b'\n' | b'\t' | b' ' => {
                if !last_lwsp {
                    out.push(b' ');
                }
                last_lwsp = true;
            }
            c => {
                out.push(c);
                last_lwsp = false;
            }
        }
    }
    if last_lwsp && out.last() == Some(&b' ') {
        out.pop();
    }
    literal(out)
}
