//! One client connection on the wire: TLS or plain bytes in, IMAP messages out.
//!
//! Framing is imap-codec's `Fragmentizer`, which splits input into lines and literals
//! before any parsing, so a malformed command can be thrown away without ever reading a
//! literal's bytes as a command. This layer enforces the line-length and literal-size
//! bounds itself: a synchronizing literal above APPENDLIMIT is refused with
//! `NO [TOOBIG]` before the client sends it (imap-next's server flow can only answer
//! `BAD`, which is why the server does not use it); a command line longer than the
//! limit is answered `BAD` at once, its bytes are thrown away up to the end of the line
//! (never kept), and the session goes on with the next line.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use imap_codec::decode::{
    AuthenticateDataDecodeError, CommandDecodeError, Decoder, IdleDoneDecodeError,
};
use imap_codec::encode::{Encoder, Fragment};
use imap_codec::fragmentizer::{
    DecodeMessageError, FragmentInfo, Fragmentizer, LiteralAnnouncement,
};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::auth::AuthenticateData;
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::{LiteralMode, Tag};
use imap_codec::imap_types::response::Response;
use imap_codec::{AuthenticateDataCodec, CommandCodec, IdleDoneCodec, ResponseCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The byte stream under a session: plain TCP, or TLS over it.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What the client sent, once a whole message has arrived.
#[derive(Debug)]
pub enum Incoming<T> {
    Message(T),
    /// The message could not be parsed; the tag when one could be read, and why.
    Invalid {
        tag: Option<Tag<'static>>,
        reason: String,
    },
    /// A synchronizing literal above the limit: already answered `NO [TOOBIG]`.
    Refused,
}

/// A command as read: by imap-codec, or in extension syntax it lacks.
#[derive(Debug)]
pub enum Request {
    Codec(Command<'static>),
    Extended(Extended),
}

/// A command in extension syntax imap-codec lacks, read by the gateway's own parsers.
#[derive(Debug)]
pub struct Extended {
    pub tag: Tag<'static>,
    pub(crate) body: crate::command::extended::ExtendedBody,
}

impl Extended {
    /// The command's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        self.body.name()
    }
}

/// What kind of message the session expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Command,
    AuthenticateData,
    IdleDone,
}

/// A read that cannot go on: the peer closed, or a transport error.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub struct Connection {
    stream: Option<Stream>,
    fragmentizer: Fragmentizer,
    /// Offset in the current message where the current line began.
    line_start: usize,
    max_line: u32,
    literal_limit: u32,
    /// A non-synchronizing literal above the limit was announced in this message.
    literal_too_big: bool,
    /// The fragment being received is a literal (its bytes do not count as line length).
    in_literal: bool,
    /// The line being received went over `max_line` and was answered `BAD`: its bytes are
    /// dropped as they arrive, up to its end.
    discarding: bool,
    /// The current message holds a line over `max_line` (kept only because a
    /// non-synchronizing literal follows it, which must be read and dropped too).
    line_too_long: bool,
    out: Vec<u8>,
    read_buf: Vec<u8>,
    /// Until login: the server-wide budget of literal bytes held by such connections,
    /// and how much of it this one holds.
    preauth: Option<Arc<PreauthBudget>>,
    preauth_reserved: usize,
    /// How long a flush may wait for the client to take its output.
    write_deadline: WriteDeadline,
}

/// When a flush that the client does not read gives up.
#[derive(Clone, Copy, Debug)]
enum WriteDeadline {
    /// At this instant (the login deadline).
    At(tokio::time::Instant),
    /// This long after the flush starts.
    Each(Duration),
}

/// Flush the output buffer once it holds this much, even mid-response.
const FLUSH_AT: usize = 256 * 1024;

/// A literal is copied into the output buffer this much at a time.
const LITERAL_PIECE: usize = 64 * 1024;

/// Literal bytes one command may carry before login: LOGIN's user name and password, or
/// an AUTHENTICATE PLAIN initial response, fit many times over.
pub const PREAUTH_LITERAL_LIMIT: u32 = 8 * 1024;

/// Literal bytes all connections that have not logged in may hold at once (a few hundred
/// clients sending LOGIN literals together).
pub const PREAUTH_LITERAL_BUDGET: usize = 4 * 1024 * 1024;

/// The server-wide count of literal bytes held by connections that have not logged in.
#[derive(Debug, Default)]
pub struct PreauthBudget {
    used: AtomicUsize,
}

impl PreauthBudget {
    fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&total| total <= PREAUTH_LITERAL_BUDGET)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

