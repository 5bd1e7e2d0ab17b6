//! QRESYNC's resynchronization arithmetic (RFC 7162 3.2.5, 3.2.6): the UID ranges a
//! client names (SELECT's known-uids, a UID FETCH's set), and, from the store's answer
//! to "what changed after modseq m", the UIDs such a client must forget — the
//! `VANISHED (EARLIER)` set. From a [`Changes::Delta`] that is exactly the expunges
//! since m; from a [`Changes::Snapshot`] (the store no longer remembers every expunge
//! since m) it is every UID the client named, below UIDNEXT, that no message has now,
//! which RFC 7162 allows (a client ignores UIDs it never had). Never a UID of a message
//! that exists or is still in the session's view, never one outside what the client
//! named. Work is in ranges and messages, never in the width of a range:
//! `1:4294967295` is one range.

use std::num::NonZeroU32;

use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use pluto_backends::{Changes, Uid};

use crate::selected::{MailboxView, runs, sequence_set};

/// A set of UIDs as sorted, disjoint, non-adjacent ranges `(first, last)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidRanges(Vec<(u32, u32)>);

impl UidRanges {
    /// The UIDs a client's set names, `*` standing for `largest`.
    pub fn from_set(set: &SequenceSet, largest: u32) -> Self {
        let value = |v: &SeqOrUid| match v {
            SeqOrUid::Value(n) => n.get(),
            SeqOrUid::Asterisk => largest,
        };
        let mut ranges: Vec<(u32, u32)> = set
            .0
            .as_ref()
            .iter()
            .map(|seq| match seq {
                Sequence::Single(v) => (value(v), value(v)),
                Sequence::Range(a, b) => (value(a).min(value(b)), value(a).max(value(b))),
            })
            .filter(|&(a, _)| a > 0)
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some((_, end)) if a <= end.saturating_add(1) => *end = (*end).max(b),
                _ => merged.push((a, b)),
            }
        }
        Self(merged)
    }

    /// Every UID below `uid_next`: what a client that named no UIDs may know.
    pub fn below(uid_next: Uid) -> Self {
        match uid_next.get().checked_sub(1) {
            Some(last) if last > 0 => Self(vec![(1, last)]),
            _ => Self(Vec::new()),
        }
    }

    /// The set names `*` somewhere (not allowed in QRESYNC's known-uids and
    /// seq-match-data).
    pub fn names_asterisk(set: &SequenceSet) -> bool {
        set.0.as_ref().iter().any(|seq| match seq {
            Sequence::Single(v) => *v == SeqOrUid::Asterisk,
            Sequence::Range(a, b) => *a == SeqOrUid::Asterisk || *b == SeqOrUid::Asterisk,
        })
    }

    /// How many UIDs: counted by ranges.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, uid: u32) -> bool {
        let i = self.0.partition_point(|&(_, end)| end < uid);
        self.0.get(i).is_some_and(|&(start, _)| start <= uid)
    }

    /// The ranges cut to end below `uid_next` (no message has a UID at or above it).
    fn below_next(&self, uid_next: Uid) -> Vec<(u32, u32)> {
        let Some(last) = uid_next.get().checked_sub(1) else {
            return Vec::new();
        };
        self.0
            .iter()
            .filter(|&&(a, _)| a <= last)
            .map(|&(a, b)| (a, b.min(last)))
            .collect()
    }
}

/// `* VANISHED (EARLIER) …` for a client of `view` (SELECT's QRESYNC, UID FETCH's
/// VANISHED): [`vanished`] as a response, none when the set is empty.
pub fn vanished_earlier(
    changes: &Changes,
    known: &UidRanges,
    view: &MailboxView,
) -> Option<Response<'static>> {
    let in_view: Vec<Uid> = view.messages.iter().map(|m| m.uid).collect();
    let known_uids = sequence_set(&vanished(changes, known, &in_view))?;
    Some(Response::Data(Data::Vanished {
        earlier: true,
        known_uids,
    }))
}

