//! The selected mailbox as one session sees it: its message list (sequence number =
//! position), and the bringing-in of changes made elsewhere as untagged
//! `EXISTS`/`EXPUNGE`/`FETCH` responses, following RFC 3501's rules on when an
//! `EXPUNGE` may be sent. Once the client enabled CONDSTORE (RFC 7162 3.1) every
//! flag FETCH carries the message's MODSEQ, and a modseq change alone is told too;
//! once it enabled QRESYNC (RFC 7162 3.2) those FETCHes carry the UID and expunges go
//! out as one `VANISHED` of UIDs instead of `EXPUNGE`s.

use std::collections::BTreeSet;
use std::num::{NonZeroU32, NonZeroU64};

use chrono::{DateTime, FixedOffset};
use futures::FutureExt;
use futures::StreamExt;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::FlagFetch;
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use pluto_backends::{
    ChangeFeed, Changes, Flags, Keyword, MailboxName, MailboxSnapshot, MessageMeta, ModSeq,
    ObjectId, RecentRange, Uid, UidValidity,
};

use crate::response::CmdError;

/// What the client enabled of RFC 7162, by ENABLE or by a CONDSTORE enabling command
/// (3.1): session state, kept by the session's `Client` across SELECTs
/// and handed to what writes untagged responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Enabled {
    pub condstore: bool,
    /// QRESYNC; it implies CONDSTORE (RFC 7162 3.2.3).
    pub qresync: bool,
}

/// A modseq as the wire has it (`mod-sequence-value` is at least 1; no store answers 0
/// for a mailbox that exists, since creating one is a change).
pub fn wire_modseq(modseq: ModSeq) -> NonZeroU64 {
    NonZeroU64::new(modseq.0).unwrap_or(NonZeroU64::MIN)
}

/// Ascending numbers joined into runs `(first, last)`; the input must ascend.
pub fn runs(numbers: impl IntoIterator<Item = NonZeroU32>) -> Vec<(NonZeroU32, NonZeroU32)> {
    let mut out: Vec<(NonZeroU32, NonZeroU32)> = Vec::new();
    for n in numbers {
        match out.last_mut() {
            Some((_, end)) if end.get().checked_add(1) == Some(n.get()) => *end = n,
            Some((_, end)) if *end >= n => {}
            _ => out.push((n, n)),
        }
    }
    out
}

/// Runs as a sequence set (`1:3,7`); `None` when there are none.
pub fn sequence_set(runs: &[(NonZeroU32, NonZeroU32)]) -> Option<SequenceSet> {
    let seqs: Vec<Sequence> = runs
        .iter()
        .map(|&(a, b)| {
            if a == b {
                Sequence::Single(SeqOrUid::Value(a))
            } else {
                Sequence::Range(SeqOrUid::Value(a), SeqOrUid::Value(b))
            }
        })
        .collect();
    Vec1::try_from(seqs).ok().map(SequenceSet)
}

/// One message in the session's view.
#[derive(Clone, Debug)]
pub struct Msg {
    pub uid: Uid,
    pub flags: Flags,
    pub modseq: ModSeq,
    pub internal_date: DateTime<FixedOffset>,
    pub size: u32,
    /// RFC 8474's EMAILID.
    pub email_id: ObjectId,
    /// `\Recent` for this session (RFC 3501 2.3.2): it was the first to be told of it.
    pub recent: bool,
}

impl From<MessageMeta> for Msg {
    fn from(m: MessageMeta) -> Self {
        Self {
            uid: m.uid,
            flags: m.flags,
            modseq: m.modseq,
            internal_date: m.internal_date,
            size: m.size,
            email_id: m.email_id,
            recent: false,
        }
    }
}

impl Msg {
    /// FETCH FLAGS: the stored flags, and `\Recent` when it is recent for this session.
    pub fn wire_flags(&self) -> Vec<FlagFetch<'static>> {
        let mut out = crate::flags::to_wire_fetch(&self.flags);
        if self.recent {
            out.push(FlagFetch::Recent);
        }
        out
    }
}

