//! Malformed, truncated, garbage and deeply nested input: every API must answer without
//! panicking, and its answers must be encodable by imap-codec.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_types::core::{AString, Vec1};
use imap_types::fetch::{MessageDataItem, Part, Section};
use imap_types::response::{Data, Response};
use pluto_mime::{MAX_DEPTH, Message};

/// A small deterministic generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn sections() -> Vec<Option<Section<'static>>> {
    let p = |v: &[u32]| {
        Part(
            Vec1::try_from(
                v.iter()
                    .map(|&n| NonZeroU32::new(n).unwrap())
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
        )
    };
    let names = || Vec1::from(AString::try_from("subject").unwrap());
    vec![
        None,
        Some(Section::Header(None)),
        Some(Section::Text(None)),
        Some(Section::Part(p(&[1]))),
        Some(Section::Part(p(&[1, 1, 1]))),
        Some(Section::Part(p(&[2, 1]))),
        Some(Section::Mime(p(&[1]))),
        Some(Section::Mime(p(&[3, 2]))),
        Some(Section::Header(Some(p(&[1])))),
        Some(Section::Text(Some(p(&[2])))),
        Some(Section::HeaderFields(None, names())),
        Some(Section::HeaderFieldsNot(Some(p(&[1])), names())),
        Some(Section::Part(p(&[u32::MAX]))),
    ]
}

/// Runs every API on `raw` and encodes the IMAP values.
fn exercise(raw: &[u8]) {
    let msg = Message::parse(raw);
    let items = vec![
        MessageDataItem::Envelope(msg.envelope()),
        MessageDataItem::Body(msg.body_structure(false)),
        MessageDataItem::BodyStructure(msg.body_structure(true)),
    ];
    let response = Response::Data(Data::Fetch {
        seq: NonZeroU32::new(1).unwrap(),
        items: Vec1::try_from(items).unwrap(),
    });
    let encoded = ResponseCodec::default().encode(&response).dump();
    assert!(encoded.ends_with(b")\r\n"));
    for s in sections() {
        if let Some(bytes) = msg.section(s.as_ref()) {
            assert!(
                bytes.len() <= raw.len() + 2,
                "a section cannot be longer than the message"
            );
        }
    }
    let _ = msg.header_values("From");
    let _ = msg.header_values("Subject");
    let _ = msg.body_text();
    let _ = msg.sent_date();
}

const SAMPLE: &[u8] = b"From: \"A \\\"B\\\"\" <a@b.c>, (c) d@e.f, g: h@i.j;\r\n\
To: =?utf-8?q?=C3=A9?= <x@y.z>\r\n\
Subject: =?utf-8?b?w6k=?= x\r\n\
Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
pre\r\n\
--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=E9\r\n\
--b\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
Content-Type: multipart/alternative; boundary=c\r\n\
\r\n\
--c\r\n\
\r\n\
x\r\n\
--c--\r\n\
--b--\r\n";

#[test]
fn every_truncation_of_a_nested_message() {
    for end in 0..=SAMPLE.len() {
        exercise(&SAMPLE[..end]);
    }
}

#[test]
fn random_garbage_and_mutations() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet = b"\r\n:;\"\\()<>@,.=?-_ \tabcAZ09*'%\x00\x80\xff";
    for _ in 0..2000 {
        let len = rng.below(300);
        let garbage: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        exercise(&garbage);
        let mut mutated = SAMPLE.to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(mutated.len());
            mutated[at] = alphabet[rng.below(alphabet.len())];
        }
        exercise(&mutated);
    }
}

#[test]
fn eight_bit_and_nul_headers() {
    let raw = b"From: J\xc3\xbcrgen \x00 <j@\xff.com>\r\nSubject: \xe9\xe9\x00\r\nContent-Type: text/plain; charset=\"\xff\"; name=\x00\r\n\r\nbody\x00\r\n";
    exercise(raw);
    let env = Message::parse(raw).envelope();
    assert!(env.subject.0.is_some());
}

#[test]
fn deep_multipart_nesting_is_bounded() {
    let depth = 5000;
    let mut raw = Vec::new();
    for i in 0..depth {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n")
                .as_bytes(),
        );
    }
    raw.extend_from_slice(b"Content-Type: text/plain\r\n\r\nleaf\r\n");
    for i in (0..depth).rev() {
        raw.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
    }
    exercise(&raw);
    // the structure stops at MAX_DEPTH levels
    let msg = Message::parse(&raw);
    let mut levels = 0;
    let mut bs = msg.body_structure(false);
    while let imap_types::body::BodyStructure::Multi { bodies, .. } = bs {
        levels += 1;
        bs = bodies.into_iter().next().unwrap();
    }
    assert!(levels <= MAX_DEPTH + 1, "{levels} levels");
    assert!(levels >= 10);
}

#[test]
fn deep_message_rfc822_nesting_is_bounded() {
    let raw = b"Content-Type: message/rfc822\r\n\r\n".repeat(5000);
    exercise(&raw);
}

#[test]
fn many_addresses_and_long_lines() {
    let mut raw = b"To: ".to_vec();
    for i in 0..20000 {
        raw.extend_from_slice(format!("u{i}@example.com, ").as_bytes());
    }
    raw.extend_from_slice(b"\r\nSubject: ");
    raw.extend(std::iter::repeat_n(b'x', 200_000));
    raw.extend_from_slice(b"\r\n\r\nbody");
    exercise(&raw);
}
