//! One LMTP connection (RFC 2033): the state machine (connected → LHLO → MAIL → RCPT…
//! → DATA → back to LHLO'd), command lines framed here (at most [`MAX_LINE`] bytes)
//! and parsed by smtp-proto, the message read by smtp-proto's dot-unstuffing receiver
//! up to `limits.append_limit`, and one reply per accepted recipient after the final
//! dot. Replies are buffered and flushed whenever the client has nothing more in
//! flight, so a pipelining client (RFC 2920) gets its replies in one write.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::Request;
use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::delivery::{self, Recipient, Target};
use super::reply::{self, Reply};
use crate::shared::Shared;

/// The longest command line (RFC 5321 4.5.3.1.4 asks for at least 512 bytes; this is
/// smtp-proto's own bound). A longer one is answered and skipped to its end.
pub const MAX_LINE: usize = 4096;
/// Refused commands after which the connection is closed (a client that speaks
/// something else, or probes).
const MAX_ERRORS: u32 = 20;

enum State {
    /// Connected; LHLO not said yet.
    Connected,
    /// LHLO said; no transaction.
    Ready,
    /// MAIL said: the sender and the recipients taken so far.
    Transaction {
        from: String,
        recipients: Vec<Recipient>,
    },
}

enum Line {
    Full(Vec<u8>),
    TooLong,
}

enum Data {
    Message(Vec<u8>),
    TooBig,
}

/// Whether the connection goes on after a command.
enum Flow {
    Continue,
    Close,
}

