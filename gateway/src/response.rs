//! Building responses, and the one place where errors become IMAP response codes.

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{Tag, Text, Vec1};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::response::{
    Code, CodeOther, Data, Response, Status, StatusBody, StatusKind, Tagged,
};
use pluto_backends::StoreError;
use pluto_model::MailboxRefusal;

/// One FETCH data item as it is on the wire (`ENVELOPE (…)`): imap-codec encodes it
/// inside a FETCH response, and the item is cut out of that. FETCH writes its answers
/// item by item from these (and from cached ones, encoded once and sent many times).
pub fn fetch_item_bytes(item: MessageDataItem<'_>) -> Vec<u8> {
    const HEAD: &[u8] = b"* 1 FETCH (";
    const TAIL: &[u8] = b")\r\n";
    let response = Response::Data(Data::Fetch {
        seq: NonZeroU32::MIN,
        items: Vec1::from(item),
    });
    let mut bytes = ResponseCodec::default().encode(&response).dump();
    debug_assert!(bytes.starts_with(HEAD) && bytes.ends_with(TAIL));
    bytes.truncate(bytes.len().saturating_sub(TAIL.len()));
    bytes.drain(..HEAD.len().min(bytes.len()));
    bytes
}

/// How a command ended, short of the connection failing.
#[derive(Debug)]
pub struct Done {
    pub kind: StatusKind,
    pub code: Option<Code<'static>>,
    pub text: String,
}

impl Done {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: StatusKind::Ok,
            code: None,
            text: text.into(),
        }
    }

    pub fn ok_code(code: Code<'static>, text: impl Into<String>) -> Self {
        Self {
            kind: StatusKind::Ok,
            code: Some(code),
            text: text.into(),
        }
    }
}

/// A command that failed: tagged `NO` or `BAD`, with a reason; or a broken connection.
#[derive(Debug)]
pub enum CmdError {
    No {
        code: Option<Code<'static>>,
        text: String,
    },
    Bad {
        code: Option<Code<'static>>,
        text: String,
    },
    /// The tagged answer was already sent (STARTTLS sends it before the handshake).
    Answered,
    /// The store was asked and gave no answer (the link to its node broke after the
    /// call was sent, or the call's deadline passed): a write may have been done, so the
    /// command gets no tagged answer at all; the session ends with
    /// `* BYE [UNAVAILABLE] text` and the client finds the truth when it resyncs.
    Lost(String),
    /// The connection is gone: end the session.
    Io(std::io::Error),
}

pub type CmdResult = Result<Done, CmdError>;

impl CmdError {
    pub fn no(text: impl Into<String>) -> Self {
        Self::No {
            code: None,
            text: text.into(),
        }
    }

    pub fn no_code(code: Code<'static>, text: impl Into<String>) -> Self {
        Self::No {
            code: Some(code),
            text: text.into(),
        }
    }

    pub fn bad(text: impl Into<String>) -> Self {
        Self::Bad {
            code: None,
            text: text.into(),
        }
    }

    pub fn bad_code(code: Code<'static>, text: impl Into<String>) -> Self {
        Self::Bad {
            code: Some(code),
            text: text.into(),
        }
    }
}

impl From<std::io::Error> for CmdError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// A response code this crate's imap-types has no variant for (RFC 5530 and others).
pub fn code(name: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(name.as_bytes()))
}

/// `MAILBOXID (F…)` (RFC 8474 4.1), for SELECT, EXAMINE and CREATE; the id's wire form
/// is a valid objectid by construction.
pub fn mailbox_id_code(id: pluto_backends::ObjectId) -> Code<'static> {
    let text = format!(
        "MAILBOXID ({})",
        id.wire(pluto_backends::ObjectKind::Mailbox)
    );
    Code::Other(CodeOther::unvalidated(text.into_bytes()))
}

impl From<MailboxRefusal> for CmdError {
    /// A refusal of the mailbox rules (`pluto_model::rules`), with its own text.
    fn from(r: MailboxRefusal) -> Self {
        let name = match &r {
            MailboxRefusal::NoSuchMailbox(_) => "NONEXISTENT",
            MailboxRefusal::AlreadyExists(_) => "ALREADYEXISTS",
            MailboxRefusal::InboxCannotBeDeleted
            | MailboxRefusal::BelowItself { .. }
            | MailboxRefusal::TooLong(_) => "CANNOT",
            MailboxRefusal::TooDeep { .. } | MailboxRefusal::TooMany { .. } => "LIMIT",
        };
        CmdError::no_code(code(name), r.to_string())
    }
}

