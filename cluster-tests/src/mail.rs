//! What cluster tests do over IMAP, on top of the test kit's client
//! ([`pluto_testkit::imap::Client`]): log in to a gateway with a session a `* BYE` ends,
//! append with reconnects, and record every (UIDVALIDITY, UID) → Message-ID binding a
//! client is shown, so a test can check that no UID ever named two messages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use std::time::Instant;

pub use pluto_testkit::imap::{Client, Reply};

/// Logs in with LOGIN; a `* BYE` before a command's tagged answer then ends that
/// command with an error, as a lost session does.
pub async fn login(addr: SocketAddr, user: &str, password: &str) -> std::io::Result<Client> {
    Ok(Client::login(addr, user, password).await?.failing_on_bye())
}

/// Runs `cmd`, which must be answered OK.
pub async fn ok(c: &mut Client, cmd: &str) -> Reply {
    let r = c
        .try_cmd(cmd)
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(r.ok(), "{cmd}: {r:?}");
    r
}

/// The number after `name` in `text` (`UIDNEXT 7`, `[HIGHESTMODSEQ 12]`, `(MESSAGES 3`).
pub fn number_after(text: &str, name: &str) -> u64 {
    let at = text
        .find(name)
        .unwrap_or_else(|| panic!("{name} in {text}"))
        + name.len();
    let digits: String = text[at..]
        .trim_start_matches([' ', '('])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("a number after {name} in {text}"))
}

/// The number after `name` in the first untagged line of `r` that has it.
pub fn code(r: &Reply, name: &str) -> u64 {
    let line = r
        .untagged
        .iter()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("{name} in {r:?}"));
    number_after(line, name)
}

/// Every binding a client was shown, to check that no UID ever named two messages.
#[derive(Default)]
pub struct Observer {
    seen: HashMap<(String, u32, u32), String>,
}

impl Observer {
    /// Records bindings; returns a description of the first violation, if any.
    pub fn record(
        &mut self,
        user: &str,
        validity: u32,
        bindings: &[(u32, String)],
    ) -> Result<(), String> {
        for (uid, id) in bindings {
            let key = (user.to_owned(), validity, *uid);
            match self.seen.get(&key) {
                Some(prev) if prev != id => {
                    return Err(format!(
                        "{user}: UID {uid} (UIDVALIDITY {validity}) named {prev} and later {id}"
                    ));
                }
                Some(_) => {}
                None => {
                    self.seen.insert(key, id.clone());
                }
            }
        }
        Ok(())
    }
}

/// A message with a unique Message-ID.
pub fn message(id: &str, size_hint: usize) -> Vec<u8> {
    let mut body = format!(
        "From: test@example.com\r\nTo: user@example.com\r\nSubject: message {id}\r\nMessage-ID: <{id}@cluster.test>\r\nDate: Sun, 29 Nov 2026 10:00:00 +0000\r\n\r\n"
    );
    while body.len() < size_hint {
        body.push_str("The quick brown fox jumps over the lazy dog. 0123456789\r\n");
    }
    body.into_bytes()
}

/// Appends `messages` for `user`, reconnecting whenever the session is lost. Returns
/// the Message-IDs that were acknowledged (tagged OK with APPENDUID).
pub async fn append_all(
    addr: std::net::SocketAddr,
    user: String,
    messages: Vec<(String, Vec<u8>)>,
    acked: Arc<AtomicUsize>,
) -> Vec<String> {
    append_all_counting(addr, user, messages, acked).await.0
}

/// One acknowledged APPEND: the Message-ID, the UID its APPENDUID named, and when.
#[derive(Clone, Debug)]
pub struct Acked {
    pub id: String,
    pub uid: u32,
    pub at: Instant,
}

/// [`append_all`], returning what each acknowledgement said.
pub async fn append_all_acked(
    addr: std::net::SocketAddr,
    user: String,
    messages: Vec<(String, Vec<u8>)>,
    acked: Arc<AtomicUsize>,
) -> Vec<Acked> {
    append_all_inner(addr, user, messages, acked).await.0
}

/// [`append_all`], also returning how many times the session was lost and a new one
/// opened (a `BYE` or a dropped connection).
pub async fn append_all_counting(
    addr: std::net::SocketAddr,
    user: String,
    messages: Vec<(String, Vec<u8>)>,
    acked: Arc<AtomicUsize>,
) -> (Vec<String>, usize) {
    let (ok, reconnects) = append_all_inner(addr, user, messages, acked).await;
    (ok.into_iter().map(|a| a.id).collect(), reconnects)
}

async fn append_all_inner(
    addr: std::net::SocketAddr,
    user: String,
    messages: Vec<(String, Vec<u8>)>,
    acked: Arc<AtomicUsize>,
) -> (Vec<Acked>, usize) {
    let mut ok = Vec::new();
    let mut reconnects = 0;
    let mut client: Option<Client> = None;
    for (id, body) in messages {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if client.is_none() {
                match login(addr, &user, crate::cluster::USER_PASSWORD).await {
                    Ok(c) => client = Some(c),
                    Err(e) => {
                        assert!(
                            Instant::now() < deadline,
                            "{user} could not log in again for 60 s: {e}"
                        );
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
            let Some(c) = client.as_mut() else { continue };
            match c.try_append_plus("INBOX", "", &body).await {
                Ok(reply) if reply.ok() && reply.tagged.contains("APPENDUID") => {
                    let Some((_, uid)) = pluto_testkit::imap::appenduid(&reply.tagged) else {
                        panic!("{user}: unreadable APPENDUID in {:?}", reply.tagged);
                    };
                    ok.push(Acked {
                        id: id.clone(),
                        uid,
                        at: Instant::now(),
                    });
                    acked.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                // Not acknowledged: the message may or may not be there; go on with the
                // next one (a retry would make two copies impossible to tell apart).
                Ok(_) => break,
                Err(_) => {
                    client = None;
                    reconnects += 1;
                    break;
                }
            }
        }
    }
    (ok, reconnects)
}
