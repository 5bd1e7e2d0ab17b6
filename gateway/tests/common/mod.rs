//! Test support: a `pluto serve` started in-process on loopback ports with a fresh
//! data dir and a known user, and a raw IMAP client for exact protocol checks.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pluto_gateway::{Config, Server};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.listen.imap = "127.0.0.1:0".into();
        config.listen.imaps = "127.0.0.1:0".into();
        tweak(&mut config);
        let users = config.users_file();
        pluto_auth::file::add_user(&users, USER, PASSWORD).unwrap();
        pluto_auth::file::add_user(&users, "bob", "bob's password").unwrap();
        let server = pluto_gateway::cli::start_serve(config).await.unwrap();
        let imap = server.imap_addr.unwrap();
        let imaps = server.imaps_addr.unwrap();
        TestServer {
            server: Some(server),
            dir,
            imap,
            imaps,
        }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("tls").join("cert.pem")
    }

    /// A TLS client config that trusts this server's self-signed certificate.
    pub fn tls_connector(&self) -> tokio_rustls::TlsConnector {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(self.cert_path()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// A raw client on the plain port, greeting read.
    pub async fn raw(&self) -> Raw<TcpStream> {
        let tcp = TcpStream::connect(self.imap).await.unwrap();
        let mut raw = Raw::new(tcp);
        let greeting = raw.line().await;
        assert!(greeting.starts_with("* OK"), "{greeting}");
        raw
    }

    /// A raw client on the plain port, logged in as `USER`.
    pub async fn login(&self) -> Raw<TcpStream> {
        let mut raw = self.raw().await;
        let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
        assert!(r.ok(), "{r:?}");
        raw
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown(Duration::from_secs(5)).await;
        }
    }
}

/// What a command got back: untagged lines (literals inline) and the tagged line.
#[derive(Debug, Clone)]
pub struct Reply {
    pub untagged: Vec<String>,
    pub tagged: String,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("OK")
    }
    pub fn no(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("NO")
    }
    pub fn bad(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("BAD")
    }
    pub fn has(&self, needle: &str) -> bool {
        self.untagged.iter().any(|l| l.contains(needle))
    }
    pub fn find(&self, needle: &str) -> Option<&String> {
        self.untagged.iter().find(|l| l.contains(needle))
    }
}

pub struct Raw<S> {
    stream: BufReader<S>,
    next_tag: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream: BufReader::new(stream),
            next_tag: 1,
        }
    }

    pub fn into_inner(self) -> S {
        self.stream.into_inner()
    }

    /// One response line, with any literals it carries read inline.
    pub async fn line(&mut self) -> String {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(
                Duration::from_secs(20),
                self.stream.read_until(b'\n', &mut line),
            )
            .await
            .expect("timed out waiting for the server")
            .unwrap();
            assert!(
                n > 0,
                "connection closed; so far: {}",
                String::from_utf8_lossy(&out)
            );
            out.extend_from_slice(&line);
            // A literal announcement at the end of the line: {n}\r\n, then n bytes.
            let text = String::from_utf8_lossy(&line).into_owned();
            let trimmed = text.trim_end_matches("\r\n");
            if trimmed.ends_with('}') {
                if let Some(open) = trimmed.rfind('{') {
                    if let Ok(len) = trimmed[open + 1..trimmed.len() - 1].parse::<usize>() {
                        let mut buf = vec![0; len];
                        self.stream.read_exact(&mut buf).await.unwrap();
                        out.extend_from_slice(&buf);
                        continue;
                    }
                }
            }
            break;
        }
        String::from_utf8_lossy(&out)
            .trim_end_matches("\r\n")
            .to_owned()
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.unwrap();
        self.stream.get_mut().flush().await.unwrap();
    }

    pub fn tag(&mut self) -> String {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Sends `TAG command` and reads until the tagged answer.
    pub async fn cmd(&mut self, command: &str) -> Reply {
        let tag = self.tag();
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.read_reply(&tag).await
    }

    pub async fn read_reply(&mut self, tag: &str) -> Reply {
        let mut untagged = Vec::new();
        loop {
            let line = self.line().await;
            if line.starts_with(&format!("{tag} ")) {
                return Reply {
                    untagged,
                    tagged: line,
                };
            }
            untagged.push(line);
        }
    }

    /// APPEND with a synchronizing literal.
    pub async fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> Reply {
        let tag = self.tag();
        self.send(format!("{tag} APPEND {mailbox} ({flags}) {{{}}}\r\n", message.len()).as_bytes())
            .await;
        let cont = self.line().await;
        if !cont.starts_with('+') {
            return Reply {
                untagged: Vec::new(),
                tagged: cont,
            };
        }
        self.send(message).await;
        self.send(b"\r\n").await;
        self.read_reply(&tag).await
    }
}

