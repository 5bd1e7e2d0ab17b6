//! A small IMAP client for cluster tests (plain IMAP to a loopback gateway). It records
//! every (UIDVALIDITY, UID) → Message-ID binding it is shown, so a test can check that
//! no UID ever named two messages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Client {
    stream: BufReader<TcpStream>,
    tag: u32,
}

#[derive(Debug)]
pub struct Reply {
    pub untagged: Vec<Vec<u8>>,
    pub tagged: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("OK")
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await??;
        let mut c = Client {
            stream: BufReader::new(tcp),
            tag: 0,
        };
        let greeting = c.line().await?;
        if !greeting.starts_with(b"* OK") {
            return Err(std::io::Error::other(format!(
                "greeting: {}",
                String::from_utf8_lossy(&greeting)
            )));
        }
        Ok(c)
    }

    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> std::io::Result<Client> {
        let mut c = Client::connect(addr).await?;
        let r = c.cmd(&format!("LOGIN {user} \"{password}\"")).await?;
        if !r.ok() {
            return Err(std::io::Error::other(format!("login: {}", r.tagged)));
        }
        Ok(c)
    }

    /// Sends one raw line (CRLF added), e.g. `DONE`, or a command whose answer the test
    /// reads itself with [`Client::line`].
    pub async fn send_line(&mut self, line: &str) -> std::io::Result<()> {
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
    }

    /// The next tag [`Client::cmd`] would use.
    pub fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("c{}", self.tag)
    }

    /// One response line with its literals inline (waits up to 30 s).
    pub async fn line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(
                Duration::from_secs(30),
                self.stream.read_until(b'\n', &mut line),
            )
            .await
            .map_err(|_| std::io::Error::other("timed out"))??;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            out.extend_from_slice(&line);
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            if trimmed.ends_with(b"}") {
                if let Some(open) = trimmed.iter().rposition(|&b| b == b'{') {
                    let len: usize = std::str::from_utf8(&trimmed[open + 1..trimmed.len() - 1])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let mut buf = vec![0; len];
                    self.stream.read_exact(&mut buf).await?;
                    out.extend_from_slice(&buf);
                    continue;
                }
            }
            return Ok(out);
        }
    }

    pub async fn cmd(&mut self, command: &str) -> std::io::Result<Reply> {
        self.tag += 1;
        let tag = format!("c{}", self.tag);
        self.stream
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.read_reply(&tag).await
    }

    async fn read_reply(&mut self, tag: &str) -> std::io::Result<Reply> {
        let mut untagged = Vec::new();
        loop {
            let line = self.line().await?;
            if line.starts_with(format!("{tag} ").as_bytes()) {
                return Ok(Reply {
                    untagged,
                    tagged: String::from_utf8_lossy(&line).trim_end().to_owned(),
                });
            }
            if line.starts_with(b"* BYE") {
                return Err(std::io::Error::other("BYE"));
            }
            untagged.push(line);
        }
    }

    /// APPEND; returns the tagged line (with APPENDUID when OK).
    pub async fn append(&mut self, mailbox: &str, message: &[u8]) -> std::io::Result<Reply> {
        self.tag += 1;
        let tag = format!("c{}", self.tag);
        let head = format!("{tag} APPEND {mailbox} {{{}+}}\r\n", message.len());
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(message).await?;
        s.write_all(b"\r\n").await?;
        self.read_reply(&tag).await
    }

    /// SELECT, then every message's UID and Message-ID. Returns (UIDVALIDITY, [(uid, message-id)]).
    pub async fn list_messages(
        &mut self,
        mailbox: &str,
    ) -> std::io::Result<(u32, Vec<(u32, String)>)> {
        let r = self.cmd(&format!("SELECT {mailbox}")).await?;
        let validity = r
            .untagged
            .iter()
            .find_map(|l| {
                let s = String::from_utf8_lossy(l);
                s.split("[UIDVALIDITY ")
                    .nth(1)
                    .and_then(|r| r.split(']').next())
                    .and_then(|v| v.parse().ok())
            })
            .ok_or_else(|| std::io::Error::other(format!("no UIDVALIDITY: {r:?}")))?;
        let r = self
            .cmd("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            .await?;
        let mut out = Vec::new();
        for l in &r.untagged {
            let s = String::from_utf8_lossy(l);
            let uid = s
                .split("UID ")
                .nth(1)
                .and_then(|r| r.split([' ', ')']).next())
                .and_then(|v| v.parse().ok());
            let id = s
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Message-ID: ")
                        .or_else(|| l.strip_prefix("Message-Id: "))
                })
                .map(|v| v.trim().to_owned());
            if let (Some(uid), Some(id)) = (uid, id) {
                out.push((uid, id));
            }
        }
        out.sort();
        Ok((validity, out))
    }

    /// The message's exact bytes.
    pub async fn body(&mut self, uid: u32) -> std::io::Result<Vec<u8>> {
        let r = self.cmd(&format!("UID FETCH {uid} BODY.PEEK[]")).await?;
        let line = r
            .untagged
            .into_iter()
            .next()
            .ok_or_else(|| std::io::Error::other("no FETCH"))?;
        let start = line
            .windows(3)
            .position(|w| w == b"}\r\n")
            .map(|p| p + 3)
            .ok_or_else(|| std::io::Error::other("no literal"))?;
        // The literal's length is what precedes it; take exactly that many bytes.
        let open = line[..start].iter().rposition(|&b| b == b'{').unwrap_or(0);
        let len: usize = std::str::from_utf8(&line[open + 1..start - 3])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(line[start..start + len].to_vec())
    }
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

/// [`append_all`], also returning how many times the session was lost and a new one
/// opened (a `BYE` or a dropped connection).
pub async fn append_all_counting(
    addr: std::net::SocketAddr,
    user: String,
    messages: Vec<(String, Vec<u8>)>,
    acked: Arc<AtomicUsize>,
) -> (Vec<String>, usize) {
    let mut ok = Vec::new();
    let mut reconnects = 0;
    let mut client: Option<Client> = None;
    for (id, body) in messages {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if client.is_none() {
                match Client::login(addr, &user, crate::cluster::USER_PASSWORD).await {
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
            match c.append("INBOX", &body).await {
                Ok(reply) if reply.ok() && reply.tagged.contains("APPENDUID") => {
                    ok.push(id.clone());
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