impl Connection {
    /// A connection that has not logged in yet: its literals are bounded by
    /// [`PREAUTH_LITERAL_LIMIT`] and `budget` until [`Connection::logged_in`].
    pub fn new(
        stream: Stream,
        max_line: u32,
        literal_limit: u32,
        budget: Arc<PreauthBudget>,
    ) -> Self {
        Self {
            stream: Some(stream),
            fragmentizer: Fragmentizer::new(literal_limit.saturating_add(max_line)),
            line_start: 0,
            max_line,
            literal_limit,
            literal_too_big: false,
            in_literal: false,
            discarding: false,
            line_too_long: false,
            out: Vec::with_capacity(4096),
            // Small: an idle session should cost little; big literals arrive in many reads.
            read_buf: vec![0; 4 * 1024],
            preauth: Some(budget),
            preauth_reserved: 0,
            // Until a session sets its own: the longest any state allows by default.
            write_deadline: WriteDeadline::Each(Duration::from_secs(30 * 60)),
        }
    }

    /// Output not taken by the client by `deadline` ends the connection (before login:
    /// the login deadline).
    pub fn set_write_deadline(&mut self, deadline: tokio::time::Instant) {
        self.write_deadline = WriteDeadline::At(deadline);
    }

    /// The client logged in: literals up to APPENDLIMIT from now on, and a client that
    /// takes no output for `write_timeout` (while a flush waits) is gone.
    pub fn logged_in(&mut self, write_timeout: Duration) {
        self.release_preauth();
        self.preauth = None;
        self.write_deadline = WriteDeadline::Each(write_timeout);
    }

    /// The client is no longer logged in (UNAUTHENTICATE): literals are bounded as
    /// before login again, within `budget`, and output must be taken by `deadline`.
    pub fn logged_out(&mut self, budget: Arc<PreauthBudget>, deadline: tokio::time::Instant) {
        self.preauth = Some(budget);
        self.preauth_reserved = 0;
        self.write_deadline = WriteDeadline::At(deadline);
    }

    fn release_preauth(&mut self) {
        if let Some(budget) = &self.preauth {
            budget.release(std::mem::take(&mut self.preauth_reserved));
        }
    }

