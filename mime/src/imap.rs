//! ENVELOPE and BODY/BODYSTRUCTURE as imap-types values, following RFC 3501 §7.4.2 and
//! Dovecot's `imap-envelope.c` / `imap-bodystructure.c` for every defaulting choice.

use imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, Language, Location, MultiPartExtensionData,
    SinglePartExtensionData, SpecificFields,
};
use imap_types::core::{IString, NString, Vec1};
use imap_types::envelope::{Address, Envelope};

use crate::address::{self, Addr};
use crate::header::{self, Field};
use crate::quote::{for_humans, nstring, nstring_nolf, string};
use crate::rfc822::{Cursor, Params, rfc2231_merge};
use crate::structure::{self, Kind, Part};

/// The ENVELOPE of the entity whose header fields are `fields`.
pub(crate) fn envelope(fields: &[Field], data: &[u8]) -> Envelope<'static> {
    // Dovecot: a repeated string field is overwritten (the last wins), while the
    // addresses of repeated address fields are appended to one list.
    let raw = |name: &str| header::last(fields, data, name).map(|f| f.raw_value(data));
    let addrs = |name: &str| {
        let mut found = false;
        let mut list = Vec::new();
        for f in fields.iter().filter(|f| f.is(data, name)) {
            found = true;
            list.extend(addresses(&address::parse(f.raw_value(data))));
        }
        found.then_some(list)
    };
    let from = addrs("From").unwrap_or_default();
    // RFC 3501: the server MUST default sender and reply-to from from.
    let sender = addrs("Sender")
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| from.clone());
    let reply_to = addrs("Reply-To")
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| from.clone());
    Envelope {
        date: nstring_nolf(raw("Date")),
        subject: NString(raw("Subject").map(for_humans)),
        from,
        sender,
        reply_to,
        to: addrs("To").unwrap_or_default(),
        cc: addrs("Cc").unwrap_or_default(),
        bcc: addrs("Bcc").unwrap_or_default(),
        in_reply_to: nstring_nolf(raw("In-Reply-To")),
        message_id: nstring_nolf(raw("Message-ID")),
    }
}

fn addresses(list: &[Addr]) -> Vec<Address<'static>> {
    list.iter()
        .map(|a| Address {
            name: NString(a.name.as_deref().map(for_humans)),
            adl: nstring(a.route.as_deref()),
            mailbox: nstring(a.mailbox.as_deref()),
            host: nstring(a.domain.as_deref()),
        })
        .collect()
}

/// What BODYSTRUCTURE needs from a part's MIME header fields.
struct MimeFields {
    content_type: Option<structure::ContentType>,
    id: Option<Vec<u8>>,
    description: Option<Vec<u8>>,
    encoding: Option<Vec<u8>>,
    md5: Option<Vec<u8>>,
    disposition: Option<(Vec<u8>, Params)>,
    language: Vec<Vec<u8>>,
    location: Option<Vec<u8>>,
}

/// Dovecot's MIME parsing keeps the first of repeated Content-* fields.
fn mime_fields(part: &Part, data: &[u8]) -> MimeFields {
    let fields = &part.fields;
    let raw = |name: &str| header::first(fields, data, name).map(|f| f.raw_value(data).to_vec());
    let encoding = header::first(fields, data, "Content-Transfer-Encoding").and_then(|f| {
        let mut cur = Cursor::new(f.raw_value(data));
        cur.skip_lwsp();
        let mut tok = Vec::new();
        (cur.parse_mime_token(&mut tok) == 0 && !tok.is_empty()).then_some(tok)
    });
    let disposition = header::first(fields, data, "Content-Disposition").and_then(|f| {
        let mut cur = Cursor::new(f.raw_value(data));
        cur.skip_lwsp();
        let mut tok = Vec::new();
        if cur.parse_mime_token(&mut tok) < 0 {
            return None;
        }
        Some((tok, rfc2231_merge(cur.parse_params())))
    });
    let language = header::first(fields, data, "Content-Language")
        .map(|f| {
            // comma separated language tags
            let mut cur = Cursor::new(f.raw_value(data));
            let mut langs = Vec::new();
            loop {
                if cur.skip_lwsp() <= 0 {
                    break;
                }
                let mut tok = Vec::new();
                if cur.parse_mime_token(&mut tok) < 0 {
                    break;
                }
                langs.push(tok);
                if cur.peek() != Some(b',') {
                    break;
                }
                cur.bump();
            }
            langs
        })
        .unwrap_or_default();
    MimeFields {
        content_type: structure::content_type(fields, data),
        id: raw("Content-ID"),
        description: raw("Content-Description"),
        encoding,
        md5: raw("Content-MD5"),
        disposition,
        language,
        location: raw("Content-Location"),
    }
}

