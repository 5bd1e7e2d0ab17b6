//! `pluto deliver --user NAME [--mailbox M]`: one message on standard input for one
//! user — a local delivery agent for procmail, fetchmail or an Exim pipe — by the
//! rules of LMTP delivery (`crate::lmtp::delivery`), answered with the exit codes of
//! sysexits.h.
//!
//! Where the message goes: with `[cluster]` nodes configured, routed to the user's
//! replica set as a gateway does (this process needs a node certificate,
//! `cluster.name`); otherwise into the Maildir of `data_dir` — directly when no server
//! holds it, else through that running `pluto serve`'s LMTP listener (its socket when
//! `listen.lmtp_socket` is set, else `listen.lmtp`), since one process owns a Maildir.
//! Through the server, `--mailbox M` travels as the detail of `NAME+M`, so a missing
//! mailbox there means INBOX rather than exit 73.

use std::io::Read;
use std::sync::Arc;

use pluto_backends::MailboxName;
use pluto_backends::maildir::MaildirStore;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::DeliverArgs;
use crate::config::Config;
use crate::error::GatewayError;
use crate::lmtp::delivery::{self, DeliveryError, Target};
use crate::shared::Shared;

/// sysexits.h.
pub(super) mod exit {
    pub(crate) const DATAERR: u8 = 65;
    pub(crate) const NOUSER: u8 = 67;
    pub(crate) const IOERR: u8 = 74;
    pub(crate) const CANTCREAT: u8 = 73;
    pub(crate) const TEMPFAIL: u8 = 75;
    pub(crate) const CONFIG: u8 = 78;
}

fn fail(code: u8, message: impl Into<String>) -> GatewayError {
    GatewayError::Exit {
        code,
        message: message.into(),
    }
}

/// The exit code for a delivery's outcome.
fn exit_code(error: &DeliveryError) -> u8 {
    use DeliveryError as E;
    match error {
        E::BadAddress(_) | E::UnknownDomain | E::UnknownUser | E::Disabled => exit::NOUSER,
        // Over quota is permanent, as LMTP's 552 5.2.2: the mailbox cannot take the
        // message (Postfix reads 73 as 5.2.0, a mailbox problem, and bounces).
        E::NoSuchMailbox(_) | E::OverQuota(_) => exit::CANTCREAT,
        E::TooBig { .. } | E::Empty => exit::DATAERR,
        E::DiskFull | E::Unavailable(_) | E::Unanswered(_) => exit::TEMPFAIL,
    }
}

pub(super) async fn deliver(args: DeliverArgs) -> Result<(), GatewayError> {
    let mut config =
        Config::load(args.config.as_deref()).map_err(|e| fail(exit::CONFIG, e.to_string()))?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    config
        .lmtp
        .validate()
        .map_err(|e| fail(exit::CONFIG, e.to_string()))?;
    let target = match &args.mailbox {
        None => Target::Inbox,
        Some(name) => Target::Mailbox(
            MailboxName::new(name.clone())
                .map_err(|e| fail(exit::CANTCREAT, format!("--mailbox {name:?}: {e}")))?,
        ),
    };
    let limit = config.limits.append_limit as usize;
    let message = read_message(limit)?;
    if config.cluster.nodes.is_empty() {
        let mail_dir = config.mail_dir();
        match MaildirStore::open(mail_dir.clone()) {
            Ok(store) => {
                let router = crate::route::Router::Local(Arc::new(store));
                let shared = shared(config, router).await?;
                store_one(&shared, &args.user, &args.from, &message, &target).await
            }
            // A running `pluto serve` owns the Maildir: deliver through it.
            Err(pluto_backends::StoreError::Unavailable(why)) => {
                tracing::debug!(%why, "the Maildir is in use; delivering over LMTP");
                through_server(
                    &config,
                    &args.user,
                    &args.from,
                    args.mailbox.as_deref(),
                    &message,
                )
                .await
            }
            Err(e) => Err(fail(
                exit::TEMPFAIL,
                format!("opening the mail dir {}: {e}", mail_dir.display()),
            )),
        }
    } else {
        let cluster =
            crate::route::cluster_router(&config).map_err(|e| fail(exit::CONFIG, e.to_string()))?;
        cluster.probe_all().await;
        let shared = shared(config, crate::route::Router::Cluster(cluster)).await?;
        store_one(&shared, &args.user, &args.from, &message, &target).await
    }
}

async fn shared(config: Config, router: crate::route::Router) -> Result<Shared, GatewayError> {
    let auth = super::start::authenticator(&config)
        .await
        .map_err(|e| fail(exit::CONFIG, e.to_string()))?;
    let throttle = config
        .throttle
        .build()
        .map_err(|e| fail(exit::CONFIG, e.to_string()))?;
    Ok(Shared::new(config, router, auth, throttle, None))
}

async fn store_one(
    shared: &Shared,
    user: &str,
    from: &str,
    message: &[u8],
    target: &Target,
) -> Result<(), GatewayError> {
    let outcome = async {
        let recipient = delivery::accept_recipient(shared, user).await?;
        delivery::deliver(shared, from, &recipient, message, target).await
    };
    outcome
        .await
        .map_err(|e| fail(exit_code(&e), format!("not delivered to {user}: {e}")))
}

