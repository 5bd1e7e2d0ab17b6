//! The IMAP test client. It trusts nothing about the server beyond RFC 3501 framing
//! (a line; a literal `{n}` at its end is followed by exactly n bytes, then the rest of
//! the response), so a framing bug shows up as a test failure, and it leaves all
//! judgement to the caller.
//!
//! Every call comes in two forms: `try_…` returns an [`std::io::Error`] when the
//! connection fails, times out or closes (for tests that expect that, or reconnect);
//! the plain form panics saying what it was waiting for (for tests where that is a
//! failure). [`Blocking`] drives the same client from a thread without a runtime.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How long a read waits for the server before it is a failure.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything one command got back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The untagged responses (and continuation requests), each with the literals it
    /// carried inline (`… {n}\r\n<n bytes>…`), without the final CRLF.
    pub untagged: Vec<String>,
    /// For each of [`Reply::untagged`], its literals' exact bytes, in order.
    pub literals: Vec<Vec<Vec<u8>>>,
    /// The tagged status line, without its CRLF.
    pub tagged: String,
}

impl Reply {
    fn status(&self) -> Option<&str> {
        self.tagged.split(' ').nth(1)
    }

    /// The tagged status is OK.
    pub fn ok(&self) -> bool {
        self.status() == Some("OK")
    }

    /// The tagged status is NO.
    pub fn no(&self) -> bool {
        self.status() == Some("NO")
    }

    /// The tagged status is BAD.
    pub fn bad(&self) -> bool {
        self.status() == Some("BAD")
    }

    /// Some untagged response contains `needle`.
    pub fn has(&self, needle: &str) -> bool {
        self.untagged.iter().any(|l| l.contains(needle))
    }

    /// The first untagged response that contains `needle`.
    pub fn find(&self, needle: &str) -> Option<&String> {
        self.untagged.iter().find(|l| l.contains(needle))
    }

    /// The untagged responses that start with `prefix`.
    pub fn lines(&self, prefix: &str) -> Vec<&str> {
        self.untagged
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }

    /// The numbers of `* SEARCH …`, in the order sent; panics without one.
    pub fn search(&self) -> Vec<u32> {
        let line = self
            .untagged
            .iter()
            .find(|l| l.starts_with("* SEARCH"))
            .unwrap_or_else(|| panic!("no SEARCH response in {self:?}"));
        line["* SEARCH".len()..]
            .split_whitespace()
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|e| panic!("SEARCH number {n:?}: {e}"))
            })
            .collect()
    }

    /// The response code of the tagged line, e.g. `APPENDUID 1 3` for
    /// `a1 OK [APPENDUID 1 3] …`.
    pub fn code(&self) -> Option<String> {
        let open = self.tagged.find('[')?;
        let close = self.tagged[open..].find(']')? + open;
        Some(self.tagged[open + 1..close].to_owned())
    }
}

/// One IMAP connection, over any stream (plain TCP, or TLS).
pub struct Client<S = TcpStream> {
    stream: BufReader<S>,
    next_tag: u32,
    /// A `* BYE` before the tagged answer ends the command with an error.
    bye_fails: bool,
    timeout: Duration,
}

impl Client<TcpStream> {
    /// Connects over plain TCP and reads the greeting, which must be `* OK`.
    pub async fn connect(addr: SocketAddr) -> io::Result<Client<TcpStream>> {
        let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))??;
        tcp.set_nodelay(true)?;
        Client::greeted(tcp).await
    }

    /// Connects and logs in with LOGIN (quoted user name and password).
    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> io::Result<Client> {
        let mut client = Client::connect(addr).await?;
        let reply = client
            .try_cmd(&format!("LOGIN {} {}", quote(user), quote(password)))
            .await?;
        if !reply.ok() {
            return Err(io::Error::other(format!("LOGIN refused: {}", reply.tagged)));
        }
        Ok(client)
    }

    /// Sends STARTTLS, and once it is answered OK makes the TLS handshake (`localhost`
    /// as the server name); no greeting follows.
    pub async fn starttls(
        mut self,
        connector: &tokio_rustls::TlsConnector,
    ) -> io::Result<Client<TlsStream<TcpStream>>> {
        let reply = self.try_cmd("STARTTLS").await?;
        if !reply.ok() {
            return Err(io::Error::other(format!("STARTTLS: {}", reply.tagged)));
        }
        let tls = crate::tls::handshake(connector, self.into_inner()).await?;
        Ok(Client::new(tls))
    }
}

