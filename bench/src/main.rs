//! The `pluto-bench` command line: `run` a workload, measure `idle-memory`, or
//! `compare` saved reports side by side. Results go to standard output as a table
//! and, with `--json FILE`, as JSON; the progress line goes to standard error.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use pluto_bench::conn::{Target, TlsTarget};
use pluto_bench::error::{BenchError, Result};
use pluto_bench::stats::{Meta, Report, Stats};
use pluto_bench::workload::{RunConfig, User, Workload};
use pluto_bench::{compare, corpus, idle_mem, workload};

#[derive(Parser)]
#[command(name = "pluto-bench", version, about = "IMAP load generator")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one workload and report per-command throughput and latency.
    Run(RunArgs),
    /// Open many sessions in IDLE and report the server's PSS per session.
    IdleMemory(IdleArgs),
    /// Print saved JSON reports side by side, with ratios to a baseline label.
    Compare {
        /// The label whose figures are the denominators (e.g. "dovecot").
        #[arg(long, default_value = "dovecot")]
        base: String,
        /// JSON reports written by `run --json` or `idle-memory --json`.
        reports: Vec<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct ServerArgs {
    /// The server's IMAP address (implicit TLS with --tls).
    #[arg(long, default_value = "127.0.0.1:1143")]
    addr: SocketAddr,
    /// Speak implicit TLS (IMAPS).
    #[arg(long)]
    tls: bool,
    /// Trust this CA or certificate file (PEM) for TLS.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Accept any TLS certificate (loopback tests against self-signed servers).
    #[arg(long)]
    insecure: bool,
    /// The name checked against the certificate.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Users are PREFIX1 … PREFIXM.
    #[arg(long, default_value = "bench")]
    user_prefix: String,
    /// M: how many users.
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Every user's password.
    #[arg(long, env = "PLUTO_BENCH_PASSWORD")]
    password: String,
    /// Longest wait for one answer, in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Label for the report (e.g. "pluto", "dovecot").
    #[arg(long, default_value = "server")]
    label: String,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Runtime worker threads of the bench itself.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// a: mix with LOGIN per cycle; b: mix on kept sessions; c: APPEND only; d: IDLE fan-out.
    #[arg(long, value_enum)]
    workload: Workload,
    /// N: concurrent clients (for d: one appender).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Stop after this many cycles over all clients (d: APPENDs).
    #[arg(long)]
    max_cycles: Option<u64>,
    /// Messages in each user's INBOX before the run (appended untimed when fewer).
    #[arg(long, default_value_t = 200)]
    fill: usize,
    /// Workload d: sessions idling on the mailbox.
    #[arg(long, default_value_t = 50)]
    watchers: usize,
    /// An mbox to take messages from, instead of running the generator.
    #[arg(long)]
    corpus_mbox: Option<PathBuf>,
    /// The corpus generator (default: testdata/corpus/gen_mbox.py in the repository).
    #[arg(long)]
    corpus_generator: Option<PathBuf>,
    /// How many corpus messages to use.
    #[arg(long, default_value_t = 400)]
    corpus_count: usize,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Sessions to open.
    #[arg(long, default_value_t = 5000)]
    sessions: usize,
    /// Sessions being opened at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The server's process (repeat for several); its descendants are counted too.
    #[arg(long = "pid", required = true)]
    pids: Vec<u32>,
    /// Seconds to let the server settle before each measurement.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds to keep the sessions open after measuring.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
    /// Sessions opened and closed before the baseline is measured (so transient
    /// login memory is in the baseline); default: twice --concurrency.
    #[arg(long)]
    warmup: Option<usize>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pluto-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Compare { base, reports } => {
            let mut all = Vec::new();
            for p in reports {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| BenchError::Usage(format!("{}: {e}", p.display())))?;
                all.push(serde_json::from_str::<Report>(&text)?);
            }
            out(&compare::table(&all, &base))
        }
        Cmd::Run(args) => {
            let rt = runtime(args.server.threads)?;
            let report = rt.block_on(run(&args))?;
            finish(&args.server, &report)
        }
        Cmd::IdleMemory(args) => {
            let rt = runtime(args.server.threads)?;
            let report = rt.block_on(idle(&args))?;
            finish(&args.server, &report)
        }
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    Ok(if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    })
}

fn target(s: &ServerArgs) -> Result<Target> {
    let tls = if s.tls {
        if s.ca.is_none() && !s.insecure {
            return Err(BenchError::Usage(
                "--tls needs --ca FILE or --insecure".into(),
            ));
        }
        Some(TlsTarget::new(s.ca.as_deref(), &s.server_name)?)
    } else {
        None
    };
    if !s.timeout.is_finite() || s.timeout <= 0.0 {
        return Err(BenchError::Usage("--timeout must be positive".into()));
    }
    Ok(Target {
        addr: s.addr,
        tls,
        timeout: Duration::from_secs_f64(s.timeout),
    })
}

fn users(s: &ServerArgs) -> Vec<User> {
    (1..=s.users)
        .map(|i| User {
            name: format!("{}{i}", s.user_prefix),
            password: s.password.clone(),
        })
        .collect()
}

fn seconds(v: f64, what: &str) -> Result<Duration> {
    if v.is_finite() && v >= 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(BenchError::Usage(format!(
            "{what} must be a number of seconds ≥ 0"
        )))
    }
}

async fn run(args: &RunArgs) -> Result<Report> {
    let generator = args
        .corpus_generator
        .clone()
        .unwrap_or_else(corpus::default_generator);
    let corpus = corpus::load(args.corpus_mbox.as_deref(), &generator, args.corpus_count)?;
    workload::run(RunConfig {
        label: args.server.label.clone(),
        target: target(&args.server)?,
        workload: args.workload,
        clients: args.clients,
        users: users(&args.server),
        duration: seconds(args.duration, "--duration")?,
        max_cycles: args.max_cycles,
        fill: args.fill,
        watchers: args.watchers,
        corpus: Arc::new(corpus),
        progress: !args.quiet,
    })
    .await
}

async fn idle(args: &IdleArgs) -> Result<Report> {
    let target = target(&args.server)?;
    let tls = target.tls.is_some();
    let mem = idle_mem::measure(idle_mem::IdleConfig {
        target,
        users: users(&args.server),
        sessions: args.sessions,
        concurrency: args.concurrency,
        pids: args.pids.clone(),
        settle: seconds(args.settle, "--settle")?,
        hold: seconds(args.hold, "--hold")?,
        warmup: args.warmup.unwrap_or(args.concurrency * 2),
    })
    .await?;
    let meta = Meta {
        label: args.server.label.clone(),
        workload: "idle-memory".into(),
        target: args.server.addr.to_string(),
        tls,
        clients: args.sessions,
        users: args.server.users,
        watchers: 0,
        fill: 0,
        duration_limit_secs: 0.0,
        cycle_limit: None,
        cycles: 0,
    };
    let mut report = Stats::default().report(meta, 0.0);
    report.idle_memory = Some(mem);
    Ok(report)
}

fn finish(server: &ServerArgs, report: &Report) -> Result<()> {
    if let Some(path) = &server.json {
        std::fs::write(path, serde_json::to_string_pretty(report)?)?;
    }
    out(&report.table())
}

/// The CLI's own output.
fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
