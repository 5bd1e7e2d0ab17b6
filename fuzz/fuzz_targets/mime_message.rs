//! mime's parser over arbitrary bytes, as FETCH and SEARCH use it: ENVELOPE, BODY,
//! BODYSTRUCTURE, BODY[section] for a handful of sections, header values, body text and
//! the sent date. Beyond "no panic, no hang", the FETCH line the gateway would send for
//! ENVELOPE, BODY and BODYSTRUCTURE must be one that an IMAP client can parse.
#![no_main]

use std::num::NonZeroU32;

use imap_codec::ResponseCodec;
use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::body::{Body, BodyStructure, SpecificFields};
use imap_codec::imap_types::core::{AString, Vec1};
use imap_codec::imap_types::fetch::{MessageDataItem, Part, Section};
use imap_codec::imap_types::response::{Data, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let message = pluto_mime::Message::parse(data);
    let envelope = message.envelope();
    let body = message.body_structure(false);
    let structure = message.body_structure(true);
    let nesting = depth(&structure);
    let items = Vec1::try_from(vec![
        MessageDataItem::Envelope(envelope),
        MessageDataItem::Body(body),
        MessageDataItem::BodyStructure(structure),
    ])
    .expect("three items");
    let line = ResponseCodec::default()
        .encode(&Response::Data(Data::Fetch {
            seq: NonZeroU32::MIN,
            items,
        }))
        .dump();
    // imap-codec's parser reads bodies nested at most 8 deep; pluto, like Dovecot, sends
    // up to pluto_mime::MAX_DEPTH (see docs/FUZZING.md). Deeper lines are not checked.
    if let (true, Err(error)) = (nesting <= 7, ResponseCodec::default().decode(&line)) {
        panic!(
            "the FETCH line does not parse ({error:?}): {}",
            String::from_utf8_lossy(&line)
        );
    }

    for section in sections(data) {
        let _ = message.section(section.as_ref());
    }
    for field in ["subject", "from", "to", "message-id", "x-unknown"] {
        let _ = message.header_values(field);
    }
    let _ = message.body_text();
    let _ = message.sent_date();
    let _ = pluto_backends::header_len(data);
});

/// How many body structures deep `body` goes (a single part is 1).
fn depth(body: &BodyStructure<'_>) -> usize {
    match body {
        BodyStructure::Single {
            body:
                Body {
                    specific: SpecificFields::Message { body_structure, .. },
                    ..
                },
            ..
        } => 1 + depth(body_structure),
        BodyStructure::Single { .. } => 1,
        BodyStructure::Multi { bodies, .. } => {
            1 + bodies.as_ref().iter().map(depth).max().unwrap_or(0)
        }
    }
}

/// BODY[], and sections whose part numbers come from the input's first bytes, so that
/// nested parts of a fuzzed message are reached too.
fn sections(data: &[u8]) -> Vec<Option<Section<'static>>> {
    let number = |i: usize| NonZeroU32::new(u32::from(data.get(i).copied().unwrap_or(1) % 4) + 1);
    let mut path = Vec::new();
    for i in 0..3 {
        if let Some(n) = number(i) {
            path.push(n);
        }
    }
    let deep = Part(Vec1::try_from(path).unwrap_or(Vec1::from(NonZeroU32::MIN)));
    let first = Part(Vec1::from(NonZeroU32::MIN));
    let fields = Vec1::try_from(vec![
        AString::try_from("Subject").expect("an atom"),
        AString::try_from("Content-Type").expect("an atom"),
    ])
    .expect("two fields");
    vec![
        None,
        Some(Section::Header(None)),
        Some(Section::Text(None)),
        Some(Section::HeaderFields(None, fields.clone())),
        Some(Section::HeaderFieldsNot(None, fields.clone())),
        Some(Section::Part(first.clone())),
        Some(Section::Mime(first)),
        Some(Section::Part(deep.clone())),
        Some(Section::Header(Some(deep.clone()))),
        Some(Section::Text(Some(deep.clone()))),
        Some(Section::Mime(deep.clone())),
        Some(Section::HeaderFields(Some(deep), fields)),
    ]
}