/// One session's view of its selected mailbox; the session's selected state holds it
/// beside the login.
pub struct MailboxView {
    pub name: MailboxName,
    pub read_only: bool,
    pub uid_validity: UidValidity,
    /// RFC 8474's MAILBOXID.
    pub mailbox_id: ObjectId,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    /// Ascending by UID; sequence number n is `messages[n - 1]`.
    pub messages: Vec<Msg>,
    /// Expunged in the store, not yet announced to this client.
    pub pending_expunge: BTreeSet<Uid>,
    pub feed: ChangeFeed,
    /// The feed told of a change this session has not fetched yet.
    pub feed_dirty: bool,
    /// The feed ended: the store behind it is gone.
    pub feed_closed: bool,
    /// The keywords this client was told of in FLAGS / PERMANENTFLAGS.
    pub keywords: BTreeSet<Keyword>,
    /// The UID ranges the store said are `\Recent` for this session (claimed when
    /// read-write); a message that arrives later in one of them is recent too.
    recent: Vec<RecentRange>,
    /// New messages came into view since `recent` was last asked about.
    pub added_since_claim: bool,
    /// The RECENT count this client was last told.
    pub announced_recent: u32,
    /// SEARCHRES's saved search result (`$`), empty at every SELECT (RFC 5182 2.1).
    pub saved: crate::searchres::SavedResult,
}

impl MailboxView {
    pub fn new(
        name: MailboxName,
        read_only: bool,
        snapshot: MailboxSnapshot,
        feed: ChangeFeed,
    ) -> Self {
        let keywords = snapshot
            .messages
            .iter()
            .flat_map(|m| m.flags.keywords().iter().cloned())
            .collect();
        Self {
            keywords,
            name,
            read_only,
            uid_validity: snapshot.uid_validity,
            mailbox_id: snapshot.mailbox_id,
            uid_next: snapshot.uid_next,
            highest_modseq: snapshot.highest_modseq,
            messages: snapshot.messages.into_iter().map(Msg::from).collect(),
            pending_expunge: BTreeSet::new(),
            feed,
            feed_dirty: false,
            feed_closed: false,
            recent: Vec::new(),
            added_since_claim: false,
            announced_recent: 0,
            saved: Default::default(),
        }
    }

    /// Marks the messages of `range` `\Recent` for this session, now and when they arrive.
    pub fn add_recent(&mut self, range: RecentRange) {
        if range.after >= range.upto {
            return;
        }
        for m in &mut self.messages {
            if range.contains(m.uid) {
                m.recent = true;
            }
        }
        match self.recent.last_mut() {
            // Consecutive claims of one session join up, so the list stays short.
            Some(last) if last.upto == range.after => last.upto = range.upto,
            _ => self.recent.push(range),
        }
        // New mail arrives above the highest UID in view, and the messages in view are
        // marked already: a range below that UID can match nothing any more.
        if let Some(highest) = self.messages.last().map(|m| m.uid.get()) {
            self.recent.retain(|r| r.upto >= highest);
        }
    }

    /// How many messages in view are `\Recent` for this session (the RECENT response).
    pub fn recent_count(&self) -> u32 {
        self.messages.iter().filter(|m| m.recent).count() as u32
    }