/// Standard input, at most `limit` bytes: an mbox `From ` line first is dropped, and
/// bare LFs become CRLF (IMAP's line ends; sizes are then CRLF sizes).
fn read_message(limit: usize) -> Result<Vec<u8>, GatewayError> {
    let mut raw = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(limit as u64 + 1)
        .read_to_end(&mut raw);
    read.map_err(|e| fail(exit::IOERR, format!("reading standard input: {e}")))?;
    if raw.len() > limit {
        return Err(fail(
            exit::DATAERR,
            format!("the message is larger than the limit of {limit} bytes"),
        ));
    }
    let mut body: &[u8] = &raw;
    if body.starts_with(b"From ") {
        let end = body
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |p| p + 1);
        body = &body[end..];
    }
    let mut message = Vec::with_capacity(body.len() + body.len() / 32);
    let mut previous = 0u8;
    for &b in body {
        if b == b'\n' && previous != b'\r' {
            message.push(b'\r');
        }
        message.push(b);
        previous = b;
    }
    if message.is_empty() {
        return Err(fail(
            exit::DATAERR,
            "the message on standard input is empty",
        ));
    }
    if message.len() > limit {
        return Err(fail(
            exit::DATAERR,
            format!("the message is larger than the limit of {limit} bytes"),
        ));
    }
    Ok(message)
}

/// Delivers through the running server's LMTP listener.
async fn through_server(
    config: &Config,
    user: &str,
    from: &str,
    mailbox: Option<&str>,
    message: &[u8],
) -> Result<(), GatewayError> {
    // An address needs a domain on the wire (RFC 5321 4.1.2): one of lmtp.domains, or
    // any when every domain is taken.
    let (local, domain) = match user.rsplit_once('@') {
        Some((local, domain)) => (local.to_owned(), domain.to_owned()),
        None => (
            user.to_owned(),
            config
                .lmtp
                .domains
                .first()
                .cloned()
                .unwrap_or_else(|| "localhost".to_owned()),
        ),
    };
    let recipient = match mailbox {
        Some(m) => format!("{local}+{m}@{domain}"),
        None => format!("{local}@{domain}"),
    };
    let unavailable = |e: std::io::Error| {
        fail(
            exit::TEMPFAIL,
            format!("the mail dir is in use by a pluto server, and its LMTP listener: {e}"),
        )
    };
    let timeout = std::time::Duration::from_secs(config.lmtp.timeout_secs);
    let work = async {
        if let Some(path) = config.listen.lmtp_socket_path() {
            let stream = tokio::net::UnixStream::connect(&path).await?;
            lmtp_client(stream, from, &recipient, message).await
        } else if let Some(addr) = config
            .listen
            .lmtp_addr()
            .map_err(|e| std::io::Error::other(e.to_string()))?
        {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            lmtp_client(stream, from, &recipient, message).await
        } else {
            Err(std::io::Error::other(
                "listen.lmtp and listen.lmtp_socket are both empty",
            ))
        }
    };
    let reply = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| unavailable(std::io::Error::other("timed out")))?
        .map_err(unavailable)?;
    let code = reply
        .get(..3)
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(0);
    let status = reply.get(4..9).unwrap_or("");
    match code {
        200..=299 => Ok(()),
        400..=499 => Err(fail(exit::TEMPFAIL, reply)),
        _ if status.starts_with("5.1.") || status == "5.2.1" => Err(fail(exit::NOUSER, reply)),
        _ if status == "5.2.0" || status == "5.2.2" => Err(fail(exit::CANTCREAT, reply)),
        _ => Err(fail(exit::DATAERR, reply)),
    }
}

/// A reply's last line (the one with a space after the code).
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(io: &mut R) -> std::io::Result<String> {
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("the server closed the connection"));
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.trim_end().to_owned());
        }
    }
}

/// One LMTP transaction for one recipient; the reply that decided it.
async fn lmtp_client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    from: &str,
    recipient: &str,
    message: &[u8],
) -> std::io::Result<String> {
    let mut io = BufReader::new(stream);
    let steps = [
        (String::new(), '2'),
        ("LHLO localhost\r\n".to_owned(), '2'),
        (format!("MAIL FROM:<{from}>\r\n"), '2'),
        (format!("RCPT TO:<{recipient}>\r\n"), '2'),
        ("DATA\r\n".to_owned(), '3'),
    ];
    for (command, wanted) in steps {
        io.get_mut().write_all(command.as_bytes()).await?;
        let reply = read_reply(&mut io).await?;
        if !reply.starts_with(wanted) {
            return Ok(reply);
        }
    }
    let mut stuffed = Vec::with_capacity(message.len() + 64);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            stuffed.push(b'.');
        }
        stuffed.push(b);
        line_start = b == b'\n';
    }
    if !line_start {
        stuffed.extend_from_slice(b"\r\n");
    }
    stuffed.extend_from_slice(b".\r\n");
    io.get_mut().write_all(&stuffed).await?;
    let reply = read_reply(&mut io).await?;
    let _ = io.get_mut().write_all(b"QUIT\r\n").await;
    Ok(reply)
}
