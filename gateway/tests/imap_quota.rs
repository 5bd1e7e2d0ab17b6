//! Black-box tests of quotas (RFC 9208) over IMAP: the capabilities, GETQUOTAROOT,
//! GETQUOTA and SETQUOTA, STATUS DELETED-STORAGE, and APPEND and COPY past a limit
//! (`NO [OVERQUOTA]`, nothing stored) while MOVE, which adds nothing, still works; the
//! limits from the `[quota]` default and, per user, from the users file's Dovecot
//! extra fields.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, TestServer, message};
use tokio::net::TcpStream;

async fn login(server: &TestServer, user: &str, password: &str) -> Client<TcpStream> {
    let mut raw = server.raw().await;
    let r = raw.cmd(&format!("LOGIN {user} \"{password}\"")).await;
    assert!(r.ok(), "{r:?}");
    raw
}

/// `* QUOTA "User quota" (…)`'s list, e.g. `STORAGE 2 64 MESSAGE 2 10`.
fn quota_list(r: &common::Reply) -> String {
    let line = r
        .find("* QUOTA \"User quota\" (")
        .unwrap_or_else(|| panic!("no QUOTA response in {r:?}"));
    let open = line.find('(').unwrap();
    line[open + 1..line.len() - 1].to_owned()
}

fn status_line(r: &common::Reply) -> String {
    r.lines("* STATUS").join(" ")
}

/// A message of exactly `len` bytes.
fn sized(len: usize) -> Vec<u8> {
    let mut m = message("sized", "");
    assert!(m.len() <= len);
    m.resize(len - 2, b'x');
    m.extend_from_slice(b"\r\n");
    m
}

#[tokio::test]
async fn quota_capabilities_are_advertised_after_login() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    let r = raw.cmd("CAPABILITY").await;
    let caps = r.find("* CAPABILITY").unwrap().to_owned();
    for cap in [" QUOTA ", " QUOTA=RES-STORAGE ", " QUOTA=RES-MESSAGE "] {
        assert!(format!("{caps} ").contains(cap), "{caps}");
    }
    assert!(
        !caps.contains("QUOTASET"),
        "SETQUOTA is not offered: {caps}"
    );
}

#[tokio::test]
async fn getquotaroot_and_getquota_report_usage_and_limits_over_all_mailboxes() {
    let server = TestServer::start_with(|c| {
        c.quota.storage_kib = 64;
        c.quota.messages = 10;
    })
    .await;
    let mut raw = server.login().await;
    let r = raw.cmd("GETQUOTAROOT INBOX").await;
    assert!(r.ok(), "{r:?}");
    assert!(r.has("* QUOTAROOT INBOX \"User quota\""), "{r:?}");
    assert_eq!(quota_list(&r), "STORAGE 0 64 MESSAGE 0 10");

    // Usage counts every mailbox, STORAGE in KiB rounded up.
    assert!(raw.append("INBOX", "", &sized(1500)).await.ok());
    assert!(raw.append("Sent", "\\Seen", &sized(1000)).await.ok());
    let r = raw.cmd("GETQUOTA \"User quota\"").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(quota_list(&r), "STORAGE 3 64 MESSAGE 2 10");
    let r = raw.cmd("GETQUOTAROOT Sent").await;
    assert!(r.has("* QUOTAROOT Sent \"User quota\""), "{r:?}");
    assert_eq!(quota_list(&r), "STORAGE 3 64 MESSAGE 2 10");

    // Errors: an unknown root, a missing mailbox, SETQUOTA by a user; the session goes on.
    let r = raw.cmd("GETQUOTA \"Other\"").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("NONEXISTENT"), "{r:?}");
    let r = raw.cmd("GETQUOTAROOT Nowhere").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("NONEXISTENT"), "{r:?}");
    let r = raw.cmd("SETQUOTA \"User quota\" (STORAGE 1000000)").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("NOPERM"), "{r:?}");
    let r = raw.cmd("GETQUOTA \"User quota\"").await;
    assert_eq!(quota_list(&r), "STORAGE 3 64 MESSAGE 2 10", "unchanged");
    // Not before login.
    let mut anonymous = server.raw().await;
    assert!(anonymous.cmd("GETQUOTAROOT INBOX").await.bad());
}

