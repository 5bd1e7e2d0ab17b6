//! A deliberately small, blocking IMAP client for checking the server's state from
//! the tests: it speaks plain TCP on loopback (where pluto allows LOGIN), reads
//! literals exactly, and leaves all judgement to the caller. It trusts nothing about
//! the server beyond RFC 3501 framing, so a framing bug shows up as a test failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One untagged response: its text (literal announcements `{n}` left in place) and the
/// literals it carried, in order.
#[derive(Debug, Clone)]
pub struct Response {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

/// Everything one command got back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub untagged: Vec<Response>,
    pub tagged: String,
}

impl Reply {
    /// The tagged status is OK.
    pub fn ok(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("OK")
    }
}

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next_tag: u32,
}

impl Client {
    /// Connects and reads the greeting, which must be `* OK`.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
            next_tag: 1,
        };
        let greeting = client.response()?;
        if !greeting.text.starts_with("* OK") {
            return Err(other(format!("unexpected greeting {:?}", greeting.text)));
        }
        Ok(client)
    }

    /// Connects and logs in; panics with the server's answer if that fails.
    pub fn login(addr: SocketAddr, user: &str, password: &str) -> Client {
        let mut client = Client::connect(addr).expect("connecting to pluto");
        let reply = client
            .command(&format!("LOGIN {} {}", quote(user), quote(password)))
            .expect("LOGIN");
        assert!(reply.ok(), "LOGIN refused: {}", reply.tagged);
        client
    }

    fn tag(&mut self) -> String {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// One complete response: a line, plus any literals and the lines that follow them.
    pub fn response(&mut self) -> std::io::Result<Response> {
        let mut text = String::new();
        let mut literals = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = self.reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("connection closed; partial response {text:?}"),
                ));
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            let line = line.trim_end_matches("\r\n").trim_end_matches('\n');
            text.push_str(line);
            match literal_len(line) {
                Some(len) => {
                    let mut buf = vec![0; len];
                    self.reader.read_exact(&mut buf)?;
                    literals.push(buf);
                }
                None => return Ok(Response { text, literals }),
            }
        }
    }

    fn read_reply(&mut self, tag: &str) -> std::io::Result<Reply> {
        let mut untagged = Vec::new();
        loop {
            let response = self.response()?;
            if response.text.starts_with(&format!("{tag} ")) {
                return Ok(Reply {
                    untagged,
                    tagged: response.text,
                });
            }
            untagged.push(response);
        }
    }

    /// Sends `TAG COMMAND` and reads up to the tagged answer.
    pub fn command(&mut self, command: &str) -> std::io::Result<Reply> {
        let tag = self.tag();
        self.send(format!("{tag} {command}\r\n").as_bytes())?;
        self.read_reply(&tag)
    }

    /// APPEND with a synchronizing literal (waits for the `+` before sending the bytes).
    pub fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> std::io::Result<Reply> {
        let tag = self.tag();
        self.send(
            format!(
                "{tag} APPEND {} ({flags}) {{{}}}\r\n",
                quote(mailbox),
                message.len()
            )
            .as_bytes(),
        )?;
        let cont = self.response()?;
        if !cont.text.starts_with('+') {
            // Refused before the literal (e.g. NO [TOOBIG]): that is the tagged answer.
            return Ok(Reply {
                untagged: Vec::new(),
                tagged: cont.text,
            });
        }
        self.send(message)?;
        self.send(b"\r\n")?;
        self.read_reply(&tag)
    }

    /// `UID FETCH set (UID BODY.PEEK[])`: every message's UID and exact bytes.
    pub fn fetch_bodies(&mut self, set: &str) -> std::io::Result<Vec<(u32, Vec<u8>)>> {
        let reply = self.command(&format!("UID FETCH {set} (UID BODY.PEEK[])"))?;
        if !reply.ok() {
            return Err(other(format!("UID FETCH failed: {}", reply.tagged)));
        }
        let mut out = Vec::new();
        for r in reply.untagged {
            if !r.text.contains(" FETCH ") {
                continue;
            }
            let uid = item_number(&r.text, "UID")
                .ok_or_else(|| other(format!("no UID in {:?}", r.text)))?;
            let [body] = <[Vec<u8>; 1]>::try_from(r.literals)
                .map_err(|l| other(format!("expected one literal, got {}", l.len())))?;
            out.push((uid, body));
        }
        Ok(out)
    }

    /// `UID FETCH set (UID FLAGS)`: every message's UID and flags, sorted.
    pub fn fetch_flags(&mut self, set: &str) -> std::io::Result<Vec<(u32, Vec<String>)>> {
        let reply = self.command(&format!("UID FETCH {set} (UID FLAGS)"))?;
        if !reply.ok() {
            return Err(other(format!("UID FETCH failed: {}", reply.tagged)));
        }
        let mut out = Vec::new();
        for r in reply.untagged {
            if !r.text.contains(" FETCH ") {
                continue;
            }
            let uid = item_number(&r.text, "UID")
                .ok_or_else(|| other(format!("no UID in {:?}", r.text)))?;
            let flags = paren_list(&r.text, "FLAGS")
                .ok_or_else(|| other(format!("no FLAGS in {:?}", r.text)))?;
            out.push((uid, flags));
        }
        Ok(out)
    }

    /// SELECT; returns (UIDVALIDITY, EXISTS).
    pub fn select(&mut self, mailbox: &str) -> std::io::Result<(u32, u32)> {
        let reply = self.command(&format!("SELECT {}", quote(mailbox)))?;
        if !reply.ok() {
            return Err(other(format!("SELECT failed: {}", reply.tagged)));
        }
        let mut validity = None;
        let mut exists = None;
        for r in &reply.untagged {
            if let Some(v) = code_number(&r.text, "UIDVALIDITY") {
                validity = Some(v);
            }
            let words: Vec<&str> = r.text.split(' ').collect();
            if words.len() == 3 && words[2] == "EXISTS" {
                exists = words[1].parse().ok();
            }
        }
        match (validity, exists) {
            (Some(v), Some(e)) => Ok((v, e)),
            _ => Err(other(format!(
                "SELECT without UIDVALIDITY or EXISTS: {:?}",
                reply.untagged
            ))),
        }
    }
}

fn other(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

/// A quoted string (for names and passwords without CR/LF).
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `{n}` (or `{n+}`) at the end of a line.
fn literal_len(line: &str) -> Option<usize> {
    let body = line.strip_suffix('}')?;
    let open = body.rfind('{')?;
    body[open + 1..].trim_end_matches('+').parse().ok()
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

/// The words of `NAME (a b c)`, e.g. the flags of a FETCH response.
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