impl Client<TlsStream<TcpStream>> {
    /// Connects with implicit TLS (`localhost` as the server name) and reads the
    /// greeting, which must be `* OK`.
    pub async fn connect_tls(
        addr: SocketAddr,
        connector: &tokio_rustls::TlsConnector,
    ) -> io::Result<Client<TlsStream<TcpStream>>> {
        let tcp = TcpStream::connect(addr).await?;
        let tls = crate::tls::handshake(connector, tcp).await?;
        Client::greeted(tls).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// A client on a stream whose greeting (if any) the caller reads.
    pub fn new(stream: S) -> Self {
        Self {
            stream: BufReader::new(stream),
            next_tag: 1,
            bye_fails: false,
            timeout: READ_TIMEOUT,
        }
    }

    /// A client on `stream`, its greeting read; it must be `* OK`.
    pub async fn greeted(stream: S) -> io::Result<Self> {
        let mut client = Client::new(stream);
        let greeting = client.try_line().await?;
        if !greeting.starts_with("* OK") {
            return Err(io::Error::other(format!(
                "unexpected greeting {greeting:?}"
            )));
        }
        Ok(client)
    }

    /// From now on a `* BYE` before a command's tagged answer ends the command with an
    /// error (for tests that reconnect when their session is ended).
    pub fn failing_on_bye(mut self) -> Self {
        self.bye_fails = true;
        self
    }

    /// The stream, for the caller to go on by hand; bytes already read and buffered
    /// here are dropped.
    pub fn into_inner(self) -> S {
        self.stream.into_inner()
    }

    /// The next tag (`a1`, `a2`, …), for a command the caller sends itself.
    pub fn tag(&mut self) -> String {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Writes `bytes` as they are, and flushes.
    pub async fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.stream.get_mut();
        stream.write_all(bytes).await?;
        stream.flush().await
    }

    /// [`Client::try_send`]; panics when the write fails.
    pub async fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send(bytes).await {
            panic!("writing to the server: {e}");
        }
    }

