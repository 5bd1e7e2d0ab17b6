//! One named test per conflict the README describes: what each replica shows after the
//! concurrent writes meet, and that the replicas agree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pluto_crdt::{
    BodyRef, Changes, Config, CrdtError, Flag, FlagChange, FlagSet, InternalDate, MailboxName,
    MessageData, ModSeq, Op, OpKind, ReplicaId, Uid, UserState,
};

fn mb(name: &str) -> MailboxName {
    MailboxName::new(name).unwrap()
}

fn uid(n: u32) -> Uid {
    Uid::new(n).unwrap()
}

/// A few replicas and an outbox per replica; delivery is explicit.
struct Cluster {
    nodes: Vec<UserState>,
    /// Ops each replica issued and has not yet sent to everyone.
    outbox: Vec<Vec<Op>>,
}

impl Cluster {
    fn new(n: usize) -> Self {
        let members: Vec<ReplicaId> = (0..n).map(|i| ReplicaId(i as u16)).collect();
        let mut nodes: Vec<UserState> = members
            .iter()
            .map(|r| {
                UserState::new(
                    *r,
                    Config {
                        uid_stride: 8,
                        members: members.clone(),
                    },
                )
                .unwrap()
            })
            .collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            let peers = members.iter().copied().filter(|r| r.0 as usize != i);
            assert!(node.set_reachable(peers).is_empty());
        }
        let mut cluster = Cluster {
            outbox: vec![Vec::new(); n],
            nodes,
        };
        let ops = cluster.nodes[0].create_mailbox(&mb("INBOX"), None).unwrap();
        cluster.sent(0, ops);
        cluster.sync_all();
        cluster
    }

    fn sent(&mut self, from: usize, ops: Vec<Op>) {
        self.outbox[from].extend(ops);
    }

    /// Delivers everything `from` has issued to `to`; follow-ups go to `to`'s outbox.
    fn deliver(&mut self, from: usize, to: usize) {
        let ops = self.outbox[from].clone();
        let follow = self.nodes[to].apply_remote(ops).unwrap();
        self.sent(to, follow);
    }

    /// Everyone sends everything to everyone until nothing new is issued.
    fn sync_all(&mut self) {
        for _ in 0..20 {
            let before: usize = self.outbox.iter().map(Vec::len).sum();
            for from in 0..self.nodes.len() {
                for to in 0..self.nodes.len() {
                    if from != to {
                        self.deliver(from, to);
                    }
                }
            }
            let after: usize = self.outbox.iter().map(Vec::len).sum();
            if after == before {
                self.assert_converged();
                return;
            }
        }
        panic!("the cluster did not settle");
    }

    fn assert_converged(&self) {
        let describe = |s: &UserState| {
            let list = s.mailboxes();
            let snaps: Vec<_> = list
                .iter()
                .map(|m| s.snapshot(&mb(&m.name)).unwrap())
                .collect();
            (list, snaps, s.subscriptions())
        };
        let first = describe(&self.nodes[0]);
        for node in &self.nodes[1..] {
            assert_eq!(describe(node), first);
        }
    }

    fn append(&mut self, i: usize, mailbox: &str, n: usize) -> Vec<Uid> {
        let messages = (0..n).map(|k| data(i * 1000 + k)).collect();
        let applied = self.nodes[i].append(&mb(mailbox), messages).unwrap();
        self.sent(i, applied.ops);
        applied.outcome.uids
    }

    /// `to` hears what `from` holds (a link's heartbeat): it acknowledges claims.
    fn report(&mut self, from: usize, to: usize) {
        let version = self.nodes[from].version().clone();
        let follow = self.nodes[to].report_progress(ReplicaId(from as u16), &version);
        self.sent(to, follow);
    }

    /// Replica `i` claims dense UIDs and every peer acknowledges it.
    fn claim_acknowledged(&mut self, i: usize) {
        let ops = self.nodes[i]
            .claim_uids(pluto_crdt::DEFAULT_CLAIM_WINDOW)
            .unwrap();
        assert_eq!(ops.len(), 1, "a first claim is one op");
        self.sent(i, ops);
        for to in 0..self.nodes.len() {
            if to != i {
                self.deliver(i, to);
                self.report(to, i);
            }
        }
        assert!(self.nodes[i].holds_uid_claim());
    }

    fn uid_next(&self, i: usize, mailbox: &str) -> u32 {
        self.nodes[i].snapshot(&mb(mailbox)).unwrap().uid_next.get()
    }

    fn create(&mut self, i: usize, name: &str) {
        let ops = self.nodes[i].create_mailbox(&mb(name), None).unwrap();
        self.sent(i, ops);
    }

    fn uids(&self, i: usize, mailbox: &str) -> Vec<u32> {
        self.nodes[i]
            .snapshot(&mb(mailbox))
            .unwrap()
            .messages
            .iter()
            .map(|m| m.uid.get())
            .collect()
    }

    fn names(&self, i: usize) -> Vec<String> {
        self.nodes[i]
            .mailboxes()
            .into_iter()
            .map(|m| m.name)
            .collect()
    }
}