#[tokio::test]
async fn a_user_without_limits_has_no_quota_root() {
    let server = TestServer::start_with(|c| c.quota.messages = 5).await;
    // carol's own rule lifts the default: 0 is no limit.
    server.add_user_with_extra_fields("carol", "pw", "userdb_quota_rule=*:messages=0");
    let mut raw = login(&server, "carol", "pw").await;
    let r = raw.cmd("GETQUOTAROOT INBOX").await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.lines("* QUOTAROOT"), vec!["* QUOTAROOT INBOX"], "{r:?}");
    assert!(r.lines("* QUOTA ").is_empty(), "{r:?}");
    let r = raw.cmd("GETQUOTA \"User quota\"").await;
    assert_eq!(r.code().as_deref(), Some("NONEXISTENT"), "{r:?}");
    for i in 0..6 {
        let r = raw
            .append("INBOX", "", &message(&format!("m{i}"), "x"))
            .await;
        assert!(r.ok(), "no limit for carol: {r:?}");
    }
}

#[tokio::test]
async fn append_past_a_limit_is_refused_and_stores_nothing() {
    let server = TestServer::start_with(|c| {
        c.quota.storage_kib = 2;
        c.quota.messages = 3;
    })
    .await;
    let mut raw = server.login().await;
    // STORAGE: 1500 + 548 = 2048 bytes fits exactly, one byte more does not.
    assert!(raw.append("INBOX", "", &sized(1500)).await.ok());
    let r = raw.append("INBOX", "", &sized(549)).await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("OVERQUOTA"), "{r:?}");
    assert!(r.tagged.contains("2048 bytes"), "names the limit: {r:?}");
    assert!(raw.append("INBOX", "", &sized(548)).await.ok());
    let r = raw.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(status_line(&r).contains("MESSAGES 2"), "{r:?}");

    // MESSAGE, in another mailbox: the count is the user's, not the mailbox's.
    let server = TestServer::start_with(|c| c.quota.messages = 3).await;
    let mut raw = server.login().await;
    for mailbox in ["INBOX", "Sent", "Drafts"] {
        assert!(raw.append(mailbox, "", &message("m", "x")).await.ok());
    }
    let r = raw.append("Archive", "", &message("m", "x")).await;
    assert_eq!(r.code().as_deref(), Some("OVERQUOTA"), "{r:?}");
    let r = raw.cmd("STATUS Archive (MESSAGES)").await;
    assert!(status_line(&r).contains("MESSAGES 0"), "{r:?}");
    // Expunging makes room again.
    assert!(raw.cmd("SELECT Drafts").await.ok());
    assert!(raw.cmd("STORE 1 +FLAGS (\\Deleted)").await.ok());
    assert!(raw.cmd("EXPUNGE").await.ok());
    assert!(raw.append("Archive", "", &message("m", "x")).await.ok());
}

#[tokio::test]
async fn copy_past_a_limit_is_refused_and_move_is_not() {
    let server = TestServer::start_with(|c| c.quota.messages = 4).await;
    let mut raw = server.login().await;
    for i in 0..3 {
        assert!(
            raw.append("INBOX", "", &message(&format!("m{i}"), "x"))
                .await
                .ok()
        );
    }
    assert!(raw.cmd("SELECT INBOX").await.ok());
    // Two copies would make 5 messages: refused whole, nothing copied.
    let r = raw.cmd("COPY 1:2 Archive").await;
    assert!(r.no(), "{r:?}");
    assert_eq!(r.code().as_deref(), Some("OVERQUOTA"), "{r:?}");
    assert!(r.tagged.contains("4 messages"), "{r:?}");
    let r = raw.cmd("STATUS Archive (MESSAGES)").await;
    assert!(status_line(&r).contains("MESSAGES 0"), "{r:?}");
    // One fits; then the quota is full and a UID COPY of one more is refused too.
    assert!(raw.cmd("COPY 1 Archive").await.ok());
    let r = raw.cmd("UID COPY 1:* Archive").await;
    assert_eq!(r.code().as_deref(), Some("OVERQUOTA"), "{r:?}");
    // MOVE adds nothing to the user's usage: allowed at the limit.
    let r = raw.cmd("MOVE 2:3 Trash").await;
    assert!(r.ok(), "{r:?}");
    let r = raw.cmd("STATUS Trash (MESSAGES)").await;
    assert!(status_line(&r).contains("MESSAGES 2"), "{r:?}");
    let r = raw.cmd("GETQUOTAROOT INBOX").await;
    assert_eq!(quota_list(&r), "MESSAGE 4 4");
}