impl From<StoreError> for CmdError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchMailbox(name) => CmdError::no_code(
                code("NONEXISTENT"),
                format!("Mailbox doesn't exist: {name}"),
            ),
            StoreError::MailboxExists(name) => CmdError::no_code(
                code("ALREADYEXISTS"),
                format!("Mailbox already exists: {name}"),
            ),
            StoreError::InvalidName(reason) => {
                CmdError::no_code(code("CANNOT"), format!("Invalid name: {reason}"))
            }
            StoreError::NotAllowed(text) => CmdError::no_code(code("CANNOT"), text),
            StoreError::TooBig { limit } => CmdError::no_code(
                Code::TooBig,
                format!("Message is larger than the limit of {limit} bytes"),
            ),
            StoreError::OverQuota => CmdError::no_code(Code::OverQuota, "Quota exceeded"),
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "store unavailable");
                CmdError::no_code(
                    code("UNAVAILABLE"),
                    "Mail storage is temporarily unavailable, try again later",
                )
            }
            StoreError::Unanswered(reason) => {
                tracing::warn!(%reason, "store gave no answer; ending the session");
                CmdError::Lost("Mail store did not answer; please reconnect".to_owned())
            }
            StoreError::Io(error) => {
                tracing::error!(%error, "storage I/O error");
                CmdError::no_code(
                    code("SERVERBUG"),
                    "Internal storage error; nothing was changed",
                )
            }
            StoreError::DiskFull(error) => {
                tracing::error!(%error, "mail storage is full");
                CmdError::no_code(
                    Code::OverQuota,
                    "The server's disk is full; nothing was changed, try again later",
                )
            }
            StoreError::Corrupt(reason) => {
                tracing::error!(%reason, "stored data corrupt");
                CmdError::no_code(code("CORRUPTION"), "Stored mail could not be read")
            }
            other => {
                tracing::error!(error = %other, "store error");
                CmdError::no_code(code("SERVERBUG"), "Internal storage error")
            }
        }
    }
}

impl From<pluto_model::OverQuota> for CmdError {
    /// Over quota is `NO [OVERQUOTA]` naming the limit (RFC 9208 4.3).
    fn from(over: pluto_model::OverQuota) -> Self {
        CmdError::no_code(Code::OverQuota, format!("Quota exceeded: {over}"))
    }
}

/// Text for a response line: IMAP text cannot hold CR, LF or NUL, and must not be empty.
pub fn text(s: impl Into<String>) -> Text<'static> {
    let s: String = s
        .into()
        .chars()
        .map(|c| {
            if c == '\r' || c == '\n' || c == '\0' {
                ' '
            } else {
                c
            }
        })
        .collect();
    let s = if s.trim().is_empty() {
        "-".to_owned()
    } else {
        s
    };
    Text::unvalidated(Cow::Owned(s))
}

pub fn tagged(
    tag: Tag<'static>,
    kind: StatusKind,
    code: Option<Code<'static>>,
    t: String,
) -> Response<'static> {
    Response::Status(Status::Tagged(Tagged {
        tag,
        body: StatusBody {
            kind,
            code,
            text: text(t),
        },
    }))
}

pub fn untagged(
    kind: StatusKind,
    code: Option<Code<'static>>,
    t: impl Into<String>,
) -> Response<'static> {
    Response::Status(Status::Untagged(StatusBody {
        kind,
        code,
        text: text(t),
    }))
}

pub fn bye(t: impl Into<String>) -> Response<'static> {
    Response::Status(Status::Bye(imap_codec::imap_types::response::Bye {
        code: None,
        text: text(t),
    }))
}

/// `* BYE [UNAVAILABLE] …`: the store behind the session is gone or does not answer.
pub fn bye_unavailable(t: impl Into<String>) -> Response<'static> {
    Response::Status(Status::Bye(imap_codec::imap_types::response::Bye {
        code: Some(code("UNAVAILABLE")),
        text: text(t),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use imap_codec::imap_types::flag::{Flag, FlagFetch};

    /// `* n FETCH (` + items encoded one by one, joined by spaces + `)\r\n` (how FETCH
    /// writes its answers) is byte for byte what imap-codec makes of the whole response.
    #[test]
    fn items_encoded_one_by_one_make_the_whole_response() {
        let envelope = pluto_mime::envelope(
            b"From: \"Q, A\" <a@example.com>\r\nSubject: two\r\n lines\r\nTo: b@x\r\n\r\n",
        );
        let structure = pluto_mime::body_structure(b"Subject: x\r\n\r\nbody\r\n", true);
        let items = || {
            vec![
                MessageDataItem::Uid(NonZeroU32::new(7).unwrap()),
                MessageDataItem::Envelope(envelope.clone()),
                MessageDataItem::Flags(vec![FlagFetch::Flag(Flag::Seen)]),
                MessageDataItem::BodyStructure(structure.clone()),
            ]
        };
        let seq = NonZeroU32::new(42).unwrap();
        let whole = ResponseCodec::default()
            .encode(&Response::Data(Data::Fetch {
                seq,
                items: Vec1::try_from(items()).unwrap(),
            }))
            .dump();
        let parts: Vec<Vec<u8>> = items().into_iter().map(fetch_item_bytes).collect();
        let mut joined = format!("* {seq} FETCH (").into_bytes();
        joined.extend_from_slice(&parts.join(&b' '));
        joined.extend_from_slice(b")\r\n");
        assert_eq!(
            String::from_utf8_lossy(&joined),
            String::from_utf8_lossy(&whole)
        );
    }
}