    /// Before login: why a literal of `length` bytes is refused, if it is (more than
    /// LOGIN/AUTHENTICATE need, or the server-wide budget is spent); else it is reserved.
    fn preauth_refusal(&mut self, length: u32) -> Option<String> {
        let budget = self.preauth.as_ref()?;
        let wanted = self.preauth_reserved.saturating_add(length as usize);
        if wanted > PREAUTH_LITERAL_LIMIT as usize {
            return Some(format!(
                "[TOOBIG] Literals before login are limited to {PREAUTH_LITERAL_LIMIT} bytes"
            ));
        }
        if !budget.try_reserve(length as usize) {
            return Some("[LIMIT] Too many clients are logging in; try again".to_owned());
        }
        self.preauth_reserved = wanted;
        None
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Some(Stream::Tls(_)))
    }

    fn stream(&mut self) -> io::Result<&mut Stream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no stream"))
    }

    /// Queues a response; it is written at the next [`Connection::flush`] (or sooner
    /// when the buffer grows large).
    pub async fn send(&mut self, response: &Response<'_>) -> io::Result<()> {
        // Fragment by fragment: `dump()` would copy everything once more.
        for fragment in ResponseCodec::default().encode(response) {
            match fragment {
                Fragment::Line { data } | Fragment::Literal { data, .. } => {
                    self.out.extend_from_slice(&data)
                }
            }
        }
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues a response that is already encoded (a FETCH line with a cached item), as
    /// [`Connection::send`] does.
    pub async fn send_encoded(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues message bytes as a literal (`{n}\r\n` and the bytes, NUL sent as 0x80 as
    /// Dovecot does), or `""` when there are none. Copied in pieces, flushing as it goes,
    /// so a large body never sits whole in the output buffer.
    pub async fn send_literal(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            self.out.extend_from_slice(b"\"\"");
            return Ok(());
        }
        self.out
            .extend_from_slice(format!("{{{}}}\r\n", data.len()).as_bytes());
        for piece in data.chunks(LITERAL_PIECE) {
            pluto_mime::extend_literal_safe(&mut self.out, piece);
            if self.out.len() >= FLUSH_AT {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Queues raw bytes that are already valid IMAP (for the few fixed lines).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let deadline = match self.write_deadline {
            WriteDeadline::At(at) => at,
            WriteDeadline::Each(limit) => tokio::time::Instant::now() + limit,
        };
        let stream = self.stream()?;
        let written = tokio::time::timeout_at(deadline, async {
            stream.write_all(&out).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(result) => result?,
            Err(_elapsed) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading",
                ));
            }
        }
        self.out = out;
        self.out.clear();
        if self.out.capacity() > FLUSH_AT * 4 {
            self.out = Vec::with_capacity(4096);
        }
        Ok(())
    }

    /// Upgrades a plain connection to TLS (STARTTLS). Input the client pipelined after
    /// STARTTLS is thrown away: it arrived unprotected (the classic STARTTLS injection).
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        self.flush().await?;
        let plain = match self.stream.take() {
            Some(Stream::Plain(tcp)) => tcp,
            Some(other) => {
                self.stream = Some(other);
                return Err(io::Error::other("already TLS"));
            }
            None => return Err(io::Error::new(io::ErrorKind::NotConnected, "no stream")),
        };
        self.fragmentizer = Fragmentizer::new(self.literal_limit.saturating_add(self.max_line));
        self.line_start = 0;
        self.literal_too_big = false;
        self.in_literal = false;
        self.discarding = false;
        self.line_too_long = false;
        let tls = acceptor.accept(plain).await?;
        self.stream = Some(Stream::Tls(Box::new(tls)));
        Ok(())
    }

    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        if let Some(stream) = self.stream.as_mut() {
            let _ = stream.shutdown().await;
        }
    }

    /// Throws away the message whose literal was just refused (before the client sent
    /// it) and returns its tag for the answer, `*` when none could be read.
    fn drop_refused_message(&mut self) -> String {
        let tag = self
            .fragmentizer
            .decode_tag()
            .map(|t| t.inner().to_owned())
            .unwrap_or_else(|| "*".to_owned());
        self.fragmentizer.skip_message();
        self.line_start = 0;
        self.in_literal = false;
        tag
    }

    /// Reads the next command. Cancel-safe: bytes read are kept for the next call.
    /// A command imap-codec refuses is read again by
    /// [`parse_extended`](crate::command::extended::parse_extended), for the extension syntax
    /// imap-codec lacks (SEARCH nested deeper than it follows, up to `max_nesting`
    /// levels; ESEARCH's RETURN; SEARCHRES's `$`).
    pub async fn read_command(
        &mut self,
        max_nesting: usize,
    ) -> Result<Incoming<Request>, ReadError> {
        if let Some(refused) = self.read_message(Expect::Command).await? {
            return Ok(refused);
        }
        let decoded = match self.decode(&CommandCodec::default()) {
            Incoming::Message(command) => return Ok(Incoming::Message(Request::Codec(command))),
            Incoming::Invalid { tag, reason } => (tag, reason),
            Incoming::Refused => return Ok(Incoming::Refused),
        };
        let (tag, reason) = decoded;
        if !self.line_too_long && !self.literal_too_big && !self.fragmentizer.is_message_poisoned()
        {
            use crate::command::extended::{ExtendedError, parse_extended};
            match parse_extended(self.fragmentizer.message_bytes(), max_nesting) {
                Ok((tag, body)) => {
                    return Ok(Incoming::Message(Request::Extended(Extended { tag, body })));
                }
                Err(ExtendedError::Refused(reason)) => {
                    return Ok(Incoming::Invalid { tag, reason });
                }
                Err(ExtendedError::NotExtended) => {}
            }
        }
        Ok(Incoming::Invalid { tag, reason })
    }

    /// Reads the client's answer to an AUTHENTICATE challenge.
    pub async fn read_authenticate_data(
        &mut self,
    ) -> Result<Incoming<AuthenticateData<'static>>, ReadError> {
        if let Some(refused) = self.read_message(Expect::AuthenticateData).await? {
            return Ok(refused);
        }
        Ok(self.decode(&AuthenticateDataCodec::default()))
    }

    /// Reads the `DONE` that ends IDLE. Cancel-safe.
    pub async fn read_idle_done(&mut self) -> Result<Incoming<()>, ReadError> {
        if let Some(refused) = self.read_message(Expect::IdleDone).await? {
            return Ok(refused);
        }
        Ok(match self.decode(&IdleDoneCodec::default()) {
            Incoming::Message(_done) => Incoming::Message(()),
            Incoming::Invalid { tag, reason } => Incoming::Invalid { tag, reason },
            Incoming::Refused => Incoming::Refused,
        })
    }

    fn decode<C>(&self, codec: &C) -> Incoming<<C as Decoder>::Message<'static>>
    where
        C: Decoder,
        for<'a> C::Message<'a>: IntoStatic<Static = C::Message<'static>>,
        for<'a> C::Error<'a>: DescribeError,
    {
        let tag = || self.fragmentizer.decode_tag().map(IntoStatic::into_static);
        if self.line_too_long {
            return Incoming::Invalid {
                tag: tag(),
                reason: self.line_too_long_text(),
            };
        }
        if self.literal_too_big {
            return Incoming::Invalid {
                tag: tag(),
                reason: format!(
                    "[TOOBIG] Literal is larger than {} bytes",
                    self.literal_limit
                ),
            };
        }
        match self.fragmentizer.decode_message(codec) {
            Ok(message) => Incoming::Message(message.into_static()),
            Err(DecodeMessageError::DecodingFailure(error)) => Incoming::Invalid {
                tag: tag(),
                reason: error.describe(self.fragmentizer.message_bytes()),
            },
            Err(DecodeMessageError::DecodingRemainder { .. }) => Incoming::Invalid {
                tag: tag(),
                reason: "Unexpected characters after the command".to_owned(),
            },
            Err(DecodeMessageError::MessageTooLong { .. }) => Incoming::Invalid {
                tag: tag(),
                reason: "Command is too long".to_owned(),
            },
            Err(DecodeMessageError::MessagePoisoned { .. }) => Incoming::Invalid {
                tag: tag(),
                reason: "Invalid command".to_owned(),
            },
        }
    }

    /// Drives the fragmentizer until one whole message has arrived. Returns
    /// `Some(Refused)` when a too-large synchronizing literal was refused instead.
    async fn read_message<T>(&mut self, expect: Expect) -> Result<Option<Incoming<T>>, ReadError> {
        self.discard_long_line().await?;
        loop {
            match self.fragmentizer.progress() {
                Some(FragmentInfo::Line {
                    start,
                    end,
                    announcement,
                    ..
                }) => {
                    if start == 0 {
                        self.literal_too_big = false;
                        self.line_too_long = false;
                        self.release_preauth();
                    }
                    self.line_start = end;
                    self.in_literal = announcement.is_some();
                    if end - start > self.max_line as usize {
                        if matches!(
                            announcement,
                            Some(LiteralAnnouncement {
                                mode: LiteralMode::NonSync,
                                ..
                            })
                        ) {
                            // Its literal comes anyway: read it (bounded by the literal
                            // limit) and answer for the whole command.
                            self.fragmentizer.poison_message();
                            self.line_too_long = true;
                        } else {
                            return Ok(Some(self.refuse_long_line(false)));
                        }
                    }
                    if let Some(LiteralAnnouncement { mode, length }) = announcement {
                        if self.line_too_long {
                            // Already refused; nothing more to check.
                        } else if expect != Expect::Command {
                            // Literals only belong in commands; take the line as it is and
                            // let decoding reject it.
                            self.fragmentizer.poison_message();
                        } else if let Some(why) = self.preauth_refusal(length) {
                            let tag = self.drop_refused_message();
                            let line = match mode {
                                LiteralMode::Sync => format!("{tag} NO {why}\r\n"),
                                // Its bytes are on their way and will not be kept: close.
                                LiteralMode::NonSync => format!("* BYE {why}\r\n"),
                            };
                            self.send_raw(line.as_bytes());
                            self.flush().await?;
                            if mode == LiteralMode::NonSync {
                                return Err(ReadError::Closed);
                            }
                            return Ok(Some(Incoming::Refused));
                        } else if length > self.literal_limit {
                            match mode {
                                LiteralMode::Sync => {
                                    let tag = self.drop_refused_message();
                                    let line = format!(
                                        "{tag} NO [TOOBIG] Literal is larger than the limit of {} bytes\r\n",
                                        self.literal_limit
                                    );
                                    self.send_raw(line.as_bytes());
                                    self.flush().await?;
                                    return Ok(Some(Incoming::Refused));
                                }
                                LiteralMode::NonSync => {
                                    // The client sends it anyway (RFC 7888): read and drop it,
                                    // then answer with an error for the whole command.
                                    self.fragmentizer.poison_message();
                                    self.literal_too_big = true;
                                }
                            }
                        } else if mode == LiteralMode::Sync {
                            self.send_raw(b"+ Ready for literal data\r\n");
                            self.flush().await?;
                        }
                    }
                    if self.fragmentizer.is_message_complete() {
                        self.line_start = 0;
                        return Ok(None);
                    }
                }
                Some(FragmentInfo::Literal { end, .. }) => {
                    self.line_start = end;
                    self.in_literal = false;
                    if self.fragmentizer.is_message_complete() {
                        self.line_start = 0;
                        return Ok(None);
                    }
                }
                None => {
                    let pending_line = self
                        .fragmentizer
                        .message_bytes()
                        .len()
                        .saturating_sub(self.line_start);
                    if self.preauth.is_some()
                        && self.fragmentizer.message_bytes().len()
                            > self.max_line as usize + PREAUTH_LITERAL_LIMIT as usize
                    {
                        // Many lines with literals in one message before login: more than
                        // LOGIN or AUTHENTICATE could need.
                        self.send_raw(b"* BYE Command too long before login\r\n");
                        self.flush().await?;
                        return Err(ReadError::Closed);
                    }
                    if !self.in_literal && pending_line > self.max_line as usize {
                        // Everything read so far is in the message buffer: drop it, answer
                        // now, and drop the rest of the line as it comes.
                        return Ok(Some(self.refuse_long_line(true)));
                    }
                    let Some(stream) = self.stream.as_mut() else {
                        return Err(ReadError::Closed);
                    };
                    let n = stream.read(&mut self.read_buf).await?;
                    if n == 0 {
                        return Err(ReadError::Closed);
                    }
                    self.fragmentizer.enqueue_bytes(&self.read_buf[..n]);
                }
            }
        }
    }
}

