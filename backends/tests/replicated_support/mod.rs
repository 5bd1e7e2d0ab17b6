//! Set-up and checks shared by the replicated-store tests on loopback
//! (`replicated_cluster.rs`, `replicated_membership.rs`): node TLS from a test PKI
//! (which `remote_methods.rs` takes too), a message, a client's whole view of a user,
//! and waiting until replicas agree.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pluto_backends::net::NodeTls;
use pluto_backends::replicated::ReplicatedStore;
use pluto_backends::*;

/// The node `name`'s TLS from a directory made by `pki::generate`.
pub(crate) fn tls(dir: &Path, name: &str) -> NodeTls {
    NodeTls::load(
        &dir.join("ca.pem"),
        &dir.join(format!("{name}.pem")),
        &dir.join(format!("{name}-key.pem")),
    )
    .unwrap()
}

pub(crate) fn msg(text: &str) -> NewMessage {
    NewMessage {
        body: Bytes::from(format!("Subject: {text}\r\n\r\n{text}\r\n")),
        flags: Flags::new(),
        internal_date: None,
    }
}

/// Everything a client could see of a user, for comparing replicas.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Dump {
    pub list: MailboxList,
    pub mailboxes: BTreeMap<String, (MailboxSnapshot, Vec<Bytes>)>,
}

impl Dump {
    pub(crate) fn bodies(&self) -> BTreeSet<Bytes> {
        self.mailboxes
            .values()
            .flat_map(|(_, b)| b.iter().cloned())
            .collect()
    }

    pub(crate) fn messages(&self) -> usize {
        self.mailboxes.values().map(|(s, _)| s.messages.len()).sum()
    }
}

pub(crate) async fn dump(s: &ReplicatedStore, user: &UserId) -> Dump {
    let list = s.list(user).await.unwrap();
    let mut mailboxes = BTreeMap::new();
    for m in &list.mailboxes {
        let snap = s.select(user, &m.name).await.unwrap();
        let uids: Vec<Uid> = snap.messages.iter().map(|m| m.uid).collect();
        let bodies = s.fetch(user, &m.name, &uids).await.unwrap();
        assert_eq!(bodies.len(), uids.len(), "every shown message has its body");
        mailboxes.insert(
            m.name.to_string(),
            (snap, bodies.into_iter().map(|b| b.bytes).collect()),
        );
    }
    Dump { list, mailboxes }
}

/// Waits until every store shows the same thing, with nothing hidden or buffered.
pub(crate) async fn converge(
    stores: &[Arc<ReplicatedStore>],
    user: &UserId,
    within: Duration,
) -> Dump {
    let deadline = Instant::now() + within;
    loop {
        let first = dump(&stores[0], user).await;
        let mut same = true;
        for s in &stores[1..] {
            if dump(s, user).await != first {
                same = false;
            }
        }
        for s in stores {
            let stats = s.stats(user).await.unwrap();
            if stats.hidden_messages > 0 || stats.pending_ops > 0 {
                same = false;
            }
        }
        if same {
            return first;
        }
        if Instant::now() > deadline {
            let mut all = Vec::new();
            for s in stores {
                all.push(format!("{:#?}", dump(s, user).await));
            }
            panic!(
                "{user}: replicas did not converge:\n{}",
                all.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
