//! A cluster comes up: two workers and a storage node behind a gateway take mail for
//! users on both workers, and every node reaches every replica.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD};
use pluto_cluster_tests::mail::{self, message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_and_replicates() {
    let cluster = Cluster::start(Spec::default()).await;
    for user in ["user1", "user2", "user3", "user4"] {
        let mut c = mail::login(cluster.imap, user, USER_PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        for i in 0..5 {
            let r = c
                .try_append_plus("INBOX", "", &message(&format!("{user}-{i}"), 2000))
                .await
                .unwrap();
            assert!(
                r.ok() && r.tagged.contains("APPENDUID"),
                "{r:?}\n{}",
                cluster.logs()
            );
        }
        let (_, msgs) = c.try_list_messages("INBOX").await.unwrap();
        assert_eq!(msgs.len(), 5, "{msgs:?}");
    }
    println!("{}", cluster.status());
}
