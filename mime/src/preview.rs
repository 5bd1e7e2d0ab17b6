//! PREVIEW (RFC 8970): a short plain-text excerpt of a message for a client's message
//! list. Taken from the first text/* part (HTML turned into text by mail-parser's
//! converter), without quoted lines (`>` …), every run of white space folded into one
//! space, trimmed, and cut to [`MAX_CHARS`] characters (RFC 8970 3.1: at most 256).
//! A message without text gets an empty preview.

use crate::search::first_text;
use crate::structure::Part;

/// The longest preview, in characters (RFC 8970 3.1).
pub const MAX_CHARS: usize = 256;

/// Bytes of the text part decoded at most: far more than 256 characters need, however
/// much markup or quoting comes first, and a bound on the work one message costs.
const MAX_RAW: usize = 256 * 1024;

pub(crate) fn preview(root: &Part, data: &[u8]) -> String {
    let Some((text, is_html)) = first_text(root, data, MAX_RAW) else {
        return String::new();
    };
    let text = if is_html {
        mail_parser::decoders::html::html_to_text(&text)
    } else {
        text
    };
    let mut out = String::new();
    let mut chars = 0;
    'lines: for line in text.lines() {
        if line.trim_start().starts_with('>') {
            continue;
        }
        for word in line.split(|c: char| c.is_whitespace() || c.is_control()) {
            if word.is_empty() {
                continue;
            }
            if !out.is_empty() {
                if chars == MAX_CHARS {
                    break 'lines;
                }
                out.push(' ');
                chars += 1;
            }
            for c in word.chars() {
                if chars == MAX_CHARS {
                    break 'lines;
                }
                out.push(c);
                chars += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::Message;

    fn preview(raw: &str) -> String {
        Message::parse(raw.as_bytes()).preview()
    }

    #[test]
    fn plain_text_is_folded_and_cut() {
        assert_eq!(
            preview("Subject: x\r\n\r\n  Hello,\r\n\r\n\tworld   again\r\n"),
            "Hello, world again"
        );
        let long = "word ".repeat(100);
        let p = preview(&format!("Subject: x\r\n\r\n{long}\r\n"));
        assert_eq!(p.chars().count(), super::MAX_CHARS);
        assert!(p.starts_with("word word"));
        let wide = "é".repeat(300);
        assert_eq!(
            preview(&format!(
                "Content-Type: text/plain; charset=utf-8\r\n\r\n{wide}"
            ))
            .chars()
            .count(),
            super::MAX_CHARS,
            "characters, not bytes"
        );
    }

    #[test]
    fn quoted_lines_html_and_encodings() {
        assert_eq!(
            preview("Subject: x\r\n\r\n> old text\r\n>> older\r\nnew text\r\n"),
            "new text"
        );
        let html = "Content-Type: text/html\r\n\r\n<html><head><style>p {}</style></head><body><p>Hi <b>there</b></p></body></html>\r\n";
        assert_eq!(preview(html), "Hi there");
        let b64 = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29ybGQ=\r\n";
        assert_eq!(preview(b64), "Hello world");
        let multi = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: image/png\r\n\r\nxx\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond part\r\n--b--\r\n";
        assert_eq!(preview(multi), "second part");
        assert_eq!(
            preview("Content-Type: image/png\r\n\r\nxx\r\n"),
            "",
            "no text: empty"
        );
    }
}