    /// `* FLAGS` and `* OK [PERMANENTFLAGS]` for the keywords known now.
    pub fn flag_announcements(&self) -> Vec<Response<'static>> {
        let keywords: Vec<Keyword> = self.keywords.iter().cloned().collect();
        let permanent = if self.read_only {
            Vec::new()
        } else {
            crate::flags::permanent_flags(&keywords)
        };
        vec![
            Response::Data(Data::Flags(crate::flags::mailbox_flags(&keywords))),
            crate::response::untagged(
                imap_codec::imap_types::response::StatusKind::Ok,
                Some(imap_codec::imap_types::response::Code::PermanentFlags(
                    permanent,
                )),
                "Flags permitted",
            ),
        ]
    }

    /// Notes the keywords of `flags`; true when one was new to this client (which then
    /// needs new FLAGS before a FETCH shows it, RFC 3501 7.2.6).
    pub fn learn_keywords(&mut self, flags: &Flags) -> bool {
        let mut new = false;
        for k in flags.keywords() {
            new |= self.keywords.insert(k.clone());
        }
        new
    }

    pub fn index_of(&self, uid: Uid) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    pub fn exists(&self) -> u32 {
        self.messages.len() as u32
    }

    /// Takes every notification waiting on the feed without blocking.
    /// After this session's own STORE: when the store gave the change the mailbox's next
    /// modseq (see [`pluto_backends::StoreOutcome::updated`]), nothing else changed since
    /// the view was last brought up to date, so the view (once the outcome is applied) is
    /// current and the feed's notice of this change needs no round trip to the store.
    pub fn note_own_store(&mut self, updated: &[MessageMeta]) {
        let Some(first) = updated.first() else {
            return;
        };
        if first.modseq.0 == self.highest_modseq.0 + 1
            && updated.iter().all(|m| m.modseq == first.modseq)
        {
            self.highest_modseq = first.modseq;
        }
    }

    pub fn drain_feed(&mut self) {
        while let Some(next) = self.feed.next().now_or_never() {
            match next {
                Some(modseq) => {
                    if modseq > self.highest_modseq {
                        self.feed_dirty = true;
                    }
                }
                None => {
                    self.feed_closed = true;
                    break;
                }
            }
        }
    }

    /// Folds a change set into the view and returns the untagged responses that tell the
    /// client. With `allow_expunge` false, expunges are kept for later (RFC 3501 7.4.1).
    pub fn apply(
        &mut self,
        changes: Changes,
        allow_expunge: bool,
        with_uid: bool,
        enabled: Enabled,
    ) -> Vec<Response<'static>> {
        let mut out = Vec::new();
        let before = self.messages.len();
        let known = self.keywords.len();
        match changes {
            Changes::Delta {
                highest_modseq,
                uid_next,
                updated,
                expunged,
            } => {
                for uid in expunged {
                    if self.index_of(uid).is_some() {
                        self.pending_expunge.insert(uid);
                    }
                }
                for meta in updated {
                    self.update(meta, with_uid, enabled, &mut out);
                }
                self.highest_modseq = self.highest_modseq.max(highest_modseq);
                self.uid_next = self.uid_next.max(uid_next);
            }
            Changes::Snapshot(snapshot) => {
                let present: BTreeSet<Uid> = snapshot.messages.iter().map(|m| m.uid).collect();
                for m in &self.messages {
                    if !present.contains(&m.uid) {
                        self.pending_expunge.insert(m.uid);
                    }
                }
                for meta in snapshot.messages {
                    self.update(meta, with_uid, enabled, &mut out);
                }
                self.highest_modseq = self.highest_modseq.max(snapshot.highest_modseq);
                self.uid_next = self.uid_next.max(snapshot.uid_next);
            }
        }
        let added = self.messages.len() - before;
        if self.keywords.len() != known {
            let mut announced = self.flag_announcements();
            announced.append(&mut out);
            out = announced;
        }
        if allow_expunge {
            out.extend(self.take_expunges(enabled));
        }
        if added > 0 {
            out.push(Response::Data(Data::Exists(self.exists())));
        }
        self.added_since_claim |= added > 0;
        out
    }

    fn update(
        &mut self,
        meta: MessageMeta,
        with_uid: bool,
        enabled: Enabled,
        out: &mut Vec<Response<'static>>,
    ) {
        let uid = meta.uid;
        self.learn_keywords(&meta.flags);
        match self.index_of(uid) {
            Some(i) => {
                if self.pending_expunge.contains(&uid) {
                    return;
                }
                let msg = &mut self.messages[i];
                // With CONDSTORE a new modseq is news even when the flags are the same
                // (the client keeps each message's modseq).
                let newer = enabled.condstore && meta.modseq > msg.modseq;
                msg.modseq = msg.modseq.max(meta.modseq);
                if msg.flags != meta.flags || newer {
                    msg.flags = meta.flags;
                    out.push(flags_response(i, msg, with_uid, enabled));
                }
            }
            None => {
                // UIDs only ascend: a UID above the last one is a new message; one below it
                // was expunged here already.
                if self.messages.last().is_none_or(|last| uid > last.uid) {
                    let mut msg = Msg::from(meta);
                    msg.recent = self.recent.iter().any(|r| r.contains(uid));
                    self.messages.push(msg);
                }
            }
        }
    }

    /// Announces and removes the expunges kept for later: an `EXPUNGE` each, or with
    /// QRESYNC one `VANISHED` of their UIDs (RFC 7162 3.2.10).
    pub fn take_expunges(&mut self, enabled: Enabled) -> Vec<Response<'static>> {
        let mut out = Vec::new();
        let mut gone = Vec::new();
        let pending = std::mem::take(&mut self.pending_expunge);
        for uid in pending {
            if let Some(i) = self.index_of(uid) {
                self.messages.remove(i);
                gone.push(uid.0);
                if let Some(seq) = NonZeroU32::new(i as u32 + 1) {
                    out.push(Response::Data(Data::Expunge(seq)));
                }
            }
        }
        if enabled.qresync {
            return sequence_set(&runs(gone))
                .map(|known_uids| {
                    Response::Data(Data::Vanished {
                        earlier: false,
                        known_uids,
                    })
                })
                .into_iter()
                .collect();
        }
        out
    }

    /// Removes messages this session expunged itself and returns the `EXPUNGE`s (or
    /// the `VANISHED`).
    pub fn expunged_here(&mut self, uids: &[Uid], enabled: Enabled) -> Vec<Response<'static>> {
        self.pending_expunge.extend(uids.iter().copied());
        self.take_expunges(enabled)
    }

    /// The indexes (0-based) a sequence set names, ascending and without repeats.
    /// Sequence numbers past the end are an error; UIDs that do not exist are skipped.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, CmdError> {
        let mut out = Vec::new();
        if uid {
            let Some(last) = self.messages.last().map(|m| m.uid.get()) else {
                return Ok(out);
            };
            for seq in set.0.as_ref() {
                let (lo, hi) = bounds(seq, last);
                let start = self.messages.partition_point(|m| m.uid.get() < lo);
                let end = self.messages.partition_point(|m| m.uid.get() <= hi);
                out.extend(start..end);
            }
        } else {
            let count = self.messages.len() as u32;
            for seq in set.0.as_ref() {
                let (lo, hi) = bounds(seq, count);
                if count == 0
                    && matches!(
                        seq,
                        Sequence::Single(SeqOrUid::Asterisk)
                            | Sequence::Range(_, SeqOrUid::Asterisk)
                            | Sequence::Range(SeqOrUid::Asterisk, _)
                    )
                    && hi.max(lo) <= 1
                {
                    continue;
                }
                if hi > count || lo == 0 {
                    return Err(CmdError::bad(
                        "Invalid message sequence number (no such message)",
                    ));
                }
                out.extend((lo as usize - 1)..(hi as usize));
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }
}