    /// One response: a line, plus any literals and the lines that follow them; its
    /// text (literals inline, without the final CRLF) and its literals' bytes.
    async fn try_response(&mut self) -> io::Result<(String, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut literals = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(self.timeout, self.stream.read_until(b'\n', &mut line))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "timed out waiting for the server; so far: {}",
                            String::from_utf8_lossy(&out)
                        ),
                    )
                })??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed; so far: {}",
                        String::from_utf8_lossy(&out)
                    ),
                ));
            }
            out.extend_from_slice(&line);
            let Some(len) = literal_len(&line) else {
                break;
            };
            let mut literal = vec![0; len];
            tokio::time::timeout(self.timeout, self.stream.read_exact(&mut literal))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "timed out in a literal"))??;
            out.extend_from_slice(&literal);
            literals.push(literal);
        }
        let text = String::from_utf8_lossy(&out);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        Ok((text.to_owned(), literals))
    }

    /// One response line, with any literals it carries read inline.
    pub async fn try_line(&mut self) -> io::Result<String> {
        Ok(self.try_response().await?.0)
    }

    /// [`Client::try_line`]; panics when none comes.
    pub async fn line(&mut self) -> String {
        self.try_line()
            .await
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Reads a line if one arrives within `wait`; `None` when the server stays quiet
    /// (or closes). Literals are not read: for what comes unasked, e.g. in IDLE.
    pub async fn maybe_line(&mut self, wait: Duration) -> Option<String> {
        let mut line = Vec::new();
        match tokio::time::timeout(wait, self.stream.read_until(b'\n', &mut line)).await {
            Ok(Ok(n)) if n > 0 => Some(
                String::from_utf8_lossy(&line)
                    .trim_end_matches("\r\n")
                    .to_owned(),
            ),
            Ok(_) => None,
            Err(_) => {
                // A partial line would be lost by the cancelled read; responses come whole.
                assert!(
                    line.is_empty(),
                    "partial line: {}",
                    String::from_utf8_lossy(&line)
                );
                None
            }
        }
    }

    /// Reads responses up to the one tagged `tag`.
    pub async fn try_read_reply(&mut self, tag: &str) -> io::Result<Reply> {
        let prefix = format!("{tag} ");
        let mut untagged = Vec::new();
        let mut literals = Vec::new();
        loop {
            let (text, lits) = self.try_response().await?;
            if text.starts_with(&prefix) {
                return Ok(Reply {
                    untagged,
                    literals,
                    tagged: text,
                });
            }
            if self.bye_fails && text.starts_with("* BYE") {
                return Err(io::Error::other(text));
            }
            untagged.push(text);
            literals.push(lits);
        }
    }

    /// [`Client::try_read_reply`]; panics when the connection fails first.
    pub async fn read_reply(&mut self, tag: &str) -> Reply {
        self.try_read_reply(tag)
            .await
            .unwrap_or_else(|e| panic!("waiting for {tag}'s answer: {e}"))
    }

    /// Sends `TAG command` (CRLF added) and reads up to the tagged answer.
    pub async fn try_cmd(&mut self, command: &str) -> io::Result<Reply> {
        let tag = self.tag();
        self.try_send(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        self.try_read_reply(&tag).await
    }

    /// [`Client::try_cmd`]; panics when the connection fails first.
    pub async fn cmd(&mut self, command: &str) -> Reply {
        self.try_cmd(command)
            .await
            .unwrap_or_else(|e| panic!("{command}: {e}"))
    }

    /// [`Client::try_cmd`], with a tagged answer other than OK as the error.
    pub async fn try_cmd_ok(&mut self, command: &str) -> io::Result<Reply> {
        let reply = self.try_cmd(command).await?;
        if !reply.ok() {
            return Err(io::Error::other(format!("{command}: {}", reply.tagged)));
        }
        Ok(reply)
    }

    /// Sends `TAG ` + `bytes` as they are (no CRLF added) and reads up to the tagged
    /// answer: for literals and malformed commands written by hand.
    pub async fn try_cmd_bytes(&mut self, bytes: &[u8]) -> io::Result<Reply> {
        let tag = self.tag();
        let mut out = format!("{tag} ").into_bytes();
        out.extend_from_slice(bytes);
        self.try_send(&out).await?;
        self.try_read_reply(&tag).await
    }

    /// [`Client::try_cmd_bytes`]; panics when the connection fails first.
    pub async fn cmd_bytes(&mut self, bytes: &[u8]) -> Reply {
        self.try_cmd_bytes(bytes)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(bytes)))
    }

    /// `APPEND mailbox (flags) {n}` with a synchronizing literal: the bytes are sent
    /// after the server's `+`. A refusal instead of the `+` (e.g. `NO [TOOBIG]`) is
    /// the tagged answer. `mailbox` goes on the wire as it is.
    pub async fn try_append(
        &mut self,
        mailbox: &str,
        flags: &str,
        message: &[u8],
    ) -> io::Result<Reply> {
        let tag = self.tag();
        self.try_send(
            format!("{tag} APPEND {mailbox} ({flags}) {{{}}}\r\n", message.len()).as_bytes(),
        )
        .await?;
        let (cont, _) = self.try_response().await?;
        if !cont.starts_with('+') {
            return Ok(Reply {
                untagged: Vec::new(),
                literals: Vec::new(),
                tagged: cont,
            });
        }
        self.try_send(message).await?;
        self.try_send(b"\r\n").await?;
        self.try_read_reply(&tag).await
    }

    /// [`Client::try_append`]; panics when the connection fails first.
    pub async fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> Reply {
        self.try_append(mailbox, flags, message)
            .await
            .unwrap_or_else(|e| panic!("APPEND to {mailbox}: {e}"))
    }

    /// `APPEND mailbox (flags) {n+}`: a non-synchronizing literal (LITERAL+), sent
    /// with the command.
    pub async fn try_append_plus(
        &mut self,
        mailbox: &str,
        flags: &str,
        message: &[u8],
    ) -> io::Result<Reply> {
        let mut out = format!("APPEND {mailbox} ({flags}) {{{}+}}\r\n", message.len()).into_bytes();
        out.extend_from_slice(message);
        out.extend_from_slice(b"\r\n");
        self.try_cmd_bytes(&out).await
    }

    /// [`Client::try_append_plus`]; panics when the connection fails first.
    pub async fn append_plus(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> Reply {
        self.try_append_plus(mailbox, flags, message)
            .await
            .unwrap_or_else(|e| panic!("APPEND to {mailbox}: {e}"))
    }

    /// Sends `TAG IDLE` and waits for the server's `+`; returns the tag, for
    /// [`Client::try_done`]. What comes meanwhile is read with [`Client::try_line`].
    pub async fn try_idle(&mut self) -> io::Result<String> {
        let tag = self.tag();
        self.try_send(format!("{tag} IDLE\r\n").as_bytes()).await?;
        loop {
            let line = self.try_line().await?;
            if line.starts_with('+') {
                return Ok(tag);
            }
            if !line.starts_with('*') {
                return Err(io::Error::other(format!("IDLE refused: {line}")));
            }
        }
    }

    /// Ends IDLE (`DONE`) and reads up to its tagged answer.
    pub async fn try_done(&mut self, tag: &str) -> io::Result<Reply> {
        self.try_send(b"DONE\r\n").await?;
        self.try_read_reply(tag).await
    }

    /// `SELECT "mailbox"`; returns (UIDVALIDITY, EXISTS).
    pub async fn try_select(&mut self, mailbox: &str) -> io::Result<(u32, u32)> {
        let reply = self
            .try_cmd_ok(&format!("SELECT {}", quote(mailbox)))
            .await?;
        let mut validity = None;
        let mut exists = None;
        for r in &reply.untagged {
            if let Some(v) = code_number(r, "UIDVALIDITY") {
                validity = Some(v);
            }
            let words: Vec<&str> = r.split(' ').collect();
            if words.len() == 3 && words[2] == "EXISTS" {
                exists = words[1].parse().ok();
            }
        }
        match (validity, exists) {
            (Some(v), Some(e)) => Ok((v, e)),
            _ => Err(io::Error::other(format!(
                "SELECT without UIDVALIDITY or EXISTS: {:?}",
                reply.untagged
            ))),
        }
    }

    /// `UID FETCH set (UID BODY.PEEK[])`: every message's UID and exact bytes.
    pub async fn try_fetch_bodies(&mut self, set: &str) -> io::Result<Vec<(u32, Vec<u8>)>> {
        let reply = self
            .try_cmd_ok(&format!("UID FETCH {set} (UID BODY.PEEK[])"))
            .await?;
        let mut out = Vec::new();
        for (text, literals) in reply.untagged.into_iter().zip(reply.literals) {
            if !text.contains(" FETCH ") {
                continue;
            }
            let uid = item_number(&text, "UID")
                .ok_or_else(|| io::Error::other(format!("no UID in {text:?}")))?;
            let [body] = <[Vec<u8>; 1]>::try_from(literals)
                .map_err(|l| io::Error::other(format!("expected one literal, got {}", l.len())))?;
            out.push((uid, body));
        }
        Ok(out)
    }

    /// The exact bytes of message `uid` (`UID FETCH uid BODY.PEEK[]`), found among
    /// whatever untagged responses come with it (an EXISTS or a flag change may come
    /// first).
    pub async fn try_body(&mut self, uid: u32) -> io::Result<Vec<u8>> {
        let reply = self
            .try_cmd_ok(&format!("UID FETCH {uid} BODY.PEEK[]"))
            .await?;
        reply
            .untagged
            .iter()
            .zip(reply.literals)
            .find(|(text, _)| text.contains("BODY[] {") && item_number(text, "UID") == Some(uid))
            .and_then(|(_, literals)| literals.into_iter().next())
            .ok_or_else(|| io::Error::other(format!("no BODY[] in {:?}", reply.untagged)))
    }

    /// `UID FETCH set (UID FLAGS)`: every message's UID and flags, sorted.
    pub async fn try_fetch_flags(&mut self, set: &str) -> io::Result<Vec<(u32, Vec<String>)>> {
        let reply = self
            .try_cmd_ok(&format!("UID FETCH {set} (UID FLAGS)"))
            .await?;
        let mut out = Vec::new();
        for text in &reply.untagged {
            if !text.contains(" FETCH ") {
                continue;
            }
            let uid = item_number(text, "UID")
                .ok_or_else(|| io::Error::other(format!("no UID in {text:?}")))?;
            let flags = paren_list(text, "FLAGS")
                .ok_or_else(|| io::Error::other(format!("no FLAGS in {text:?}")))?;
            out.push((uid, flags));
        }
        Ok(out)
    }

    /// SELECT, then every message's UID and Message-ID, sorted by UID; returns
    /// (UIDVALIDITY, [(uid, message-id)]).
    pub async fn try_list_messages(
        &mut self,
        mailbox: &str,
    ) -> io::Result<(u32, Vec<(u32, String)>)> {
        let (validity, _) = self.try_select(mailbox).await?;
        let reply = self
            .try_cmd("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            .await?;
        let mut out = Vec::new();
        for text in &reply.untagged {
            let id = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Message-ID: ")
                        .or_else(|| l.strip_prefix("Message-Id: "))
                })
                .map(|v| v.trim().to_owned());
            if let (Some(uid), Some(id)) = (item_number(text, "UID"), id) {
                out.push((uid, id));
            }
        }
        out.sort();
        Ok((validity, out))
    }
}

