//! LMTP delivery load (RFC 2033): C connections, each LHLO once and then a loop of
//! transactions — `MAIL FROM`, N × `RCPT TO`, `DATA` written at once (PIPELINING, as
//! Postfix's LMTP client does), the 354 awaited, a corpus message, one reply per
//! recipient — for a duration or a number of messages.
//!
//! Each message is a corpus message under a header line `X-Pluto-Bench: RUN.N`
//! (a random run id, the message's number), so no two messages are the same bytes.
//!
//! Every reply is checked: 250 for MAIL and each RCPT, 354 for DATA, 250 for every
//! recipient after the message. Anything else (a refusal, a malformed reply, a
//! timeout, a closed connection) is an error; the connection is then dropped and
//! opened again, so no error leaves the client out of step with the server. Only a
//! recipient answered 250 after DATA counts as a delivery.
//!
//! Rows of the report: `ENVELOPE` (the pipelined MAIL/RCPT/DATA to the 354), `DATA`
//! (the message and its final dot to the last recipient's reply: what the server
//! spends making the copies durable), `TRANSACTION` (both: what an MTA waits per
//! message), `CONNECT` (TCP, greeting, LHLO).
//!
//! With [`LmtpConfig::verify`], every user's INBOX is counted over IMAP (STATUS
//! MESSAGES) before and after, and each must have grown by exactly the copies
//! answered 250 for that user: a server that says 250 and loses mail fails the run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use smtp_proto::response::parser::ResponseReceiver;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::conn::{self, Target};
use crate::error::{BenchError, Result};
use crate::stats::{CONNECT, LmtpFigures, Meta, Report, Stats, TRANSACTION, Verified};
use crate::workload::{self, Budget, User};

/// Row: MAIL FROM, the RCPTs and DATA, pipelined, until the 354.
pub const ENVELOPE: &str = "ENVELOPE";
/// Row: the message and its dot, until the last recipient's reply.
pub const DATA: &str = "DATA";

/// The longest reply line read (smtp-proto's own bound for a reply).
const MAX_REPLY_LINE: u64 = smtp_proto::response::parser::MAX_RESPONSE_LENGTH as u64;
/// The longest multi-line reply (LHLO's capability list is a dozen lines).
const MAX_REPLY_LINES: usize = 100;
/// Pause after an error before reconnecting, so that a server refusing everything
/// is not hammered in a tight loop.
const ERROR_PAUSE: Duration = Duration::from_millis(20);

/// Everything an LMTP run needs.
#[derive(Clone)]
pub struct LmtpConfig {
    pub label: String,
    /// The server's LMTP address.
    pub addr: SocketAddr,
    /// Longest wait for one reply.
    pub timeout: Duration,
    /// C: concurrent connections.
    pub clients: usize,
    /// N: recipients per message, each a different user (N ≤ users).
    pub recipients: usize,
    /// The users mail goes to, as `name@domain`; passwords only for `verify`.
    pub users: Vec<User>,
    pub domain: String,
    /// The envelope sender.
    pub sender: String,
    pub duration: Duration,
    /// Stop after this many messages over all clients.
    pub max_messages: Option<u64>,
    pub corpus: Arc<Vec<Vec<u8>>>,
    /// Count every user's INBOX over IMAP before and after.
    pub verify: Option<Target>,
    pub progress: bool,
}

impl LmtpConfig {
    /// The workload's name in reports: `lmtp-1rcpt`, `lmtp-5rcpt`, …
    pub fn workload(&self) -> String {
        format!("lmtp-{}rcpt", self.recipients)
    }
}

struct Shared {
    cfg: LmtpConfig,
    /// Random, per run: with the message number it makes every message unique (as
    /// real mail is, by its Message-ID and Received lines), so that no server can
    /// store a repeated message once for all its deliveries.
    run_id: u64,
    /// Each message's bytes, dot-stuffed and ending in `.\r\n`.
    messages: Vec<Vec<u8>>,
    budget: Budget,
    deliveries: AtomicU64,
    errors: AtomicU64,
}

/// One client's result.
#[derive(Default)]
struct Outcome {
    stats: Stats,
    messages: u64,
    /// 250s after DATA, per user index.
    delivered: Vec<u64>,
    refused: u64,
}