fn params(
    list: &[(Vec<u8>, Vec<u8>)],
    default_charset: bool,
) -> Vec<(IString<'static>, IString<'static>)> {
    let mut out: Vec<_> = list.iter().map(|(k, v)| (string(k), string(v))).collect();
    if default_charset && !list.iter().any(|(k, _)| k.eq_ignore_ascii_case(b"charset")) {
        out.push((string(b"charset"), string(b"us-ascii")));
    }
    out
}

fn disposition_tail(m: &MimeFields) -> Disposition<'static> {
    Disposition {
        disposition: m
            .disposition
            .as_ref()
            .map(|(ty, p)| (string(ty), params(p, false))),
        tail: Some(Language {
            language: m.language.iter().map(|l| string(l)).collect(),
            tail: Some(Location {
                location: nstring_nolf(m.location.as_deref()),
                extensions: Vec::new(),
            }),
        }),
    }
}

fn lines(bytes: &[u8]) -> u32 {
    clamp(bytes.iter().filter(|&&c| c == b'\n').count())
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Dovecot's structure for a multipart with no parts.
fn empty_text_plain(extended: bool) -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: params(&[], true),
                id: NString(None),
                description: NString(None),
                content_transfer_encoding: string(b"7bit"),
                size: 0,
            },
            specific: SpecificFields::Text {
                subtype: string(b"plain"),
                number_of_lines: 0,
            },
        },
        extension_data: extended.then(|| SinglePartExtensionData {
            md5: NString(None),
            tail: Some(Disposition {
                disposition: None,
                tail: Some(Language {
                    language: Vec::new(),
                    tail: Some(Location {
                        location: NString(None),
                        extensions: Vec::new(),
                    }),
                }),
            }),
        }),
    }
}

pub(crate) fn body_structure(part: &Part, data: &[u8], extended: bool) -> BodyStructure<'static> {
    let m = mime_fields(part, data);
    if let Kind::Multipart(children) = &part.kind {
        let bodies: Vec<_> = children
            .iter()
            .map(|c| body_structure(c, data, extended))
            .collect();
        let bodies =
            Vec1::try_from(bodies).unwrap_or_else(|_| Vec1::from(empty_text_plain(extended)));
        let ct = m.content_type.as_ref();
        return BodyStructure::Multi {
            bodies,
            subtype: string(ct.map(|c| c.subtype.as_slice()).unwrap_or(b"mixed")),
            extension_data: extended.then(|| MultiPartExtensionData {
                parameter_list: params(ct.map(|c| c.params.as_slice()).unwrap_or(&[]), false),
                tail: Some(disposition_tail(&m)),
            }),
        };
    }
    let body_bytes = &data[part.body.clone()];
    let no_params = Params::new();
    // Dovecot: a message/rfc822 part is always written as "message" "rfc822" (with the
    // parameters it was given); no Content-Type means text/plain, or message/rfc822 inside
    // multipart/digest; text/* gets a default charset.
    let (ty, subtype, param_list): (&[u8], &[u8], &Params) = match &m.content_type {
        _ if part.is_message() || (m.content_type.is_none() && part.digest_default) => (
            b"message",
            b"rfc822",
            m.content_type.as_ref().map_or(&no_params, |c| &c.params),
        ),
        Some(ct) => (&ct.ty, &ct.subtype, &ct.params),
        None => (b"text", b"plain", &no_params),
    };
    // Past MAX_DEPTH a message/rfc822 part is not parsed; clients expect an envelope after
    // "message" "rfc822", so it is shown as opaque data instead.
    let (ty, subtype): (&[u8], &[u8]) = if !part.is_message()
        && ty.eq_ignore_ascii_case(b"message")
        && subtype.eq_ignore_ascii_case(b"rfc822")
    {
        (b"application", b"octet-stream")
    } else {
        (ty, subtype)
    };
    let is_text = !part.is_message() && ty.eq_ignore_ascii_case(b"text");
    let basic = BasicFields {
        parameter_list: params(param_list, is_text),
        id: nstring_nolf(m.id.as_deref()),
        description: nstring_nolf(m.description.as_deref()),
        content_transfer_encoding: string(m.encoding.as_deref().unwrap_or(b"7bit")),
        size: clamp(body_bytes.len()),
    };
    let specific = match &part.kind {
        Kind::Message(inner) => SpecificFields::Message {
            envelope: Box::new(envelope(&inner.fields, data)),
            body_structure: Box::new(body_structure(inner, data, extended)),
            number_of_lines: lines(body_bytes),
        },
        _ if is_text => SpecificFields::Text {
            subtype: string(subtype),
            number_of_lines: lines(body_bytes),
        },
        _ => SpecificFields::Basic {
            r#type: string(ty),
            subtype: string(subtype),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: extended.then(|| SinglePartExtensionData {
            md5: nstring_nolf(m.md5.as_deref()),
            tail: Some(disposition_tail(&m)),
        }),
    }
}
