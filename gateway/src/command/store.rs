//! STORE and UID STORE (RFC 3501 6.4.6, 6.4.8): flag changes, answered with the new
//! flags unless `.SILENT`; with CONDSTORE's UNCHANGEDSINCE (RFC 7162 3.1.3) only the
//! messages whose modseq is not above it change, the others are named in the tagged
//! `OK [MODIFIED set]` (sequence numbers, UIDs for UID STORE) and get no FETCH. Once
//! CONDSTORE is on, every message the STORE changed gets a FETCH with its new MODSEQ,
//! `.SILENT` or not.

use std::collections::BTreeSet;

use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::flag::{Flag as WireFlag, StoreResponse, StoreType};
use imap_codec::imap_types::response::Code;
use imap_codec::imap_types::sequence::SequenceSet;
use pluto_backends::{FlagChange, FlagOp, ModSeq, Uid};

use crate::flags;
use crate::response::{CmdError, CmdResult, Done, code};
use crate::selected::{change_response, runs, sequence_set};
use crate::session::{Client, Selected};

/// The UNCHANGEDSINCE of a STORE's modifiers; a second one is refused (RFC 7162 3.1.3:
/// "only a single UNCHANGEDSINCE").
fn unchanged_since(modifiers: &[StoreModifier]) -> Result<Option<ModSeq>, CmdError> {
    match modifiers {
        [] => Ok(None),
        [StoreModifier::UnchangedSince(n)] => Ok(Some(ModSeq(*n))),
        _ => Err(CmdError::bad("Only one UNCHANGEDSINCE is allowed")),
    }
}

impl Client {
    pub(crate) async fn cmd_store(
        &mut self,
        selected: &mut Selected,
        set: SequenceSet,
        (kind, response): (StoreType, StoreResponse),
        flag_list: Vec<WireFlag<'static>>,
        uid: bool,
        modifiers: Vec<StoreModifier>,
    ) -> CmdResult {
        let unchanged_since = unchanged_since(&modifiers)?;
        let Selected { login, mailbox } = selected;
        if unchanged_since.is_some() {
            self.condstore_on(Some(mailbox.highest_modseq)).await?;
        }
        let enabled = self.enabled;
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
        if uids.is_empty() {
            return Ok(Done::ok("Store completed"));
        }
        let outcome = (login.store)
            .store_flags(&login.user, &mailbox.name, &uids, &change, unchanged_since)
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
        let changed: BTreeSet<Uid> = outcome.updated.iter().map(|m| m.uid).collect();
        let modified: BTreeSet<Uid> = outcome.modified.iter().copied().collect();
        for meta in outcome.updated {
            if let Some(i) = mailbox.index_of(meta.uid) {
                let msg = &mut mailbox.messages[i];
                msg.flags = meta.flags;
                msg.modseq = meta.modseq;
            }
        }
        let silent = response == StoreResponse::Silent;
        for uid_value in &uids {
            if modified.contains(uid_value) {
                continue;
            }
            // `.SILENT`: only a CONDSTORE client hears of the change, for its MODSEQ.
            if silent && !(enabled.condstore && changed.contains(uid_value)) {
                continue;
            }
            if let Some(i) = mailbox.index_of(*uid_value) {
                let msg = &mailbox.messages[i];
                let r = change_response(i, msg, uid, enabled, !silent);
                self.conn.send(&r).await?;
            }
        }
        if modified.is_empty() {
            return Ok(Done::ok("Store completed"));
        }
        // MODIFIED names sequence numbers for STORE, UIDs for UID STORE.
        let mut failed: Vec<u32> = modified
            .iter()
            .filter_map(|u| match uid {
                true => Some(u.get()),
                false => mailbox.index_of(*u).map(|i| i as u32 + 1),
            })
            .collect();
        failed.sort_unstable();
        let failed = runs(failed.into_iter().filter_map(std::num::NonZeroU32::new));
        Ok(match sequence_set(&failed) {
            Some(set) => Done::ok_code(Code::Modified(set), "Conditional STORE failed"),
            None => Done::ok("Store completed"),
        })
    }
}
