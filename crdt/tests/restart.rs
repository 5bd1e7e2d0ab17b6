//! A replica that restarts empty under its old id (its data was lost): its counter
//! starts again at 0, so a new op of its would carry the dot of one of its lost ops,
//! which the peers hold already and ignore. These tests pin what the crate does about
//! it: such a replica refuses to issue until it has its own history back, and a peer
//! refuses an op that cannot be the one it holds under that dot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pluto_crdt::{
    BodyRef, Config, CrdtError, Dot, FlagSet, InternalDate, MailboxName, MessageData, Op, OpKind,
    ReplicaId, UserState,
};

fn mb(name: &str) -> MailboxName {
    MailboxName::new(name).unwrap()
}

fn config(n: u16) -> Config {
    Config {
        uid_stride: 8,
        members: (0..n).map(ReplicaId).collect(),
    }
}

fn state(i: u16, n: u16) -> UserState {
    let mut st = UserState::new(ReplicaId(i), config(n)).unwrap();
    let _ = st.set_reachable((0..n).filter(|j| *j != i).map(ReplicaId));
    st
}

fn message(n: u8) -> MessageData {
    MessageData {
        body: BodyRef([n; 32]),
        size: 100 + u32::from(n),
        internal_date: InternalDate::default(),
        flags: FlagSet::new(),
    }
}

fn bodies(st: &UserState) -> Vec<BodyRef> {
    st.snapshot(&mb("INBOX"))
        .unwrap()
        .messages
        .iter()
        .map(|m| m.body)
        .collect()
}

/// Replica 0 made INBOX; replica 1 appended two messages; both hold everything.
/// Returns the two states and every op issued, in causal order.
fn history() -> (UserState, UserState, Vec<Op>) {
    let mut a = state(0, 2);
    let mut b = state(1, 2);
    let mut all = a.create_mailbox(&mb("INBOX"), None).unwrap();
    assert!(b.apply_remote(all.clone()).unwrap().is_empty());
    for n in 1..=2 {
        let ops = b.append(&mb("INBOX"), vec![message(n)]).unwrap().ops;
        assert!(a.apply_remote(ops.clone()).unwrap().is_empty());
        all.extend(ops);
    }
    (a, b, all)
}

/// What happened before the fix, as a test: the restarted replica's write takes the
/// dot of a lost op, the peer ignores it, and the two never agree. Now the write is
/// refused as soon as the replica has heard the peer's progress.
#[test]
fn a_replica_restarted_empty_refuses_writes_once_it_hears_a_peer() {
    let (a, b, _) = history();
    assert_eq!(b.version().get(ReplicaId(1)), 2);
    let mut b2 = state(1, 2);
    assert!(
        b2.report_progress(ReplicaId(0), &a.version().clone())
            .is_empty()
    );
    let err = b2
        .create_mailbox(&mb("INBOX"), None)
        .expect_err("a replica behind its own history must not write");
    assert_eq!(
        err,
        CrdtError::OwnHistoryMissing {
            replica: ReplicaId(1),
            issued: 0,
            known: 2,
            awaiting: 0,
        }
    );
    assert!(err.to_string().contains("restarted without its history"));
    assert!(b2.subscribe(&mb("INBOX")).is_err());
    assert!(
        b2.create_default_mailbox(&mb("INBOX"), None).is_err(),
        "not even the default mailboxes"
    );
}

/// The same replica learns of its lost ops from a peer's op that depends on them
/// (waiting in its causal buffer): it refuses too, and issues no follow-up.
#[test]
fn an_op_depending_on_lost_ops_of_my_own_id_stops_my_writes() {
    let (mut a, _, _) = history();
    let later = a.append(&mb("INBOX"), vec![message(9)]).unwrap().ops;
    let mut b2 = state(1, 2);
    // Only the newest op reaches b2: it waits for its history, which includes 1.1-1.2.
    assert!(b2.apply_remote(later).unwrap().is_empty());
    assert!(matches!(
        b2.create_mailbox(&mb("Work"), None),
        Err(CrdtError::OwnHistoryMissing { known: 2, .. })
    ));
}

