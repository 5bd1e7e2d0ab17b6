//! LMTP replies (RFC 5321 4.2 with the enhanced status codes of RFC 3463): a reply is a
//! code, an enhanced code and a text, written by smtp-proto; and the one mapping from
//! a delivery's outcome to the reply a recipient gets.

use std::borrow::Cow;

use super::delivery::DeliveryError;

/// One reply line (or the last line of a multi-line reply).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: [u8; 3],
    pub text: Cow<'static, str>,
}

impl Reply {
    pub const fn new(code: u16, status: [u8; 3], text: &'static str) -> Reply {
        Reply {
            code,
            status,
            text: Cow::Borrowed(text),
        }
    }

    pub fn with_text(code: u16, status: [u8; 3], text: String) -> Reply {
        Reply {
            code,
            status,
            // One line: a CR or LF in a text from elsewhere would end the reply early.
            text: Cow::Owned(text.replace(['\r', '\n'], " ")),
        }
    }

    /// Appends the reply, CRLF-terminated, to `out`. Enhanced codes go on every
    /// reply but 354 (RFC 2034 3: not on intermediate replies).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if self.status == [0, 0, 0] {
            out.extend_from_slice(format!("{} {}\r\n", self.code, self.text).as_bytes());
            return;
        }
        let [a, b, c] = self.status;
        // Writing into a Vec cannot fail.
        let _ = smtp_proto::Response::new(self.code, a, b, c, self.text.as_ref()).write(&mut *out);
    }

    /// 4xx: the client may try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

pub const OK: Reply = Reply::new(250, [2, 0, 0], "OK");
pub const SENDER_OK: Reply = Reply::new(250, [2, 1, 0], "Sender OK");
pub const RECIPIENT_OK: Reply = Reply::new(250, [2, 1, 5], "Recipient OK");
pub const DELIVERED: Reply = Reply::new(250, [2, 0, 0], "Delivered");
pub const START_DATA: Reply =
    Reply::new(354, [0, 0, 0], "Start mail input; end with <CRLF>.<CRLF>");
pub const BYE: Reply = Reply::new(221, [2, 0, 0], "Bye");
pub const CANNOT_VERIFY: Reply = Reply::new(
    252,
    [2, 5, 0],
    "Cannot VRFY user, but will accept the message and attempt delivery",
);
pub const SHUTTING_DOWN: Reply = Reply::new(421, [4, 3, 2], "Server shutting down");
pub const TIMEOUT: Reply = Reply::new(421, [4, 4, 2], "Timeout waiting for input; closing");
pub const TOO_MANY_ERRORS: Reply = Reply::new(421, [4, 7, 0], "Too many errors; closing");
pub const TOO_MANY_CONNECTIONS: Reply =
    Reply::new(421, [4, 3, 2], "Too many connections; try again later");
pub const NOT_ALLOWED: Reply = Reply::new(
    554,
    [5, 7, 1],
    "Your address may not deliver here (lmtp.allow_networks)",
);
pub const TOO_MANY_RECIPIENTS: Reply = Reply::new(452, [4, 5, 3], "Too many recipients");
pub const LINE_TOO_LONG: Reply = Reply::new(500, [5, 5, 2], "Line too long");
pub const SYNTAX: Reply = Reply::new(500, [5, 5, 2], "Syntax error, command unrecognized");
pub const USE_LHLO: Reply = Reply::new(500, [5, 5, 1], "This is LMTP (RFC 2033): say LHLO");
pub const NOT_IMPLEMENTED: Reply = Reply::new(502, [5, 5, 1], "Command not implemented");
pub const NEED_LHLO: Reply = Reply::new(503, [5, 5, 1], "Say LHLO first");
pub const NESTED_MAIL: Reply = Reply::new(503, [5, 5, 1], "Nested MAIL command");
pub const NEED_MAIL: Reply = Reply::new(503, [5, 5, 1], "Need MAIL before RCPT");
pub const NEED_RCPT: Reply = Reply::new(503, [5, 5, 1], "No valid recipients");
pub const BAD_SENDER: Reply = Reply::new(501, [5, 1, 7], "Bad sender address syntax");
pub const BAD_PARAMETER: Reply = Reply::new(555, [5, 5, 4], "Unsupported parameter");
pub const DECLARED_TOO_BIG: Reply = Reply::new(
    552,
    [5, 3, 4],
    "Message size exceeds the fixed maximum message size",
);

/// What a recipient is told about its copy of the message (or about being refused).
pub fn for_error(error: &DeliveryError) -> Reply {
    use DeliveryError as E;
    match error {
        E::BadAddress(why) => {
            Reply::with_text(501, [5, 1, 3], format!("Bad recipient address: {why}"))
        }
        E::UnknownDomain => Reply::new(550, [5, 1, 2], "Recipient domain not accepted here"),
        E::UnknownUser => Reply::new(550, [5, 1, 1], "No such user here"),
        E::Disabled => Reply::new(550, [5, 2, 1], "Mailbox disabled"),
        E::TooBig { limit } => Reply::with_text(
            552,
            [5, 3, 4],
            format!("Message is larger than the limit of {limit} bytes"),
        ),
        E::NoSuchMailbox(name) => {
            Reply::with_text(550, [5, 2, 0], format!("Mailbox does not exist: {name}"))
        }
        E::Empty => Reply::new(554, [5, 6, 0], "An empty message cannot be delivered"),
        E::OverQuota(why) => Reply::with_text(552, [5, 2, 2], format!("Mailbox full: {why}")),
        E::DiskFull => Reply::new(452, [4, 3, 1], "Insufficient system storage; try later"),
        E::Unavailable(_) => Reply::new(
            451,
            [4, 3, 0],
            "Mail store unavailable; nothing was stored, try again later",
        ),
        E::Unanswered(_) => {
            Reply::new(451, [4, 3, 0], "Mail store did not answer; try again later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_one_crlf_line() {
        let mut out = Vec::new();
        Reply::with_text(550, [5, 2, 0], "a\r\nb".into()).write_to(&mut out);
        assert_eq!(out, b"550 5.2.0 a  b\r\n");
    }
}