fn data(n: usize) -> MessageData {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&(n as u64).to_le_bytes());
    MessageData {
        body: BodyRef(hash),
        size: 1000 + n as u32,
        internal_date: InternalDate {
            seconds: 1_700_000_000,
            offset_minutes: -300,
        },
        flags: FlagSet::new(),
    }
}

fn flags(list: &[Flag]) -> FlagSet {
    list.iter().cloned().collect()
}

#[test]
fn same_uid_range_appended_on_two_replicas() {
    let mut c = Cluster::new(2);
    let v = c.nodes[0].snapshot(&mb("INBOX")).unwrap().uid_validity;
    // Concurrent appends: replica 0 binds UIDs ≡ 0 (mod 8), replica 1 UIDs ≡ 1.
    assert_eq!(c.append(0, "INBOX", 1), vec![uid(8)]);
    assert_eq!(c.append(1, "INBOX", 1), vec![uid(1)]);
    // Replica 1 learns of UID 8 first: above everything it showed, so shown at once.
    c.deliver(0, 1);
    assert_eq!(c.uids(1, "INBOX"), vec![1, 8]);
    // Replica 0 (the leader) has shown 8, so replica 1's message cannot appear at 1
    // there: the leader gives it a new UID above 8.
    c.deliver(1, 0);
    assert_eq!(c.uids(0, "INBOX"), vec![8, 16]);
    c.sync_all();
    // Replica 1's clients see UID 1 expunged and the message again at 16. UID 1 is
    // never used again; UIDVALIDITY did not change.
    assert_eq!(c.uids(1, "INBOX"), vec![8, 16]);
    assert_eq!(c.nodes[1].snapshot(&mb("INBOX")).unwrap().uid_validity, v);
    let Changes::Delta { expunged, .. } =
        c.nodes[1].changes_since(&mb("INBOX"), ModSeq(0)).unwrap()
    else {
        panic!("expected a delta");
    };
    assert_eq!(expunged, vec![uid(1)]);
}

#[test]
fn follower_hides_a_late_message_until_the_leader_binds_it() {
    let mut c = Cluster::new(3);
    c.append(2, "INBOX", 1); // UID 2
    c.append(1, "INBOX", 1); // UID 1
    // Replica 2 (not leader) has shown 2, then gets replica 1's message at UID 1: it
    // must not show it below 2, so it floors it (hidden) instead of picking a UID.
    c.deliver(1, 2);
    assert_eq!(c.uids(2, "INBOX"), vec![2]);
    assert!(
        c.outbox[2]
            .iter()
            .any(|op| matches!(op.kind, OpKind::Floor { .. }))
    );
    c.sync_all();
    let uids = c.uids(2, "INBOX");
    assert_eq!(uids.len(), 2);
    assert!(uids.iter().all(|&u| u >= 2), "{uids:?}");
}

#[test]
fn add_and_remove_of_one_flag() {
    let mut c = Cluster::new(2);
    c.append(0, "INBOX", 1);
    c.sync_all();
    let uid = [uid(8)];
    let seen = flags(&[Flag::Seen]);
    let a = c.nodes[0]
        .store_flags(&mb("INBOX"), &uid, &FlagChange::add(seen.clone()), None)
        .unwrap();
    c.sent(0, a.ops);
    c.sync_all();
    // Replica 0 removes \Seen while replica 1 adds it again: the add wins.
    let r = c.nodes[0]
        .store_flags(&mb("INBOX"), &uid, &FlagChange::remove(seen.clone()), None)
        .unwrap();
    let a = c.nodes[1]
        .store_flags(&mb("INBOX"), &uid, &FlagChange::add(seen.clone()), None)
        .unwrap();
    c.sent(0, r.ops);
    c.sent(1, a.ops);
    c.sync_all();
    let m = &c.nodes[0].snapshot(&mb("INBOX")).unwrap().messages[0];
    assert!(m.flags.contains(&Flag::Seen));
    // A remove that has seen every add removes the flag.
    let r = c.nodes[1]
        .store_flags(&mb("INBOX"), &uid, &FlagChange::remove(seen), None)
        .unwrap();
    c.sent(1, r.ops);
    c.sync_all();
    assert!(
        c.nodes[0].snapshot(&mb("INBOX")).unwrap().messages[0]
            .flags
            .is_empty()
    );
}

