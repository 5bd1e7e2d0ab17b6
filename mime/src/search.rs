//! Decoded text for SEARCH: header values with RFC 2047 words decoded, the text of the
//! text/* parts with transfer and charset decoding applied, and the sent date. The
//! decoding itself is mail-parser's; which parts and fields to decode is ours.

use chrono::NaiveDate;
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::parsers::MessageStream;
use mail_parser::{DateTime, HeaderValue};

use crate::address::{self, Addr};
use crate::header::{self, Field};
use crate::structure::{self, Kind, Part};

/// Decodes one raw header value (RFC 2047 encoded words, folding).
pub(crate) fn decode_value(raw: &[u8]) -> String {
    // mail-parser reads a value up to the end of its field, so give it one.
    let mut buf = Vec::with_capacity(raw.len() + 2);
    buf.extend_from_slice(raw);
    buf.extend_from_slice(b"\r\n");
    match MessageStream::new(&buf).parse_unstructured() {
        HeaderValue::Text(t) => t.into_owned(),
        HeaderValue::TextList(list) => list.join(" "),
        _ => String::new(),
    }
}

pub(crate) fn header_values(fields: &[Field], data: &[u8], name: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|f| f.is(data, name))
        .map(|f| decode_value(f.raw_value(data)))
        .collect()
}

/// Each `name` field's address list written in a normal form, as Dovecot's
/// `message_address_write` does for SEARCH FROM/TO/CC/BCC, then RFC 2047 decoded:
/// `Name <mailbox@domain>`, `<mailbox@domain>` without a name, `"Doe, John" <…>` when
/// the name needs quoting, `<@route:mailbox@domain>`, `group: a@b, c@d;`. Comments and
/// folding are gone, so `<user (comment)@ (comment) domain.org>` is `<user@domain.org>`.
pub(crate) fn address_values(fields: &[Field], data: &[u8], name: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|f| f.is(data, name))
        .map(|f| {
            let written = write_addresses(&address::parse(f.raw_value(data)));
            decode_value(&written)
        })
        .collect()
}

fn write_addresses(list: &[Addr]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut first = true;
    let mut in_group = false;
    for a in list {
        if a.domain.is_none() {
            if !in_group {
                // A group's start: its name is in `mailbox`.
                if !first {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(a.mailbox.as_deref().unwrap_or_default());
                out.extend_from_slice(b": ");
                first = true;
            } else {
                // Its end: drop the ", " (or ": " of an empty group) before the ';'.
                if out.ends_with(b", ") {
                    out.truncate(out.len() - 2);
                }
                out.push(b';');
                first = false;
            }
            in_group = !in_group;
            continue;
        }
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        if let Some(name) = a.name.as_deref().filter(|n| !n.is_empty()) {
            write_phrase(name, &mut out);
            out.push(b' ');
        }
        out.push(b'<');
        if let Some(route) = a.route.as_deref().filter(|r| !r.is_empty()) {
            out.extend_from_slice(route);
            out.push(b':');
        }
        out.extend_from_slice(a.mailbox.as_deref().unwrap_or_default());
        out.push(b'@');
        out.extend_from_slice(a.domain.as_deref().unwrap_or_default());
        out.push(b'>');
    }
    out
}

/// A display name as itself when it is all atext (encoded words are), else quoted.
fn write_phrase(name: &[u8], out: &mut Vec<u8>) {
    let atext =
        |b: u8| b.is_ascii_alphanumeric() || b >= 0x80 || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    if name.iter().all(|&b| atext(b)) {
        out.extend_from_slice(name);
        return;
    }
    out.push(b'"');
    for &b in name {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

pub(crate) fn sent_date(fields: &[Field], data: &[u8]) -> Option<NaiveDate> {
    let raw = header::first(fields, data, "Date")?.raw_value(data);
    let text = String::from_utf8_lossy(raw);
    let dt = DateTime::parse_rfc822(text.trim())?;
    // RFC 3501: SENT* compare the date alone, disregarding time and timezone.
    NaiveDate::from_ymd_opt(i32::from(dt.year), u32::from(dt.month), u32::from(dt.day))
}

/// Appends the decoded text of every text/* leaf under `part` to `out`.
pub(crate) fn body_text(part: &Part, data: &[u8], out: &mut String) {
    match &part.kind {
        Kind::Multipart(children) => {
            for child in children {
                body_text(child, data, out);
            }
        }
        Kind::Message(inner) => body_text(inner, data, out),
        Kind::Leaf => {
            let Some((text, _)) = leaf_text(part, data, usize::MAX) else {
                return;
            };
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&text);
        }
    }
}

/// The first text/* part in MIME order (an attached message's parts included), decoded
/// from at most its first `max_raw` bytes (cut at a line end), and whether it is
/// text/html: where PREVIEW (RFC 8970) takes its text from.
pub(crate) fn first_text(part: &Part, data: &[u8], max_raw: usize) -> Option<(String, bool)> {
    match &part.kind {
        Kind::Multipart(children) => children.iter().find_map(|c| first_text(c, data, max_raw)),
        Kind::Message(inner) => first_text(inner, data, max_raw),
        Kind::Leaf => leaf_text(part, data, max_raw),
    }
}

/// A leaf's text, transfer encoding and charset undone, when it is text/*; with
/// whether it is text/html. Only its first `max_raw` bytes are decoded (cut after the
/// last line end within them, so that base64 stays whole lines).
fn leaf_text(part: &Part, data: &[u8], max_raw: usize) -> Option<(String, bool)> {
    let ct = structure::content_type(&part.fields, data);
    let is_text = match &ct {
        Some(ct) => ct.ty.eq_ignore_ascii_case(b"text"),
        None => !part.digest_default,
    };
    if !is_text {
        return None;
    }
    let is_html = ct
        .as_ref()
        .is_some_and(|ct| ct.subtype.eq_ignore_ascii_case(b"html"));
    let mut raw = &data[part.body.clone()];
    if raw.len() > max_raw {
        raw = &raw[..max_raw];
        if let Some(nl) = raw.iter().rposition(|&b| b == b'\n') {
            raw = &raw[..=nl];
        }
    }
    let encoding = header::first(&part.fields, data, "Content-Transfer-Encoding")
        .map(|f| f.raw_value(data).trim_ascii().to_ascii_lowercase());
    let decoded = match encoding.as_deref() {
        Some(b"base64") => base64_decode(raw),
        Some(b"quoted-printable") => quoted_printable_decode(raw),
        _ => None,
    };
    let bytes = decoded.as_deref().unwrap_or(raw);
    let charset = ct
        .as_ref()
        .and_then(|ct| {
            ct.params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(b"charset"))
        })
        .map(|(_, v)| v.as_slice());
    let text = match charset.and_then(charset_decoder) {
        Some(decode) => decode(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    };
    Some((text, is_html))
}
