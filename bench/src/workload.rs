//! The four workloads and the driver that runs N clients over M users for a bounded
//! time (and optionally a bounded number of cycles), with a progress line.
//!
//! a) `mix`: one cycle = connect, LOGIN, LIST, STATUS, SELECT, FETCH flags+envelope of
//!    up to 100 messages, FETCH FLAGS + BODY.PEEK[] of one, STORE ±\Seen (toggled), STORE \Deleted on
//!    the last message + EXPUNGE, APPEND a corpus message, LOGOUT. The mailbox size
//!    stays constant (one expunged, one appended per cycle).
//! b) `mix-kept`: the same cycle on a session kept open (one LOGIN per client).
//! c) `append`: APPEND only, to the `Bench` mailbox, sessions kept.
//! d) `idle`: K watchers IDLE on `BenchIdle`; one appender appends there and waits
//!    until every watcher has seen the new EXISTS; the time from the APPEND's OK to
//!    each watcher's EXISTS is `IDLE-NOTIFY`.
//!
//! Every answer is checked. When each client has a user of its own (clients ≤ users)
//! the checks are exact (STATUS and SELECT agree with the count the client keeps,
//! FETCH returns exactly the messages asked for, EXPUNGE removes exactly the last
//! message, APPENDUIDs ascend); when users are shared, only what concurrency cannot
//! change is checked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use crate::conn::{Conn, Reply, Target, quote};
use crate::error::{BenchError, Result};
use crate::stats::{CONNECT, IDLE_NOTIFY, Live, Meta, Report, Stats};

/// The mailbox workload c appends to.
pub const APPEND_MAILBOX: &str = "Bench";
/// The mailbox workload d's watchers idle on.
pub const IDLE_MAILBOX: &str = "BenchIdle";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// a: the classic mix, one LOGIN per cycle.
    A,
    /// b: the classic mix on kept sessions.
    B,
    /// c: APPEND only.
    C,
    /// d: IDLE fan-out.
    D,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::A => "a",
            Workload::B => "b",
            Workload::C => "c",
            Workload::D => "d",
        }
    }
}

/// One user's credentials.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: String,
}

/// Everything a run needs.
#[derive(Clone)]
pub struct RunConfig {
    pub label: String,
    pub target: Target,
    pub workload: Workload,
    pub clients: usize,
    pub users: Vec<User>,
    pub duration: Duration,
    /// Total cycles over all clients (for workload d: APPENDs).
    pub max_cycles: Option<u64>,
    /// Messages each user's INBOX holds before the run (filled untimed).
    pub fill: usize,
    /// Workload d's watchers.
    pub watchers: usize,
    pub corpus: Arc<Vec<Vec<u8>>>,
    pub progress: bool,
}

/// What a run may still do: until a deadline, at most a number of cycles (or
/// messages), unless stopped. Shared by a run's clients.
pub(crate) struct Budget {
    deadline: Instant,
    max: Option<u64>,
    claimed: AtomicU64,
    stop: AtomicBool,
}