#[test]
fn expunge_against_store() {
    let mut c = Cluster::new(2);
    c.append(0, "INBOX", 2);
    c.sync_all();
    let x = c.nodes[0].expunge(&mb("INBOX"), &[uid(8)]).unwrap();
    let s = c.nodes[1]
        .store_flags(
            &mb("INBOX"),
            &[uid(8), uid(16)],
            &FlagChange::add(flags(&[Flag::Flagged])),
            None,
        )
        .unwrap();
    assert_eq!(x.outcome, vec![uid(8)]);
    c.sent(0, x.ops);
    c.sent(1, s.ops);
    c.sync_all();
    let snap = c.nodes[1].snapshot(&mb("INBOX")).unwrap();
    assert_eq!(snap.messages.len(), 1);
    assert_eq!(snap.messages[0].uid, uid(16));
    assert!(snap.messages[0].flags.contains(&Flag::Flagged));
}

#[test]
fn delete_against_append() {
    let mut c = Cluster::new(2);
    c.create(0, "Work");
    c.append(0, "Work", 2);
    c.sync_all();
    let d = c.nodes[0].delete_mailbox(&mb("Work")).unwrap();
    c.sent(0, d);
    let late = c.append(1, "Work", 1);
    c.sync_all();
    // The mailbox survives, holding only the mail the delete had not seen.
    assert!(c.names(0).contains(&"Work".to_owned()));
    assert_eq!(
        c.uids(0, "Work"),
        late.iter().map(|u| u.get()).collect::<Vec<_>>()
    );
    // Deleting it again, having seen everything, deletes it.
    let d = c.nodes[1].delete_mailbox(&mb("Work")).unwrap();
    c.sent(1, d);
    c.sync_all();
    assert_eq!(c.names(0), vec!["INBOX".to_owned()]);
}

#[test]
fn rename_against_append() {
    let mut c = Cluster::new(2);
    c.create(0, "Work");
    c.create(0, "Work/Old");
    c.sync_all();
    let r = c.nodes[0]
        .rename_mailbox(&mb("Work"), &mb("Projects"))
        .unwrap();
    c.sent(0, r);
    let uids = c.append(1, "Work/Old", 1);
    c.sync_all();
    // Operations name mailboxes by id: the append follows its mailbox, children too.
    assert_eq!(c.names(1), vec!["INBOX", "Projects", "Projects/Old"]);
    assert_eq!(c.uids(1, "Projects/Old"), vec![uids[0].get()]);
}

#[test]
fn concurrent_renames_to_one_name_keep_both_mailboxes() {
    let mut c = Cluster::new(2);
    c.create(0, "A");
    c.create(0, "B");
    c.append(0, "A", 1);
    c.append(0, "B", 1);
    c.sync_all();
    let r0 = c.nodes[0].rename_mailbox(&mb("A"), &mb("C")).unwrap();
    let r1 = c.nodes[1].rename_mailbox(&mb("B"), &mb("C")).unwrap();
    c.sent(0, r0);
    c.sent(1, r1);
    c.sync_all();
    // One keeps the name, the other shows as "C~<its UIDVALIDITY>": no mail hidden.
    let names = c.names(0);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"C".to_owned()));
    assert!(names.iter().any(|n| n.starts_with("C~")));
}

#[test]
fn create_of_one_name_twice() {
    let mut c = Cluster::new(3);
    c.create(1, "Work");
    c.create(2, "Work");
    c.append(1, "Work", 1);
    c.append(2, "Work", 1);
    c.sync_all();
    // One mailbox (the same incarnation), holding both messages.
    assert_eq!(c.names(0), vec!["INBOX", "Work"]);
    assert_eq!(c.uids(0, "Work").len(), 2);
}