impl Connection {
    fn line_too_long_text(&self) -> String {
        format!(
            "Command line longer than the limit of {} bytes",
            self.max_line
        )
    }

    /// Answers a line over the limit: the message so far is dropped; with `unfinished`,
    /// so is the rest of its line, as it arrives.
    fn refuse_long_line<T>(&mut self, unfinished: bool) -> Incoming<T> {
        let tag = self.fragmentizer.decode_tag().map(IntoStatic::into_static);
        self.fragmentizer.skip_message();
        self.line_start = 0;
        self.in_literal = false;
        self.literal_too_big = false;
        self.line_too_long = false;
        self.discarding = unfinished;
        Incoming::Invalid {
            tag,
            reason: self.line_too_long_text(),
        }
    }

    /// Drops input up to the end of a line that was refused as too long; what follows
    /// the line goes to the fragmentizer. Cancel-safe: it goes on at the next call.
    async fn discard_long_line(&mut self) -> Result<(), ReadError> {
        while self.discarding {
            let Some(stream) = self.stream.as_mut() else {
                return Err(ReadError::Closed);
            };
            let n = stream.read(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ReadError::Closed);
            }
            if let Some(lf) = self.read_buf[..n].iter().position(|&b| b == b'\n') {
                self.discarding = false;
                self.fragmentizer.enqueue_bytes(&self.read_buf[lf + 1..n]);
            }
        }
        Ok(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.release_preauth();
    }
}

