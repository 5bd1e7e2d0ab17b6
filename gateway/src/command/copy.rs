//! COPY (RFC 3501 6.4.7) and MOVE (RFC 6851 3), with UIDPLUS's COPYUID (RFC 4315 3).
//! A COPY adds its messages to the user's usage and must fit their quota (`NO
//! [OVERQUOTA]`, RFC 9208 4.3); a MOVE stays within the user's one quota root and adds
//! nothing, so it is allowed over quota (moving mail to Trash must work when full).

use std::num::NonZeroU32;

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, StatusKind};
use imap_codec::imap_types::sequence::SequenceSet;
use pluto_backends::{StoreError, Uid, Usage};

use crate::names::mailbox_name;
use crate::response::{self, CmdError, CmdResult, Done, code};
use crate::session::{Client, Selected};

/// A compact UID set (`1:3,7`) for COPYUID, keeping the given order.
pub(super) fn uid_set(uids: impl IntoIterator<Item = Uid>) -> Option<UidSet> {
    let mut elements: Vec<UidElement> = Vec::new();
    let mut run: Option<(NonZeroU32, NonZeroU32)> = None;
    for uid in uids {
        let u = uid.0;
        run = match run {
            Some((start, end)) if end.get().checked_add(1) == Some(u.get()) => Some((start, u)),
            Some((start, end)) => {
                elements.push(element(start, end));
                Some((u, u))
            }
            None => Some((u, u)),
        };
    }
    if let Some((start, end)) = run {
        elements.push(element(start, end));
    }
    Vec1::try_from(elements).ok().map(UidSet)
}

fn element(start: NonZeroU32, end: NonZeroU32) -> UidElement {
    if start == end {
        UidElement::Single(start)
    } else {
        UidElement::Range(start, end)
    }
}

impl Client {
    pub(crate) async fn cmd_copy(
        &mut self,
        selected: &mut Selected,
        set: SequenceSet,
        mailbox: Mailbox<'static>,
        uid: bool,
        is_move: bool,
    ) -> CmdResult {
        let to = mailbox_name(&mailbox)?;
        let Selected {
            login,
            mailbox: view,
        } = selected;
        if is_move && view.read_only {
            return Err(CmdError::no_code(
                code("READ-ONLY"),
                "Mailbox is read-only (EXAMINE)",
            ));
        }
        let verb = if is_move { "Move" } else { "Copy" };
        let indexes = view.resolve(&set, uid)?;
        let uids: Vec<Uid> = indexes.iter().map(|&i| view.messages[i].uid).collect();
        let from = view.name.clone();
        if uids.is_empty() {
            return Ok(Done::ok(format!("No messages to {}", verb.to_lowercase())));
        }
        // What a COPY adds, from the session's view of the messages (no body read).
        let shared = self.shared.clone();
        let _admitted = if is_move {
            None
        } else {
            let adding = indexes.iter().fold(Usage::default(), |sum, &i| {
                sum.plus(Usage::new(u64::from(view.messages[i].size), 1))
            });
            let admitted =
                crate::quota::admit(&shared, &*login.store, &login.user, &login.quota, adding);
            Some(admitted.await?)
        };
        let result = if is_move {
            (login.store)
                .move_messages(&login.user, &from, &uids, &to)
                .await
        } else {
            login.store.copy(&login.user, &from, &uids, &to).await
        };
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(StoreError::NoSuchMailbox(name)) if name == to => {
                return Err(CmdError::no_code(
                    Code::TryCreate,
                    format!("Mailbox doesn't exist: {name}"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let copyuid = match (
            uid_set(outcome.mapping.iter().map(|(s, _)| *s)),
            uid_set(outcome.mapping.iter().map(|(_, d)| *d)),
        ) {
            (Some(source), Some(destination)) => Some(Code::CopyUid {
                uid_validity: outcome.uid_validity.0,
                source,
                destination,
            }),
            _ => None,
        };
        if !is_move {
            return Ok(match copyuid {
                Some(code) => Done::ok_code(code, "Copy completed"),
                None => Done::ok("Copy completed"),
            });
        }
        // MOVE: COPYUID in an untagged OK, then the EXPUNGEs, then the tagged OK.
        if let Some(code) = copyuid {
            self.send(&response::untagged(
                StatusKind::Ok,
                Some(code),
                "Moved UIDs",
            ))
            .await?;
        }
        let moved: Vec<Uid> = outcome.mapping.iter().map(|(s, _)| *s).collect();
        self.refresh(login, view, true, uid).await?;
        if !self.logging_out {
            for r in view.expunged_here(&moved, self.enabled) {
                self.conn.send(&r).await?;
            }
        }
        Ok(Done::ok("Move completed"))
    }
}