/// Once the peer sends it everything it holds, the restarted replica's own ops
/// included, it has its history back and continues after its highest dot: its new
/// write reaches the peer and both agree.
#[test]
fn after_recovering_its_own_ops_from_a_peer_a_restarted_replica_writes_and_converges() {
    let (mut a, _, all) = history();
    let mut b2 = state(1, 2);
    let _ = b2.report_progress(ReplicaId(0), &a.version().clone());
    assert!(b2.append(&mb("INBOX"), vec![message(3)]).is_err());
    assert!(b2.apply_remote(all).unwrap().is_empty());
    assert_eq!(b2.version(), a.version());
    let applied = b2.append(&mb("INBOX"), vec![message(3)]).unwrap();
    assert_eq!(applied.ops[0].id, Dot::new(ReplicaId(1), 3));
    let follow = a.apply_remote(applied.ops).unwrap();
    assert!(b2.apply_remote(follow).unwrap().is_empty());
    assert_eq!(bodies(&a), bodies(&b2));
    assert_eq!(bodies(&a).len(), 3);
}

/// A state told to wait for its peers (the store does so when it starts on an empty
/// data directory) issues nothing until every other member has reported, then writes
/// normally when nobody knew of ops of its id.
#[test]
fn a_state_awaiting_its_peers_writes_only_after_every_member_reported() {
    let mut a = state(0, 3);
    let mut c = state(2, 3);
    let ops = a.create_mailbox(&mb("INBOX"), None).unwrap();
    let mut b = state(1, 3);
    b.await_peers();
    assert!(matches!(
        b.create_mailbox(&mb("Work"), None),
        Err(CrdtError::OwnHistoryMissing { awaiting: 2, .. })
    ));
    assert!(b.apply_remote(ops.clone()).unwrap().is_empty());
    assert!(c.apply_remote(ops).unwrap().is_empty());
    let _ = b.report_progress(ReplicaId(0), &a.version().clone());
    assert!(matches!(
        b.append(&mb("INBOX"), vec![message(1)]),
        Err(CrdtError::OwnHistoryMissing { awaiting: 1, .. })
    ));
    let _ = b.report_progress(ReplicaId(2), &c.version().clone());
    let applied = b.append(&mb("INBOX"), vec![message(1)]).unwrap();
    assert_eq!(applied.ops[0].id, Dot::new(ReplicaId(1), 1));
    assert!(a.apply_remote(applied.ops).unwrap().is_empty());
    assert_eq!(bodies(&a), bodies(&b));
}

/// While it may not issue, a leader holds its binds back, and gives them once it has
/// heard every peer: nothing stays hidden.
#[test]
fn a_leader_that_could_not_issue_binds_what_is_hidden_once_it_can() {
    // Replicas 1 and 2 append concurrently in the same UID range; 2 (not the leader)
    // floors 1's message, which shows below what 2 had shown. Replica 0, the leader,
    // restarted empty and awaits its peers' progress when all of it arrives.
    let mut b = state(1, 3);
    let mut c = state(2, 3);
    let mut batch = b.create_mailbox(&mb("INBOX"), None).unwrap();
    assert!(c.apply_remote(batch.clone()).unwrap().is_empty());
    let from_b = b.append(&mb("INBOX"), vec![message(1)]).unwrap().ops;
    let mut from_c = c.append(&mb("INBOX"), vec![message(2)]).unwrap().ops;
    batch.extend(from_c.clone());
    batch.extend(from_b.clone());
    let floor = c.apply_remote(from_b).unwrap();
    assert!(matches!(
        floor[..],
        [Op {
            kind: OpKind::Floor { .. },
            ..
        }]
    ));
    batch.extend(floor.clone());
    from_c.extend(floor);
    let mut a = state(0, 3);
    a.await_peers();
    assert!(a.apply_remote(batch).unwrap().is_empty());
    assert_eq!(a.stats().hidden_messages, 1);
    assert!(
        a.report_progress(ReplicaId(1), &b.version().clone())
            .is_empty()
    );
    let binds = a.report_progress(ReplicaId(2), &c.version().clone());
    assert!(
        matches!(binds[..], [Op { id, kind: OpKind::Bind { .. }, .. }] if id == Dot::new(ReplicaId(0), 1)),
        "{binds:?}"
    );
    assert_eq!(a.stats().hidden_messages, 0);
    assert_eq!(bodies(&a).len(), 2);
    // The others take the bind and agree.
    from_c.extend(binds.clone());
    assert!(b.apply_remote(from_c).unwrap().is_empty());
    assert!(c.apply_remote(binds).unwrap().is_empty());
    assert_eq!(bodies(&a), bodies(&b));
    assert_eq!(bodies(&a), bodies(&c));
}

