//! SEARCH helpers and the parse-once API on hand-made messages.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;

use chrono::NaiveDate;
use imap_types::core::{AString, NString, Vec1};
use imap_types::fetch::{Part, Section};
use pluto_mime::{Message, body_text, header_values, section, sent_date};

const MSG: &[u8] = b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\r\n\
To: a@example.com,\r\n b@example.com\r\n\
Subject: =?iso-8859-1?q?caf=E9?= and\r\n =?utf-8?b?w6ljbGFpcg==?=\r\n\
Date: Sun, 31 Dec 2023 23:30:00 -0800\r\n\
X-Custom: one\r\n\
x-custom: two\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
na=EFve soft=\r\nbreak\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PGI+w7xiZXI8L2I+\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
bm90IHRleHQ=\r\n\
--b--\r\n";

#[test]
fn header_values_are_decoded_and_unfolded() {
    assert_eq!(header_values(MSG, "from"), vec!["Jürgen <j@example.com>"]);
    assert_eq!(header_values(MSG, "SUBJECT"), vec!["café and éclair"]);
    assert_eq!(header_values(MSG, "X-Custom"), vec!["one", "two"]);
    assert!(header_values(MSG, "Cc").is_empty());
    let to = header_values(MSG, "To");
    assert_eq!(to.len(), 1);
    assert!(
        to[0].contains("a@example.com") && to[0].contains("b@example.com"),
        "{to:?}"
    );
}

#[test]
fn body_text_decodes_text_parts_only() {
    let text = body_text(MSG);
    assert!(text.contains("naïve softbreak"), "{text}");
    assert!(text.contains("<b>über</b>"), "{text}");
    assert!(!text.contains("not text"), "{text}");
}

#[test]
fn body_text_of_a_plain_message_without_mime() {
    assert_eq!(
        body_text(b"Subject: x\r\n\r\nhello world\r\n"),
        "hello world\r\n"
    );
}

#[test]
fn sent_date_ignores_time_and_zone() {
    assert_eq!(sent_date(MSG), NaiveDate::from_ymd_opt(2023, 12, 31));
    assert_eq!(sent_date(b"Subject: no date\r\n\r\n"), None);
    assert_eq!(sent_date(b"Date: garbage\r\n\r\n"), None);
}

fn part(nums: &[u32]) -> Part {
    Part(
        Vec1::try_from(
            nums.iter()
                .map(|&n| NonZeroU32::new(n).unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    )
}

#[test]
fn sections_of_a_multipart() {
    let msg = Message::parse(MSG);
    assert_eq!(msg.section(None).unwrap().as_ref(), MSG);
    let header = msg.section(Some(&Section::Header(None))).unwrap();
    assert!(header.starts_with(b"From: ") && header.ends_with(b"boundary=b\r\n\r\n"));
    assert_eq!(
        msg.section(Some(&Section::Part(part(&[2]))))
            .unwrap()
            .as_ref(),
        b"PGI+w7xiZXI8L2I+"
    );
    assert_eq!(
        msg.section(Some(&Section::Mime(part(&[3]))))
            .unwrap()
            .as_ref(),
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    );
    // a part that does not exist, and HEADER of a part that is not message/rfc822
    assert!(msg.section(Some(&Section::Part(part(&[4])))).is_none());
    assert!(
        msg.section(Some(&Section::Header(Some(part(&[1])))))
            .is_none()
    );
    let names = Vec1::try_from(vec![
        AString::try_from("x-CUSTOM").unwrap(),
        AString::try_from("to").unwrap(),
    ])
    .unwrap();
    assert_eq!(
        msg.section(Some(&Section::HeaderFields(None, names)))
            .unwrap()
            .as_ref(),
        b"To: a@example.com,\r\n b@example.com\r\nX-Custom: one\r\nx-custom: two\r\n\r\n"
    );
}

#[test]
fn non_multipart_message_has_part_one_only() {
    let raw = b"Subject: s\r\n\r\nbody\r\n";
    assert_eq!(
        section(raw, Some(&Section::Part(part(&[1]))))
            .unwrap()
            .as_ref(),
        b"body\r\n"
    );
    assert!(section(raw, Some(&Section::Part(part(&[2])))).is_none());
    assert!(section(raw, Some(&Section::Part(part(&[1, 1])))).is_none());
}

#[test]
fn envelope_defaults_sender_and_reply_to_from_from() {
    let env = pluto_mime::envelope(MSG);
    assert_eq!(env.from.len(), 1);
    assert_eq!(env.sender, env.from);
    assert_eq!(env.reply_to, env.from);
    assert_eq!(env.to.len(), 2);
    assert_eq!(env.in_reply_to, NString(None));
}