/// Runs the load: the IMAP count before (when verifying), the measured phase, the
/// count after.
pub async fn run(cfg: LmtpConfig) -> Result<Report> {
    if cfg.users.is_empty() || cfg.clients == 0 || cfg.recipients == 0 {
        return Err(BenchError::Usage(
            "need at least one user, one client and one recipient".into(),
        ));
    }
    if cfg.recipients > cfg.users.len() {
        return Err(BenchError::Usage(format!(
            "{} recipients per message need at least as many users (have {})",
            cfg.recipients,
            cfg.users.len()
        )));
    }
    let names = cfg.users.iter().map(|u| u.name.as_str());
    for part in names.chain([cfg.domain.as_str(), cfg.sender.as_str()]) {
        if part.is_empty() || part.bytes().any(|b| b <= b' ' || b"<>\x7f".contains(&b)) {
            return Err(BenchError::Usage(format!(
                "{part:?} cannot go into an LMTP address (empty, a space, a control character or <>)"
            )));
        }
    }
    let before = match &cfg.verify {
        Some(imap) => Some(inbox_counts(imap, &cfg.users).await?),
        None => None,
    };
    let started = Instant::now();
    let shared = Arc::new(Shared {
        messages: cfg.corpus.iter().map(|m| dot_stuff(m)).collect(),
        run_id: rand::random(),
        budget: Budget::new(started + cfg.duration, cfg.max_messages),
        cfg: cfg.clone(),
        deliveries: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let progress = cfg
        .progress
        .then(|| tokio::spawn(progress_line(shared.clone(), started)));
    let tasks: Vec<_> = (0..cfg.clients)
        .map(|id| tokio::spawn(client(shared.clone(), id)))
        .collect();
    let mut total = Outcome {
        delivered: vec![0; cfg.users.len()],
        ..Outcome::default()
    };
    for t in tasks {
        let o = t
            .await
            .map_err(|e| BenchError::Protocol(format!("client task: {e}")))?;
        total.stats.merge(o.stats);
        total.messages += o.messages;
        total.refused += o.refused;
        for (sum, n) in total.delivered.iter_mut().zip(o.delivered) {
            *sum += n;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    shared.budget.stop();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let verified = match (&cfg.verify, before) {
        (Some(imap), Some(before)) => {
            let after = inbox_counts(imap, &cfg.users).await?;
            Some(verify(&cfg.users, &before, &after, &total.delivered))
        }
        _ => None,
    };
    let deliveries: u64 = total.delivered.iter().sum();
    let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let meta = Meta {
        label: cfg.label.clone(),
        workload: cfg.workload(),
        target: cfg.addr.to_string(),
        tls: false,
        clients: cfg.clients,
        users: cfg.users.len(),
        watchers: 0,
        fill: 0,
        duration_limit_secs: cfg.duration.as_secs_f64(),
        cycle_limit: cfg.max_messages,
        cycles: total.messages,
    };
    let mut report = total.stats.report(meta, secs);
    report.lmtp = Some(LmtpFigures {
        recipients: cfg.recipients,
        messages: total.messages,
        deliveries,
        messages_per_sec: per_sec(total.messages),
        deliveries_per_sec: per_sec(deliveries),
        refused: total.refused,
        verified,
    });
    Ok(report)
}

/// Compares each user's INBOX growth with the 250s that user's copies got.
fn verify(users: &[User], before: &[usize], after: &[usize], delivered: &[u64]) -> Verified {
    let mut v = Verified {
        expected: delivered.iter().sum(),
        found: 0,
        users_wrong: Vec::new(),
    };
    for (i, user) in users.iter().enumerate() {
        let grew = after[i].saturating_sub(before[i]) as u64;
        v.found += grew;
        if after[i] < before[i] || grew != delivered[i] {
            v.users_wrong.push(format!(
                "{} (+{grew} for {} delivered)",
                user.name, delivered[i]
            ));
        }
    }
    v
}

/// Every user's INBOX message count, over IMAP.
async fn inbox_counts(imap: &Target, users: &[User]) -> Result<Vec<usize>> {
    let mut counts = Vec::with_capacity(users.len());
    for user in users {
        let mut c = conn::Conn::connect(imap).await?;
        workload::login(&mut c, user).await?;
        counts.push(workload::status_messages(&mut c, "INBOX").await?);
        let _ = c.command("LOGOUT").await;
    }
    Ok(counts)
}

/// The message as DATA carries it: lines starting with "." get another one (RFC 5321
/// 4.5.2), a missing final CRLF is added, then the end-of-data line.
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

async fn progress_line(shared: Arc<Shared>, started: Instant) {
    let s = shared.clone();
    workload::progress(
        move || s.deliveries.load(Ordering::Relaxed),
        move |now, per_sec| {
            format!(
                "[{} {}] {:>4.0}/{:.0} s  deliveries {:>8} ({:>6}/s)  errors {}",
                shared.cfg.label,
                shared.cfg.workload(),
                started.elapsed().as_secs_f64(),
                shared.cfg.duration.as_secs_f64(),
                now,
                per_sec,
                shared.errors.load(Ordering::Relaxed),
            )
        },
    )
    .await;
}

/// One connection's loop. Errors are counted, never returned: the client
/// reconnects and goes on until the budget is spent.
async fn client(shared: Arc<Shared>, id: usize) -> Outcome {
    let cfg = &shared.cfg;
    let mut out = Outcome {
        delivered: vec![0; cfg.users.len()],
        ..Outcome::default()
    };
    let mut conn: Option<Lmtp> = None;
    let mut message = Vec::new();
    while let Some(n) = shared.budget.claim() {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => {
                let t = Instant::now();
                match Lmtp::connect(cfg.addr, cfg.timeout).await {
                    Ok(c) => {
                        out.stats.ok(CONNECT, t.elapsed());
                        conn.insert(c)
                    }
                    Err(e) => {
                        tracing::debug!(%e, "LMTP connect failed");
                        out.stats.error(CONNECT);
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(ERROR_PAUSE).await;
                        continue;
                    }
                }
            }
        };
        // Message n goes to N consecutive users from a place that moves with n, so
        // every user gets mail and the N are different users.
        let first = (n as usize).wrapping_mul(cfg.recipients) % cfg.users.len();
        let rcpts: Vec<usize> = (0..cfg.recipients)
            .map(|k| (first + k) % cfg.users.len())
            .collect();
        let body = &shared.messages[(id * 7 + n as usize) % shared.messages.len()];
        message.clear();
        message
            .extend_from_slice(format!("X-Pluto-Bench: {:016x}.{n}\r\n", shared.run_id).as_bytes());
        message.extend_from_slice(body);
        match transaction(c, cfg, &rcpts, &message, &mut out).await {
            Ok(()) => {
                out.messages += 1;
                shared
                    .deliveries
                    .fetch_add(rcpts.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(%e, "LMTP transaction failed");
                shared.errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    if let Some(mut c) = conn {
        let _ = c.quit().await;
    }
    out
}

/// One message to `rcpts`: `Ok` only when every reply was the expected one.
/// Recipients answered 250 after DATA count in `out.delivered` either way.
async fn transaction(
    c: &mut Lmtp,
    cfg: &LmtpConfig,
    rcpts: &[usize],
    message: &[u8],
    out: &mut Outcome,
) -> Result<()> {
    let start = Instant::now();
    let accepted = match envelope(c, cfg, rcpts, out).await {
        Ok(a) => {
            out.stats.ok(ENVELOPE, start.elapsed());
            a
        }
        Err(e) => {
            out.stats.error(ENVELOPE);
            return Err(e);
        }
    };
    let sent = Instant::now();
    match data(c, message, &accepted, out).await {
        Ok(()) => {
            out.stats.ok(DATA, sent.elapsed());
            out.stats.ok(TRANSACTION, start.elapsed());
            Ok(())
        }
        Err(e) => {
            out.stats.error(DATA);
            Err(e)
        }
    }
}

/// MAIL FROM, the RCPTs and DATA in one write, then their replies: the recipients
/// taken. A refused recipient fails the transaction (the caller drops the
/// connection, which ends it on the server without storing anything).
async fn envelope(
    c: &mut Lmtp,
    cfg: &LmtpConfig,
    rcpts: &[usize],
    out: &mut Outcome,
) -> Result<Vec<usize>> {
    let mut cmds = format!("MAIL FROM:<{}>\r\n", cfg.sender);
    for &u in rcpts {
        cmds.push_str(&format!(
            "RCPT TO:<{}@{}>\r\n",
            cfg.users[u].name, cfg.domain
        ));
    }
    cmds.push_str("DATA\r\n");
    c.send(cmds.as_bytes()).await?;
    let mut failure = expect(&c.reply().await?, 250, "MAIL FROM");
    let mut accepted = Vec::with_capacity(rcpts.len());
    for &u in rcpts {
        match expect(&c.reply().await?, 250, "RCPT TO") {
            Ok(()) => accepted.push(u),
            Err(e) => {
                out.refused += 1;
                failure = failure.and(Err(e));
            }
        }
    }
    let data = expect(&c.reply().await?, 354, "DATA");
    failure.and(data).map(|()| accepted)
}

/// The message, then one reply per accepted recipient.
async fn data(c: &mut Lmtp, message: &[u8], accepted: &[usize], out: &mut Outcome) -> Result<()> {
    c.send(message).await?;
    let mut result = Ok(());
    for &u in accepted {
        match expect(&c.reply().await?, 250, "DATA (a recipient's reply)") {
            Ok(()) => out.delivered[u] += 1,
            Err(e) => {
                out.refused += 1;
                result = result.and(Err(e));
            }
        }
    }
    result
}

fn expect(r: &Reply, code: u16, what: &str) -> Result<()> {
    if r.code == code {
        Ok(())
    } else {
        Err(BenchError::wrong(what, format!("{} {}", r.code, r.text)))
    }
}

/// One reply: its code and text (lines joined by "\n").
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// One LMTP connection, past its greeting and LHLO.
struct Lmtp {
    io: BufReader<TcpStream>,
    timeout: Duration,
    line: Vec<u8>,
}

impl Lmtp {
    async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Lmtp> {
        let tcp = conn::within(timeout, TcpStream::connect(addr)).await??;
        tcp.set_nodelay(true)?;
        let mut c = Lmtp {
            io: BufReader::with_capacity(16 * 1024, tcp),
            timeout,
            line: Vec::with_capacity(256),
        };
        let greeting = c.reply().await?;
        expect(&greeting, 220, "greeting")?;
        c.send(b"LHLO pluto-bench.localhost\r\n").await?;
        let lhlo = c.reply().await?;
        expect(&lhlo, 250, "LHLO")?;
        if !lhlo
            .text
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case("PIPELINING"))
        {
            return Err(BenchError::wrong(
                "LHLO",
                "PIPELINING is not advertised (the bench pipelines MAIL/RCPT/DATA)",
            ));
        }
        Ok(c)
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        let io = self.io.get_mut();
        conn::within(self.timeout, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await??;
        Ok(())
    }

    /// Reads one whole reply (all its lines), parsed by smtp-proto.
    async fn reply(&mut self) -> Result<Reply> {
        let mut rx = ResponseReceiver::default();
        for _ in 0..MAX_REPLY_LINES {
            self.line.clear();
            let mut limited = (&mut self.io).take(MAX_REPLY_LINE);
            let read = limited.read_until(b'\n', &mut self.line);
            if conn::within(self.timeout, read).await?? == 0 {
                return Err(BenchError::Closed);
            }
            if !self.line.ends_with(b"\n") {
                return Err(BenchError::Protocol(format!(
                    "an LMTP reply line longer than {MAX_REPLY_LINE} bytes"
                )));
            }
            match rx.parse(&mut self.line.iter()) {
                Ok(r) => {
                    return Ok(Reply {
                        code: r.code,
                        text: r.message,
                    });
                }
                Err(smtp_proto::Error::NeedsMoreData { .. }) => continue,
                Err(e) => {
                    return Err(BenchError::Protocol(format!(
                        "LMTP reply {:?}: {e}",
                        String::from_utf8_lossy(&self.line)
                    )));
                }
            }
        }
        Err(BenchError::Protocol(format!(
            "an LMTP reply of more than {MAX_REPLY_LINES} lines"
        )))
    }

    async fn quit(&mut self) -> Result<()> {
        self.send(b"QUIT\r\n").await?;
        let _ = self.reply().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(dot_stuff(b".x"), b"..x\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b"\r\n.\r\n");
    }

    #[test]
    fn verification_names_the_users_whose_count_is_off() {
        let users: Vec<User> = ["a", "b", "c"]
            .iter()
            .map(|n| User {
                name: (*n).to_owned(),
                password: String::new(),
            })
            .collect();
        let good = verify(&users, &[1, 0, 5], &[3, 1, 5], &[2, 1, 0]);
        assert!(good.ok(), "{good:?}");
        assert_eq!((good.expected, good.found), (3, 3));
        let bad = verify(&users, &[1, 0, 5], &[2, 1, 4], &[2, 1, 0]);
        assert!(!bad.ok());
        assert_eq!(bad.users_wrong.len(), 2, "{bad:?}");
        assert!(bad.users_wrong[0].starts_with("a "), "{bad:?}");
    }
}
