//! `\Recent` through the cluster: two gateways in front of the same workers, and one
//! message is recent for exactly one session, whichever gateway each came through —
//! the claim is kept by the worker that serves the user, not by a gateway.

#![allow(clippy::unwrap_used)]

use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD};
use pluto_cluster_tests::mail::{self, message};

fn text(r: &pluto_cluster_tests::mail::Reply) -> Vec<String> {
    r.untagged.iter().map(|l| l.trim_end().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_recent_for_one_session_across_two_gateways() {
    let cluster = Cluster::start(Spec::default()).await;
    // A second gateway with the same configuration and users (and gw1's certificate).
    let gw2 = cluster.start_gateway("gw2", &cluster.config).await;
    let gw2_addr = gw2.imap;

    // Users on both workers.
    for user in ["user1", "user2", "user3", "user4"] {
        let mut a = mail::login(cluster.imap, user, USER_PASSWORD)
            .await
            .unwrap();
        let mut b = mail::login(gw2_addr, user, USER_PASSWORD).await.unwrap();
        assert!(a.try_cmd("CREATE rt").await.unwrap().ok());
        assert!(
            a.try_append_plus("rt", "", &message(user, 200))
                .await
                .unwrap()
                .ok()
        );
        // B only looks (STATUS): still recent for whoever selects first.
        let r = b.try_cmd("STATUS rt (RECENT)").await.unwrap();
        assert!(
            text(&r).iter().any(|l| l.contains("RECENT 1")),
            "{user}: {r:?}"
        );
        let r = a.try_cmd("SELECT rt").await.unwrap();
        assert!(text(&r).contains(&"* 1 RECENT".to_owned()), "{user}: {r:?}");
        let r = b.try_cmd("SELECT rt").await.unwrap();
        assert!(
            text(&r).contains(&"* 0 RECENT".to_owned()),
            "{user}: told through both gateways: {r:?}\n{}",
            cluster.logs()
        );
        let r = b.try_cmd("FETCH 1 FLAGS").await.unwrap();
        assert!(!text(&r)[0].contains("\\Recent"), "{user}: {r:?}");
        let r = a.try_cmd("FETCH 1 FLAGS").await.unwrap();
        assert!(text(&r)[0].contains("\\Recent"), "{user}: {r:?}");
        // New mail while both have it selected: one of them is told.
        assert!(
            a.try_append_plus("rt", "", &message(user, 200))
                .await
                .unwrap()
                .ok()
        );
        let ra = a.try_cmd("FETCH 2 FLAGS").await.unwrap();
        let rb = b.try_cmd("NOOP").await.unwrap();
        let rb2 = b.try_cmd("FETCH 2 FLAGS").await.unwrap();
        let in_a = text(&ra).iter().any(|l| l.contains("\\Recent"));
        let in_b = text(&rb2).iter().any(|l| l.contains("\\Recent"));
        assert!(in_a != in_b, "{user}: a {ra:?} b {rb:?} {rb2:?}");
    }
}
