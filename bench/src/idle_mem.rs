//! Idle memory: opens many sessions, each logged in with INBOX selected and in IDLE,
//! and measures how much the server's processes grew, as proportional set size (PSS,
//! from `/proc/PID/smaps_rollup`) summed over the given processes and all their
//! descendants — for a one-process server (pluto) that is one process, for Dovecot
//! the master with every imap, imap-login, auth, … process under it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::conn::{Conn, Target};
use crate::error::{BenchError, Result};
use crate::stats::IdleMemory;
use crate::workload::User;

/// What to open and whom to measure.
pub struct IdleConfig {
    pub target: Target,
    pub users: Vec<User>,
    pub sessions: usize,
    /// Sessions being opened at once.
    pub concurrency: usize,
    /// Roots of the server's process tree.
    pub pids: Vec<u32>,
    /// Time to let the server settle before each measurement.
    pub settle: Duration,
    /// How long to keep the sessions open after measuring.
    pub hold: Duration,
    /// Sessions opened and closed before the baseline: the server's transient login
    /// memory (a password hash per login, e.g. argon2id's 19 MiB, kept by the
    /// allocator afterwards) is then in the baseline, not charged to idle sessions.
    pub warmup: usize,
}

/// Opens the sessions, measures, holds, closes. Returns the measurement.
pub async fn measure(cfg: IdleConfig) -> Result<IdleMemory> {
    if cfg.users.is_empty() {
        return Err(BenchError::Usage("need at least one user".into()));
    }
    let gate = Arc::new(Semaphore::new(cfg.concurrency.max(1)));
    let mut warm = Vec::new();
    for i in 0..cfg.warmup {
        let (target, user, gate) = (
            cfg.target.clone(),
            cfg.users[i % cfg.users.len()].clone(),
            gate.clone(),
        );
        warm.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let (mut conn, tag) = open_idle(&target, &user).await?;
            conn.idle_done(&tag).await?;
            conn.command("LOGOUT").await
        }));
    }
    for t in warm {
        if let Ok(Err(e)) = t.await {
            tracing::warn!(error = %e, "warm-up session failed");
        }
    }
    tokio::time::sleep(cfg.settle).await;
    let (processes_before, pss_before_kib) = tree_pss(&cfg.pids)?;
    let mut tasks = Vec::with_capacity(cfg.sessions);
    for i in 0..cfg.sessions {
        let (target, user, gate) = (
            cfg.target.clone(),
            cfg.users[i % cfg.users.len()].clone(),
            gate.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            open_idle(&target, &user).await
        }));
    }
    let mut open = Vec::with_capacity(cfg.sessions);
    let mut failed = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(Ok(conn)) => open.push(conn),
            Ok(Err(e)) => {
                failed += 1;
                if failed <= 5 {
                    tracing::warn!(session = i, error = %e, "session failed");
                }
            }
            Err(e) => return Err(BenchError::Protocol(format!("session task: {e}"))),
        }
        if (i + 1) % 1000 == 0 {
            eprintln!("idle-memory: {} sessions opened, {failed} failed", i + 1);
        }
    }
    tokio::time::sleep(cfg.settle).await;
    let (processes_after, pss_after_kib) = tree_pss(&cfg.pids)?;
    let n = open.len();
    let per = if n == 0 {
        0.0
    } else {
        (pss_after_kib as f64 - pss_before_kib as f64) / n as f64
    };
    tokio::time::sleep(cfg.hold).await;
    drop(open);
    Ok(IdleMemory {
        sessions: n,
        sessions_failed: failed,
        tls: cfg.target.tls.is_some(),
        processes_before,
        processes_after,
        pss_before_kib,
        pss_after_kib,
        pss_per_session_kib: per,
    })
}

async fn open_idle(target: &Target, user: &User) -> Result<(Conn, String)> {
    let mut conn = Conn::connect(target).await?;
    conn.command(&format!(
        "LOGIN {} {}",
        crate::conn::quote(&user.name),
        crate::conn::quote(&user.password)
    ))
    .await?
    .ok("LOGIN")?;
    conn.command("SELECT INBOX").await?.ok("SELECT")?;
    let tag = conn.idle_start().await?;
    Ok((conn, tag))
}

/// (process count, summed PSS in KiB) of `roots` and all their descendants.
pub fn tree_pss(roots: &[u32]) -> Result<(usize, u64)> {
    let pids = descendants(roots)?;
    let mut total = 0;
    for pid in &pids {
        // A process may exit between the listing and the read (a login process
        // finishing): it then holds nothing.
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            total += pss_kib(&text).unwrap_or(0);
        }
    }
    Ok((pids.len(), total))
}

/// The `Pss:` line of smaps_rollup, in KiB.
pub fn pss_kib(smaps_rollup: &str) -> Option<u64> {
    smaps_rollup.lines().find_map(|l| {
        let rest = l.strip_prefix("Pss:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `roots` and every process whose parent chain leads to one of them.
fn descendants(roots: &[u32]) -> Result<BTreeSet<u32>> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            if let Some(ppid) = ppid_of(&stat) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut set: BTreeSet<u32> = roots.iter().copied().collect();
    loop {
        let before = set.len();
        for (pid, ppid) in &parent_of {
            if set.contains(ppid) {
                set.insert(*pid);
            }
        }
        if set.len() == before {
            return Ok(set);
        }
    }
}

/// `/proc/PID/stat` is `pid (comm) state ppid …`; comm may hold spaces and parens.
fn ppid_of(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(ppid_of("123 (imap (x)) S 45 1 2"), Some(45));
        assert_eq!(
            pss_kib("Rss:  100 kB\nPss:   42 kB\nPss_Anon: 3 kB\n"),
            Some(42)
        );
    }

    #[test]
    fn measures_this_process() {
        let (n, kib) = tree_pss(&[std::process::id()]).unwrap_or((0, 0));
        assert!(n >= 1);
        assert!(kib > 0, "a running process has a PSS");
    }
}