/// The (low, high) of one sequence or range, with `*` standing for `largest`.
pub(crate) fn bounds(seq: &Sequence, largest: u32) -> (u32, u32) {
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    match seq {
        Sequence::Single(v) => (value(v), value(v)),
        Sequence::Range(a, b) => {
            let (a, b) = (value(a), value(b));
            (a.min(b), a.max(b))
        }
    }
}

/// `* n FETCH ([UID u] FLAGS (…) [MODSEQ (m)])` for a flag change: the UID for UID
/// commands and once QRESYNC is on, the MODSEQ once CONDSTORE is (RFC 7162 3.1.3,
/// 3.2.4).
pub fn flags_response(
    index: usize,
    msg: &Msg,
    with_uid: bool,
    enabled: Enabled,
) -> Response<'static> {
    change_response(index, msg, with_uid, enabled, true)
}

/// As [`flags_response`], with FLAGS only when `with_flags` (a `.SILENT` STORE under
/// CONDSTORE still tells the new MODSEQ, RFC 7162 3.1.3).
pub fn change_response(
    index: usize,
    msg: &Msg,
    with_uid: bool,
    enabled: Enabled,
    with_flags: bool,
) -> Response<'static> {
    let mut items = Vec::new();
    if with_uid || enabled.qresync {
        items.push(MessageDataItem::Uid(msg.uid.0));
    }
    if with_flags {
        items.push(MessageDataItem::Flags(msg.wire_flags()));
    }
    if enabled.condstore {
        items.push(MessageDataItem::ModSeq(wire_modseq(msg.modseq)));
    }
    let seq = NonZeroU32::new(index as u32 + 1).unwrap_or(NonZeroU32::MIN);
    Response::Data(Data::Fetch {
        seq,
        items: Vec1::unvalidated(items),
    })
}