impl Budget {
    pub(crate) fn new(deadline: Instant, max: Option<u64>) -> Budget {
        Budget {
            deadline,
            max,
            claimed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Takes one unit: its number (0, 1, …), or `None` when time or count is up.
    pub(crate) fn claim(&self) -> Option<u64> {
        if self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            return None;
        }
        let n = self.claimed.fetch_add(1, Ordering::Relaxed);
        match self.max {
            Some(max) if n >= max => {
                self.claimed.fetch_sub(1, Ordering::Relaxed);
                None
            }
            _ => Some(n),
        }
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// State shared by the clients of one run.
struct Shared {
    cfg: RunConfig,
    live: Live,
    budget: Budget,
}

impl Shared {
    /// Takes one cycle from the budget; false when time or count is up.
    fn claim(&self) -> bool {
        self.budget.claim().is_some()
    }
}

/// Runs the workload: setup (untimed), then the measured phase.
pub async fn run(cfg: RunConfig) -> Result<Report> {
    if cfg.users.is_empty() || cfg.clients == 0 {
        return Err(BenchError::Usage(
            "need at least one user and one client".into(),
        ));
    }
    setup(&cfg).await?;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        budget: Budget::new(started + cfg.duration, cfg.max_cycles),
        cfg: cfg.clone(),
        live: Live::default(),
    });
    let progress = cfg
        .progress
        .then(|| tokio::spawn(progress_line(shared.clone(), started)));
    let mut stats = Stats::default();
    match cfg.workload {
        Workload::D => stats.merge(idle_fanout(shared.clone()).await?),
        _ => {
            let mut tasks = Vec::new();
            for id in 0..cfg.clients {
                tasks.push(tokio::spawn(client(shared.clone(), id)));
            }
            for t in tasks {
                match t.await {
                    Ok(s) => stats.merge(s),
                    Err(e) => return Err(BenchError::Protocol(format!("client task: {e}"))),
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    shared.budget.stop();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let meta = Meta {
        label: cfg.label.clone(),
        workload: cfg.workload.name().to_owned(),
        target: cfg.target.addr.to_string(),
        tls: cfg.target.tls.is_some(),
        clients: if cfg.workload == Workload::D {
            1
        } else {
            cfg.clients
        },
        users: cfg.users.len(),
        watchers: if cfg.workload == Workload::D {
            cfg.watchers
        } else {
            0
        },
        fill: cfg.fill,
        duration_limit_secs: cfg.duration.as_secs_f64(),
        cycle_limit: cfg.max_cycles,
        cycles: shared.live.cycles.load(Ordering::Relaxed),
    };
    Ok(stats.report(meta, secs))
}

/// Every second, rewrites the progress line on standard error with `line(total, per
/// second)` of what `count` reads (a counter that only grows). Runs until aborted.
pub(crate) async fn progress(count: impl Fn() -> u64, line: impl Fn(u64, u64) -> String) {
    let mut last = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = count();
        eprint!("\r{}   ", line(now, now.saturating_sub(last)));
        last = now;
    }
}

async fn progress_line(shared: Arc<Shared>, started: Instant) {
    let s = shared.clone();
    progress(
        move || s.live.commands.load(Ordering::Relaxed),
        move |now, per_sec| {
            format!(
                "[{} {}] {:>4.0}/{:.0} s  cycles {:>7}  commands {:>8} ({:>6}/s)  errors {}",
                shared.cfg.label,
                shared.cfg.workload.name(),
                started.elapsed().as_secs_f64(),
                shared.cfg.duration.as_secs_f64(),
                shared.live.cycles.load(Ordering::Relaxed),
                now,
                per_sec,
                shared.live.errors.load(Ordering::Relaxed),
            )
        },
    )
    .await;
}

/// Logs in as `user` and makes sure the bench mailboxes exist and INBOX holds at
/// least `fill` messages.
async fn setup(cfg: &RunConfig) -> Result<()> {
    let used = cfg.users.len().min(match cfg.workload {
        Workload::D => 1,
        _ => cfg.clients,
    });
    let mut tasks = Vec::new();
    for (i, user) in cfg.users.iter().take(used).enumerate() {
        let (target, user, corpus, fill) = (
            cfg.target.clone(),
            user.clone(),
            cfg.corpus.clone(),
            cfg.fill,
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(&target).await?;
            login(&mut conn, &user).await?;
            for mbox in [APPEND_MAILBOX, IDLE_MAILBOX] {
                // NO [ALREADYEXISTS] on a second run is fine.
                conn.command(&format!("CREATE {mbox}")).await?;
            }
            let have = status_messages(&mut conn, "INBOX").await?;
            for k in have..fill {
                let msg = &corpus[(i * 31 + k) % corpus.len()];
                conn.append("INBOX", None, msg)
                    .await?
                    .ok("APPEND (setup)")?;
            }
            let _ = conn.command("LOGOUT").await;
            Ok::<(), BenchError>(())
        }));
        // A few users at a time: setup should not be a login storm.
        if tasks.len() >= 8 {
            for t in tasks.drain(..) {
                t.await.map_err(|e| BenchError::Protocol(e.to_string()))??;
            }
        }
    }
    for t in tasks {
        t.await.map_err(|e| BenchError::Protocol(e.to_string()))??;
    }
    Ok(())
}

pub(crate) async fn login(conn: &mut Conn, user: &User) -> Result<Reply> {
    conn.command(&format!(
        "LOGIN {} {}",
        quote(&user.name),
        quote(&user.password)
    ))
    .await?
    .ok("LOGIN")
}

pub(crate) async fn status_messages(conn: &mut Conn, mailbox: &str) -> Result<usize> {
    let reply = conn
        .command(&format!("STATUS {mailbox} (MESSAGES)"))
        .await?
        .ok("STATUS")?;
    parse_status_messages(&reply)
        .map(|n| n as usize)
        .ok_or_else(|| BenchError::wrong("STATUS", "no MESSAGES in the answer"))
}

fn parse_status_messages(reply: &Reply) -> Option<u32> {
    reply.untagged.iter().find_map(|l| {
        if !l.starts_with_ci("* STATUS") {
            return None;
        }
        let upper = l.text.to_ascii_uppercase();
        let at = upper.find("MESSAGES ")? + "MESSAGES ".len();
        let digits: String = upper[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// `[APPENDUID <validity> <uid>]` → uid.
fn parse_appenduid(tagged: &str) -> Option<u32> {
    let upper = tagged.to_ascii_uppercase();
    let at = upper.find("[APPENDUID ")? + "[APPENDUID ".len();
    let mut parts = upper[at..].split([' ', ']']);
    let _validity = parts.next()?;
    parts.next()?.parse().ok()
}

/// One client's loop.
async fn client(shared: Arc<Shared>, id: usize) -> Stats {
    let cfg = &shared.cfg;
    let user = cfg.users[id % cfg.users.len()].clone();
    let mut c = Client {
        id,
        user,
        exclusive: cfg.clients <= cfg.users.len(),
        conn: None,
        count: None,
        last_uid: None,
        rng: StdRng::seed_from_u64(id as u64 + 1),
        stats: Stats::default(),
        shared: shared.clone(),
    };
    while shared.claim() {
        let res = match cfg.workload {
            Workload::A => c.cycle_mix(true).await,
            Workload::B => c.cycle_mix(false).await,
            _ => c.cycle_append().await,
        };
        match res {
            Ok(()) => shared.live.add_cycle(),
            Err(e) => {
                tracing::debug!(client = id, error = %e, "cycle failed");
                // Start the next cycle from a fresh session and a re-learned count.
                c.conn = None;
                c.count = None;
                if matches!(
                    e,
                    BenchError::Timeout(_) | BenchError::Closed | BenchError::Io(_)
                ) {
                    // Do not spin on a server that is down.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    if let Some(mut conn) = c.conn.take() {
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.command("LOGOUT")).await;
    }
    c.stats
}

struct Client {
    id: usize,
    user: User,
    exclusive: bool,
    conn: Option<Conn>,
    /// Messages in INBOX as this client knows it (exclusive mode).
    count: Option<u32>,
    last_uid: Option<u32>,
    rng: StdRng,
    stats: Stats,
    shared: Arc<Shared>,
}

impl Client {
    /// Records the outcome of one command: its round-trip time when the answer was
    /// right, an error otherwise.
    fn finish<T>(&mut self, name: &'static str, took: Duration, res: Result<T>) -> Result<T> {
        match &res {
            Ok(_) => {
                self.stats.ok(name, took);
                if name != CONNECT {
                    self.shared.live.add_command();
                }
            }
            Err(e) => {
                tracing::debug!(client = self.id, command = name, error = %e, "error");
                self.stats.error(name);
                self.shared.live.add_error();
            }
        }
        res
    }

    /// Sends one command; returns its round-trip time and the answer, OK or not.
    async fn send(&mut self, name: &'static str, cmd: &str) -> (Duration, Result<Reply>) {
        let t = Instant::now();
        let res = match self.conn.as_mut() {
            Some(conn) => conn.command(cmd).await,
            None => Err(BenchError::Closed),
        };
        (t.elapsed(), res.and_then(|r| r.ok(name)))
    }

    async fn connect_and_login(&mut self) -> Result<()> {
        let t = Instant::now();
        let res = Conn::connect(&self.shared.cfg.target).await;
        let conn = self.finish(CONNECT, t.elapsed(), res)?;
        self.conn = Some(conn);
        let t = Instant::now();
        let res = match self.conn.as_mut() {
            Some(conn) => login(conn, &self.user).await,
            None => Err(BenchError::Closed),
        };
        self.finish("LOGIN", t.elapsed(), res)?;
        Ok(())
    }

    async fn append(&mut self, mailbox: &str) -> Result<()> {
        let corpus = self.shared.cfg.corpus.clone();
        let msg = &corpus[self.rng.random_range(0..corpus.len())];
        let t = Instant::now();
        let res = match self.conn.as_mut() {
            Some(conn) => conn.append(mailbox, None, msg).await,
            None => Err(BenchError::Closed),
        };
        let took = t.elapsed();
        let exclusive = self.exclusive && mailbox == "INBOX";
        let last = self.last_uid;
        let res = res.and_then(|r| r.ok("APPEND")).and_then(|r| {
            let uid = parse_appenduid(&r.tagged);
            if let (true, Some(prev), Some(uid)) = (exclusive, last, uid) {
                if uid <= prev {
                    return Err(BenchError::wrong(
                        "APPEND",
                        format!("APPENDUID {uid} after {prev}: UIDs must ascend"),
                    ));
                }
            }
            Ok(uid)
        });
        let uid = self.finish("APPEND", took, res)?;
        if mailbox == "INBOX" {
            if uid.is_some() {
                self.last_uid = uid;
            }
            self.count = self.count.map(|c| c + 1);
        }
        Ok(())
    }

    /// Workload c: one APPEND to the bench mailbox on a kept session.
    async fn cycle_append(&mut self) -> Result<()> {
        if self.conn.is_none() {
            self.connect_and_login().await?;
        }
        self.append(APPEND_MAILBOX).await
    }

    /// Workloads a (`fresh` = a new session per cycle) and b.
    async fn cycle_mix(&mut self, fresh: bool) -> Result<()> {
        if fresh || self.conn.is_none() {
            self.conn = None;
            self.connect_and_login().await?;
        }

        let (took, res) = self.send("LIST", "LIST \"\" \"*\"").await;
        let res = res.and_then(|r| {
            let inbox = r.untagged.iter().any(|l| {
                l.starts_with_ci("* LIST")
                    && l.text
                        .rsplit(' ')
                        .next()
                        .is_some_and(|n| n.trim_matches('"').eq_ignore_ascii_case("INBOX"))
            });
            if inbox {
                Ok(())
            } else {
                Err(BenchError::wrong("LIST", "no INBOX in the listing"))
            }
        });
        self.finish("LIST", took, res)?;

        let expect = if self.exclusive { self.count } else { None };
        let (took, res) = self
            .send("STATUS", "STATUS INBOX (MESSAGES UIDNEXT UNSEEN)")
            .await;
        let res = res.and_then(|r| match parse_status_messages(&r) {
            None => Err(BenchError::wrong("STATUS", "no MESSAGES in the answer")),
            Some(n) if expect.is_some_and(|e| e != n) => Err(BenchError::wrong(
                "STATUS",
                format!("MESSAGES {n}, expected {expect:?}"),
            )),
            Some(n) => Ok(n),
        });
        self.finish("STATUS", took, res)?;

        let (took, res) = self.send("SELECT", "SELECT INBOX").await;
        let res = res.and_then(|r| {
            let exists = r
                .numbered("EXISTS")
                .last()
                .ok_or_else(|| BenchError::wrong("SELECT", "no EXISTS"))?;
            if !r
                .untagged
                .iter()
                .any(|l| l.text.to_ascii_uppercase().contains("UIDVALIDITY"))
            {
                return Err(BenchError::wrong("SELECT", "no UIDVALIDITY"));
            }
            if let Some(e) = expect {
                if e != exists {
                    return Err(BenchError::wrong(
                        "SELECT",
                        format!("{exists} EXISTS, expected {e}"),
                    ));
                }
            }
            Ok(exists)
        });
        let n = self.finish("SELECT", took, res)?;
        self.count = Some(n);

        if n > 0 {
            let k = n.min(100);
            let (took, res) = self
                .send("FETCH", &format!("FETCH 1:{k} (FLAGS ENVELOPE)"))
                .await;
            let exclusive = self.exclusive;
            let res = res.and_then(|r| {
                let mut seen = vec![false; k as usize];
                for l in &r.untagged {
                    if let Some(seq) = l.numbered("FETCH") {
                        let upper = l.text.to_ascii_uppercase();
                        if !(upper.contains("FLAGS (") && upper.contains("ENVELOPE (")) {
                            return Err(BenchError::wrong(
                                "FETCH",
                                format!("{seq}: no FLAGS or ENVELOPE"),
                            ));
                        }
                        if seq >= 1 && seq <= k {
                            seen[seq as usize - 1] = true;
                        }
                    }
                }
                let got = seen.iter().filter(|s| **s).count();
                if got == 0 || (exclusive && got != k as usize) {
                    return Err(BenchError::wrong("FETCH", format!("{got} of {k} messages")));
                }
                Ok(())
            });
            self.finish("FETCH", took, res)?;

            // The body, and the flags so that the STORE below always changes them
            // (a server need not answer a STORE that changes nothing with a FETCH).
            let r = self.rng.random_range(1..=n);
            let (took, res) = self
                .send("FETCH BODY", &format!("FETCH {r} (FLAGS BODY.PEEK[])"))
                .await;
            let res = res.and_then(|reply| {
                let line = reply
                    .untagged
                    .iter()
                    .find(|l| l.numbered("FETCH") == Some(r) && !l.literals.is_empty())
                    .ok_or_else(|| BenchError::wrong("FETCH BODY", "no body literal"))?;
                let body = &line.literals[0];
                if body.is_empty() || !body.contains(&b':') {
                    return Err(BenchError::wrong("FETCH BODY", "the body has no header"));
                }
                let upper = line.text.to_ascii_uppercase();
                if !upper.contains("FLAGS (") {
                    return Err(BenchError::wrong("FETCH BODY", "no FLAGS"));
                }
                Ok(upper.contains("\\SEEN"))
            });
            let seen = self.finish("FETCH BODY", took, res)?;

            let add = !seen;
            let (took, res) = self
                .send(
                    "STORE",
                    &format!("STORE {r} {}FLAGS (\\Seen)", if add { '+' } else { '-' }),
                )
                .await;
            let res = res.and_then(|reply| {
                if !exclusive {
                    return Ok(());
                }
                let line = reply
                    .untagged
                    .iter()
                    .find(|l| l.numbered("FETCH") == Some(r))
                    .ok_or_else(|| BenchError::wrong("STORE", "no FETCH with the new flags"))?;
                let has = line.text.to_ascii_uppercase().contains("\\SEEN");
                if has == add {
                    Ok(())
                } else {
                    Err(BenchError::wrong(
                        "STORE",
                        format!("flags after STORE: {}", line.text),
                    ))
                }
            });
            self.finish("STORE", took, res)?;

            let (took, res) = self
                .send(
                    "STORE DELETED",
                    &format!("STORE {n} +FLAGS.SILENT (\\Deleted)"),
                )
                .await;
            self.finish("STORE DELETED", took, res)?;

            let (took, res) = self.send("EXPUNGE", "EXPUNGE").await;
            let res = res.and_then(|reply| {
                let gone: Vec<u32> = reply.numbered("EXPUNGE").collect();
                if exclusive && gone != [n] {
                    return Err(BenchError::wrong(
                        "EXPUNGE",
                        format!("expunged {gone:?}, expected [{n}]"),
                    ));
                }
                Ok(gone.len() as u32)
            });
            let gone = self.finish("EXPUNGE", took, res)?;
            self.count = self.count.map(|c| c.saturating_sub(gone));
        }

        self.append("INBOX").await?;

        if fresh {
            let (took, res) = self.send("LOGOUT", "LOGOUT").await;
            let res = res.and_then(|r| {
                if r.untagged.iter().any(|l| l.starts_with_ci("* BYE")) {
                    Ok(())
                } else {
                    Err(BenchError::wrong("LOGOUT", "no BYE"))
                }
            });
            self.conn = None;
            self.finish("LOGOUT", took, res)?;
        }
        Ok(())
    }
}

/// A watcher's report: which watcher, the EXISTS count it saw, when.
type Seen = (usize, u32, Instant);

/// Workload d: K watchers IDLE on one mailbox of the first user; one appender.
async fn idle_fanout(shared: Arc<Shared>) -> Result<Stats> {
    let cfg = &shared.cfg;
    let user = cfg.users[0].clone();
    let k = cfg.watchers.max(1);
    let (tx, mut rx) = mpsc::unbounded_channel::<Seen>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut watchers = Vec::new();
    for w in 0..k {
        let mut conn = Conn::connect(&cfg.target).await?;
        login(&mut conn, &user).await?;
        conn.command(&format!("SELECT {IDLE_MAILBOX}"))
            .await?
            .ok("SELECT")?;
        let tag = conn.idle_start().await?;
        let (tx, mut stop) = (tx.clone(), stop_rx.clone());
        watchers.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    line = conn.read_untimed() => match line {
                        Ok(line) => if let Some(n) = line.numbered("EXISTS") {
                            let _ = tx.send((w, n, Instant::now()));
                        },
                        Err(_) => return,
                    },
                    _ = stop.changed() => break,
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                let _ = conn.idle_done(&tag).await;
                let _ = conn.command("LOGOUT").await;
            })
            .await;
        }));
    }
    drop(tx);

    let mut appender = Client {
        id: 0,
        user: user.clone(),
        exclusive: false,
        conn: None,
        count: None,
        last_uid: None,
        rng: StdRng::seed_from_u64(7),
        stats: Stats::default(),
        shared: shared.clone(),
    };
    appender.connect_and_login().await?;
    let mut expected = match appender.conn.as_mut() {
        Some(conn) => status_messages(conn, IDLE_MAILBOX).await? as u32,
        None => return Err(BenchError::Closed),
    };
    // Latest EXISTS each watcher has reported.
    let mut latest = vec![0u32; k];
    let wait = shared.cfg.target.timeout;
    while shared.claim() {
        // Anything reported before this APPEND is stale.
        while let Ok((w, n, _)) = rx.try_recv() {
            latest[w] = latest[w].max(n);
        }
        if appender.append(IDLE_MAILBOX).await.is_err() {
            let _ = appender.conn.take();
            appender.connect_and_login().await?;
            expected = match appender.conn.as_mut() {
                Some(conn) => status_messages(conn, IDLE_MAILBOX).await? as u32,
                None => return Err(BenchError::Closed),
            };
            continue;
        }
        // append() returns as soon as it has read the tagged OK.
        let ok_at = Instant::now();
        expected += 1;
        let give_up = Instant::now() + wait;
        let mut pending: usize = latest.iter().filter(|n| **n < expected).count();
        while pending > 0 {
            match tokio::time::timeout_at(give_up.into(), rx.recv()).await {
                Ok(Some((w, n, at))) => {
                    if latest[w] < expected && n >= expected {
                        pending -= 1;
                        appender
                            .stats
                            .ok(IDLE_NOTIFY, at.saturating_duration_since(ok_at));
                    }
                    latest[w] = latest[w].max(n);
                }
                Ok(None) | Err(_) => {
                    for _ in 0..pending {
                        appender.stats.error(IDLE_NOTIFY);
                        appender.shared.live.add_error();
                    }
                    // Resynchronise: the late ones count as having seen it.
                    for l in latest.iter_mut() {
                        *l = (*l).max(expected);
                    }
                    break;
                }
            }
        }
        shared.live.add_cycle();
    }
    let _ = stop_tx.send(true);
    for w in watchers {
        let _ = w.await;
    }
    if let Some(mut conn) = appender.conn.take() {
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.command("LOGOUT")).await;
    }
    Ok(appender.stats)
}
