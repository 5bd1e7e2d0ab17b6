//! LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and SPECIAL-USE selection through a
//! cluster gateway: the script `gateway/tests/imap_list_extended.rs` replays on `pluto
//! serve` (`testdata/dovecot/extensions/list.script`), replayed on a user behind the
//! gateway (the replicated store) and compared with Dovecot's answers the same way.
//! Normalised as there, and one thing more: UIDNEXT, since a cluster's UIDs are dense
//! only once the serving node's claim is acknowledged by every replica of the user
//! (README, "What is not there yet"), so a mailbox's next UID need not be Dovecot's.

#![allow(clippy::unwrap_used)]

use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD};
use pluto_cluster_tests::mail;
use pluto_testkit::golden;

fn without_uidnext(lines: &[String]) -> Vec<String> {
    golden::list_normalised(lines)
        .into_iter()
        .map(|line| {
            let Some(start) = line.find("UIDNEXT ").map(|at| at + "UIDNEXT ".len()) else {
                return line;
            };
            let end = line[start..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(line.len(), |e| start + e);
            if end == start {
                return line;
            }
            format!("{}N{}", &line[..start], &line[end..])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_script_answers_as_dovecot_does_through_the_gateway() {
    let cluster = Cluster::start(Spec::default()).await;
    let mut client = mail::login(cluster.imap, "user1", USER_PASSWORD)
        .await
        .unwrap();
    golden::list_setup(&mut client).await;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dovecot/extensions");
    let script = std::fs::read_to_string(dir.join("list.script")).unwrap();
    let expected = std::fs::read_to_string(dir.join("list.golden")).unwrap();
    let expected: String = expected
        .lines()
        .map(|l| without_uidnext(&[l.to_owned()]).concat() + "\n")
        .collect();
    let ours = golden::replay_script(&mut client, &script, without_uidnext).await;
    golden::assert_golden(&ours, &expected);
}
