//! What the bench measures: per command a latency histogram (hdrhistogram, µs) and
//! counts of successes and errors; merged across clients into a [`Report`], which is
//! printed as a table and written as JSON.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The name under which all IMAP commands are merged (connection setup excluded).
pub const ALL: &str = "ALL";
/// Pseudo-commands: not IMAP commands, so left out of [`ALL`] and of commands/s.
pub const CONNECT: &str = "CONNECT";
pub const IDLE_NOTIFY: &str = "IDLE-NOTIFY";
/// LMTP: one whole transaction (MAIL … the last recipient's reply after DATA).
pub const TRANSACTION: &str = "TRANSACTION";

/// Rows that are not one command (round trip) each, so not part of [`ALL`].
fn is_pseudo(name: &str) -> bool {
    [CONNECT, IDLE_NOTIFY, TRANSACTION].contains(&name)
}

/// One client's measurements.
#[derive(Default)]
pub struct Stats {
    per: BTreeMap<&'static str, Entry>,
}

struct Entry {
    hist: Histogram<u64>,
    errors: u64,
}

impl Entry {
    #[expect(
        clippy::expect_used,
        reason = "constant bounds that hdrhistogram accepts"
    )]
    fn new() -> Entry {
        Entry {
            // 1 µs .. 1 h at 3 significant digits; values above are clamped. The
            // bounds are constants that hdrhistogram accepts, so this cannot fail.
            hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("constant bounds are valid"),
            errors: 0,
        }
    }
}

const MAX_US: u64 = 3_600_000_000;

impl Stats {
    pub fn ok(&mut self, name: &'static str, took: Duration) {
        let us = u64::try_from(took.as_micros())
            .unwrap_or(MAX_US)
            .clamp(1, MAX_US);
        let e = self.per.entry(name).or_insert_with(Entry::new);
        let _ = e.hist.record(us);
    }

    pub fn error(&mut self, name: &'static str) {
        self.per.entry(name).or_insert_with(Entry::new).errors += 1;
    }

    pub fn merge(&mut self, other: Stats) {
        for (name, e) in other.per {
            let mine = self.per.entry(name).or_insert_with(Entry::new);
            let _ = mine.hist.add(&e.hist);
            mine.errors += e.errors;
        }
    }

    /// The report over `secs` seconds of measuring.
    pub fn report(&self, meta: Meta, secs: f64) -> Report {
        let mut all = Entry::new();
        let mut commands = Vec::new();
        for (name, e) in &self.per {
            if !is_pseudo(name) {
                let _ = all.hist.add(&e.hist);
                all.errors += e.errors;
            }
            commands.push(row(name, e, secs));
        }
        let total = row(ALL, &all, secs);
        Report {
            meta,
            seconds: secs,
            commands_total: total.count,
            commands_per_sec: total.per_sec,
            errors_total: self.per.values().map(|e| e.errors).sum(),
            all: total,
            commands,
            idle_memory: None,
            lmtp: None,
        }
    }
}

fn row(name: &str, e: &Entry, secs: f64) -> Row {
    let h = &e.hist;
    let count = h.len();
    let q = |p: f64| {
        if count == 0 {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    Row {
        name: name.to_owned(),
        count,
        errors: e.errors,
        per_sec: if secs > 0.0 { count as f64 / secs } else { 0.0 },
        mean_us: if count == 0 { 0.0 } else { h.mean() },
        p50_us: q(0.5),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: if count == 0 { 0 } else { h.max() },
    }
}

/// Shared live counters for the progress line.
#[derive(Default)]
pub struct Live {
    pub commands: AtomicU64,
    pub errors: AtomicU64,
    pub cycles: AtomicU64,
}

impl Live {
    pub fn add_command(&self) {
        self.commands.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add_cycle(&self) {
        self.cycles.fetch_add(1, Ordering::Relaxed);
    }
}

/// What was run, against what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub label: String,
    pub workload: String,
    pub target: String,
    pub tls: bool,
    pub clients: usize,
    pub users: usize,
    pub watchers: usize,
    pub fill: usize,
    pub duration_limit_secs: f64,
    pub cycle_limit: Option<u64>,
    pub cycles: u64,
}

/// One command's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    /// Successful, checked answers.
    pub count: u64,
    /// Failures: wrong answers, NO/BAD, timeouts, broken connections.
    pub errors: u64,
    pub per_sec: f64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Memory held by idle sessions (the `idle-memory` subcommand).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdleMemory {
    pub sessions: usize,
    pub sessions_failed: usize,
    pub tls: bool,
    pub processes_before: usize,
    pub processes_after: usize,
    pub pss_before_kib: u64,
    pub pss_after_kib: u64,
    pub pss_per_session_kib: f64,
}

/// What an LMTP run delivered (the `lmtp` subcommand).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmtpFigures {
    /// Recipients of each message.
    pub recipients: usize,
    /// Messages whose every recipient got 250 after DATA.
    pub messages: u64,
    /// Recipient copies answered 250 after DATA.
    pub deliveries: u64,
    pub messages_per_sec: f64,
    pub deliveries_per_sec: f64,
    /// Recipients refused at RCPT or after DATA, and broken transactions.
    pub refused: u64,
    /// The copies found afterwards, when the run checked over IMAP.
    pub verified: Option<Verified>,
}

/// The check after an LMTP run: every user's INBOX counted over IMAP before and after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verified {
    /// Copies the server said it delivered (250 after DATA).
    pub expected: u64,
    /// New messages found in the INBOXes.
    pub found: u64,
    /// Users whose INBOX grew by another number than their 250s.
    pub users_wrong: Vec<String>,
}

