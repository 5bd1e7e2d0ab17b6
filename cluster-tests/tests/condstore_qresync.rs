//! CONDSTORE and QRESYNC through a cluster (RFC 7162): the gateway in front of workers
//! and a storage node, the modseqs the CRDT's. UNCHANGEDSINCE with `[MODIFIED]`, and a
//! QRESYNC reselect after another session changed the mailbox tells exactly those
//! changes (UIDs are read, not assumed).

#![allow(clippy::unwrap_used)]

use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD};
use pluto_cluster_tests::mail::{self, Client, Reply, code, message, number_after, ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qresync_reselect_through_the_cluster_tells_exactly_what_changed() {
    let cluster = Cluster::start(Spec::default()).await;
    let mut a = mail::login(cluster.imap, "user1", USER_PASSWORD)
        .await
        .unwrap();
    for i in 0..4 {
        assert!(
            a.try_append_plus("INBOX", "", &message(&format!("q{i}"), 100))
                .await
                .unwrap()
                .ok()
        );
    }
    ok(&mut a, "ENABLE QRESYNC").await;
    let r = ok(&mut a, "SELECT INBOX").await;
    let validity = code(&r, "[UIDVALIDITY");
    let modseq = code(&r, "[HIGHESTMODSEQ");
    let uids = ok(&mut a, "UID SEARCH ALL").await.search();
    assert_eq!(uids.len(), 4, "{uids:?}");
    // UNCHANGEDSINCE 0 fails for every message (RFC 7162 3.1.3).
    let r = ok(&mut a, "STORE 1:4 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)").await;
    assert!(r.tagged.contains("[MODIFIED 1:4]"), "{r:?}");
    ok(&mut a, "UNSELECT").await;

    let mut b = mail::login(cluster.imap, "user1", USER_PASSWORD)
        .await
        .unwrap();
    ok(&mut b, "SELECT INBOX").await;
    ok(&mut b, &format!("UID STORE {} +FLAGS (\\Flagged)", uids[1])).await;
    ok(&mut b, &format!("UID STORE {} +FLAGS (\\Deleted)", uids[2])).await;
    ok(&mut b, &format!("UID EXPUNGE {}", uids[2])).await;
    drop(b);

    let r = ok(
        &mut a,
        &format!("SELECT INBOX (QRESYNC ({validity} {modseq}))"),
    )
    .await;
    assert_eq!(
        r.lines("* VANISHED"),
        [format!("* VANISHED (EARLIER) {}", uids[2])],
        "{r:?}"
    );
    let fetches: Vec<&str> = r
        .lines("* ")
        .into_iter()
        .filter(|l| l.contains(" FETCH ("))
        .collect();
    assert_eq!(fetches.len(), 1, "{r:?}");
    assert!(
        fetches[0].starts_with(&format!("* 2 FETCH (UID {} FLAGS (\\Flagged", uids[1])),
        "{r:?}"
    );
    // The same from the store's answer to UID FETCH (CHANGEDSINCE … VANISHED).
    let r = ok(
        &mut a,
        &format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq} VANISHED)"),
    )
    .await;
    assert_eq!(
        r.lines("* VANISHED"),
        [format!("* VANISHED (EARLIER) {}", uids[2])],
        "{r:?}"
    );
    // HIGHESTMODSEQ agrees with STATUS through the same gateway.
    let highest = code(&r_select(&mut a).await, "[HIGHESTMODSEQ");
    let status = ok(&mut a, "STATUS INBOX (HIGHESTMODSEQ)").await;
    assert_eq!(number_after(&status.untagged[0], "HIGHESTMODSEQ"), highest);
}

async fn r_select(c: &mut Client) -> Reply {
    ok(c, "EXAMINE INBOX").await
}
