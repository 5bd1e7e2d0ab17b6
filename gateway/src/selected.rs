//! The selected mailbox as one session sees it: its message list (sequence number =
//! position), and the bringing-in of changes made elsewhere as untagged
//! `EXISTS`/`EXPUNGE`/`FETCH` responses, following RFC 3501's rules on when an
//! `EXPUNGE` may be sent.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

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
    RecentRange, Uid, UidValidity,
};

use crate::response::CmdError;

/// One message in the session's view.
#[derive(Clone, Debug)]
pub struct Msg {
    pub uid: Uid,
    pub flags: Flags,
    pub modseq: ModSeq,
    pub internal_date: DateTime<FixedOffset>,
    pub size: u32,
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
                    self.update(meta, with_uid, &mut out);
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
                    self.update(meta, with_uid, &mut out);
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
            out.extend(self.take_expunges());
        }
        if added > 0 {
            out.push(Response::Data(Data::Exists(self.exists())));
        }
        self.added_since_claim |= added > 0;
        out
    }

    fn update(&mut self, meta: MessageMeta, with_uid: bool, out: &mut Vec<Response<'static>>) {
        let uid = meta.uid;
        self.learn_keywords(&meta.flags);
        match self.index_of(uid) {
            Some(i) => {
                if self.pending_expunge.contains(&uid) {
                    return;
                }
                let msg = &mut self.messages[i];
                msg.modseq = msg.modseq.max(meta.modseq);
                if msg.flags != meta.flags {
                    msg.flags = meta.flags;
                    out.push(flags_response(i, msg, with_uid));
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

    /// Announces and removes the expunges kept for later.
    pub fn take_expunges(&mut self) -> Vec<Response<'static>> {
        let mut out = Vec::new();
        let pending = std::mem::take(&mut self.pending_expunge);
        for uid in pending {
            if let Some(i) = self.index_of(uid) {
                self.messages.remove(i);
                if let Some(seq) = NonZeroU32::new(i as u32 + 1) {
                    out.push(Response::Data(Data::Expunge(seq)));
                }
            }
        }
        out
    }

    /// Removes messages this session expunged itself and returns the `EXPUNGE`s.
    pub fn expunged_here(&mut self, uids: &[Uid]) -> Vec<Response<'static>> {
        self.pending_expunge.extend(uids.iter().copied());
        self.take_expunges()
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
fn bounds(seq: &Sequence, largest: u32) -> (u32, u32) {
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

/// `* n FETCH (FLAGS (…) [UID u])` for a flag change.
pub fn flags_response(index: usize, msg: &Msg, with_uid: bool) -> Response<'static> {
    let mut items = vec![MessageDataItem::Flags(msg.wire_flags())];
    if with_uid {
        items.push(MessageDataItem::Uid(msg.uid.0));
    }
    let seq = NonZeroU32::new(index as u32 + 1).unwrap_or(NonZeroU32::MIN);
    Response::Data(Data::Fetch {
        seq,
        items: Vec1::unvalidated(items),
    })
}
