//! STORE and UID STORE (RFC 3501 6.4.6, 6.4.8): flag changes, answered with the new
//! flags unless `.SILENT`.

use imap_codec::imap_types::flag::{Flag as WireFlag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;
use pluto_backends::{FlagChange, FlagOp, Uid};

use crate::flags;
use crate::response::{CmdError, CmdResult, Done, code};
use crate::selected::flags_response;
use crate::session::{Client, Selected};

impl Client {
    pub(crate) async fn cmd_store(
        &mut self,
        selected: &mut Selected,
        set: SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flag_list: Vec<WireFlag<'static>>,
        uid: bool,
    ) -> CmdResult {
        let Selected { login, mailbox } = selected;
        if mailbox.read_only {
            return Err(CmdError::no_code(
                code("READ-ONLY"),
                "Mailbox is read-only (EXAMINE)",
            ));
        }
        let change = FlagChange {
            op: match kind {
                StoreType::Add => FlagOp::Add,
                StoreType::Remove => FlagOp::Remove,
                StoreType::Replace => FlagOp::Replace,
            },
            flags: flags::from_wire_list(&flag_list)?,
        };
        let indexes = mailbox.resolve(&set, uid)?;
        let uids: Vec<Uid> = indexes
            .iter()
            .map(|&i| mailbox.messages[i].uid)
            .filter(|u| !mailbox.pending_expunge.contains(u))
            .collect();
        if !uids.is_empty() {
            let outcome = (login.store)
                .store_flags(&login.user, &mailbox.name, &uids, &change, None)
                .await?;
            let mut new_keywords = false;
            for meta in &outcome.updated {
                new_keywords |= mailbox.learn_keywords(&meta.flags);
            }
            if new_keywords {
                for r in mailbox.flag_announcements() {
                    self.conn.send(&r).await?;
                }
            }
            mailbox.note_own_store(&outcome.updated);
            for meta in outcome.updated {
                if let Some(i) = mailbox.index_of(meta.uid) {
                    let msg = &mut mailbox.messages[i];
                    msg.flags = meta.flags;
                    msg.modseq = meta.modseq;
                }
            }
            if response == StoreResponse::Answer {
                let mut out = Vec::with_capacity(uids.len());
                for uid_value in &uids {
                    if let Some(i) = mailbox.index_of(*uid_value) {
                        out.push(flags_response(i, &mailbox.messages[i], uid));
                    }
                }
                for r in out {
                    self.conn.send(&r).await?;
                }
            }
        }
        Ok(Done::ok("Store completed"))
    }
}
