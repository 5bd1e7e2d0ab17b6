//! Black-box tests of per-user bounds and a full disk: CREATE and RENAME past
//! `limits.max_mailboxes` or `limits.max_mailbox_depth` answer `NO [LIMIT]`; on a full
//! disk (a small tmpfs, mounted as root) APPEND, CREATE, RENAME, DELETE and SUBSCRIBE
//! answer `NO [OVERQUOTA]` saying so, and a refused command changed nothing — also
//! after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, TestServer, message};
use pluto_testkit::disk::{Tmpfs, fill};
use tokio::net::TcpStream;

async fn names(raw: &mut Client<TcpStream>) -> Vec<String> {
    let r = raw.cmd("LIST \"\" *").await;
    assert!(r.ok(), "{r:?}");
    let mut out: Vec<String> = r
        .lines("* LIST")
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().trim_matches('"').to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn create_past_the_mailbox_limit_is_refused() {
    let server = TestServer::start_with(|c| c.limits.max_mailboxes = 10).await;
    let mut raw = server.login().await;
    let existing = names(&mut raw).await.len();
    assert!(existing < 10, "{existing}");
    for i in existing..10 {
        let r = raw.cmd(&format!("CREATE box{i}")).await;
        assert!(r.ok(), "{r:?}");
    }
    let r = raw.cmd("CREATE one-too-many").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("LIMIT"), "{r:?}");
    assert!(r.tagged.contains("at most 10"), "{r:?}");
    assert!(!names(&mut raw).await.contains(&"one-too-many".to_owned()));
    // Room for one more: a CREATE that would also add a missing parent counts it.
    assert!(raw.cmd("DELETE box9").await.ok());
    let r = raw.cmd("CREATE new/child").await;
    assert_eq!(r.code().as_deref(), Some("LIMIT"), "{r:?}");
    // So does a RENAME that makes parents; a plain RENAME is fine.
    let r = raw.cmd("RENAME box8 p1/p2/box8").await;
    assert_eq!(r.code().as_deref(), Some("LIMIT"), "{r:?}");
    let r = raw.cmd("RENAME box8 renamed").await;
    assert!(r.ok(), "{r:?}");
    // Back under the limit after a DELETE; the session went on throughout.
    let r = raw.cmd("CREATE fits").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(names(&mut raw).await.len(), 10);
}

#[tokio::test]
async fn names_deeper_than_the_limit_are_refused() {
    let server = TestServer::start_with(|c| c.limits.max_mailbox_depth = 3).await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE a/b/c").await.ok());
    let r = raw.cmd("CREATE a/b/c/d").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("LIMIT"), "{r:?}");
    assert!(r.tagged.contains("at most 3 levels"), "{r:?}");
    // RENAME of a hierarchy checks the deepest name it would make.
    assert!(raw.cmd("CREATE x/y").await.ok());
    let r = raw.cmd("RENAME a q/r").await;
    assert_eq!(r.code().as_deref(), Some("LIMIT"), "{r:?}");
    assert!(names(&mut raw).await.contains(&"a/b/c".to_owned()));
    assert!(raw.cmd("RENAME a q").await.ok());
}

fn status_messages(r: &common::Reply) -> String {
    r.lines("* STATUS").join(" ")
}

