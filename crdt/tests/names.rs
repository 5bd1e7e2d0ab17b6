//! Mailbox names in the CRDT's API: `MailboxName`s in, refusals of
//! `pluto_model::rules::namespace` out, each naming its mailbox; INBOX is a name like
//! any other here (the RFC rules are the caller's).

#![allow(clippy::unwrap_used)]

use pluto_crdt::{
    Config, CrdtError, MailboxName, MailboxRefusal, Op, OpKind, ReplicaId, UserState,
};

fn mb(name: &str) -> MailboxName {
    MailboxName::new(name).unwrap()
}

fn state() -> UserState {
    let mut st = UserState::new(
        ReplicaId(1),
        Config {
            uid_stride: 4,
            members: vec![ReplicaId(1)],
        },
    )
    .unwrap();
    st.set_reachable([]);
    st
}

fn refusal(e: CrdtError) -> MailboxRefusal {
    match e {
        CrdtError::Mailbox(r) => r,
        other => panic!("not a refusal: {other:?}"),
    }
}

#[test]
fn inbox_is_created_deleted_and_renamed_like_any_name() {
    let mut st = state();
    st.create_mailbox(&MailboxName::inbox(), None).unwrap();
    st.create_mailbox(&mb("INBOX/Sub"), None).unwrap();
    let e = st.create_mailbox(&mb("inbox"), None).unwrap_err();
    assert_eq!(
        refusal(e),
        MailboxRefusal::AlreadyExists(MailboxName::inbox())
    );
    // RENAME INBOX moves its messages to a new mailbox; INBOX and its children stay.
    st.rename_mailbox(&MailboxName::inbox(), &mb("Old"))
        .unwrap();
    let names: Vec<String> = st.mailboxes().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["INBOX", "INBOX/Sub", "Old"]);
    st.delete_mailbox(&MailboxName::inbox()).unwrap();
    assert!(st.status(&MailboxName::inbox()).is_err());
}

#[test]
fn each_refusal_names_its_mailbox() {
    let mut st = state();
    for name in ["a", "a/b", "t", "t/b"] {
        st.create_mailbox(&mb(name), None).unwrap();
    }
    let e = st.status(&mb("nope")).unwrap_err();
    assert_eq!(e.to_string(), "Mailbox doesn't exist: nope");
    assert_eq!(refusal(e), MailboxRefusal::NoSuchMailbox(mb("nope")));
    let e = st.copy(&mb("a"), &[], &mb("gone")).unwrap_err();
    assert_eq!(refusal(e), MailboxRefusal::NoSuchMailbox(mb("gone")));
    let e = st.rename_mailbox(&mb("a"), &mb("t")).unwrap_err();
    assert_eq!(refusal(e), MailboxRefusal::AlreadyExists(mb("t")));
    // A child's new name is taken: the refusal names the child's target.
    st.delete_mailbox(&mb("t")).unwrap();
    let e = st.rename_mailbox(&mb("a"), &mb("t")).unwrap_err();
    assert_eq!(refusal(e), MailboxRefusal::AlreadyExists(mb("t/b")));
    // A child whose new name would be too long: refused, nothing renamed.
    let long = format!("a/{}", "x".repeat(MailboxName::MAX_LEN - 2));
    st.create_mailbox(&mb(&long), None).unwrap();
    let e = st.rename_mailbox(&mb("a"), &mb("abc")).unwrap_err();
    assert_eq!(refusal(e), MailboxRefusal::TooLong(mb(&long)));
    assert!(st.status(&mb("a")).is_ok() && st.status(&mb("abc")).is_err());
}

#[test]
fn a_rename_moves_the_hierarchy_in_one_op_with_the_names_as_strings() {
    let mut st = state();
    for name in ["a", "a/b", "a/b/c", "ab"] {
        st.create_mailbox(&mb(name), None).unwrap();
    }
    let ops: Vec<Op> = st.rename_mailbox(&mb("a"), &mb("x")).unwrap();
    let [
        Op {
            kind: OpKind::Rename { renames },
            ..
        },
    ] = ops.as_slice()
    else {
        panic!("one rename op: {ops:?}");
    };
    let moved: Vec<(&str, &str)> = renames
        .iter()
        .map(|(id, to)| (id.name.as_str(), to.as_str()))
        .collect();
    assert_eq!(moved, [("a", "x"), ("a/b", "x/b"), ("a/b/c", "x/b/c")]);
    let names: Vec<String> = st.mailboxes().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["ab", "x", "x/b", "x/b/c"]);
    // A MailboxName is encoded as its string: ops written before read the same.
    assert_eq!(
        postcard::to_allocvec(&mb("x/b")).unwrap(),
        postcard::to_allocvec("x/b").unwrap()
    );
}
