//! CRDT snapshot decoding, and what a replica does with a state it decoded: answer
//! queries, take local writes, compact, bind hidden messages, and write it out again.
//! A snapshot comes from disk after a restart or from a peer (a user moved or caught
//! up): whatever its bytes, decoding and every call after it must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pluto_crdt::{
    BodyRef, Flag, FlagChange, FlagSet, InternalDate, MailboxName, MessageData, ModSeq,
    ReplicaId, Uid, UserState,
};

fuzz_target!(|data: &[u8]| {
    let Ok(mut state) = UserState::decode_snapshot(data) else {
        return;
    };
    exercise(&mut state);
    // What was decoded, written out and read back, must be read the same way.
    if let Ok(bytes) = state.encode_snapshot() {
        let again = UserState::decode_snapshot(&bytes).expect("a snapshot we wrote reads back");
        assert_eq!(again.version(), state.version());
        assert_eq!(again.mailboxes().len(), state.mailboxes().len());
    }
});

fn exercise(state: &mut UserState) {
    let _ = state.stats();
    let _ = state.subscriptions();
    let _ = state.pending_ops();
    let _ = state.is_leader();
    let mut others: Vec<ReplicaId> = state.config().members.clone();
    others.retain(|r| *r != state.replica());
    let _ = state.set_reachable(others);
    let _ = state.bind_hidden();
    // A decoded state may show any string as a name; the API takes only valid names.
    let names: Vec<MailboxName> = state
        .mailboxes()
        .into_iter()
        .filter_map(|m| MailboxName::new(m.name).ok())
        .collect();
    for name in names.iter().take(8) {
        let _ = state.status(name);
        let _ = state.changes_since(name, ModSeq(0));
        let Ok(snapshot) = state.snapshot(name) else {
            continue;
        };
        let uids: Vec<Uid> = snapshot.messages.iter().map(|m| m.uid).take(64).collect();
        let _ = state.messages(name, &uids);
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
    let (Ok(fuzz), Ok(fuzz2)) = (MailboxName::new("fuzz"), MailboxName::new("fuzz2")) else {
        return;
    };
    let _ = state.create_mailbox(&fuzz, None);
    let _ = state.rename_mailbox(&fuzz, &fuzz2);
    let _ = state.delete_mailbox(&fuzz2);
    let _ = state.stable_version();
    let _ = state.compact();
    let _ = state.stats();
}
