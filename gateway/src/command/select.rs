//! SELECT and EXAMINE (RFC 3501 6.3.1, 6.3.2): open a mailbox read-write or
//! read-only, claim its recent messages (SELECT only) and tell the client its state,
//! HIGHESTMODSEQ included (RFC 7162 3.1.2.1; pluto has modseqs on every mailbox, so
//! never NOMODSEQ). The CONDSTORE parameter enables CONDSTORE (3.1.8); the QRESYNC
//! parameter (3.2.5, QRESYNC enabled first) resynchronizes in the same answer:
//! `VANISHED (EARLIER)` for what the client knew and was expunged since its modseq
//! (within its known-uids), then a FETCH of every message changed since. A UIDVALIDITY
//! that is not the mailbox's makes it a plain SELECT. The seq-match-data is checked and
//! not needed: the store tells expunges exactly, or (its history too old) pluto names
//! every known UID without a message (see [`crate::resync`]).

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data, Response, StatusKind};
use imap_codec::imap_types::sequence::SequenceSet;
use pluto_backends::{Flag, Keyword, MailboxName, ModSeq};

use crate::flags;
use crate::names::mailbox_name;
use crate::response::{self, CmdError, Done, code};
use crate::resync::{UidRanges, vanished_earlier};
use crate::selected::{MailboxView, change_response, wire_modseq};
use crate::session::{Authenticated, Client, Stepped, Transition};

impl Client {
    /// `was_selected`: a mailbox is selected now, and is left whatever the outcome.
    pub(crate) async fn cmd_select(
        &mut self,
        login: &Authenticated,
        was_selected: bool,
        mailbox: Mailbox<'static>,
        parameters: Vec<SelectParameter>,
        read_only: bool,
    ) -> Stepped {
        let name = match mailbox_name(&mailbox) {
            Ok(name) => name,
            Err(e) => return (Err(e), None),
        };
        let resync = match self.select_parameters(parameters) {
            Ok(resync) => resync,
            Err(e) => return (Err(e), None),
        };
        // A failed SELECT leaves no mailbox selected (RFC 3501 6.3.1).
        match self
            .open_mailbox(login, was_selected, name, read_only, resync)
            .await
        {
            Ok((done, view)) => (Ok(done), Some(Transition::Select(view))),
            Err(e) => (Err(e), Some(Transition::Unselect)),
        }
    }