impl Verified {
    pub fn ok(&self) -> bool {
        self.expected == self.found && self.users_wrong.is_empty()
    }
}

/// The whole result of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub meta: Meta,
    pub seconds: f64,
    pub commands_total: u64,
    pub commands_per_sec: f64,
    pub errors_total: u64,
    pub all: Row,
    pub commands: Vec<Row>,
    pub idle_memory: Option<IdleMemory>,
    /// LMTP runs only (older reports have none).
    #[serde(default)]
    pub lmtp: Option<LmtpFigures>,
}

impl Report {
    pub fn row(&self, name: &str) -> Option<&Row> {
        if name == ALL {
            return Some(&self.all);
        }
        self.commands.iter().find(|r| r.name == name)
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let m = &self.meta;
        let _ = writeln!(
            s,
            "{} — workload {} against {}{} — {} clients, {} users, {:.1} s, {} cycles",
            m.label,
            m.workload,
            m.target,
            if m.tls { " (TLS)" } else { "" },
            m.clients,
            m.users,
            self.seconds,
            m.cycles
        );
        let _ = writeln!(
            s,
            "{:<14} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "command", "count", "errors", "per s", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        for r in self.commands.iter().chain(std::iter::once(&self.all)) {
            let _ = writeln!(
                s,
                "{:<14} {:>9} {:>7} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                r.name,
                r.count,
                r.errors,
                r.per_sec,
                r.p50_us as f64 / 1000.0,
                r.p99_us as f64 / 1000.0,
                r.p999_us as f64 / 1000.0,
                r.max_us as f64 / 1000.0
            );
        }
        if let Some(i) = &self.idle_memory {
            let _ = writeln!(
                s,
                "idle memory: {} sessions ({} failed){}: PSS {} KiB → {} KiB over {} → {} processes: {:.1} KiB per session",
                i.sessions,
                i.sessions_failed,
                if i.tls { " TLS" } else { "" },
                i.pss_before_kib,
                i.pss_after_kib,
                i.processes_before,
                i.processes_after,
                i.pss_per_session_kib
            );
        }
        if let Some(l) = &self.lmtp {
            let _ = writeln!(
                s,
                "LMTP: {} recipient(s) per message: {} messages ({:.1}/s), {} deliveries ({:.1}/s), {} refused; {}",
                l.recipients,
                l.messages,
                l.messages_per_sec,
                l.deliveries,
                l.deliveries_per_sec,
                l.refused,
                match &l.verified {
                    None => "not verified".to_owned(),
                    Some(v) if v.ok() =>
                        format!("verified over IMAP: {} of {} found", v.found, v.expected),
                    Some(v) => format!(
                        "VERIFICATION FAILED: {} found for {} delivered; wrong users: {}",
                        v.found,
                        v.expected,
                        v.users_wrong.join(" ")
                    ),
                }
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            label: "t".into(),
            workload: "a".into(),
            target: "x".into(),
            tls: false,
            clients: 1,
            users: 1,
            watchers: 0,
            fill: 0,
            duration_limit_secs: 1.0,
            cycle_limit: None,
            cycles: 0,
        }
    }

    #[test]
    fn merged_percentiles_and_all_row() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for ms in 1..=100 {
            a.ok("FETCH", Duration::from_millis(ms));
        }
        b.ok("LOGIN", Duration::from_millis(500));
        b.error("LOGIN");
        b.ok(CONNECT, Duration::from_millis(1));
        a.merge(b);
        let r = a.report(meta(), 2.0);
        assert_eq!(r.commands_total, 101, "CONNECT is not an IMAP command");
        assert_eq!(r.errors_total, 1);
        let f = r.row("FETCH").map(|r| r.p50_us).unwrap_or(0);
        assert!((49_000..=51_000).contains(&f), "p50 {f}");
        assert!((r.commands_per_sec - 50.5).abs() < 1e-9);
        assert!(r.all.max_us >= 499_000);
    }
}