/// A blocking handle on one plain-TCP [`Client`], with a runtime of its own: for
/// tests that drive sessions from threads.
pub struct Blocking {
    // Dropped before the runtime it runs on.
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl Blocking {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> io::Result<Blocking> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = runtime.block_on(Client::connect(addr))?;
        Ok(Blocking { client, runtime })
    }

    /// Connects and logs in; panics with the server's answer if that fails.
    pub fn login(addr: SocketAddr, user: &str, password: &str) -> Blocking {
        let mut client =
            Blocking::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        let reply = client
            .cmd(&format!("LOGIN {} {}", quote(user), quote(password)))
            .unwrap_or_else(|e| panic!("LOGIN: {e}"));
        assert!(reply.ok(), "LOGIN refused: {}", reply.tagged);
        client
    }

    /// [`Client::try_cmd`].
    pub fn cmd(&mut self, command: &str) -> io::Result<Reply> {
        self.runtime.block_on(self.client.try_cmd(command))
    }

    /// [`Client::try_append`], the mailbox name quoted.
    pub fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> io::Result<Reply> {
        self.runtime
            .block_on(self.client.try_append(&quote(mailbox), flags, message))
    }

    /// [`Client::try_select`].
    pub fn select(&mut self, mailbox: &str) -> io::Result<(u32, u32)> {
        self.runtime.block_on(self.client.try_select(mailbox))
    }

