//! Dense UIDs through a cluster (issue 13): for a user on each worker, behind the
//! gateway, APPENDUID and COPYUID name exactly the UIDNEXT that STATUS announced before,
//! and UIDs go 1, 2, 3, … — the worker binds under its claim, which the storage node
//! acknowledged.

#![allow(clippy::unwrap_used)]

use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD};
use pluto_cluster_tests::mail::{self, Client, code, message, ok};
use pluto_testkit::imap::{appenduid, code_number};

async fn uid_next(c: &mut Client, mailbox: &str) -> u32 {
    let r = ok(c, &format!("STATUS {mailbox} (UIDNEXT)")).await;
    code(&r, "UIDNEXT") as u32
}

/// `[COPYUID validity sources destinations]`: the destination UIDs.
fn copyuid_destinations(tagged: &str) -> String {
    let start = tagged.find("[COPYUID ").unwrap() + "[COPYUID ".len();
    let end = start + tagged[start..].find(']').unwrap();
    tagged[start..end].split(' ').nth(2).unwrap().to_owned()
}

async fn uids_are_dense_for(cluster: &Cluster, user: &str) {
    let mut c = mail::login(cluster.imap, user, USER_PASSWORD)
        .await
        .unwrap();
    let mut last = None;
    for i in 0..5 {
        let next = uid_next(&mut c, "INBOX").await;
        let r = c
            .try_append_plus("INBOX", "", &message(&format!("{user}-{i}"), 200))
            .await
            .unwrap();
        assert!(r.ok(), "{r:?}");
        let (_, uid) = appenduid(&r.tagged).unwrap();
        assert_eq!(
            uid, next,
            "{user}: APPENDUID is the UIDNEXT announced before"
        );
        if let Some(prev) = last {
            assert_eq!(uid, prev + 1, "{user}: dense UIDs");
        }
        last = Some(uid);
    }
    let first = last.unwrap() - 4;
    assert_eq!(first, 1, "{user}: a new user's first message is UID 1");

    ok(&mut c, "CREATE Dense").await;
    let r = ok(&mut c, "SELECT INBOX").await;
    assert_eq!(
        r.untagged.iter().find_map(|l| code_number(l, "UIDNEXT")),
        Some(6),
        "{r:?}"
    );
    let target = uid_next(&mut c, "Dense").await;
    assert_eq!(target, 1);
    let r = ok(&mut c, "UID COPY 1:2 Dense").await;
    assert_eq!(copyuid_destinations(&r.tagged), "1:2", "{r:?}");
    let r = ok(&mut c, "UID MOVE 5 Dense").await;
    let tagged_or_untagged = r
        .untagged
        .iter()
        .chain(std::iter::once(&r.tagged))
        .find(|l| l.contains("[COPYUID "))
        .unwrap()
        .clone();
    assert_eq!(copyuid_destinations(&tagged_or_untagged), "3", "{r:?}");
    ok(&mut c, "SELECT Dense").await;
    assert_eq!(ok(&mut c, "UID SEARCH ALL").await.search(), vec![1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appenduid_and_copyuid_are_the_announced_uidnext_for_a_user_on_each_worker() {
    let spec = Spec::default();
    let users = spec.users.clone();
    let cluster = Cluster::start(spec).await;
    let workers = cluster.workers();
    assert_eq!(workers.len(), 2);
    for worker in &workers {
        let user = users
            .iter()
            .find(|u| cluster.replicas_of(u).first() == Some(worker))
            .unwrap_or_else(|| panic!("no test user is owned by {worker}"));
        uids_are_dense_for(&cluster, user).await;
    }
    // Nothing was renumbered anywhere: no replica bound UIDs concurrently.
    for node in cluster.workers().into_iter().chain(cluster.storage()) {
        assert_eq!(
            cluster
                .metric(&node, "pluto_uid_renumberings_total")
                .await
                .unwrap_or_else(|| panic!("{node} publishes pluto_uid_renumberings_total")),
            0.0,
            "{node}"
        );
    }
}
