//! What SORT and THREAD (RFC 5256, RFC 5957) read from a message's header: the base
//! subject, the first address's mailbox or display name, the sent date, the Message-ID
//! and the parent IDs; and the collation strings are compared by (i;unicode-casemap,
//! RFC 5051, as Dovecot compares them). Header fields are read as Dovecot's
//! `index-sort.c` and `imap-base-subject.c` read them: the first field of each name.

use mail_parser::DateTime;
use unicode_normalization::UnicodeNormalization;

use crate::address;
use crate::header::{self, Field};
use crate::search::decode_value;

/// Most parent IDs kept from one message's References: the nearest ones (the field
/// lists the oldest first). A hostile References of 10,000 IDs costs no more than this.
pub const MAX_REFERENCES: usize = 64;

/// `s` in the form i;unicode-casemap compares octet by octet (RFC 5051: titlecase, then
/// compatibility decomposition).
pub fn collation_key(s: &str) -> String {
    s.chars()
        .flat_map(char::to_uppercase)
        .nfkd()
        .collect::<String>()
}

/// The base subject of an already decoded subject (RFC 5256 2.1) in collation form,
/// and whether extracting it removed a reply or forward marker (`Re:`, `Fwd:`, a
/// `(fwd)` trailer, a `[fwd: …]` wrapper), which THREAD=REFERENCES asks.
pub fn base_subject(decoded: &str) -> (String, bool) {
    // (1) Tabs and line breaks are blanks; runs of blanks are one space.
    let mut s = String::with_capacity(decoded.len());
    for c in collation_key(decoded).chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if c == ' ' && s.ends_with(' ') {
            continue;
        }
        s.push(c);
    }
    let mut reply = false;
    let mut s: &str = &s;
    loop {
        // (2) Trailers: blanks and "(FWD)" (the text is uppercased by now).
        loop {
            if let Some(rest) = s.strip_suffix(' ') {
                s = rest;
            } else if let Some(rest) = s.strip_suffix("(FWD)") {
                s = rest;
                reply = true;
            } else {
                break;
            }
        }
        // (3), (4), repeated (5): leaders, and a leading blob when something is left.
        loop {
            if let Some(rest) = s.strip_prefix(' ') {
                s = rest;
            } else if let Some(rest) = strip_refwd(s) {
                s = rest;
                reply = true;
            } else if let Some(rest) = strip_blob(s).filter(|r| !r.trim_start().is_empty()) {
                s = rest;
            } else {
                break;
            }
        }
        // (6) `[FWD: …]` around the whole: unwrap it and start again at (2).
        match s.strip_prefix("[FWD:").and_then(|r| r.strip_suffix(']')) {
            Some(inner) => {
                s = inner;
                reply = true;
            }
            None => break,
        }
    }
    (s.to_owned(), reply)
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`: what follows it, when `s` starts with one.
fn strip_blob(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let close = inner.find([']', '['])?;
    if inner.as_bytes()[close] != b']' {
        return None;
    }
    Some(inner[close + 1..].trim_start_matches(' '))
}

/// `*subj-blob subj-refwd` with `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`.
fn strip_refwd(s: &str) -> Option<&str> {
    let mut rest = s;
    while let Some(after) = strip_blob(rest) {
        rest = after;
    }
    rest = rest
        .strip_prefix("RE")
        .or_else(|| rest.strip_prefix("FWD"))
        .or_else(|| rest.strip_prefix("FW"))?;
    rest = rest.trim_start_matches(' ');
    if let Some(after) = strip_blob(rest) {
        rest = after;
    }
    rest.strip_prefix(':')
}

/// The first field `name` of `fields`, RFC 2047 decoded; `None` when there is none.
fn first_decoded(fields: &[Field], data: &[u8], name: &str) -> Option<String> {
    header::first(fields, data, name).map(|f| decode_value(f.raw_value(data)))
}

/// The decoded Subject (first field), empty without one.
pub(crate) fn subject(fields: &[Field], data: &[u8]) -> String {
    first_decoded(fields, data, "Subject").unwrap_or_default()
}

fn first_address(fields: &[Field], data: &[u8], name: &str) -> Option<address::Addr> {
    let field = header::first(fields, data, name)?;
    address::parse(field.raw_value(data)).into_iter().next()
}

/// The mailbox (local part) of the first address of the first `name` field, as
/// SORT FROM/TO/CC compare (RFC 5256 3); empty without one.
pub(crate) fn first_mailbox(fields: &[Field], data: &[u8], name: &str) -> String {
    first_address(fields, data, name)
        .and_then(|a| a.mailbox)
        .map(|m| String::from_utf8_lossy(&m).into_owned())
        .unwrap_or_default()
}

/// RFC 5957's display name of the first address of `name`: its decoded phrase when not
/// empty, else `mailbox@domain`, else the mailbox; empty without an address.
pub(crate) fn display_name(fields: &[Field], data: &[u8], name: &str) -> String {
    let Some(a) = first_address(fields, data, name) else {
        return String::new();
    };
    if let Some(phrase) = a.name.as_deref() {
        let decoded = decode_value(phrase);
        if !decoded.is_empty() {
            return decoded;
        }
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match (a.mailbox.as_deref(), a.domain.as_deref()) {
        (Some(m), Some(d)) => format!("{}@{}", text(m), text(d)),
        (Some(m), None) => text(m),
        _ => String::new(),
    }
}

/// The Date field as seconds since the epoch (UTC); `None` when absent or unparsable,
/// where RFC 5256 2.2 falls back to the internal date.
pub(crate) fn sent_timestamp(fields: &[Field], data: &[u8]) -> Option<i64> {
    let raw = header::first(fields, data, "Date")?.raw_value(data);
    let text = String::from_utf8_lossy(raw);
    let dt = DateTime::parse_rfc822(text.trim())?;
    dt.is_valid().then(|| dt.to_timestamp())
}

/// The message IDs (`<…>` holding an `@`) in a field value, without the brackets, in
/// their order.
fn message_ids(value: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.iter().position(|&b| b == b'<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.iter().position(|&b| b == b'>') else {
            break;
        };
        let id: Vec<u8> = rest[..close]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if id.contains(&b'@') && !id.contains(&b'<') {
            out.push(String::from_utf8_lossy(&id).into_owned());
        }
        rest = &rest[close + 1..];
    }
    out
}

/// The Message-ID, when the message has a valid one.
pub(crate) fn message_id(fields: &[Field], data: &[u8]) -> Option<String> {
    let field = header::first(fields, data, "Message-ID")?;
    message_ids(field.raw_value(data)).into_iter().next()
}

/// The parent IDs THREAD=REFERENCES links by (RFC 5256 3, step 1A): the References,
/// oldest first, else the first ID of In-Reply-To; at most [`MAX_REFERENCES`], the
/// nearest kept.
pub(crate) fn references(fields: &[Field], data: &[u8]) -> Vec<String> {
    let refs = header::first(fields, data, "References")
        .map(|f| message_ids(f.raw_value(data)))
        .unwrap_or_default();
    if refs.is_empty() {
        return header::first(fields, data, "In-Reply-To")
            .and_then(|f| message_ids(f.raw_value(data)).into_iter().next())
            .into_iter()
            .collect();
    }
    let skip = refs.len().saturating_sub(MAX_REFERENCES);
    refs.into_iter().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> (String, bool) {
        base_subject(s)
    }

    #[test]
    fn base_subjects_follow_rfc_5256_2_1() {
        assert_eq!(base("Hello"), ("HELLO".into(), false));
        assert_eq!(base("Re: Hello"), ("HELLO".into(), true));
        assert_eq!(base("RE:re: Fwd:  hello  "), ("HELLO".into(), true));
        assert_eq!(base("Re[2]: hello"), ("HELLO".into(), true));
        assert_eq!(base("[list] Re: hello"), ("HELLO".into(), true));
        assert_eq!(base("Re: [list] hello"), ("HELLO".into(), true));
        assert_eq!(base("hello (fwd)"), ("HELLO".into(), true));
        assert_eq!(base("hello (fwd) (FWD)  "), ("HELLO".into(), true));
        assert_eq!(base("[Fwd: Re: hello]"), ("HELLO".into(), true));
        assert_eq!(base("[fwd: hello (fwd)]"), ("HELLO".into(), true));
        // A blob that is all there is stays.
        assert_eq!(base("[list]"), ("[LIST]".into(), false));
        assert_eq!(base("[list]  "), ("[LIST]".into(), false));
        assert_eq!(base("a\t\tb"), ("A B".into(), false));
        assert_eq!(base(""), (String::new(), false));
        assert_eq!(base("Re:"), (String::new(), true));
        // Not a leader: "Rex:", "Re" without a colon.
        assert_eq!(base("Rex: hi"), ("REX: HI".into(), false));
        assert_eq!(base("Re hi"), ("RE HI".into(), false));
    }

    #[test]
    fn message_ids_need_brackets_and_an_at_sign() {
        assert_eq!(
            message_ids(b"<a@b> junk <c@d>\r\n <no-at> <e@\r\n f>"),
            vec!["a@b", "c@d", "e@f"]
        );
        assert!(message_ids(b"a@b").is_empty());
    }

    #[test]
    fn collation_is_case_insensitive_and_decomposed() {
        assert_eq!(collation_key("abc"), collation_key("ABC"));
        assert_eq!(collation_key("é"), "E\u{301}");
        assert!(collation_key("é") < collation_key("f"));
    }
}