#[test]
fn copy_into_deleted_mailbox() {
    let mut c = Cluster::new(2);
    c.create(0, "Trash");
    c.append(0, "INBOX", 1);
    c.sync_all();
    let d = c.nodes[0].delete_mailbox(&mb("Trash")).unwrap();
    c.sent(0, d);
    let copy = c.nodes[1]
        .copy(&mb("INBOX"), &[uid(8)], &mb("Trash"))
        .unwrap();
    assert_eq!(copy.outcome.mapping.len(), 1);
    c.sent(1, copy.ops);
    c.sync_all();
    assert_eq!(c.uids(0, "Trash").len(), 1);
    assert_eq!(c.uids(0, "INBOX"), vec![8]);
}

#[test]
fn move_moves_and_concurrent_moves_keep_both_copies() {
    let mut c = Cluster::new(2);
    c.create(0, "A");
    c.create(0, "B");
    c.append(0, "INBOX", 1);
    c.sync_all();
    let m0 = c.nodes[0]
        .move_messages(&mb("INBOX"), &[uid(8)], &mb("A"))
        .unwrap();
    let m1 = c.nodes[1]
        .move_messages(&mb("INBOX"), &[uid(8)], &mb("B"))
        .unwrap();
    c.sent(0, m0.ops);
    c.sent(1, m1.ops);
    c.sync_all();
    // Nothing acknowledged is lost: both moves answered OK, so both copies stay.
    assert!(c.uids(0, "INBOX").is_empty());
    assert_eq!(c.uids(0, "A").len(), 1);
    assert_eq!(c.uids(0, "B").len(), 1);
}

#[test]
fn three_way_partitions() {
    let mut c = Cluster::new(3);
    c.create(0, "Work");
    c.sync_all();
    // Each replica alone: appends, flag changes, an expunge.
    for i in 0..3 {
        c.append(i, "INBOX", 3);
        let work = c.append(i, "Work", 2);
        let uids: Vec<Uid> = c.nodes[i]
            .snapshot(&mb("INBOX"))
            .unwrap()
            .messages
            .iter()
            .map(|m| m.uid)
            .collect();
        let s = c.nodes[i]
            .store_flags(
                &mb("INBOX"),
                &uids[..1],
                &FlagChange::add(flags(&[Flag::Seen])),
                None,
            )
            .unwrap();
        c.sent(i, s.ops);
        let x = c.nodes[i].expunge(&mb("Work"), &work[..1]).unwrap();
        c.sent(i, x.ops);
    }
    let before: Vec<Vec<(u32, pluto_crdt::MessageId)>> = (0..3)
        .map(|i| {
            c.nodes[i]
                .snapshot(&mb("INBOX"))
                .unwrap()
                .messages
                .iter()
                .map(|m| (m.uid.get(), m.id))
                .collect()
        })
        .collect();
    c.sync_all();
    let after = c.nodes[0].snapshot(&mb("INBOX")).unwrap();
    assert_eq!(after.messages.len(), 9);
    // No UID a replica showed names another message now.
    for seen in &before {
        for (uid, id) in seen {
            if let Some(m) = after.messages.iter().find(|m| m.uid.get() == *uid) {
                assert_eq!(m.id, *id);
            }
        }
    }
    assert_eq!(c.uids(0, "Work").len(), 3);
    assert!(
        after
            .messages
            .iter()
            .filter(|m| m.flags.contains(&Flag::Seen))
            .count()
            == 3
    );
}

#[test]
fn subscribe_wins_over_concurrent_unsubscribe() {
    let mut c = Cluster::new(2);
    let s = c.nodes[0].subscribe(&mb("Lists")).unwrap();
    c.sent(0, s);
    c.sync_all();
    let u = c.nodes[0].unsubscribe(&mb("Lists")).unwrap();
    let s = c.nodes[1].subscribe(&mb("Lists")).unwrap();
    c.sent(0, u);
    c.sent(1, s);
    c.sync_all();
    assert_eq!(c.nodes[0].subscriptions(), vec!["Lists".to_owned()]);
}

