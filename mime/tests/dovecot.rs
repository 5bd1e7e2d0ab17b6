//! Compares ENVELOPE, BODY, BODYSTRUCTURE and BODY[section] with Dovecot's answers recorded
//! by `testdata/dovecot/record.sh` for the shared corpus plus hand-written edge cases.
//!
//! Our values are encoded with imap-codec (what the gateway sends) and compared byte for
//! byte with Dovecot's. One normalisation is applied, and only this one: imap-codec always
//! writes the type of a text part as `"TEXT"` and of a message/rfc822 part as
//! `"MESSAGE" "RFC822"`, whereas Dovecot repeats the case the message used (`"text"`).
//! Media types are case-insensitive (RFC 2045 §5.1; RFC 3501's own examples are upper
//! case), so Dovecot's text is upper-cased at exactly those two places before comparing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::num::NonZeroU32;
use std::path::PathBuf;

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_types::core::{AString, Vec1};
use imap_types::fetch::{MessageDataItem, Part, Section};
use imap_types::response::{Data, Response};
use pluto_mime::Message;

/// The committed golden files, or another recording (`record.sh COUNT OUTDIR`) named by
/// PLUTO_DOVECOT_GOLDEN, for checking a larger corpus than the one committed.
fn golden_dir() -> PathBuf {
    match std::env::var_os("PLUTO_DOVECOT_GOLDEN") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/dovecot"),
    }
}

/// Frames "=== <fields...> <len>\n" + len bytes + "\n".
fn frames(data: &[u8]) -> Vec<(Vec<String>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let nl = i + data[i..]
            .iter()
            .position(|&c| c == b'\n')
            .expect("frame header");
        let head: Vec<String> = String::from_utf8(data[i..nl].to_vec())
            .unwrap()
            .split(' ')
            .map(str::to_owned)
            .collect();
        assert_eq!(head[0], "===", "bad frame at {i}");
        let len: usize = head.last().unwrap().parse().unwrap();
        let payload = data[nl + 1..nl + 1 + len].to_vec();
        out.push((head[1..head.len() - 1].to_vec(), payload));
        i = nl + 1 + len + 1;
    }
    out
}

fn encode_item(item: MessageDataItem<'static>) -> Vec<u8> {
    let response = Response::Data(Data::Fetch {
        seq: NonZeroU32::new(1).unwrap(),
        items: Vec1::from(item),
    });
    let bytes = ResponseCodec::default().encode(&response).dump();
    // "* 1 FETCH (NAME value)\r\n" -> "value"
    let start = bytes.iter().position(|&c| c == b'(').unwrap();
    let after_name = start + bytes[start..].iter().position(|&c| c == b' ').unwrap() + 1;
    assert!(bytes.ends_with(b")\r\n"));
    bytes[after_name..bytes.len() - 3].to_vec()
}

/// Upper-cases Dovecot's `("text" ` and `("message" "rfc822" ` (see the module doc).
fn normalise_type_case(dovecot: &[u8]) -> Vec<u8> {
    let mut out = dovecot.to_vec();
    let mut i = 0;
    while i + 2 < out.len() {
        if out[i] == b'(' && out[i + 1] == b'"' {
            let rest = &out[i + 2..];
            if rest.len() >= 6 && rest[..6].eq_ignore_ascii_case(b"text\" ") {
                out[i + 2..i + 6].copy_from_slice(b"TEXT");
            } else if rest.len() >= 17 && rest[..17].eq_ignore_ascii_case(b"message\" \"rfc822\"") {
                out[i + 2..i + 9].copy_from_slice(b"MESSAGE");
                out[i + 12..i + 18].copy_from_slice(b"RFC822");
            }
        }
        i += 1;
    }
    out
}

