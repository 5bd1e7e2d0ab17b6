//! STATUS (RFC 3501 6.3.10): a mailbox's counts without selecting it; RECENT counted
//! without claiming.

use std::borrow::Cow;

use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};

use crate::names::{mailbox_name, to_wire};
use crate::response::{CmdError, CmdResult, Done};
use crate::session::{Authenticated, Client};

impl Client {
    pub(crate) async fn cmd_status(
        &mut self,
        login: &Authenticated,
        mailbox: Mailbox<'static>,
        items: Vec<StatusDataItemName>,
    ) -> CmdResult {
        let name = mailbox_name(&mailbox)?;
        let status = login.store.status(&login.user, &name).await?;
        // RECENT: the messages no session was told of yet, counted without claiming them.
        let recent = if items.contains(&StatusDataItemName::Recent) {
            let range = login.store.recent(&login.user, &name, false).await?;
            if range.after < range.upto {
                let snapshot = login.store.select(&login.user, &name).await?;
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
                StatusDataItemName::DeletedStorage => StatusDataItem::DeletedStorage(0),
                #[allow(unreachable_patterns)]
                other => {
                    return Err(CmdError::bad(format!(
                        "STATUS item {other:?} is not supported"
                    )));
                }
            });
        }
        self.send(&Response::Data(Data::Status {
            mailbox: to_wire(&name),
            items: Cow::Owned(out),
        }))
        .await?;
        Ok(Done::ok("Status completed"))
    }
}
