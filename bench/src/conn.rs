//! A minimal IMAP client connection, plain or TLS: tagged commands, responses read
//! whole (literals included), APPEND with a synchronizing literal, IDLE. It parses
//! only what the workloads check; it is a load generator, not a mail client.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::{BenchError, Result};

/// Both halves of a connection, boxed so plain and TLS share one type.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How to reach the server.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Some` for implicit TLS.
    pub tls: Option<TlsTarget>,
    /// Longest wait for any one answer.
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct TlsTarget {
    pub connector: tokio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
}

impl TlsTarget {
    /// Trusts the certificates in `ca_file` (PEM), or, with `ca_file = None`, any
    /// certificate at all (for loopback tests against a self-signed server).
    pub fn new(ca_file: Option<&Path>, server_name: &str) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| BenchError::Tls(e.to_string()))?;
        let config = match ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path)
                    .map_err(|e| BenchError::Tls(format!("{}: {e}", path.display())))?
                {
                    let cert =
                        cert.map_err(|e| BenchError::Tls(format!("{}: {e}", path.display())))?;
                    roots
                        .add(cert)
                        .map_err(|e| BenchError::Tls(format!("{}: {e}", path.display())))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth(),
        };
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| BenchError::Tls(format!("server name {server_name:?}: {e}")))?;
        Ok(TlsTarget {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

/// Accepts any server certificate (signatures are still checked, so the handshake is
/// as costly as a real one). Only for `--insecure` against loopback servers.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The status of a tagged (or greeting) response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// One response: its text with each literal's bytes cut out (the `{n}` marker stays),
/// and the literals themselves, in order.
#[derive(Debug, Default, Clone)]
pub struct Line {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

impl Line {
    /// `* <n> <WORD>` → n, for EXISTS / EXPUNGE / FETCH.
    pub fn numbered(&self, word: &str) -> Option<u32> {
        let rest = self.text.strip_prefix("* ")?;
        let (n, rest) = rest.split_once(' ')?;
        let kind = rest.split([' ', '\r']).next()?;
        if kind.eq_ignore_ascii_case(word) {
            n.parse().ok()
        } else {
            None
        }
    }

    pub fn starts_with_ci(&self, prefix: &str) -> bool {
        self.text.len() >= prefix.len()
            && self.text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    }
}

/// A tagged answer and the untagged responses that came before it.
#[derive(Debug)]
pub struct Reply {
    pub status: Status,
    pub tagged: String,
    pub untagged: Vec<Line>,
}

impl Reply {
    /// Fails unless the status is OK, naming the command.
    pub fn ok(self, command: &str) -> Result<Reply> {
        if self.status == Status::Ok {
            Ok(self)
        } else {
            Err(BenchError::wrong(
                command,
                self.tagged.trim_end().to_owned(),
            ))
        }
    }

    pub fn numbered<'a>(&'a self, word: &'a str) -> impl Iterator<Item = u32> + 'a {
        self.untagged.iter().filter_map(move |l| l.numbered(word))
    }
}

/// One IMAP connection.
pub struct Conn {
    io: BufReader<Box<dyn Io>>,
    tag: u32,
    timeout: Duration,
    out: Vec<u8>,
}

impl Conn {
    /// Connects, does the TLS handshake when asked, and reads the greeting (which
    /// must be `* OK`).
    pub async fn connect(target: &Target) -> Result<Conn> {
        let timeout = target.timeout;
        let tcp = within(timeout, TcpStream::connect(target.addr)).await??;
        tcp.set_nodelay(true)?;
        let io: Box<dyn Io> = match &target.tls {
            None => Box::new(tcp),
            Some(tls) => Box::new(
                within(timeout, tls.connector.connect(tls.server_name.clone(), tcp)).await??,
            ),
        };
        let mut conn = Conn {
            io: BufReader::with_capacity(16 * 1024, io),
            tag: 0,
            timeout,
            out: Vec::with_capacity(256),
        };
        let greeting = conn.read_line().await?;
        if !greeting.starts_with_ci("* OK") && !greeting.starts_with_ci("* PREAUTH") {
            return Err(BenchError::wrong("greeting", greeting.text));
        }
        Ok(conn)
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("b{}", self.tag)
    }

    /// Sends `cmd` (no CRLF) and reads to its tagged answer.
    pub async fn command(&mut self, cmd: &str) -> Result<Reply> {
        let tag = self.next_tag();
        self.out.clear();
        self.out.extend_from_slice(tag.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(cmd.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.flush_out().await?;
        self.read_to_tagged(&tag).await
    }

    /// `APPEND <mailbox> (<flags>) {n}` with a synchronizing literal: waits for the
    /// continuation before sending the message, as every client may.
    pub async fn append(
        &mut self,
        mailbox: &str,
        flags: Option<&str>,
        message: &[u8],
    ) -> Result<Reply> {
        let tag = self.next_tag();
        let flags = flags.map(|f| format!(" ({f})")).unwrap_or_default();
        self.out.clear();
        self.out.extend_from_slice(
            format!("{tag} APPEND {mailbox}{flags} {{{}}}\r\n", message.len()).as_bytes(),
        );
        self.flush_out().await?;
        let mut untagged = Vec::new();
        loop {
            let line = self.read_line().await?;
            if line.text.starts_with('+') {
                break;
            }
            if let Some(reply) = tagged(&tag, &line) {
                return Ok(Reply { untagged, ..reply });
            }
            untagged.push(line);
        }
        self.out.clear();
        self.out.extend_from_slice(message);
        self.out.extend_from_slice(b"\r\n");
        self.flush_out().await?;
        let mut reply = self.read_to_tagged(&tag).await?;
        untagged.append(&mut reply.untagged);
        reply.untagged = untagged;
        Ok(reply)
    }

    /// Starts IDLE: sends it and waits for the continuation. Returns the tag for
    /// [`Conn::idle_done`].
    pub async fn idle_start(&mut self) -> Result<String> {
        let tag = self.next_tag();
        self.out.clear();
        self.out
            .extend_from_slice(format!("{tag} IDLE\r\n").as_bytes());
        self.flush_out().await?;
        loop {
            let line = self.read_line().await?;
            if line.text.starts_with('+') {
                return Ok(tag);
            }
            if let Some(reply) = tagged(&tag, &line) {
                return Err(BenchError::wrong("IDLE", reply.tagged));
            }
        }
    }

    /// Ends IDLE with `DONE` and reads the tagged answer.
    pub async fn idle_done(&mut self, tag: &str) -> Result<Reply> {
        self.out.clear();
        self.out.extend_from_slice(b"DONE\r\n");
        self.flush_out().await?;
        self.read_to_tagged(tag).await
    }

    /// Reads one response with no time limit (for IDLE watchers, whose wait is
    /// bounded by the caller).
    pub async fn read_untimed(&mut self) -> Result<Line> {
        read_line(&mut self.io).await
    }

    async fn flush_out(&mut self) -> Result<()> {
        let io = self.io.get_mut();
        within(self.timeout, async {
            io.write_all(&self.out).await?;
            io.flush().await
        })
        .await??;
        Ok(())
    }

    async fn read_to_tagged(&mut self, tag: &str) -> Result<Reply> {
        let mut untagged = Vec::new();
        loop {
            let line = self.read_line().await?;
            if let Some(reply) = tagged(tag, &line) {
                return Ok(Reply { untagged, ..reply });
            }
            untagged.push(line);
        }
    }

    async fn read_line(&mut self) -> Result<Line> {
        within(self.timeout, read_line(&mut self.io)).await?
    }
}

pub(crate) async fn within<F: std::future::Future>(limit: Duration, f: F) -> Result<F::Output> {
    tokio::time::timeout(limit, f)
        .await
        .map_err(|_| BenchError::Timeout(limit))
}

/// Longest line or literal the client accepts: well above the corpus's largest
/// message, so a runaway server cannot make the bench allocate without bound.
const MAX_PIECE: usize = 64 * 1024 * 1024;

/// Reads one response: a line, and if it ends in a literal marker `{n}`, the n bytes
/// and the rest of the response, as often as needed.
async fn read_line(io: &mut BufReader<Box<dyn Io>>) -> Result<Line> {
    let mut line = Line::default();
    let mut raw = Vec::with_capacity(128);
    loop {
        raw.clear();
        let n = io.read_until(b'\n', &mut raw).await?;
        if n == 0 {
            return Err(BenchError::Closed);
        }
        if raw.len() > MAX_PIECE {
            return Err(BenchError::Protocol("line too long".into()));
        }
        let piece = raw
            .strip_suffix(b"\r\n")
            .or_else(|| raw.strip_suffix(b"\n"))
            .unwrap_or(&raw);
        line.text.push_str(&String::from_utf8_lossy(piece));
        match literal_len(piece) {
            Some(len) if len <= MAX_PIECE => {
                let mut data = vec![0; len];
                io.read_exact(&mut data).await?;
                line.literals.push(data);
            }
            Some(len) => return Err(BenchError::Protocol(format!("literal of {len} bytes"))),
            None => return Ok(line),
        }
    }
}

/// `…{123}` → 123 (also `{123+}`).
fn literal_len(piece: &[u8]) -> Option<usize> {
    let body = piece.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn tagged(tag: &str, line: &Line) -> Option<Reply> {
    let rest = line.text.strip_prefix(tag)?.strip_prefix(' ')?;
    let word = rest.split(' ').next().unwrap_or("");
    let status = if word.eq_ignore_ascii_case("OK") {
        Status::Ok
    } else if word.eq_ignore_ascii_case("NO") {
        Status::No
    } else if word.eq_ignore_ascii_case("BAD") {
        Status::Bad
    } else {
        return None;
    };
    Some(Reply {
        status,
        tagged: line.text.clone(),
        untagged: Vec::new(),
    })
}

/// Quotes a string for an IMAP command (the bench's user names and passwords are
/// plain ASCII; `"` and `\` are escaped anyway).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn literal_markers() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {42}"), Some(42));
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {42+}"), Some(42));
        assert_eq!(literal_len(b"* 1 FETCH (FLAGS ())"), None);
        assert_eq!(literal_len(b"{}"), None);
    }

    #[test]
    fn numbered_responses() {
        let l = Line {
            text: "* 17 EXISTS".into(),
            literals: vec![],
        };
        assert_eq!(l.numbered("exists"), Some(17));
        assert_eq!(l.numbered("EXPUNGE"), None);
        let f = Line {
            text: "* 3 FETCH (FLAGS (\\Seen))".into(),
            literals: vec![],
        };
        assert_eq!(f.numbered("FETCH"), Some(3));
    }

    #[test]
    fn tagged_status() {
        let l = Line {
            text: "b7 NO [TRYCREATE] no".into(),
            literals: vec![],
        };
        assert_eq!(tagged("b7", &l).unwrap().status, Status::No);
        assert!(tagged("b71", &l).is_none());
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
