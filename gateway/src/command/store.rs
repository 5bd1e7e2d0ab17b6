//! STORE and UID STORE (RFC 3501 6.4.6, 6.4.8): flag changes, answered with the new
//! flags unless `.SILENT`.

use imap_codec::imap_types::flag::{Flag as WireFlag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;
use pluto_backends::{FlagChange, FlagOp, Uid};

use crate::flags;
use crate::response::{CmdError, CmdResult, Done, code};
use crate::selected::flags_response;
use crate::session::{Session, State};

impl Session {
    pub(crate) async fn cmd_store(
        &mut self,
        set: SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flag_list: Vec<WireFlag<'static>>,
        uid: bool,
    ) -> CmdResult {
        let user = self.user()?.clone();
        let selected = self.selected()?;
        if selected.read_only {
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
        let indexes = selected.resolve(&set, uid)?;
        let uids: Vec<Uid> = indexes
            .iter()
            .map(|&i| selected.messages[i].uid)
            .filter(|u| !selected.pending_expunge.contains(u))
            .collect();
        let name = selected.name.clone();
        if !uids.is_empty() {
            let outcome = self
                .store()?
                .store_flags(&user, &name, &uids, &change, None)
                .await?;
            let State::Selected(selected) = &mut self.state else {
                return Ok(Done::ok("Store completed"));
            };
            let mut new_keywords = false;
            for meta in &outcome.updated {
                new_keywords |= selected.learn_keywords(&meta.flags);
            }
            if new_keywords {
                for r in selected.flag_announcements() {
                    self.conn.send(&r).await?;
                }
            }
            let State::Selected(selected) = &mut self.state else {
                return Ok(Done::ok("Store completed"));
            };
            selected.note_own_store(&outcome.updated);
            for meta in outcome.updated {
                if let Some(i) = selected.index_of(meta.uid) {
                    let msg = &mut selected.messages[i];
                    msg.flags = meta.flags;
                    msg.modseq = meta.modseq;
                }
            }
            if response == StoreResponse::Answer {
                let mut out = Vec::with_capacity(uids.len());
                for uid_value in &uids {
                    if let Some(i) = selected.index_of(*uid_value) {
                        out.push(flags_response(i, &selected.messages[i], uid));
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
