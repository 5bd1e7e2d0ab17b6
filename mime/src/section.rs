//! BODY[section] contents (RFC 3501 §6.4.5), resolving part numbers exactly as Dovecot's
//! `imap-msgpart.c` does: a non-multipart entity has only part 1 (itself), a part number
//! may continue into a message/rfc822 part's message, and HEADER/TEXT with a part number
//! need that part to be message/rfc822.

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_types::core::AString;
use imap_types::fetch::{Part as PartNumbers, Section};

use crate::structure::{Kind, Part};

/// The part a list of part numbers names, or `None` when it does not exist.
fn find<'p>(root: &'p Part, numbers: &[NonZeroU32]) -> Option<&'p Part> {
    let mut part = root;
    for (i, num) in numbers.iter().enumerate() {
        let num = num.get();
        let more = i + 1 < numbers.len();
        part = match &part.kind {
            Kind::Multipart(children) => children.get(usize::try_from(num - 1).ok()?)?,
            _ if num != 1 => return None,
            // past a leaf, the path may only go on into a message/rfc822 part
            _ if more && !part.is_message() => return None,
            _ => part,
        };
        if more {
            if let Kind::Message(inner) = &part.kind {
                part = inner;
            }
        }
    }
    Some(part)
}

/// The message whose header/text a HEADER*/TEXT section names.
fn message_of<'p>(root: &'p Part, numbers: Option<&PartNumbers>) -> Option<&'p Part> {
    match numbers {
        None => Some(root),
        Some(p) => match &find(root, p.0.as_ref())?.kind {
            Kind::Message(inner) => Some(inner),
            _ => None,
        },
    }
}

fn header_fields(part: &Part, data: &[u8], names: &[AString<'_>], include: bool) -> Vec<u8> {
    let wanted: Vec<&[u8]> = names.iter().map(|n| n.as_ref()).collect();
    let mut out = Vec::new();
    for field in &part.fields {
        let name = field.name(data);
        let matches = wanted.iter().any(|w| w.eq_ignore_ascii_case(name));
        if matches == include {
            out.extend_from_slice(&data[field.lines.clone()]);
            if !data[..field.lines.end].ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    // Dovecot always ends HEADER.FIELDS with a blank line, but HEADER.FIELDS.NOT only when
    // the header itself had one.
    if include || part.has_blank_line {
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub(crate) fn section<'d>(
    root: &Part,
    data: &'d [u8],
    section: Option<&Section<'_>>,
) -> Option<Cow<'d, [u8]>> {
    let slice = |r: std::ops::Range<usize>| Some(Cow::Borrowed(&data[r]));
    match section {
        None => Some(Cow::Borrowed(data)),
        Some(Section::Part(p)) => {
            let part = find(root, p.0.as_ref())?;
            slice(part.body.clone())
        }
        Some(Section::Mime(p)) => slice(find(root, p.0.as_ref())?.header.clone()),
        Some(Section::Header(p)) => slice(message_of(root, p.as_ref())?.header.clone()),
        Some(Section::Text(p)) => slice(message_of(root, p.as_ref())?.body.clone()),
        Some(Section::HeaderFields(p, names)) => Some(Cow::Owned(header_fields(
            message_of(root, p.as_ref())?,
            data,
            names.as_ref(),
            true,
        ))),
        Some(Section::HeaderFieldsNot(p, names)) => Some(Cow::Owned(header_fields(
            message_of(root, p.as_ref())?,
            data,
            names.as_ref(),
            false,
        ))),
    }
}
