//! `\Recent` through the cluster: two gateways in front of the same workers, and one
//! message is recent for exactly one session, whichever gateway each came through —
//! the claim is kept by the worker that serves the user, not by a gateway.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pluto_cluster_tests::client::{Client, message};
use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD};

fn text(r: &pluto_cluster_tests::client::Reply) -> Vec<String> {
    r.untagged
        .iter()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_recent_for_one_session_across_two_gateways() {
    let cluster = Cluster::start(Spec::default()).await;
    // A second gateway with the same configuration and users (and gw1's certificate).
    let gw2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gw2_addr = gw2.local_addr().unwrap();
    drop(gw2);
    let log = std::fs::File::create(cluster.dir.path().join("gw2.log")).unwrap();
    let mut gw2_child = Command::new(&cluster.bin)
        .args(["gateway", "--config"])
        .arg(&cluster.config)
        .args(["--imap", &gw2_addr.to_string(), "--imaps", ""])
        .env("PLUTO_CLUSTER__NAME", "gw1")
        .env("PLUTO_DATA_DIR", cluster.dir.path().join("gw2"))
        .env("PLUTO_AUTH__USERS_FILE", cluster.dir.path().join("users"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(gw2_addr).await.is_err() {
        assert!(Instant::now() < deadline, "gw2 did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its prober must have seen the nodes before it routes.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Users on both workers.
    for user in ["user1", "user2", "user3", "user4"] {
        let mut a = Client::login(cluster.imap, user, USER_PASSWORD)
            .await
            .unwrap();
        let mut b = Client::login(gw2_addr, user, USER_PASSWORD).await.unwrap();
        assert!(a.cmd("CREATE rt").await.unwrap().ok());
        assert!(a.append("rt", &message(user, 200)).await.unwrap().ok());
        // B only looks (STATUS): still recent for whoever selects first.
        let r = b.cmd("STATUS rt (RECENT)").await.unwrap();
        assert!(
            text(&r).iter().any(|l| l.contains("RECENT 1")),
            "{user}: {r:?}"
        );
        let r = a.cmd("SELECT rt").await.unwrap();
        assert!(text(&r).contains(&"* 1 RECENT".to_owned()), "{user}: {r:?}");
        let r = b.cmd("SELECT rt").await.unwrap();
        assert!(
            text(&r).contains(&"* 0 RECENT".to_owned()),
            "{user}: told through both gateways: {r:?}\n{}",
            cluster.logs()
        );
        let r = b.cmd("FETCH 1 FLAGS").await.unwrap();
        assert!(!text(&r)[0].contains("\\Recent"), "{user}: {r:?}");
        let r = a.cmd("FETCH 1 FLAGS").await.unwrap();
        assert!(text(&r)[0].contains("\\Recent"), "{user}: {r:?}");
        // New mail while both have it selected: one of them is told.
        assert!(a.append("rt", &message(user, 200)).await.unwrap().ok());
        let ra = a.cmd("FETCH 2 FLAGS").await.unwrap();
        let rb = b.cmd("NOOP").await.unwrap();
        let rb2 = b.cmd("FETCH 2 FLAGS").await.unwrap();
        let in_a = text(&ra).iter().any(|l| l.contains("\\Recent"));
        let in_b = text(&rb2).iter().any(|l| l.contains("\\Recent"));
        assert!(in_a != in_b, "{user}: a {ra:?} b {rb:?} {rb2:?}");
    }
    let _ = gw2_child.kill();
    let _ = gw2_child.wait();
}