/// A peer refuses, with a typed error and before applying anything, an op whose dot it
/// holds under another op: here the dot's op waits in its buffer.
#[test]
fn an_op_reusing_the_dot_of_a_waiting_op_is_refused() {
    let (_, mut b, _) = history();
    let mut a2 = state(0, 2);
    let lost = b.append(&mb("INBOX"), vec![message(3)]).unwrap().ops;
    // a2 has none of the history: the op waits.
    assert!(a2.apply_remote(lost.clone()).unwrap().is_empty());
    let mut forged = lost[0].clone();
    if let OpKind::Append { messages, .. } = &mut forged.kind {
        messages[0].data = message(4);
    }
    assert_eq!(
        a2.apply_remote([forged.clone()]),
        Err(CrdtError::DotReused(forged.id))
    );
    // Redelivery of the very op still passes.
    assert!(a2.apply_remote(lost).unwrap().is_empty());
}

/// A peer refuses an op whose dot it applied although it lacks the op's context: the
/// op it applied had its context here, so this one is another.
#[test]
fn an_op_reusing_an_applied_dot_with_another_context_is_refused() {
    let mut a = state(0, 3);
    let mut c = state(2, 3);
    let inbox = a.create_mailbox(&mb("INBOX"), None).unwrap();
    // Replica 1 wrote once, and a holds it; then replica 1 lost its data.
    let mut b = state(1, 3);
    assert!(b.apply_remote(inbox.clone()).unwrap().is_empty());
    let old = b.subscribe(&mb("INBOX")).unwrap();
    assert!(a.apply_remote(old).unwrap().is_empty());
    // Restarted empty, unguarded (no peer reached it yet), it learns an op of c that a
    // does not hold, and writes: its op takes the dot 1.1 again.
    assert!(c.apply_remote(inbox.clone()).unwrap().is_empty());
    let from_c = c.subscribe(&mb("INBOX")).unwrap();
    let mut b2 = state(1, 3);
    assert!(b2.apply_remote(inbox).unwrap().is_empty());
    assert!(b2.apply_remote(from_c).unwrap().is_empty());
    let reused = b2.unsubscribe(&mb("INBOX")).unwrap();
    assert_eq!(reused[0].id, Dot::new(ReplicaId(1), 1));
    assert_eq!(
        a.apply_remote(reused.clone()),
        Err(CrdtError::DotReused(reused[0].id))
    );
}

