//! Black-box tests of the users-file adapter and of the editing functions
//! behind `pluto user add|passwd|del`.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pluto_auth::file::{add_user, add_user_with_hash, delete_user, list_users, set_password};
use pluto_auth::{AuthError, Authenticator, FileAuthenticator};

// `doveadm pw -s SHA512-CRYPT -p 'correct horse'` (Dovecot 2.3).
const DOVECOT_SHA512: &str = "{SHA512-CRYPT}$6$Wmf3nSQ8f9kM44RY$mAM/WKuqxrPy60p0wHVauhTtn8eu581XxCLQniYg8yO/79AU3JwVxiDw7Gyqsiyb6YoYc2db9Kp5tQTMWNAed.";
// `doveadm pw -s BLF-CRYPT -p 'correct horse'`.
const DOVECOT_BLF: &str = "{BLF-CRYPT}$2y$05$8QlzyO0/qu0H3xftZP00BeMggHRr1BuwThfgG6qSnssCPaK2a0RNK";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn add_authenticate_change_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");

    add_user(&path, "Alice", "s3cret").unwrap();
    assert_eq!(mode(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("Alice:{ARGON2ID}$argon2id$"), "{text}");
    assert!(!text.contains("s3cret"));

    let auth = FileAuthenticator::open(&path, false).await.unwrap();
    let ok = auth.authenticate("Alice", "s3cret").await.unwrap();
    assert_eq!(ok.user, "Alice");
    // Case-insensitive lookup, canonical spelling returned.
    assert_eq!(
        auth.authenticate("alice", "s3cret").await.unwrap().user,
        "Alice"
    );
    assert!(matches!(
        auth.authenticate("Alice", "wrong").await,
        Err(AuthError::Failed)
    ));
    // Unknown user: exactly the same error.
    assert!(matches!(
        auth.authenticate("mallory", "s3cret").await,
        Err(AuthError::Failed)
    ));

    // The editors' changes are seen on the next login, without reopening.
    set_password(&path, "ALICE", "n3w").unwrap();
    assert_eq!(mode(&path), 0o600);
    assert!(matches!(
        auth.authenticate("Alice", "s3cret").await,
        Err(AuthError::Failed)
    ));
    assert_eq!(
        auth.authenticate("Alice", "n3w").await.unwrap().user,
        "Alice"
    );

    add_user(&path, "bob", "b0b").unwrap();
    assert_eq!(auth.authenticate("bob", "b0b").await.unwrap().user, "bob");
    assert_eq!(list_users(&path).unwrap(), ["Alice", "bob"]);

    delete_user(&path, "alice").unwrap();
    assert!(matches!(
        auth.authenticate("Alice", "n3w").await,
        Err(AuthError::Failed)
    ));
    assert_eq!(list_users(&path).unwrap(), ["bob"]);
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["users"]);
}

#[tokio::test]
async fn clear_errors_for_existing_and_missing_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    add_user(&path, "alice", "pw").unwrap();
    assert!(
        matches!(add_user(&path, "alice", "pw2"), Err(AuthError::UserExists(n)) if n == "alice")
    );
    assert!(matches!(
        add_user(&path, "ALICE", "pw2"),
        Err(AuthError::UserExists(_))
    ));
    assert!(
        matches!(set_password(&path, "bob", "pw"), Err(AuthError::NoSuchUser(n)) if n == "bob")
    );
    assert!(matches!(
        delete_user(&path, "bob"),
        Err(AuthError::NoSuchUser(_))
    ));
    // On a file that does not exist yet: "no such user", not an I/O error.
    let missing = dir.path().join("nothing-here");
    assert!(matches!(
        delete_user(&missing, "bob"),
        Err(AuthError::NoSuchUser(_))
    ));
    assert!(matches!(
        add_user(&path, "carol", ""),
        Err(AuthError::InvalidPassword(_))
    ));
    let msg = add_user(&path, "alice", "x").unwrap_err().to_string();
    assert!(msg.contains("already exists"), "{msg}");
}