/// A small, valid message.
pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <{subject}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------
// Helpers for the black-box suites (imap_*.rs): async-imap sessions and a few raw extras.
// ---------------------------------------------------------------------------------------

/// An async-imap session over plain TCP.
pub type Imap = async_imap::Session<TcpStream>;

impl TestServer {
    /// An async-imap client on the plain port, greeting read.
    pub async fn client(&self) -> async_imap::Client<TcpStream> {
        let tcp = TcpStream::connect(self.imap).await.unwrap();
        let mut client = async_imap::Client::new(tcp);
        let greeting = client.read_response().await.unwrap();
        assert!(greeting.is_some(), "no greeting");
        client
    }

    /// An async-imap session on the plain port, logged in as `USER`.
    pub async fn session(&self) -> Imap {
        self.client()
            .await
            .login(USER, PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .unwrap()
    }

    /// A raw client on the implicit-TLS port, greeting read.
    pub async fn raw_tls(&self) -> Raw<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.imaps).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self.tls_connector().connect(name, tcp).await.unwrap();
        let mut raw = Raw::new(tls);
        let greeting = raw.line().await;
        assert!(greeting.starts_with("* OK"), "{greeting}");
        raw
    }

    /// A raw client on the plain port, logged in and with `mailbox` selected.
    pub async fn select(&self, mailbox: &str) -> Raw<TcpStream> {
        let mut raw = self.login().await;
        let r = raw.cmd(&format!("SELECT {mailbox}")).await;
        assert!(r.ok(), "{r:?}");
        raw
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    /// Sends `TAG ` + `bytes` as they are (no CRLF added) and reads until the tagged answer.
    pub async fn cmd_bytes(&mut self, bytes: &[u8]) -> Reply {
        let tag = self.tag();
        let mut out = format!("{tag} ").into_bytes();
        out.extend_from_slice(bytes);
        self.send(&out).await;
        self.read_reply(&tag).await
    }

    /// APPEND with a non-synchronizing literal (LITERAL+).
    pub async fn append_plus(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> Reply {
        let mut out = format!("APPEND {mailbox} ({flags}) {{{}+}}\r\n", message.len()).into_bytes();
        out.extend_from_slice(message);
        out.extend_from_slice(b"\r\n");
        self.cmd_bytes(&out).await
    }

    /// Reads a line if one arrives within `wait`; `None` when the server stays quiet.
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
}

impl Reply {
    /// The numbers of `* SEARCH …`, in the order sent.
    pub fn search(&self) -> Vec<u32> {
        let line = self
            .untagged
            .iter()
            .find(|l| l.starts_with("* SEARCH"))
            .unwrap_or_else(|| panic!("no SEARCH response in {self:?}"));
        line["* SEARCH".len()..]
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    }

    /// The response code of the tagged line, e.g. `APPENDUID 1 3` for `a1 OK [APPENDUID 1 3] …`.
    pub fn code(&self) -> Option<String> {
        let open = self.tagged.find('[')?;
        let close = self.tagged[open..].find(']')? + open;
        Some(self.tagged[open + 1..close].to_owned())
    }

    /// The untagged lines that start with `prefix`.
    pub fn lines(&self, prefix: &str) -> Vec<&str> {
        self.untagged
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }
}

/// The UID that `[APPENDUID v u]` names.
pub fn appended_uid(reply: &Reply) -> u32 {
    let code = reply
        .code()
        .unwrap_or_else(|| panic!("no code in {reply:?}"));
    let mut words = code.split(' ');
    assert_eq!(words.next(), Some("APPENDUID"), "{reply:?}");
    words.nth(1).unwrap().parse().unwrap()
}

/// Everything async-imap set aside as unsolicited so far.
pub fn unsolicited(session: &Imap) -> Vec<async_imap::types::UnsolicitedResponse> {
    let mut out = Vec::new();
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        out.push(r);
    }
    out
}