#[test]
fn condstore_reports_changes_and_forgets_only_after_compaction() {
    let mut c = Cluster::new(2);
    c.append(0, "INBOX", 3);
    c.sync_all();
    let hms = c.nodes[0].status(&mb("INBOX")).unwrap().highest_modseq;
    let x = c.nodes[0].expunge(&mb("INBOX"), &[uid(8)]).unwrap();
    c.sent(0, x.ops);
    let s = c.nodes[0]
        .store_flags(
            &mb("INBOX"),
            &[uid(16)],
            &FlagChange::add(flags(&[Flag::Seen])),
            Some(hms),
        )
        .unwrap();
    c.sent(0, s.ops);
    let Changes::Delta {
        updated, expunged, ..
    } = c.nodes[0].changes_since(&mb("INBOX"), hms).unwrap()
    else {
        panic!("expected a delta");
    };
    assert_eq!(
        updated.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![uid(16)]
    );
    assert_eq!(expunged, vec![uid(8)]);
    // CONDSTORE: a STORE with an older UNCHANGEDSINCE leaves the message alone.
    let stale = c.nodes[0]
        .store_flags(
            &mb("INBOX"),
            &[uid(16)],
            &FlagChange::add(flags(&[Flag::Flagged])),
            Some(hms),
        )
        .unwrap();
    assert_eq!(stale.outcome.modified, vec![uid(16)]);
    assert!(stale.ops.is_empty());
    c.sync_all();
    // Until every replica's progress is known, nothing is dropped.
    assert_eq!(c.nodes[0].compact().tombstones_dropped, 0);
    for i in 0..2 {
        let version = c.nodes[1 - i].version().clone();
        let _ = c.nodes[i].report_progress(ReplicaId(1 - i as u16), &version);
    }
    let report = c.nodes[0].compact();
    assert_eq!(report.tombstones_dropped, 1);
    assert_eq!(c.nodes[0].stats().tombstones, 0);
    assert_eq!(c.nodes[0].stats().unstable_dots, 0);
    assert_eq!(
        c.nodes[0].changes_since(&mb("INBOX"), hms).unwrap(),
        Changes::TooOld
    );
}

#[test]
fn snapshots_round_trip_and_are_versioned() {
    let mut c = Cluster::new(2);
    c.create(0, "Work");
    c.append(0, "Work", 5);
    c.sync_all();
    let bytes = c.nodes[1].encode_snapshot().unwrap();
    let back = UserState::decode_snapshot(&bytes).unwrap();
    assert_eq!(back.mailboxes(), c.nodes[1].mailboxes());
    assert_eq!(
        back.snapshot(&mb("Work")).unwrap(),
        c.nodes[1].snapshot(&mb("Work")).unwrap()
    );
    assert_eq!(back.version(), c.nodes[1].version());
    let mut future = bytes.clone();
    future[0] = 3;
    assert_eq!(
        UserState::decode_snapshot(&future).unwrap_err(),
        CrdtError::SnapshotVersion(3)
    );
    assert!(matches!(
        UserState::decode_snapshot(&bytes[..bytes.len() / 2]),
        Err(CrdtError::Snapshot(_))
    ));
}

#[test]
fn ops_that_break_the_protocol_are_rejected_whole() {
    let mut c = Cluster::new(2);
    let mut ops = c.nodes[1].append(&mb("INBOX"), vec![data(1)]).unwrap().ops;
    // UID 4294967295 is never bound: UIDNEXT must fit in 32 bits.
    let OpKind::Append { messages, .. } = &mut ops[0].kind else {
        panic!("expected an append");
    };
    messages[0].uid = uid(u32::MAX);
    let before = c.nodes[0].version().clone();
    assert!(matches!(
        c.nodes[0].apply_remote(ops),
        Err(CrdtError::InvalidOp { .. })
    ));
    assert_eq!(c.nodes[0].version(), &before);
    // Replica 1 may only propose UIDVALIDITYs ≡ 1 (mod 8).
    let mut ops = c.nodes[1].create_mailbox(&mb("Work"), None).unwrap();
    let OpKind::Create { uid_validity, .. } = &mut ops[0].kind else {
        panic!("expected a create");
    };
    *uid_validity = pluto_crdt::UidValidity::new(uid_validity.get() + 1).unwrap();
    assert!(matches!(
        c.nodes[0].apply_remote(ops),
        Err(CrdtError::InvalidOp { .. })
    ));
    assert_eq!(c.nodes[0].version(), &before);
}

#[test]
fn out_of_order_and_duplicate_delivery_is_buffered() {
    let mut c = Cluster::new(2);
    let mut ops = Vec::new();
    ops.extend(c.nodes[0].create_mailbox(&mb("Work"), None).unwrap());
    ops.extend(
        c.nodes[0]
            .append(&mb("Work"), vec![data(1), data(2)])
            .unwrap()
            .ops,
    );
    let reversed: Vec<Op> = ops.iter().rev().cloned().collect();
    assert!(
        c.nodes[1]
            .apply_remote(reversed[..1].to_vec())
            .unwrap()
            .is_empty()
    );
    assert_eq!(c.nodes[1].stats().pending_ops, 1);
    c.nodes[1].apply_remote(reversed.clone()).unwrap();
    c.nodes[1].apply_remote(reversed).unwrap();
    assert_eq!(c.nodes[1].stats().pending_ops, 0);
    assert_eq!(c.uids(1, "Work"), vec![8, 16]);
}

