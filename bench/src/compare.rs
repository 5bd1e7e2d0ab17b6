//! The side-by-side table: reports of several servers, each figure with its ratio to
//! a baseline server's (Dovecot's) figure for the same workload.

use std::fmt::Write as _;

use crate::lmtp::DATA;
use crate::stats::{IDLE_NOTIFY, Report, Row, TRANSACTION};

/// The row a workload is judged by: all IMAP commands, for IDLE fan-out the
/// notification latency, for LMTP the DATA phase (message sent → last reply).
fn key_row(r: &Report) -> &Row {
    if r.meta.workload == "d" {
        r.row(IDLE_NOTIFY).unwrap_or(&r.all)
    } else if r.lmtp.is_some() {
        r.row(DATA).unwrap_or(&r.all)
    } else {
        &r.all
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".to_owned()
    }
}

/// The reports of each workload in turn (sorted by name), the `base` report first,
/// then the others in the order given.
fn by_workload<'a>(
    reports: &[&'a Report],
    base: &str,
) -> Vec<(Option<&'a Report>, Vec<&'a Report>)> {
    let mut workloads: Vec<&str> = reports.iter().map(|r| r.meta.workload.as_str()).collect();
    workloads.sort_unstable();
    workloads.dedup();
    workloads
        .into_iter()
        .map(|w| {
            let of_w: Vec<&Report> = reports
                .iter()
                .copied()
                .filter(|r| r.meta.workload == w)
                .collect();
            let baseline = of_w.iter().copied().find(|r| r.meta.label == base);
            let ordered = baseline
                .into_iter()
                .chain(of_w.iter().copied().filter(|r| r.meta.label != base))
                .collect();
            (baseline, ordered)
        })
        .collect()
}

/// A Markdown table of every report, grouped by workload, with ratios to the report
/// labelled `base` for the same workload: IMAP workloads, LMTP runs, idle memory.
pub fn table(reports: &[Report], base: &str) -> String {
    let mut out = String::new();
    let imap: Vec<&Report> = reports
        .iter()
        .filter(|r| r.idle_memory.is_none() && r.lmtp.is_none())
        .collect();
    let groups = by_workload(&imap, base);
    if !groups.is_empty() {
        let _ = writeln!(
            out,
            "| workload | server | clients | commands/s | ×{base} | p50 ms | p99 ms | p99.9 ms | p99 ×{base} | errors |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    for (baseline, ordered) in groups {
        for r in ordered {
            let row = key_row(r);
            let (tput_ratio, p99_ratio) = match baseline {
                Some(b) => (
                    ratio(r.commands_per_sec, b.commands_per_sec),
                    ratio(row.p99_us as f64, key_row(b).p99_us as f64),
                ),
                None => ("–".into(), "–".into()),
            };
            let w = r.meta.workload.as_str();
            let name = if w == "d" {
                format!("d (IDLE-NOTIFY, {} watchers)", r.meta.watchers)
            } else {
                w.to_owned()
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {:.0} | {tput_ratio} | {:.2} | {:.2} | {:.2} | {p99_ratio} | {} |",
                r.meta.label,
                r.meta.clients,
                r.commands_per_sec,
                ms(row.p50_us),
                ms(row.p99_us),
                ms(row.p999_us),
                r.errors_total
            );
        }
    }
    lmtp_table(&mut out, reports, base);
    let idle: Vec<&Report> = reports.iter().filter(|r| r.idle_memory.is_some()).collect();
    if !idle.is_empty() {
        let base_kib = idle
            .iter()
            .find(|r| r.meta.label == base)
            .and_then(|r| r.idle_memory.as_ref())
            .map(|i| i.pss_per_session_kib);
        let _ = writeln!(
            out,
            "\n| idle sessions | server | TLS | open | failed | PSS before MiB | PSS after MiB | processes | KiB per session | ×{base} |"
        );
        let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
        let ordered = idle
            .iter()
            .filter(|r| r.meta.label == base)
            .chain(idle.iter().filter(|r| r.meta.label != base));
        for r in ordered {
            if let Some(i) = &r.idle_memory {
                let _ = writeln!(
                    out,
                    "| IDLE | {} | {} | {} | {} | {:.1} | {:.1} | {} | {:.1} | {} |",
                    r.meta.label,
                    if i.tls { "yes" } else { "no" },
                    i.sessions,
                    i.sessions_failed,
                    i.pss_before_kib as f64 / 1024.0,
                    i.pss_after_kib as f64 / 1024.0,
                    i.processes_after,
                    i.pss_per_session_kib,
                    base_kib.map_or("–".into(), |b| ratio(i.pss_per_session_kib, b)),
                );
            }
        }
    }
    out
}

/// The LMTP runs: deliveries/s (recipient copies), messages/s, the DATA phase's
/// percentiles and the whole transaction's p99, and whether every copy was found.
fn lmtp_table(out: &mut String, reports: &[Report], base: &str) {
    let lmtp: Vec<&Report> = reports.iter().filter(|r| r.lmtp.is_some()).collect();
    if lmtp.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "| LMTP | server | connections | rcpt/msg | deliveries/s | ×{base} | messages/s | DATA p50 ms | p99 ms | p99.9 ms | p99 ×{base} | transaction p99 ms | errors | copies found |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for (baseline, ordered) in by_workload(&lmtp, base) {
        let base_figures = baseline.and_then(|b| b.lmtp.as_ref().map(|l| (b, l)));
        for r in ordered {
            let Some(l) = &r.lmtp else { continue };
            let row = key_row(r);
            let (tput_ratio, p99_ratio) = match base_figures {
                Some((b, bl)) => (
                    ratio(l.deliveries_per_sec, bl.deliveries_per_sec),
                    ratio(row.p99_us as f64, key_row(b).p99_us as f64),
                ),
                None => ("–".into(), "–".into()),
            };
            let found = match &l.verified {
                None => "not checked".to_owned(),
                Some(v) if v.ok() => format!("{} of {}", v.found, v.expected),
                Some(v) => format!("**{} of {}: WRONG**", v.found, v.expected),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {tput_ratio} | {:.0} | {:.2} | {:.2} | {:.2} | {p99_ratio} | {:.2} | {} | {found} |",
                r.meta.workload,
                r.meta.label,
                r.meta.clients,
                l.recipients,
                l.deliveries_per_sec,
                l.messages_per_sec,
                ms(row.p50_us),
                ms(row.p99_us),
                ms(row.p999_us),
                r.row(TRANSACTION).map_or(0.0, |t| ms(t.p99_us)),
                r.errors_total,
            );
        }
    }
}
