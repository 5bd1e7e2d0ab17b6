//! STATUS (RFC 3501 6.3.10): a mailbox's counts without selecting it; RECENT counted
//! without claiming; DELETED (RFC 9051) and DELETED-STORAGE (RFC 9208 4.2: what an
//! EXPUNGE would free, in KiB rounded up); SIZE (RFC 8438: the sum of the messages'
//! RFC822.SIZE, in octets); HIGHESTMODSEQ (RFC 7162 3.1.6), which enables CONDSTORE
//! for the session; MAILBOXID (RFC 8474 4.2).

use std::borrow::Cow;

use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use pluto_backends::{Flag, MailboxName, MailboxStatus, ObjectKind};
use pluto_model::Usage;

use crate::names::{mailbox_name, to_wire};
use crate::response::{CmdError, CmdResult, Done};
use crate::session::{Authenticated, Client};

impl Client {
    pub(crate) async fn cmd_status(
        &mut self,
        login: &Authenticated,
        mailbox: Mailbox<'static>,
        mut items: Vec<StatusDataItemName>,
    ) -> CmdResult {
        let extras = std::mem::take(&mut self.extras).status;
        if extras.placeholder {
            items.retain(|i| *i != StatusDataItemName::Messages);
        }
        let name = mailbox_name(&mailbox)?;
        let (data, status) = self.status_data(login, &name, &items).await?;
        let response = Response::Data(data);
        if extras.mailbox_id {
            // MAILBOXID (RFC 8474 4.2), which imap-codec cannot encode: put into its
            // encoding of the other items, before the closing parenthesis.
            let mut bytes = ResponseCodec::default().encode(&response).dump();
            let at = bytes.len().saturating_sub(b")\r\n".len());
            let space = if bytes[..at].ends_with(b"(") { "" } else { " " };
            let id = status.mailbox_id.wire(ObjectKind::Mailbox);
            let item = format!("{space}MAILBOXID ({id})");
            bytes.splice(at..at, item.into_bytes());
            self.conn.send_encoded(&bytes).await?;
        } else {
            self.send(&response).await?;
        }
        Ok(Done::ok("Status completed"))
    }

    /// The `* STATUS` answer for one mailbox (STATUS, and LIST's `RETURN (STATUS …)`),
    /// and the store's status it was made from.
    pub(crate) async fn status_data(
        &mut self,
        login: &Authenticated,
        name: &MailboxName,
        items: &[StatusDataItemName],
    ) -> Result<(Data<'static>, MailboxStatus), CmdError> {
        if items.contains(&StatusDataItemName::HighestModSeq) {
            self.enabled.condstore = true;
        }
        let status = login.store.status(&login.user, name).await?;
        // RECENT: the messages no session was told of yet, counted without claiming them.
        let recent = if items.contains(&StatusDataItemName::Recent) {
            let range = login.store.recent(&login.user, name, false).await?;
            if range.after < range.upto {
                let snapshot = login.store.select(&login.user, name).await?;
                snapshot
                    .messages
                    .iter()
                    .filter(|m| range.contains(m.uid))
                    .count() as u32
            } else {
                0
            }
        } else {
            0
        };
        // DELETED-STORAGE: the sizes of the \Deleted messages, from their metadata.
        let deleted_storage = if items.contains(&StatusDataItemName::DeletedStorage) {
            let snapshot = login.store.select(&login.user, name).await?;
            let bytes: u64 = snapshot
                .messages
                .iter()
                .filter(|m| m.flags.contains(&Flag::Deleted))
                .map(|m| u64::from(m.size))
                .sum();
            Usage::new(bytes, 0).storage_kib()
        } else {
            0
        };
        let mut out = Vec::new();
        for item in items {
            out.push(match item {
                StatusDataItemName::Messages => StatusDataItem::Messages(status.messages),
                StatusDataItemName::Recent => StatusDataItem::Recent(recent),
                StatusDataItemName::UidNext => StatusDataItem::UidNext(status.uid_next.0),
                StatusDataItemName::UidValidity => {
                    StatusDataItem::UidValidity(status.uid_validity.0)
                }
                StatusDataItemName::Unseen => StatusDataItem::Unseen(status.unseen),
                StatusDataItemName::Deleted => StatusDataItem::Deleted(status.deleted),
                StatusDataItemName::DeletedStorage => {
                    StatusDataItem::DeletedStorage(deleted_storage)
                }
                StatusDataItemName::Size => StatusDataItem::Size(status.size),
                StatusDataItemName::HighestModSeq => {
                    StatusDataItem::HighestModSeq(status.highest_modseq.0)
                }
                #[allow(unreachable_patterns)]
                other => {
                    return Err(CmdError::bad(format!(
                        "STATUS item {other:?} is not supported"
                    )));
                }
            });
        }
        let data = Data::Status {
            mailbox: to_wire(name),
            items: Cow::Owned(out),
        };
        Ok((data, status))
    }
}