/// "2.HEADER.FIELDS_(subject_date)" and friends, as recorded, into a Section.
fn parse_section(spec: &str) -> Option<Section<'static>> {
    let spec = spec
        .strip_prefix("BODY[")
        .unwrap()
        .strip_suffix(']')
        .unwrap()
        .replace('_', " ");
    if spec.is_empty() {
        return None;
    }
    let (list, head) = match spec.find(" (") {
        Some(p) => (
            Some(spec[p + 2..spec.len() - 1].to_owned()),
            spec[..p].to_owned(),
        ),
        None => (None, spec.clone()),
    };
    let mut nums = Vec::new();
    let mut word = None;
    for (i, tok) in head.split('.').enumerate() {
        match tok.parse::<u32>() {
            Ok(n) => nums.push(NonZeroU32::new(n).unwrap()),
            Err(_) => {
                word = Some(head.split('.').skip(i).collect::<Vec<_>>().join("."));
                break;
            }
        }
    }
    let part = (!nums.is_empty()).then(|| Part(Vec1::try_from(nums).unwrap()));
    let names = || {
        let names: Vec<AString<'static>> = list
            .as_ref()
            .unwrap()
            .split(' ')
            .map(|n| AString::try_from(n.to_owned()).unwrap())
            .collect();
        Vec1::try_from(names).unwrap()
    };
    Some(match word.as_deref() {
        None => Section::Part(part.unwrap()),
        Some("MIME") => Section::Mime(part.unwrap()),
        Some("HEADER") => Section::Header(part),
        Some("TEXT") => Section::Text(part),
        Some("HEADER.FIELDS") => Section::HeaderFields(part, names()),
        Some("HEADER.FIELDS.NOT") => Section::HeaderFieldsNot(part, names()),
        Some(other) => panic!("unknown section {other}"),
    })
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn matches_dovecot() {
    let dir = golden_dir();
    let messages = frames(&std::fs::read(dir.join("messages.txt")).expect("messages.txt"));
    let answers = frames(&std::fs::read(dir.join("fetch.txt")).expect("fetch.txt"));
    assert!(
        messages.len() >= 100,
        "corpus too small: {}",
        messages.len()
    );

    let mut checked = 0usize;
    let mut failures = Vec::new();
    let mut failed_uids = std::collections::BTreeSet::new();
    for (head, expected) in &answers {
        let uid: usize = head[0].parse().unwrap();
        let item = head[1].as_str();
        let kind = head[2].as_str();
        let raw = &messages[uid - 1].1;
        let msg = Message::parse(raw);
        let (ours, theirs) = match item {
            "ENVELOPE" => (
                encode_item(MessageDataItem::Envelope(msg.envelope())),
                expected.clone(),
            ),
            "BODY" => (
                encode_item(MessageDataItem::Body(msg.body_structure(false))),
                normalise_type_case(expected),
            ),
            "BODYSTRUCTURE" => (
                encode_item(MessageDataItem::BodyStructure(msg.body_structure(true))),
                normalise_type_case(expected),
            ),
            _ => {
                let section = parse_section(item);
                // Dovecot answers "" for a part that does not exist
                let bytes = msg
                    .section(section.as_ref())
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                match kind {
                    "bytes" => (bytes, expected.clone()),
                    "crc32" => (
                        format!("{} {:08x}", bytes.len(), crc32(&bytes)).into_bytes(),
                        expected.clone(),
                    ),
                    other => panic!("unexpected kind {other}"),
                }
            }
        };
        checked += 1;
        if ours != theirs {
            failed_uids.insert(uid);
            failures.push(format!(
                "uid {uid} {item}:\n  dovecot: {}\n  ours:    {}",
                show(&theirs),
                show(&ours)
            ));
        }
    }
    let total = messages.len();
    println!(
        "dovecot golden: {} of {} messages match exactly ({} answers compared, {} differ)",
        total - failed_uids.len(),
        total,
        checked,
        failures.len()
    );
    for f in failures.iter().take(15) {
        println!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} answers differ from Dovecot's",
        failures.len()
    );
}
