//! A complete authentication adapter of your own, in the shape most teams
//! need: the users live in some directory service (LDAP, an HTTP API, a
//! legacy database) that is reached over the network and stores password
//! hashes. Here the "directory" is an in-memory map behind a simulated
//! network call, so the example runs anywhere:
//!
//! ```sh
//! cargo run -p pluto-auth --example custom_adapter
//! cargo test -p pluto-auth --example custom_adapter
//! ```
//!
//! Replace `Directory::search` with your real lookup; keep the rest. See
//! "Writing your own adapter" in auth/README.md and the rules on
//! `pluto_auth::Authenticator`.

#![allow(clippy::print_stdout)] // a demo program: printing is its output

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use pluto_auth::scheme::{verify_dummy, verify_password};
use pluto_auth::{Account, AuthError, Authenticated, Authenticator, hash_password};

/// One account as the directory returns it.
#[derive(Clone)]
struct DirectoryEntry {
    /// The account's canonical id: pluto stores mail under this name.
    uid: String,
    /// A Dovecot-style `{SCHEME}hash` (here made by `hash_password`; a
    /// migrated `{SHA512-CRYPT}$6$…` or `{BLF-CRYPT}$2y$…` works too).
    password_hash: String,
    /// Locked accounts may not log in.
    locked: bool,
}

/// Stands in for the remote service.
struct Directory {
    entries: HashMap<String, DirectoryEntry>,
    online: AtomicBool,
    latency: Duration,
}

impl Directory {
    /// The network call. A real one would use an async client (or a sync one
    /// inside `tokio::task::spawn_blocking`) and return its own error type.
    async fn search(&self, login: &str) -> Result<Option<DirectoryEntry>, String> {
        tokio::time::sleep(self.latency).await;
        if !self.online.load(Ordering::Relaxed) {
            return Err("connection refused".to_owned());
        }
        Ok(self.entries.get(&login.to_lowercase()).cloned())
    }
}

/// The adapter: the only type the gateway sees.
struct DirectoryAuthenticator {
    directory: Directory,
    /// Every network call is bounded: a hung directory must not hang logins.
    timeout: Duration,
}

#[async_trait]
impl Authenticator for DirectoryAuthenticator {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Authenticated, AuthError> {
        // 1. Look the user up, bounded by a timeout. Trouble is `Unavailable`
        //    (the client sees NO [UNAVAILABLE] and retries later), never
        //    `Failed` (which would make clients ask for a new password).
        let entry = match tokio::time::timeout(self.timeout, self.directory.search(user)).await {
            Err(_) => {
                return Err(AuthError::Unavailable(format!(
                    "directory did not answer within {:?}",
                    self.timeout
                )));
            }
            Ok(Err(reason)) => return Err(AuthError::Unavailable(format!("directory: {reason}"))),
            Ok(Ok(entry)) => entry,
        };
        match entry {
            // 2. Unknown user: spend the time of a real verification, then
            //    give exactly the answer a wrong password gets.
            None => {
                verify_dummy(password).await?;
                Err(AuthError::Failed)
            }
            Some(entry) => {
                // 3. Verify on the blocking pool (verify_password does that).
                //    `false`: {PLAIN} entries are refused.
                if !verify_password(password, &entry.password_hash, false).await? {
                    Err(AuthError::Failed)
                } else if entry.locked {
                    // 4. Disabled only after the password verified.
                    Err(AuthError::Disabled)
                } else {
                    // 5. The canonical name, not what the client typed.
                    Ok(Authenticated::new(entry.uid))
                }
            }
        }
    }

    async fn find_user(&self, user: &str) -> Result<Option<Account>, AuthError> {
        // For mail delivery (no password): the same bounded search, trouble is
        // `Unavailable` (the MTA retries), and a locked account is disabled.
        match tokio::time::timeout(self.timeout, self.directory.search(user)).await {
            Err(_) => Err(AuthError::Unavailable(format!(
                "directory did not answer within {:?}",
                self.timeout
            ))),
            Ok(Err(reason)) => Err(AuthError::Unavailable(format!("directory: {reason}"))),
            Ok(Ok(entry)) => Ok(entry.map(|e| Account::new(e.uid, !e.locked))),
        }
    }
}

/// A directory with two accounts: `alice` (password `wonderland`) and the
/// locked `bob` (password `builder`).
fn example_adapter() -> Result<DirectoryAuthenticator, AuthError> {
    let mut entries = HashMap::new();
    entries.insert(
        "alice".to_owned(),
        DirectoryEntry {
            uid: "alice".to_owned(),
            password_hash: hash_password("wonderland")?,
            locked: false,
        },
    );
    entries.insert(
        "bob".to_owned(),
        DirectoryEntry {
            uid: "bob".to_owned(),
            password_hash: hash_password("builder")?,
            locked: true,
        },
    );
    Ok(DirectoryAuthenticator {
        directory: Directory {
            entries,
            online: AtomicBool::new(true),
            latency: Duration::from_millis(5),
        },
        timeout: Duration::from_secs(2),
    })
}

#[tokio::main]
async fn main() -> Result<(), AuthError> {
    let adapter = Arc::new(example_adapter()?);
    // What the gateway holds: any adapter behind one trait object.
    let auth: Arc<dyn Authenticator> = adapter.clone();
    for (user, password) in [
        ("Alice", "wonderland"),
        ("alice", "wrong"),
        ("nobody", "wonderland"),
        ("bob", "builder"),
    ] {
        println!(
            "{user}/{password}: {:?}",
            auth.authenticate(user, password).await
        );
    }
    adapter.directory.online.store(false, Ordering::Relaxed);
    println!(
        "directory down: {:?}",
        auth.authenticate("alice", "wonderland").await
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn the_example_adapter_keeps_the_promises() {
        let adapter = example_adapter().unwrap();
        assert_eq!(
            adapter.authenticate("ALICE", "wonderland").await.unwrap(),
            Authenticated::new("alice")
        );
        assert!(matches!(
            adapter.authenticate("alice", "x").await,
            Err(AuthError::Failed)
        ));
        assert!(matches!(
            adapter.authenticate("zed", "x").await,
            Err(AuthError::Failed)
        ));
        assert!(matches!(
            adapter.authenticate("bob", "x").await,
            Err(AuthError::Failed)
        ));
        assert!(matches!(
            adapter.authenticate("bob", "builder").await,
            Err(AuthError::Disabled)
        ));
        adapter.directory.online.store(false, Ordering::Relaxed);
        assert!(matches!(
            adapter.authenticate("alice", "wonderland").await,
            Err(AuthError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_hung_directory_is_unavailable_not_a_hang() {
        let mut adapter = example_adapter().unwrap();
        adapter.directory.latency = Duration::from_secs(60);
        adapter.timeout = Duration::from_millis(50);
        assert!(matches!(
            adapter.authenticate("alice", "wonderland").await,
            Err(AuthError::Unavailable(_))
        ));
    }
}
