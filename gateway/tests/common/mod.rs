//! Test support: a `pluto serve` started in-process on loopback ports with a fresh
//! data dir and known users, reached with the test kit's IMAP client
//! ([`pluto_testkit::imap::Client`]) for exact protocol checks, or with async-imap.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pluto_gateway::{Config, Server};
pub(crate) use pluto_testkit::imap::{Client, Reply};
use tokio::net::TcpStream;

pub(crate) const USER: &str = "alice";
pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
}

impl TestServer {
    pub(crate) async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.listen.imap = "127.0.0.1:0".into();
        config.listen.imaps = "127.0.0.1:0".into();
        // Never the default LMTP port: tests run servers side by side.
        config.listen.lmtp = "127.0.0.1:0".into();
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

    /// Adds a user whose users-file line ends with Dovecot extra fields
    /// (`userdb_quota_rule=*:storage=1G`), while the server runs (it re-reads the file).
    pub(crate) fn add_user_with_extra_fields(&self, name: &str, password: &str, extra: &str) {
        use std::io::Write;
        let hash = pluto_auth::hash_password(password).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("users"))
            .unwrap();
        writeln!(file, "{name}:{hash}::::::{extra}").unwrap();
    }

    pub(crate) fn cert_path(&self) -> PathBuf {
        self.dir.path().join("tls").join("cert.pem")
    }

    /// A TLS client config that trusts this server's self-signed certificate.
    pub(crate) fn tls_connector(&self) -> tokio_rustls::TlsConnector {
        pluto_testkit::tls::trusting(&self.cert_path()).unwrap()
    }

    /// A raw client on the plain port, greeting read.
    pub(crate) async fn raw(&self) -> Client<TcpStream> {
        Client::connect(self.imap).await.unwrap()
    }

    /// A raw client on the plain port, logged in as `USER`.
    pub(crate) async fn login(&self) -> Client<TcpStream> {
        let mut raw = self.raw().await;
        let r = raw.cmd(&format!("LOGIN {USER} \"{PASSWORD}\"")).await;
        assert!(r.ok(), "{r:?}");
        raw
    }

    pub(crate) async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown(Duration::from_secs(5)).await;
        }
    }
}

/// A small, valid message.
pub(crate) fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\nMessage-ID: <{subject}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------
// Helpers for the black-box suites (imap_*.rs): async-imap sessions and a few raw extras.
// ---------------------------------------------------------------------------------------

/// An async-imap session over plain TCP.
pub(crate) type Imap = async_imap::Session<TcpStream>;

impl TestServer {
    /// An async-imap client on the plain port, greeting read.
    pub(crate) async fn client(&self) -> async_imap::Client<TcpStream> {
        let tcp = TcpStream::connect(self.imap).await.unwrap();
        let mut client = async_imap::Client::new(tcp);
        let greeting = client.read_response().await.unwrap();
        assert!(greeting.is_some(), "no greeting");
        client
    }

    /// An async-imap session on the plain port, logged in as `USER`.
    pub(crate) async fn session(&self) -> Imap {
        self.client()
            .await
            .login(USER, PASSWORD)
            .await
            .map_err(|(e, _)| e)
            .unwrap()
    }

    /// A raw client on the implicit-TLS port, greeting read.
    pub(crate) async fn raw_tls(&self) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        Client::connect_tls(self.imaps, &self.tls_connector())
            .await
            .unwrap()
    }

    /// A raw client on the plain port, logged in and with `mailbox` selected.
    pub(crate) async fn select(&self, mailbox: &str) -> Client<TcpStream> {
        let mut raw = self.login().await;
        let r = raw.cmd(&format!("SELECT {mailbox}")).await;
        assert!(r.ok(), "{r:?}");
        raw
    }
}

/// The UID that `[APPENDUID v u]` names.
pub(crate) fn appended_uid(reply: &Reply) -> u32 {
    let code = reply
        .code()
        .unwrap_or_else(|| panic!("no code in {reply:?}"));
    let mut words = code.split(' ');
    assert_eq!(words.next(), Some("APPENDUID"), "{reply:?}");
    words.nth(1).unwrap().parse().unwrap()
}

/// Everything async-imap set aside as unsolicited so far.
pub(crate) fn unsolicited(session: &Imap) -> Vec<async_imap::types::UnsolicitedResponse> {
    let mut out = Vec::new();
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        out.push(r);
    }
    out
}

/// Runs `cmd`, which must answer OK.
pub(crate) async fn ok(raw: &mut Client<TcpStream>, cmd: &str) -> Reply {
    let r = raw.cmd(cmd).await;
    assert!(r.ok(), "{cmd}: {r:?}");
    r
}

/// The number after `name` in `text` (`HIGHESTMODSEQ 17`, `MODSEQ (17)`).
pub(crate) fn number_after(text: &str, name: &str) -> Option<u64> {
    let at = text.find(name)? + name.len();
    let digits: String = text[at..]
        .trim_start_matches([' ', '('])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The untagged FETCH responses of an answer.
pub(crate) fn fetches(r: &Reply) -> Vec<&str> {
    r.lines("* ")
        .into_iter()
        .filter(|l| l.contains(" FETCH ("))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Replaying `testdata/dovecot/extensions/*.script` as record.py does there.
// ---------------------------------------------------------------------------------------

/// Where the extension scripts and Dovecot's answers to them are.
pub(crate) fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/dovecot/extensions")
}

/// The setup `testdata/dovecot/extensions/record.py` makes: mailbox `es` with 7 messages, `\Flagged` on 2, 3, 5,
/// selected.
pub(crate) async fn extensions_setup(server: &TestServer) -> Client<TcpStream> {
    let mut raw = server.login().await;
    assert!(raw.cmd("CREATE es").await.ok());
    for i in 1..=7 {
        let flags = if [2, 3, 5].contains(&i) {
            "\\Flagged"
        } else {
            ""
        };
        let body = format!("Subject: m{i}\r\nFrom: a@example.com\r\n\r\nbody {i}\r\n");
        let r = raw.append("es", flags, body.as_bytes()).await;
        assert!(r.ok(), "{r:?}");
    }
    assert!(raw.cmd("SELECT es").await.ok());
    raw
}