/// The `VANISHED (EARLIER)` set for a client that knew the mailbox at the modseq
/// `changes` answers for and names the UIDs `known`: see the module doc. `keep`, the
/// UIDs of the session's view, ascending, are never in it (a message still in view
/// is expunged later, by a `VANISHED` without EARLIER).
pub fn vanished(
    changes: &Changes,
    known: &UidRanges,
    keep: &[Uid],
) -> Vec<(NonZeroU32, NonZeroU32)> {
    let kept = |uid: &Uid| keep.binary_search(uid).is_ok();
    match changes {
        Changes::Delta { expunged, .. } => runs(
            expunged
                .iter()
                .filter(|u| known.contains(u.get()) && !kept(u))
                .map(|u| u.0),
        ),
        Changes::Snapshot(snapshot) => {
            // Present now: the snapshot's messages and the view's, merged in order.
            let mut present: Vec<u32> = snapshot
                .messages
                .iter()
                .map(|m| m.uid.get())
                .chain(keep.iter().map(|u| u.get()))
                .collect();
            present.sort_unstable();
            present.dedup();
            missing(&known.below_next(snapshot.uid_next), &present)
        }
    }
}

/// The UIDs of `ranges` that are not in `present` (ascending), as runs.
fn missing(ranges: &[(u32, u32)], present: &[u32]) -> Vec<(NonZeroU32, NonZeroU32)> {
    let mut out = Vec::new();
    let mut push = |a: u32, b: u32| {
        if let (Some(a), Some(b)) = (NonZeroU32::new(a), NonZeroU32::new(b)) {
            out.push((a, b));
        }
    };
    for &(a, b) in ranges {
        let start = present.partition_point(|&u| u < a);
        let end = present.partition_point(|&u| u <= b);
        // The first UID of the range not yet accounted for (none past u32::MAX).
        let mut next = Some(a);
        for &u in &present[start..end] {
            if let Some(n) = next.filter(|&n| u > n) {
                push(n, u - 1);
            }
            next = u.checked_add(1);
        }
        if let Some(n) = next.filter(|&n| n <= b) {
            push(n, b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use pluto_backends::{MailboxSnapshot, ModSeq, UidValidity};

    fn set(text: &str) -> SequenceSet {
        SequenceSet::try_from(text).unwrap()
    }

    fn uid(n: u32) -> Uid {
        Uid::new(n).unwrap()
    }

    fn shown(runs: &[(NonZeroU32, NonZeroU32)]) -> String {
        runs.iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}:{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn snapshot(uids: &[u32], uid_next: u32) -> Changes {
        Changes::Snapshot(MailboxSnapshot {
            uid_validity: UidValidity::new(1).unwrap(),
            mailbox_id: pluto_backends::ObjectId([0; 16]),
            uid_next: uid(uid_next),
            highest_modseq: ModSeq(9),
            messages: uids
                .iter()
                .map(|&u| pluto_backends::MessageMeta {
                    uid: uid(u),
                    flags: Default::default(),
                    modseq: ModSeq(1),
                    internal_date: chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
                        .unwrap(),
                    size: 1,
                    email_id: pluto_backends::ObjectId([0; 16]),
                })
                .collect(),
        })
    }

    #[test]
    fn client_sets_merge_into_sorted_ranges() {
        let r = UidRanges::from_set(&set("9,1:3,4,20:10,*"), 30);
        assert_eq!(r, UidRanges(vec![(1, 4), (9, 20), (30, 30)]));
        assert!(r.contains(4) && r.contains(15) && r.contains(30));
        assert!(!r.contains(5) && !r.contains(21) && !r.contains(31));
    }

    #[test]
    fn a_delta_gives_its_expunges_inside_the_known_set_and_outside_the_view() {
        let changes = Changes::Delta {
            highest_modseq: ModSeq(9),
            uid_next: uid(50),
            updated: Vec::new(),
            expunged: vec![uid(2), uid(3), uid(4), uid(7), uid(40)],
        };
        let known = UidRanges::from_set(&set("1:10"), 49);
        assert_eq!(shown(&vanished(&changes, &known, &[uid(4)])), "2:3,7");
    }

    #[test]
    fn a_snapshot_gives_every_named_uid_without_a_message() {
        let known = UidRanges::from_set(&set("1:4294967295"), 0);
        let changes = snapshot(&[3, 5, 6, 10], 12);
        assert_eq!(shown(&vanished(&changes, &known, &[])), "1:2,4,7:9,11");
        // A message still in view is not vanished.
        assert_eq!(shown(&vanished(&changes, &known, &[uid(4)])), "1:2,7:9,11");
        let known = UidRanges::from_set(&set("5:6,9:20"), 0);
        assert_eq!(shown(&vanished(&changes, &known, &[])), "9,11");
        assert_eq!(shown(&vanished(&snapshot(&[], 1), &known, &[])), "");
        assert_eq!(shown(&vanished(&snapshot(&[1, 2], 3), &known, &[])), "");
    }
}
