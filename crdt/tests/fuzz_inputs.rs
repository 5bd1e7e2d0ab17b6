//! Inputs the `crdt_snapshot` fuzz target (fuzz/, docs/FUZZING.md) found crashing, kept
//! here so that they stay fixed: each file in `tests/fuzz_inputs/` is decoded as a
//! snapshot and, when it decodes, used as the target uses it. None may panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use pluto_crdt::{
    BodyRef, Flag, FlagChange, FlagSet, InternalDate, MailboxName, MessageData, ModSeq, ReplicaId,
    Uid, UserState,
};

fn mb(name: &str) -> MailboxName {
    MailboxName::new(name).unwrap()
}

fn exercise(state: &mut UserState) {
    let _ = state.stats();
    let others: Vec<ReplicaId> = state.config().members.clone();
    let _ = state.set_reachable(others);
    let _ = state.bind_hidden();
    // A decoded state may hold any string as a name; the API takes only valid names.
    let names: Vec<MailboxName> = state
        .mailboxes()
        .into_iter()
        .filter_map(|m| MailboxName::new(m.name).ok())
        .collect();
    for name in &names {
        let _ = state.status(name);
        let _ = state.changes_since(name, ModSeq(0));
        let uids: Vec<Uid> = state
            .snapshot(name)
            .map(|s| s.messages.iter().map(|m| m.uid).collect())
            .unwrap_or_default();
        let message = MessageData {
            body: BodyRef([7; 32]),
            size: 10,
            internal_date: InternalDate::default(),
            flags: FlagSet::new(),
        };
        let _ = state.append(name, vec![message]);
        let seen: FlagSet = [Flag::Seen].into_iter().collect();
        let _ = state.store_flags(name, &uids, &FlagChange::add(seen), None);
        let _ = state.copy(name, &uids, &MailboxName::inbox());
        let _ = state.expunge(name, &uids);
    }
    let _ = state.create_mailbox(&mb("fuzz"), None);
    let _ = state.rename_mailbox(&mb("fuzz"), &mb("fuzz2"));
    let _ = state.delete_mailbox(&mb("fuzz2"));
    let _ = state.compact();
    let bytes = state.encode_snapshot().expect("encodes");
    UserState::decode_snapshot(&bytes).expect("what was written reads back");
}

#[test]
fn snapshots_found_by_fuzzing_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_inputs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        if let Ok(mut state) = UserState::decode_snapshot(&bytes) {
            exercise(&mut state);
        }
        seen += 1;
    }
    assert!(seen > 0, "no inputs in {}", dir.display());
}

/// The first finding: a snapshot whose version vector holds counters near `u64::MAX`.
/// Counting its operations (the Lamport stamp of the next op) overflowed, as did the
/// next sequence number and modseq; they saturate now.
#[test]
fn a_snapshot_with_huge_counters_takes_writes() {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_inputs/snapshot-clock-overflow"),
    )
    .unwrap();
    let mut state = UserState::decode_snapshot(&bytes).expect("the input decodes");
    state
        .create_mailbox(&mb("fuzz"), None)
        .expect("a new mailbox");
    assert!(state.mailboxes().iter().any(|m| m.name == "fuzz"));
}
