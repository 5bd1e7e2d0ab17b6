//! The mailboxes a user starts with, when a replica creates them without having caught
//! up (new, or it lost its data): the same mailboxes, the same UIDVALIDITY, the mail
//! that was there stays where it was.

#![allow(clippy::unwrap_used)]

use pluto_crdt::{
    BodyRef, Config, DEFAULT_UID_VALIDITY, FlagSet, InternalDate, MailboxName, MessageData, Op,
    ReplicaId, SpecialUse, UserState,
};

fn mb(name: &str) -> MailboxName {
    MailboxName::new(name).unwrap()
}

const DEFAULTS: [(&str, Option<SpecialUse>); 2] =
    [("INBOX", None), ("Sent", Some(SpecialUse::Sent))];

fn replica(id: u16, members: &[u16]) -> UserState {
    let members: Vec<ReplicaId> = members.iter().map(|r| ReplicaId(*r)).collect();
    let mut st = UserState::new(
        ReplicaId(id),
        Config {
            uid_stride: 8,
            members: members.clone(),
        },
    )
    .unwrap();
    st.set_reachable(members.into_iter().filter(|r| r.0 != id));
    st
}

fn create_defaults(st: &mut UserState) -> Vec<Op> {
    DEFAULTS
        .iter()
        .flat_map(|(name, special)| st.create_default_mailbox(&mb(name), *special).unwrap())
        .collect()
}

fn message(n: u8) -> MessageData {
    MessageData {
        body: BodyRef([n; 32]),
        size: 100,
        internal_date: InternalDate {
            seconds: 1_700_000_000,
            offset_minutes: 0,
        },
        flags: FlagSet::new(),
    }
}

/// (name, UIDVALIDITY, UIDs) of every mailbox.
fn describe(st: &UserState) -> Vec<(String, u32, Vec<u32>)> {
    st.mailboxes()
        .into_iter()
        .map(|m| {
            let uids = st.snapshot(&mb(&m.name)).unwrap().messages;
            (
                m.name,
                m.uid_validity.get(),
                uids.iter().map(|m| m.uid.get()).collect(),
            )
        })
        .collect()
}

#[test]
fn a_replica_that_had_not_caught_up_creates_the_same_defaults() {
    let mut a = replica(1, &[1, 2]);
    let mut b = replica(2, &[1, 2]);
    let mut from_a = create_defaults(&mut a);
    let appended = a
        .append(&mb("INBOX"), vec![message(1), message(2)])
        .unwrap();
    from_a.extend(appended.ops);
    let before = describe(&a);
    assert_eq!(before[0].1, DEFAULT_UID_VALIDITY);

    // b has seen nothing of a and creates the defaults itself, then they meet.
    let from_b = create_defaults(&mut b);
    assert_eq!(from_b.len(), DEFAULTS.len());
    let mut to_b = from_a.clone();
    to_b.extend(b.apply_remote(from_a).unwrap());
    let follow_a = a.apply_remote(from_b).unwrap();
    let follow_b = b.apply_remote(follow_a).unwrap();
    a.apply_remote(follow_b).unwrap();

    assert_eq!(
        describe(&a),
        before,
        "the first replica's view did not change"
    );
    assert_eq!(describe(&b), before);
}

#[test]
fn defaults_are_not_created_over_an_existing_name() {
    let mut a = replica(1, &[1]);
    assert_eq!(create_defaults(&mut a).len(), DEFAULTS.len());
    assert!(create_defaults(&mut a).is_empty());
    a.delete_mailbox(&mb("Sent")).unwrap();
    assert!(
        create_defaults(&mut a).is_empty(),
        "a name that had an incarnation is not a default any more"
    );
}

#[test]
fn a_default_create_from_another_residue_is_accepted() {
    // UIDVALIDITY 1 is outside replica 2's residue (stride 8): only a first incarnation
    // may carry it.
    let mut a = replica(2, &[2, 3]);
    let mut b = replica(3, &[2, 3]);
    let ops = create_defaults(&mut a);
    assert!(b.apply_remote(ops).is_ok());
    assert_eq!(describe(&b), describe(&a));
}