#[test]
fn one_writer_binds_uids_one_two_three_once_its_claim_is_acknowledged() {
    let mut c = Cluster::new(3);
    // Before any claim: the writer's residue (0 mod 8).
    assert_eq!(c.append(0, "INBOX", 1), vec![uid(8)]);
    c.claim_acknowledged(0);
    assert!(!c.nodes[1].holds_uid_claim());
    for _ in 0..3 {
        let next = c.uid_next(0, "INBOX");
        assert_eq!(
            c.append(0, "INBOX", 1),
            vec![uid(next)],
            "APPENDUID = UIDNEXT before"
        );
    }
    c.create(0, "Work");
    assert_eq!(c.append(0, "Work", 3), vec![uid(1), uid(2), uid(3)]);
    c.sync_all();
    assert_eq!(c.uids(2, "INBOX"), vec![8, 9, 10, 11]);
    assert_eq!(c.uids(1, "Work"), vec![1, 2, 3]);
    // A claim already held and acknowledged is not made again.
    assert!(
        c.nodes[0]
            .claim_uids(pluto_crdt::DEFAULT_CLAIM_WINDOW)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_claim_waits_for_every_member_and_a_failover_replica_binds_above_it() {
    let mut c = Cluster::new(3);
    let ops = c.nodes[0].claim_uids(16).unwrap();
    c.sent(0, ops);
    c.deliver(0, 1);
    c.report(1, 0);
    // Replica 2 has not acknowledged: still the residue.
    assert!(!c.nodes[0].holds_uid_claim());
    assert_eq!(c.append(0, "INBOX", 1), vec![uid(8)]);
    c.deliver(0, 2);
    c.report(2, 0);
    assert!(c.nodes[0].holds_uid_claim());
    assert_eq!(c.append(0, "INBOX", 2), vec![uid(9), uid(10)]);
    c.sync_all();
    // The writer is gone; replica 1 takes the writes above the window (0 + 16) in its
    // own residue, so nothing the writer may still have bound there can meet them.
    assert_eq!(c.append(1, "INBOX", 2), vec![uid(17), uid(25)]);
    c.sync_all();
    assert_eq!(c.uids(0, "INBOX"), vec![8, 9, 10, 17, 25]);
}

#[test]
fn writers_on_both_sides_of_a_partition_under_claims_never_share_a_uid() {
    let mut c = Cluster::new(2);
    c.claim_acknowledged(0);
    // Cut: each side appends without hearing the other.
    let left = c.append(0, "INBOX", 3);
    assert_eq!(left, vec![uid(1), uid(2), uid(3)]);
    let right = c.append(1, "INBOX", 2);
    assert_eq!(
        right,
        vec![uid(4097), uid(4105)],
        "above the claimed window, own residue"
    );
    // Replica 1 starts taking writes and claims: its claim supersedes replica 0's.
    let ops = c.nodes[1]
        .claim_uids(pluto_crdt::DEFAULT_CLAIM_WINDOW)
        .unwrap();
    c.sent(1, ops);
    c.sync_all();
    // Both sides' messages kept, no UID retired: replica 0's messages were below
    // replica 1's threshold and got new UIDs above it (real concurrency).
    let uids = c.uids(0, "INBOX");
    assert_eq!(uids.len(), 5);
    assert!(uids.contains(&4097) && uids.contains(&4105), "{uids:?}");
    assert!(uids.iter().all(|u| *u >= 4097), "{uids:?}");
    // Replica 0 now knows a newer claim than its own: it binds in its residue again
    // until it claims anew and replica 1 acknowledges.
    assert!(!c.nodes[0].holds_uid_claim());
    let ops = c.nodes[0]
        .claim_uids(pluto_crdt::DEFAULT_CLAIM_WINDOW)
        .unwrap();
    assert_eq!(ops.len(), 1);
    c.sent(0, ops);
    c.deliver(0, 1);
    c.report(1, 0);
    assert!(c.nodes[0].holds_uid_claim());
    let next = c.uid_next(0, "INBOX");
    assert_eq!(c.append(0, "INBOX", 1), vec![uid(next)]);
    c.sync_all();
}