    /// [`Client::try_fetch_bodies`].
    pub fn fetch_bodies(&mut self, set: &str) -> io::Result<Vec<(u32, Vec<u8>)>> {
        self.runtime.block_on(self.client.try_fetch_bodies(set))
    }

    /// [`Client::try_fetch_flags`].
    pub fn fetch_flags(&mut self, set: &str) -> io::Result<Vec<(u32, Vec<String>)>> {
        self.runtime.block_on(self.client.try_fetch_flags(set))
    }
}

/// A quoted string (for names and passwords without CR/LF).
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `{n}` (or `{n+}`) at the end of a line.
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = std::str::from_utf8(&body[open + 1..]).ok()?;
    digits.strip_suffix('+').unwrap_or(digits).parse().ok()
}

/// The number after `NAME ` in a FETCH item list, e.g. `UID 17`.
pub fn item_number(text: &str, name: &str) -> Option<u32> {
    let needle = format!("{name} ");
    let mut rest = text;
    while let Some(pos) = rest.find(&needle) {
        let before = rest[..pos].chars().last();
        let after = &rest[pos + needle.len()..];
        if matches!(before, Some(' ') | Some('(')) {
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
        rest = after;
    }
    None
}

/// The number after `[NAME ` in a response code, e.g. `[UIDVALIDITY 123]`.
pub fn code_number(text: &str, name: &str) -> Option<u32> {
    let start = text.find(&format!("[{name} "))? + name.len() + 2;
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `[APPENDUID validity uid]` from a tagged OK.
pub fn appenduid(tagged: &str) -> Option<(u32, u32)> {
    let start = tagged.find("[APPENDUID ")? + "[APPENDUID ".len();
    let end = start + tagged[start..].find(']')?;
    let mut words = tagged[start..end].split(' ');
    let validity = words.next()?.parse().ok()?;
    let uid = words.next()?.parse().ok()?;
    Some((validity, uid))
}

/// The words of `NAME (a b c)`, e.g. the flags of a FETCH response, sorted.
fn paren_list(text: &str, name: &str) -> Option<Vec<String>> {
    let start = text.find(&format!("{name} ("))? + name.len() + 2;
    let end = start + text[start..].find(')')?;
    let mut words: Vec<String> = text[start..end]
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    words.sort();
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_lengths() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_len(b"a APPEND x {3+}\r\n"), Some(3));
        assert_eq!(literal_len(b"* OK {not a number}\r\n"), None);
        assert_eq!(literal_len(b"* OK done\r\n"), None);
    }

    #[tokio::test]
    async fn a_reply_keeps_literals_inline_and_apart() {
        let (mine, mut server) = tokio::io::duplex(4096);
        let mut client = Client::new(mine);
        server
            .write_all(b"* 1 FETCH (UID 7 BODY[] {5}\r\nhe\r\no)\r\n* 1 EXISTS\r\na1 OK done\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let reply = client.cmd("UID FETCH 7 BODY[]").await;
        assert!(reply.ok(), "{reply:?}");
        assert_eq!(
            reply.untagged,
            ["* 1 FETCH (UID 7 BODY[] {5}\r\nhe\r\no)", "* 1 EXISTS"]
        );
        assert_eq!(reply.literals, [vec![b"he\r\no".to_vec()], vec![]]);
        assert_eq!(item_number(&reply.untagged[0], "UID"), Some(7));
    }

    #[tokio::test]
    async fn idle_waits_for_the_continuation_and_done_reads_the_answer() {
        let (mine, mut server) = tokio::io::duplex(4096);
        let mut client = Client::new(mine);
        server
            .write_all(b"* 2 EXISTS\r\n+ idling\r\n* 3 EXISTS\r\na1 OK IDLE done\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let tag = client.try_idle().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.line().await, "* 3 EXISTS");
        let reply = client
            .try_done(&tag)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.tagged, "a1 OK IDLE done");
        let mut sent = vec![0; 15];
        server
            .read_exact(&mut sent)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sent, b"a1 IDLE\r\nDONE\r\n");
    }

    #[tokio::test]
    async fn a_bye_fails_the_command_only_when_asked() {
        let (mine, mut server) = tokio::io::duplex(4096);
        let mut client = Client::new(mine);
        server
            .write_all(b"* BYE going\r\na1 OK done\r\n* BYE again\r\na2 OK done\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let reply = client.cmd("NOOP").await;
        assert_eq!(reply.untagged, ["* BYE going"]);
        let mut client = client.failing_on_bye();
        let err = client.try_cmd("NOOP").await.err();
        assert!(err.is_some_and(|e| e.to_string().contains("BYE again")));
    }
}
