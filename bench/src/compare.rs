//! The side-by-side table: reports of several servers, each figure with its ratio to
//! a baseline server's (Dovecot's) figure for the same workload.

use std::fmt::Write as _;

use crate::stats::{IDLE_NOTIFY, Report, Row};

/// The row a workload is judged by: all IMAP commands, or for IDLE fan-out the
/// notification latency.
fn key_row(r: &Report) -> &Row {
    if r.meta.workload == "d" {
        r.row(IDLE_NOTIFY).unwrap_or(&r.all)
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

/// A Markdown table of every report, grouped by workload, with ratios to the report
/// labelled `base` for the same workload.
pub fn table(reports: &[Report], base: &str) -> String {
    let mut out = String::new();
    let mut workloads: Vec<&str> = reports
        .iter()
        .filter(|r| r.idle_memory.is_none())
        .map(|r| r.meta.workload.as_str())
        .collect();
    workloads.sort_unstable();
    workloads.dedup();
    if !workloads.is_empty() {
        let _ = writeln!(
            out,
            "| workload | server | clients | commands/s | ×{base} | p50 ms | p99 ms | p99.9 ms | p99 ×{base} | errors |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    for w in workloads {
        let of_w: Vec<&Report> = reports
            .iter()
            .filter(|r| r.idle_memory.is_none() && r.meta.workload == w)
            .collect();
        let baseline = of_w.iter().find(|r| r.meta.label == base);
        // The baseline first, then the others in the order given.
        let ordered = baseline
            .into_iter()
            .chain(of_w.iter().filter(|r| r.meta.label != base));
        for r in ordered {
            let row = key_row(r);
            let (tput_ratio, p99_ratio) = match baseline {
                Some(b) => (
                    ratio(r.commands_per_sec, b.commands_per_sec),
                    ratio(row.p99_us as f64, key_row(b).p99_us as f64),
                ),
                None => ("–".into(), "–".into()),
            };
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