    /// SELECT's parameters (RFC 7162 3.1.8, 3.2.5): CONDSTORE enables CONDSTORE; the
    /// QRESYNC one, allowed once QRESYNC is enabled and once, is returned.
    fn select_parameters(
        &mut self,
        parameters: Vec<SelectParameter>,
    ) -> Result<Option<Resync>, CmdError> {
        let mut resync = None;
        for parameter in parameters {
            match parameter {
                SelectParameter::CondStore => self.enabled.condstore = true,
                SelectParameter::QResync { .. } if !self.enabled.qresync => {
                    return Err(CmdError::bad(
                        "QRESYNC must be enabled first (ENABLE QRESYNC)",
                    ));
                }
                SelectParameter::QResync { .. } if resync.is_some() => {
                    return Err(CmdError::bad("QRESYNC is given twice"));
                }
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    seq_match_data,
                } => {
                    if known_uids.as_ref().is_some_and(UidRanges::names_asterisk) {
                        return Err(CmdError::bad("* is not allowed in QRESYNC's known UIDs"));
                    }
                    if let Some((seqs, uids)) = &seq_match_data {
                        check_seq_match(seqs, uids)?;
                    }
                    resync = Some(Resync {
                        uid_validity: uid_validity.get(),
                        since: ModSeq(mod_sequence_value.get()),
                        known_uids,
                    });
                }
            }
        }
        Ok(resync)
    }

    /// Opens `name`, tells the client its state and returns the view to select.
    async fn open_mailbox(
        &mut self,
        login: &Authenticated,
        was_selected: bool,
        name: MailboxName,
        read_only: bool,
        resync: Option<Resync>,
    ) -> Result<(Done, MailboxView), CmdError> {
        let Authenticated { user, store, .. } = login;
        let feed = store.watch(user, &name).await;
        let snapshot = store.select(user, &name).await;
        let (feed, snapshot) = match (feed, snapshot) {
            (Ok(feed), Ok(snapshot)) => (feed, snapshot),
            (Err(e), _) | (_, Err(e)) => {
                if was_selected {
                    self.send(&response::untagged(
                        StatusKind::Ok,
                        Some(code("CLOSED")),
                        "Previous mailbox closed",
                    ))
                    .await?;
                }
                return Err(e.into());
            }
        };
        if was_selected {
            self.send(&response::untagged(
                StatusKind::Ok,
                Some(code("CLOSED")),
                "Previous mailbox closed",
            ))
            .await?;
        }
        let mut view = MailboxView::new(name, read_only, snapshot, feed);
        // SELECT claims the messages no session was told of yet; EXAMINE only looks, so
        // that they stay recent for the next SELECT (RFC 3501 2.3.2, 6.3.2).
        match store.recent(user, &view.name, !read_only).await {
            Ok(range) => view.add_recent(range),
            Err(e) => tracing::debug!(error = %e, "recent claim failed"),
        }
        view.announced_recent = view.recent_count();
        let keywords: BTreeSet<Keyword> = view
            .messages
            .iter()
            .flat_map(|m| m.flags.keywords().iter().cloned())
            .collect();
        let keywords: Vec<Keyword> = keywords.into_iter().collect();
        let first_unseen = view
            .messages
            .iter()
            .position(|m| !m.flags.contains(&Flag::Seen));
        let responses = vec![
            Response::Data(Data::Flags(flags::mailbox_flags(&keywords))),
            response::untagged(
                StatusKind::Ok,
                Some(Code::PermanentFlags(if read_only {
                    Vec::new()
                } else {
                    flags::permanent_flags(&keywords)
                })),
                "Flags permitted",
            ),
            Response::Data(Data::Exists(view.exists())),
            Response::Data(Data::Recent(view.announced_recent)),
        ];
        for r in responses {
            self.send(&r).await?;
        }
        if let Some(i) = first_unseen.and_then(|i| NonZeroU32::new(i as u32 + 1)) {
            self.send(&response::untagged(
                StatusKind::Ok,
                Some(Code::Unseen(i)),
                "First unseen",
            ))
            .await?;
        }
        self.send(&response::untagged(
            StatusKind::Ok,
            Some(Code::UidValidity(view.uid_validity.0)),
            "UIDs valid",
        ))
        .await?;
        self.send(&response::untagged(
            StatusKind::Ok,
            Some(Code::UidNext(view.uid_next.0)),
            "Predicted next UID",
        ))
        .await?;
        self.send(&response::untagged(
            StatusKind::Ok,
            Some(Code::HighestModSeq(wire_modseq(view.highest_modseq))),
            "Highest",
        ))
        .await?;
        self.send(&response::untagged(
            StatusKind::Ok,
            Some(response::mailbox_id_code(view.mailbox_id)),
            "Ok",
        ))
        .await?;
        if let Some(resync) = resync.filter(|r| r.uid_validity == view.uid_validity.get()) {
            self.resync(login, &mut view, resync).await?;
        }
        let done = if read_only {
            Done::ok_code(Code::ReadOnly, "Examine completed")
        } else {
            Done::ok_code(Code::ReadWrite, "Select completed")
        };
        Ok((done, view))
    }
}

/// SELECT's QRESYNC parameter: what the client knew.
struct Resync {
    uid_validity: u32,
    since: ModSeq,
    known_uids: Option<SequenceSet>,
}

/// The seq-match-data's two sets must name as many messages (RFC 7162 3.2.5); counted
/// by ranges, so a wide range costs nothing.
fn check_seq_match(seqs: &SequenceSet, uids: &SequenceSet) -> Result<(), CmdError> {
    if UidRanges::names_asterisk(seqs) || UidRanges::names_asterisk(uids) {
        return Err(CmdError::bad(
            "* is not allowed in QRESYNC's sequence match data",
        ));
    }
    if UidRanges::from_set(seqs, 0).len() != UidRanges::from_set(uids, 0).len() {
        return Err(CmdError::bad(
            "QRESYNC's sequence match data names unequal numbers of messages and UIDs",
        ));
    }
    Ok(())
}

impl Client {
    /// QRESYNC's answer inside SELECT (RFC 7162 3.2.5.1): VANISHED (EARLIER), then
    /// `* n FETCH (UID FLAGS MODSEQ)` for every message (of known-uids, when given)
    /// changed after the client's modseq, taken from the view just made.
    async fn resync(
        &mut self,
        login: &Authenticated,
        view: &mut MailboxView,
        resync: Resync,
    ) -> Result<(), CmdError> {
        let known = match &resync.known_uids {
            Some(set) => UidRanges::from_set(set, 0),
            None => UidRanges::below(view.uid_next),
        };
        let changes = (login.store)
            .changes_since(&login.user, &view.name, resync.since)
            .await?;
        if let Some(earlier) = vanished_earlier(&changes, &known, view) {
            self.send(&earlier).await?;
        }
        let enabled = self.enabled;
        let limit = resync.known_uids.is_some();
        for (i, msg) in view.messages.iter().enumerate() {
            if msg.modseq > resync.since && (!limit || known.contains(msg.uid.get())) {
                self.send(&change_response(i, msg, true, enabled, true))
                    .await?;
            }
        }
        Ok(())
    }
}