/// The limit of the receiver's check: an op reusing an applied dot whose context the
/// receiver holds cannot be told from a redelivery (a replica keeps no copy of applied
/// ops), so it is ignored. This is why the writer must not issue it: a state told to
/// await its peers refuses the write that would take this dot.
#[test]
fn a_reused_dot_whose_context_the_peer_holds_is_ignored_so_the_writer_must_refuse() {
    let (mut a, _, all) = history();
    let mut b2 = state(1, 2);
    assert!(b2.apply_remote(all[..1].to_vec()).unwrap().is_empty());
    // Unguarded, b2 writes at once: its op takes the dot 1.1, which a holds (INBOX's
    // first append came from b).
    let reused = b2.append(&mb("INBOX"), vec![message(7)]).unwrap().ops;
    assert_eq!(reused[0].id, Dot::new(ReplicaId(1), 1));
    let before = bodies(&a);
    assert!(a.apply_remote(reused).unwrap().is_empty());
    assert_eq!(
        bodies(&a),
        before,
        "silently ignored: the write never converges"
    );
    // Guarded, the same replica refuses the write until it has heard its peer.
    let mut b3 = state(1, 2);
    b3.await_peers();
    assert!(b3.apply_remote(all[..1].to_vec()).unwrap().is_empty());
    assert!(matches!(
        b3.append(&mb("INBOX"), vec![message(7)]),
        Err(CrdtError::OwnHistoryMissing { .. })
    ));
    let _ = b3.report_progress(ReplicaId(0), &a.version().clone());
    assert!(matches!(
        b3.append(&mb("INBOX"), vec![message(7)]),
        Err(CrdtError::OwnHistoryMissing { known: 2, .. })
    ));
}

/// Found by the simulator: a replica back from empty must hold what its peers held
/// before it writes, not only its own ops. Here its peer collected a deleted mailbox,
/// counting the replica as having seen it; creating that name again before the
/// replica had the old create back would have made the collected incarnation anew.
#[test]
fn an_awaiting_replica_writes_only_once_it_holds_what_its_peers_held() {
    let mut a = state(0, 2);
    let mut b = state(1, 2);
    let mut all = a.create_mailbox(&mb("INBOX"), None).unwrap();
    all.extend(a.create_mailbox(&mb("Work"), None).unwrap());
    all.extend(a.delete_mailbox(&mb("Work")).unwrap());
    assert!(b.apply_remote(all.clone()).unwrap().is_empty());
    let _ = a.report_progress(ReplicaId(1), &b.version().clone());
    let _ = b.report_progress(ReplicaId(0), &a.version().clone());
    assert_eq!(a.compact().mailboxes_dropped, 1);

    let mut b2 = state(1, 2);
    b2.await_peers();
    let _ = b2.report_progress(ReplicaId(0), &a.version().clone());
    let err = b2.create_mailbox(&mb("Work"), None).unwrap_err();
    assert!(
        err.to_string().contains("catching up"),
        "it holds none of what a held: {err}"
    );
    assert!(b2.apply_remote(all).unwrap().is_empty());
    let ops = b2.create_mailbox(&mb("Work"), None).unwrap();
    assert!(
        matches!(&ops[0].kind, OpKind::Create { mailbox, .. } if mailbox.incarnation == 1),
        "{ops:?}"
    );
    assert!(a.apply_remote(ops).unwrap().is_empty());
    assert_eq!(a.mailboxes(), b2.mailboxes());
}

/// What a peer lacking its own history holds is evidence, not progress: it counts for
/// `await_peers` but never makes anything stable for compaction.
#[test]
fn what_a_recovering_peer_holds_is_heard_but_never_counts_for_compaction() {
    let mut a = state(0, 2);
    let mut b = state(1, 2);
    let mut ops = a.create_mailbox(&mb("Work"), None).unwrap();
    ops.extend(a.delete_mailbox(&mb("Work")).unwrap());
    assert!(b.apply_remote(ops).unwrap().is_empty());
    assert!(a.hear_peer(ReplicaId(1), &b.version().clone()).is_empty());
    assert_eq!(a.compact().mailboxes_dropped, 0, "b's word is not progress");
    let _ = a.report_progress(ReplicaId(1), &b.version().clone());
    assert_eq!(a.compact().mailboxes_dropped, 1);
    // And it lets an awaiting replica go on.
    let mut c = state(1, 2);
    c.await_peers();
    assert!(c.subscribe(&mb("INBOX")).is_err());
    let _ = c.hear_peer(ReplicaId(0), &pluto_crdt::VersionVector::new());
    assert!(c.subscribe(&mb("INBOX")).is_ok());
}