#[test]
fn refuses_names_that_would_break_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    for bad in [
        "a:b",
        "a b",
        "a\nb:{PLAIN}x",
        "tab\there",
        "nul\0",
        "",
        "#x",
        "../etc",
    ] {
        assert!(
            matches!(
                add_user(&path, bad, "pw"),
                Err(AuthError::InvalidUserName { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(!path.exists(), "nothing written for refused names");
    assert!(matches!(
        add_user_with_hash(&path, "ok", "{PLAIN}x\nroot:{PLAIN}y"),
        Err(AuthError::Hash(_))
    ));
}

#[tokio::test]
async fn reads_dovecot_passwd_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    let text = format!(
        "# migrated from dovecot\n\
         \n\
         sha:{DOVECOT_SHA512}:1000:1000::/home/sha::userdb_quota_rule=*:storage=1G\n\
         blf:{DOVECOT_BLF}::::::\n\
         plain:{{PLAIN}}open sesame\n\
         garbage line without separator\n"
    );
    std::fs::write(&path, &text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let auth = FileAuthenticator::open(&path, false).await.unwrap();
    assert_eq!(
        auth.authenticate("sha", "correct horse")
            .await
            .unwrap()
            .user,
        "sha"
    );
    assert_eq!(
        auth.authenticate("blf", "correct horse")
            .await
            .unwrap()
            .user,
        "blf"
    );
    assert!(matches!(
        auth.authenticate("sha", "wrong horse").await,
        Err(AuthError::Failed)
    ));
    // The quota rule in the extra fields reaches login and delivery alike.
    let one_gib = pluto_model::Quota {
        storage_bytes: Some(1 << 30),
        messages: None,
    };
    let login = auth.authenticate("sha", "correct horse").await.unwrap();
    assert_eq!(login.quota, one_gib);
    let account = auth.find_user("SHA").await.unwrap().unwrap();
    assert_eq!(account.quota, one_gib);
    assert_eq!(
        auth.find_user("blf").await.unwrap().unwrap().quota,
        pluto_model::Quota::default(),
        "no extra fields: no limits of its own"
    );
    // {PLAIN} without permission: refused like a wrong password.
    assert!(matches!(
        auth.authenticate("plain", "open sesame").await,
        Err(AuthError::Failed)
    ));
    let lenient = FileAuthenticator::open(&path, true).await.unwrap();
    assert_eq!(
        lenient
            .authenticate("plain", "open sesame")
            .await
            .unwrap()
            .user,
        "plain"
    );

    // set_password keeps the extra Dovecot fields and the other lines.
    set_password(&path, "sha", "new horse").unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    let sha_line = after.lines().find(|l| l.starts_with("sha:")).unwrap();
    assert!(sha_line.starts_with("sha:{ARGON2ID}$argon2id$"));
    assert!(sha_line.ends_with(":1000:1000::/home/sha::userdb_quota_rule=*:storage=1G"));
    assert!(after.starts_with("# migrated from dovecot\n\n"));
    assert!(after.contains("garbage line without separator\n"));
    assert!(after.contains(&format!("blf:{DOVECOT_BLF}::::::\n")));
    assert_eq!(
        auth.authenticate("sha", "new horse").await.unwrap().user,
        "sha"
    );
}

#[tokio::test]
async fn sees_edits_made_by_other_programs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    std::fs::write(&path, "a:{PLAIN}one\n").unwrap();
    let auth = FileAuthenticator::open(&path, true).await.unwrap();
    assert!(auth.authenticate("a", "one").await.is_ok());
    // Rewritten in place (same inode, same size): the mtime or size must
    // still reveal it. Sleep past coarse mtime granularity to be fair.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    std::fs::write(&path, "a:{PLAIN}two\n").unwrap();
    assert!(matches!(
        auth.authenticate("a", "one").await,
        Err(AuthError::Failed)
    ));
    assert!(auth.authenticate("a", "two").await.is_ok());
}

#[tokio::test]
async fn a_missing_file_is_unavailable_not_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    add_user(&path, "a", "pw").unwrap();
    let auth = FileAuthenticator::open(&path, false).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    match auth.authenticate("a", "pw").await {
        Err(AuthError::Unavailable(reason)) => assert!(reason.contains("users"), "{reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(matches!(
        FileAuthenticator::open(dir.path().join("nope"), false).await,
        Err(AuthError::Io { .. })
    ));
}

#[tokio::test]
async fn usable_as_a_trait_object() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    add_user(&path, "a", "pw").unwrap();
    let auth: std::sync::Arc<dyn Authenticator> =
        std::sync::Arc::new(FileAuthenticator::open(&path, false).await.unwrap());
    assert_eq!(auth.authenticate("a", "pw").await.unwrap().user, "a");
}

#[tokio::test]
async fn find_user_answers_without_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    add_user(&path, "Alice", "pw").unwrap();
    let auth = FileAuthenticator::open(&path, false).await.unwrap();
    // Case-insensitive, and the canonical spelling comes back.
    let account = auth.find_user("alice").await.unwrap().unwrap();
    assert_eq!((account.user.as_str(), account.enabled), ("Alice", true));
    assert!(auth.find_user("bob").await.unwrap().is_none());
    assert!(auth.find_user("a\0b").await.unwrap().is_none());
    // A user added by another program is seen.
    add_user(&path, "bob", "pw").unwrap();
    assert!(auth.find_user("bob").await.unwrap().is_some());
    // The file gone: unknown, not "no such user" (mail would bounce).
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        auth.find_user("alice").await,
        Err(AuthError::Unavailable(_))
    ));
}
