//! OBJECTID (RFC 8474) through a cluster: the MAILBOXID and EMAILIDs a client is told
//! through the gateway are what every replica of the user gives (read from each node's
//! Store service once they have converged), and a COPY keeps the EMAILID there too.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use pluto_backends::{MailStore, MailboxName, ObjectKind, UserId};
use pluto_cluster_tests::cluster::{Cluster, Spec, USER_PASSWORD};
use pluto_cluster_tests::mail::{self, Client, Reply, message};

async fn ok(c: &mut Client, cmd: &str) -> Reply {
    let r = c.try_cmd(cmd).await.unwrap();
    assert!(r.ok(), "{cmd}: {r:?}");
    r
}

fn id_after(text: &str, name: &str) -> String {
    let at = text.find(&format!("{name} (")).unwrap() + name.len() + 2;
    text[at..].chars().take_while(|c| *c != ')').collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_gives_the_ids_the_client_was_told() {
    let cluster = Cluster::start(Spec::default()).await;
    let mut c = mail::login(cluster.imap, "user1", USER_PASSWORD)
        .await
        .unwrap();
    let created = ok(&mut c, "CREATE ids").await;
    let mailbox_id = id_after(&created.tagged, "MAILBOXID");
    for i in 0..3 {
        let r = c
            .try_append_plus("ids", "", &message(&format!("o{i}"), 100))
            .await
            .unwrap();
        assert!(r.ok(), "{r:?}");
    }
    let r = ok(&mut c, "SELECT ids").await;
    assert!(r.has(&format!("[MAILBOXID ({mailbox_id})]")), "{r:?}");
    ok(&mut c, "COPY 1 INBOX").await;
    let r = ok(&mut c, "FETCH 1:* (EMAILID)").await;
    let told: Vec<String> = r
        .untagged
        .iter()
        .filter(|l| l.contains(" FETCH ("))
        .map(|l| id_after(l, "EMAILID"))
        .collect();
    assert_eq!(told.len(), 3, "{r:?}");

    let user = UserId::new("user1").unwrap();
    let name = MailboxName::new("ids").unwrap();
    let replicas = cluster.replicas_of("user1");
    assert!(replicas.len() >= 2, "{replicas:?}");
    for node in &replicas {
        let store = cluster.remote(node);
        let start = Instant::now();
        // Each replica, once it has the three messages and the copy.
        let (status, emails, inbox) = loop {
            let status = store.status(&user, &name).await;
            let snapshot = store.select(&user, &name).await;
            let inbox = store.select(&user, &MailboxName::inbox()).await;
            if let (Ok(status), Ok(snapshot), Ok(inbox)) = (status, snapshot, inbox) {
                if snapshot.messages.len() == 3 && !inbox.messages.is_empty() {
                    let emails: Vec<String> = snapshot
                        .messages
                        .iter()
                        .map(|m| m.email_id.wire(ObjectKind::Email))
                        .collect();
                    break (status, emails, inbox);
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{node} did not converge:\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            status.mailbox_id.wire(ObjectKind::Mailbox),
            mailbox_id,
            "MAILBOXID on {node}"
        );
        assert_eq!(emails, told, "EMAILIDs on {node}");
        let copied = inbox
            .messages
            .last()
            .unwrap()
            .email_id
            .wire(ObjectKind::Email);
        assert_eq!(copied, told[0], "the COPY's EMAILID on {node}");
    }
}