#[tokio::test]
async fn per_user_limits_in_the_users_file_override_the_default() {
    let server = TestServer::start_with(|c| c.quota.messages = 100).await;
    server.add_user_with_extra_fields(
        "carol",
        "pw",
        "userdb_mail=maildir:~/Maildir userdb_quota_rule=*:storage=2k userdb_quota_rule2=*:messages=2",
    );
    let mut carol = login(&server, "carol", "pw").await;
    let r = carol.cmd("GETQUOTAROOT INBOX").await;
    assert_eq!(quota_list(&r), "STORAGE 0 2 MESSAGE 0 2");
    assert!(carol.append("INBOX", "", &sized(600)).await.ok());
    let r = carol.append("INBOX", "", &sized(1500)).await;
    assert_eq!(r.code().as_deref(), Some("OVERQUOTA"), "storage: {r:?}");
    assert!(r.tagged.contains("2048 bytes"), "storage: {r:?}");
    assert!(carol.append("INBOX", "", &sized(1000)).await.ok());
    let r = carol.append("INBOX", "", &sized(300)).await;
    assert_eq!(r.code().as_deref(), Some("OVERQUOTA"), "messages: {r:?}");
    assert!(r.tagged.contains("2 messages"), "messages: {r:?}");
    // alice keeps the default.
    let mut alice = server.login().await;
    let r = alice.cmd("GETQUOTAROOT INBOX").await;
    assert_eq!(quota_list(&r), "MESSAGE 0 100");
}

#[tokio::test]
async fn status_reports_deleted_and_deleted_storage() {
    let server = TestServer::start().await;
    let mut raw = server.login().await;
    for len in [1500, 3000, 700] {
        assert!(raw.append("INBOX", "", &sized(len)).await.ok());
    }
    let r = raw.cmd("STATUS INBOX (DELETED DELETED-STORAGE)").await;
    assert!(r.ok(), "{r:?}");
    assert!(
        status_line(&r).contains("(DELETED 0 DELETED-STORAGE 0)"),
        "{r:?}"
    );
    assert!(raw.cmd("SELECT INBOX").await.ok());
    assert!(raw.cmd("STORE 1:2 +FLAGS (\\Deleted)").await.ok());
    let r = raw
        .cmd("STATUS INBOX (DELETED-STORAGE DELETED MESSAGES)")
        .await;
    // 4500 bytes would be freed: 5 KiB rounded up.
    assert!(
        status_line(&r).contains("(DELETED-STORAGE 5 DELETED 2 MESSAGES 3)"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_appends_of_one_user_never_pass_the_limit() {
    let server = TestServer::start_with(|c| c.quota.messages = 5).await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(server.login().await);
    }
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(s, mut raw)| {
            tokio::spawn(async move {
                let mut stored = 0;
                for i in 0..4 {
                    let r = raw
                        .append("INBOX", "", &message(&format!("s{s}m{i}"), "x"))
                        .await;
                    if r.ok() {
                        stored += 1;
                    } else {
                        assert_eq!(r.code().as_deref(), Some("OVERQUOTA"), "{r:?}");
                    }
                }
                stored
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        stored += task.await.unwrap();
    }
    assert_eq!(stored, 5, "16 appends against a limit of 5");
    let mut raw = server.login().await;
    let r = raw.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(status_line(&r).contains("MESSAGES 5"), "{r:?}");
}