#[tokio::test]
async fn a_full_disk_answers_overquota_and_changes_nothing() {
    let mount = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(mount.path(), "8m") else {
        return;
    };
    let data = mount.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let mut server = TestServer::start_with(|c| c.data_dir = data.clone()).await;
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE keep/child").await.ok());
    // Subscribed, so a RENAME of it must rewrite the user file.
    assert!(raw.cmd("SUBSCRIBE keep").await.ok());
    assert!(raw.append("INBOX", "", &message("one", "first")).await.ok());
    let before = names(&mut raw).await;
    let lsub_before = raw.cmd("LSUB \"\" *").await.untagged;
    let inbox_before = status_messages(&raw.cmd("STATUS INBOX (MESSAGES UIDNEXT)").await);

    let filler = mount.path().join("filler");
    fill(&filler);

    let full = |r: &common::Reply| {
        assert!(r.no(), "{r:?}");
        assert_eq!(r.code().as_deref(), Some("OVERQUOTA"), "{r:?}");
        assert!(r.tagged.contains("disk is full"), "{r:?}");
        assert!(r.tagged.contains("nothing was changed"), "{r:?}");
    };
    let big = message("two", &"x".repeat(64 * 1024));
    full(&raw.append("INBOX", "", &big).await);
    full(&raw.cmd("CREATE fresh/deep").await);
    full(&raw.cmd("RENAME keep moved/here").await);
    // No parent to make: the directories are renamed, then the user file (which holds
    // the subscription) cannot be written; the renames are undone (this one used to
    // stay done).
    full(&raw.cmd("RENAME keep kept").await);
    // RENAME INBOX makes a mailbox, then moves INBOX's messages into it.
    full(&raw.cmd("RENAME INBOX old-inbox").await);
    full(&raw.cmd("SUBSCRIBE keep/child").await);
    // DELETE either is done or, refused, leaves the mailbox.
    let delete = raw.cmd("DELETE keep/child").await;
    if !delete.ok() {
        full(&delete);
    }

    let check = async |raw: &mut Client<TcpStream>| {
        let mut expected = before.clone();
        if delete.ok() {
            expected.retain(|n| n != "keep/child");
        }
        assert_eq!(names(raw).await, expected);
        assert_eq!(raw.cmd("LSUB \"\" *").await.untagged, lsub_before);
        assert_eq!(
            status_messages(&raw.cmd("STATUS INBOX (MESSAGES UIDNEXT)").await),
            inbox_before
        );
    };
    check(&mut raw).await;
    // The session goes on, and with room again the same commands work.
    std::fs::remove_file(&filler).unwrap();
    drop(raw);
    server.stop().await;
    // The same data dir again (its users file already holds alice).
    let mut config = pluto_gateway::Config {
        data_dir: data.clone(),
        ..pluto_gateway::Config::default()
    };
    config.listen.imap = "127.0.0.1:0".into();
    config.listen.imaps = "127.0.0.1:0".into();
    config.listen.lmtp = String::new();
    let restarted = pluto_gateway::cli::start_serve(config).await.unwrap();
    let server = TestServer {
        imap: restarted.imap_addr.unwrap(),
        imaps: restarted.imaps_addr.unwrap(),
        server: Some(restarted),
        dir: tempfile::tempdir().unwrap(),
    };
    let mut raw = server.login().await;
    check(&mut raw).await;
    assert!(raw.cmd("RENAME keep moved/here").await.ok());
    assert!(raw.append("INBOX", "", &big).await.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_creates_of_one_user_stay_within_the_limit() {
    let server = TestServer::start_with(|c| c.limits.max_mailboxes = 20).await;
    let mut first = server.login().await;
    let existing = names(&mut first).await.len();
    let mut sessions = vec![first];
    for _ in 1..8 {
        sessions.push(server.login().await);
    }
    // Eight sessions, each creating its own names at once: without a lock held from
    // the count to the write, several pass the check together and overshoot.
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(s, mut raw)| {
            tokio::spawn(async move {
                let mut made = 0;
                for i in 0..6 {
                    if raw.cmd(&format!("CREATE s{s}/box{i}")).await.ok() {
                        made += 1;
                    }
                }
                (made, raw)
            })
        })
        .collect();
    let mut raws = Vec::new();
    for t in tasks {
        raws.push(t.await.unwrap().1);
    }
    let total = names(&mut raws[0]).await.len();
    assert!(existing < 20, "{existing}");
    // Reached (a last CREATE that needs a parent too may not fit) and never passed.
    assert!((19..=20).contains(&total), "{total} mailboxes, limit 20");
}