/// A short, clear text for a message that did not parse.
pub(crate) trait DescribeError {
    fn describe(&self, message: &[u8]) -> String;
}

impl DescribeError for CommandDecodeError<'_> {
    fn describe(&self, message: &[u8]) -> String {
        describe_command(message)
    }
}

impl DescribeError for AuthenticateDataDecodeError {
    fn describe(&self, _message: &[u8]) -> String {
        "Invalid base64 in the authentication exchange".to_owned()
    }
}

impl DescribeError for IdleDoneDecodeError {
    fn describe(&self, _message: &[u8]) -> String {
        "Expected DONE to end IDLE".to_owned()
    }
}

/// The commands this server knows, for telling "unknown command" from "bad arguments".
const KNOWN_COMMANDS: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE",
    "LOGIN",
    "SELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "UID",
    "IDLE",
    "MOVE",
    "NAMESPACE",
    "ID",
    "ENABLE",
    "UNSELECT",
    "UNAUTHENTICATE",
];

fn describe_command(message: &[u8]) -> String {
    let line_end = message
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(message.len());
    let line = String::from_utf8_lossy(&message[..line_end]);
    let mut words = line.split(' ');
    let tag = words.next().unwrap_or_default();
    let Some(mut name) = words.next().map(|w| w.to_ascii_uppercase()) else {
        return if tag.is_empty() {
            "Empty command line".to_owned()
        } else {
            "Missing command".to_owned()
        };
    };
    if name == "UID" {
        if let Some(sub) = words.next() {
            name = format!("UID {}", sub.to_ascii_uppercase());
        }
    }
    let base = name.split(' ').next_back().unwrap_or_default();
    if KNOWN_COMMANDS.contains(&name.as_str())
        || (name.starts_with("UID ") && KNOWN_COMMANDS.contains(&base))
    {
        format!("Error in IMAP command {name}: invalid arguments")
    } else if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ')
        && !name.is_empty()
    {
        format!("Unknown command {name}")
    } else {
        "Invalid command syntax".to_owned()
    }
}