pub struct LmtpSession<S> {
    shared: Arc<Shared>,
    io: BufReader<S>,
    out: Vec<u8>,
    state: State,
    errors: u32,
    timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> LmtpSession<S> {
    pub fn new(shared: Arc<Shared>, stream: S, stop: watch::Receiver<bool>) -> Self {
        let timeout = Duration::from_secs(shared.config.lmtp.timeout_secs);
        LmtpSession {
            shared,
            io: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::new(),
            state: State::Connected,
            errors: 0,
            timeout,
            stop,
        }
    }

    /// Runs the connection to its end (QUIT, the client gone, a timeout, too many
    /// errors, or the server stopping).
    pub async fn run(mut self) {
        Reply::new(220, [0, 0, 0], "pluto LMTP ready").write_to(&mut self.out);
        loop {
            // Nothing more from the client in flight: it waits for the replies.
            if self.io.buffer().is_empty() && !self.flush().await {
                return;
            }
            let mut stop = self.stop.clone();
            let timeout = self.timeout;
            let line = tokio::select! {
                line = tokio::time::timeout(timeout, self.read_line()) => line,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    self.say(&reply::SHUTTING_DOWN);
                    self.flush().await;
                    return;
                }
            };
            let line = match line {
                Err(_) => {
                    self.say(&reply::TIMEOUT);
                    self.flush().await;
                    return;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, "LMTP connection failed");
                    return;
                }
                // The client went away (mid-transaction: nothing was stored).
                Ok(Ok(None)) => return,
                Ok(Ok(Some(line))) => line,
            };
            let flow = match line {
                Line::TooLong => self.refuse(&reply::LINE_TOO_LONG),
                Line::Full(bytes) => self.line(&bytes).await,
            };
            if let Flow::Close = flow {
                self.flush().await;
                return;
            }
        }
    }

    fn say(&mut self, reply: &Reply) {
        reply.write_to(&mut self.out);
    }

    /// A refused command: counted, and past [`MAX_ERRORS`] the connection closes.
    fn refuse(&mut self, reply: &Reply) -> Flow {
        self.say(reply);
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            self.say(&reply::TOO_MANY_ERRORS);
            return Flow::Close;
        }
        Flow::Continue
    }

    /// Writes the buffered replies; false when the client is gone or does not read.
    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let out = std::mem::take(&mut self.out);
        let write = async {
            self.io.get_mut().write_all(&out).await?;
            self.io.get_mut().flush().await
        };
        matches!(tokio::time::timeout(self.timeout, write).await, Ok(Ok(())))
    }

    /// One line up to its LF, or [`Line::TooLong`] (then skipped up to its LF); `None`
    /// at the end of the stream.
    async fn read_line(&mut self) -> std::io::Result<Option<Line>> {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let buf = self.io.fill_buf().await?;
            if buf.is_empty() {
                return Ok(None);
            }
            let (n, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(pos) => (pos + 1, true),
                None => (buf.len(), false),
            };
            if !too_long {
                if line.len() + n > MAX_LINE {
                    too_long = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(&buf[..n]);
                }
            }
            self.io.consume(n);
            if done {
                return Ok(Some(if too_long {
                    Line::TooLong
                } else {
                    Line::Full(line)
                }));
            }
        }
    }

    async fn line(&mut self, bytes: &[u8]) -> Flow {
        use smtp_proto::Error as E;
        // RFC 5321 4.5.1: `<Postmaster>` without a domain must be taken (smtp-proto
        // makes it an empty address): the user of that name.
        if bare_local_part(bytes).is_some_and(|l| l.eq_ignore_ascii_case("postmaster")) {
            return self.recipient("postmaster").await;
        }
        match Request::parse(&mut bytes.iter()) {
            Ok(request) => self.command(request).await,
            Err(E::UnknownCommand) => self.refuse(&reply::SYNTAX),
            Err(E::InvalidSenderAddress) => self.refuse(&reply::BAD_SENDER),
            Err(E::InvalidRecipientAddress) => match bare_local_part(bytes) {
                Some(local) => self.recipient(&local).await,
                None => self.refuse(&Reply::new(501, [5, 1, 3], "Bad recipient address syntax")),
            },
            Err(E::SyntaxError { syntax }) => self.refuse(&Reply::with_text(
                501,
                [5, 5, 4],
                format!("Syntax: {syntax}"),
            )),
            Err(E::InvalidParameter { param }) => self.refuse(&Reply::with_text(
                501,
                [5, 5, 4],
                format!("Invalid parameter: {param}"),
            )),
            Err(E::UnsupportedParameter { .. }) => self.refuse(&reply::BAD_PARAMETER),
            Err(E::ResponseTooLong) => self.refuse(&reply::LINE_TOO_LONG),
            Err(_) => self.refuse(&reply::SYNTAX),
        }
    }

    async fn command(&mut self, request: Request<Cow<'_, str>>) -> Flow {
        let limit = self.shared.config.limits.append_limit;
        match request {
            Request::Lhlo { .. } => {
                self.state = State::Ready;
                self.out.extend_from_slice(
                    format!(
                        "250-pluto\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n\
                         250-8BITMIME\r\n250 SIZE {limit}\r\n"
                    )
                    .as_bytes(),
                );
                Flow::Continue
            }
            Request::Ehlo { .. } | Request::Helo { .. } => self.refuse(&reply::USE_LHLO),
            Request::Mail { from } => match self.state {
                State::Connected => self.refuse(&reply::NEED_LHLO),
                State::Transaction { .. } => self.refuse(&reply::NESTED_MAIL),
                State::Ready if from.size > limit as usize => self.refuse(&reply::DECLARED_TOO_BIG),
                State::Ready => {
                    self.state = State::Transaction {
                        from: from.address.into_owned(),
                        recipients: Vec::new(),
                    };
                    self.say(&reply::SENDER_OK);
                    Flow::Continue
                }
            },
            Request::Rcpt { to } => self.recipient(&to.address).await,
            Request::Data => self.data().await,
            Request::Rset => {
                if !matches!(self.state, State::Connected) {
                    self.state = State::Ready;
                }
                self.say(&reply::OK);
                Flow::Continue
            }
            Request::Noop { .. } => {
                self.say(&reply::OK);
                Flow::Continue
            }
            Request::Vrfy { .. } => {
                self.say(&reply::CANNOT_VERIFY);
                Flow::Continue
            }
            Request::Quit => {
                self.say(&reply::BYE);
                Flow::Close
            }
            _ => self.refuse(&reply::NOT_IMPLEMENTED),
        }
    }

    async fn recipient(&mut self, address: &str) -> Flow {
        let max = self.shared.config.lmtp.max_recipients;
        let count = match &self.state {
            State::Connected => return self.refuse(&reply::NEED_LHLO),
            State::Ready => return self.refuse(&reply::NEED_MAIL),
            State::Transaction { recipients, .. } => recipients.len(),
        };
        if count >= max {
            self.say(&reply::TOO_MANY_RECIPIENTS);
            return Flow::Continue;
        }
        match delivery::accept_recipient(&self.shared, address).await {
            Ok(recipient) => {
                if let State::Transaction { recipients, .. } = &mut self.state {
                    recipients.push(recipient);
                }
                self.say(&reply::RECIPIENT_OK);
            }
            Err(error) => {
                metrics::counter!(crate::metrics::DELIVERIES, "result" => error.label())
                    .increment(1);
                tracing::info!(%error, "recipient refused");
                self.say(&reply::for_error(&error));
            }
        }
        Flow::Continue
    }

    async fn data(&mut self) -> Flow {
        let (from, recipients) = match std::mem::replace(&mut self.state, State::Ready) {
            State::Connected => {
                self.state = State::Connected;
                return self.refuse(&reply::NEED_LHLO);
            }
            State::Ready => return self.refuse(&reply::NEED_MAIL),
            State::Transaction { from, recipients } if recipients.is_empty() => {
                self.state = State::Transaction { from, recipients };
                return self.refuse(&reply::NEED_RCPT);
            }
            State::Transaction { from, recipients } => (from, recipients),
        };
        self.say(&reply::START_DATA);
        if !self.flush().await {
            return Flow::Close;
        }
        let data = match self.read_data().await {
            Ok(Some(data)) => data,
            Ok(None) => return Flow::Close,
            Err(_) => {
                self.say(&reply::TIMEOUT);
                return Flow::Close;
            }
        };
        let message = match data {
            Data::Message(message) => message,
            Data::TooBig => {
                let limit = u64::from(self.shared.config.limits.append_limit);
                let error = delivery::DeliveryError::TooBig { limit };
                for _ in &recipients {
                    metrics::counter!(crate::metrics::DELIVERIES, "result" => error.label())
                        .increment(1);
                    self.say(&reply::for_error(&error));
                }
                return Flow::Continue;
            }
        };
        // One reply per recipient taken, in the order they were taken (RFC 2033 4.2).
        for recipient in &recipients {
            let outcome =
                delivery::deliver(&self.shared, &from, recipient, &message, &Target::Inbox).await;
            match outcome {
                Ok(()) => self.say(&reply::DELIVERED),
                Err(error) => self.say(&reply::for_error(&error)),
            }
        }
        Flow::Continue
    }

    /// The message up to the final dot, dot-unstuffed; [`Data::TooBig`] once it passes
    /// `limits.append_limit` (the rest is read and dropped); `None` when the client
    /// goes away first. Each read waits at most the timeout; `Err` when that passes.
    async fn read_data(&mut self) -> Result<Option<Data>, tokio::time::error::Elapsed> {
        let limit = self.shared.config.limits.append_limit as usize;
        let mut receiver = DataReceiver::new();
        let mut message = Vec::new();
        // The DATA line's CRLF is where the message starts: fed first, so that a first
        // line that is a lone dot, or dot-stuffed, is read as such.
        receiver.ingest(&mut b"\r\n".iter(), &mut message);
        message.clear();
        let mut discarding: Option<DummyDataReceiver> = None;
        loop {
            let read = tokio::time::timeout(self.timeout, self.io.fill_buf()).await?;
            let Ok(buf) = read else { return Ok(None) };
            if buf.is_empty() {
                return Ok(None);
            }
            let mut bytes = buf.iter();
            let done = match &mut discarding {
                Some(discard) => discard.ingest(&mut bytes),
                None => receiver.ingest(&mut bytes, &mut message),
            };
            let used = buf.len() - bytes.as_slice().len();
            self.io.consume(used);
            if discarding.is_none() && message.len() > limit {
                discarding = Some(DummyDataReceiver::new_data(&receiver));
                message = Vec::new();
            }
            if done {
                return Ok(Some(match discarding {
                    Some(_) => Data::TooBig,
                    None => Data::Message(message),
                }));
            }
        }
    }
}

/// The local part of `RCPT TO:<local-part>` when it names no domain, which smtp-proto
/// refuses (RFC 5321's forward-path has one) but Dovecot's LMTP takes, and with it the
/// LMTP clients written against Dovecot (imaptest's profile mode delivers to `<user>`
/// and `<user+Spam>`). A dot-atom only, without parameters; anything else stays a
/// syntax error. [`delivery::accept_recipient`] reads it as a user without a domain.
fn bare_local_part(line: &[u8]) -> Option<String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (verb, rest) = line.split_at_checked(b"RCPT TO:".len())?;
    if !verb.eq_ignore_ascii_case(b"RCPT TO:") {
        return None;
    }
    let local = rest.strip_prefix(b"<")?.strip_suffix(b">")?;
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    let dot_atom = !local.is_empty()
        && local
            .split(|&b| b == b'.')
            .all(|atom| !atom.is_empty() && atom.iter().all(|&b| atext(b)));
    if !dot_atom {
        return None;
    }
    String::from_utf8(local.to_vec()).ok()
}
