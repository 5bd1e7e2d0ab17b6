//! The `pluto-bench` command line: `run` a workload, load a server with `lmtp`
//! deliveries, measure `idle-memory`, or `compare` saved reports side by side. Results go to standard output as a table
//! and, with `--json FILE`, as JSON; the progress line goes to standard error.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use pluto_bench::conn::{Target, TlsTarget};
use pluto_bench::error::{BenchError, Result};
use pluto_bench::stats::{Meta, Report, Stats};
use pluto_bench::workload::{RunConfig, User, Workload};
use pluto_bench::{compare, corpus, idle_mem, lmtp, workload};

#[derive(Parser)]
#[command(name = "pluto-bench", version, about = "IMAP and LMTP load generator")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one workload and report per-command throughput and latency.
    Run(RunArgs),
    /// Deliver over LMTP from C connections and report deliveries/s and latency.
    Lmtp(LmtpArgs),
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
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Args, Clone)]
struct ReportArgs {
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
    #[command(flatten)]
    corpus: CorpusArgs,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct CorpusArgs {
    /// An mbox to take messages from, instead of running the generator.
    #[arg(long)]
    corpus_mbox: Option<PathBuf>,
    /// The corpus generator (default: testdata/corpus/gen_mbox.py in the repository).
    #[arg(long)]
    corpus_generator: Option<PathBuf>,
    /// How many corpus messages to use.
    #[arg(long, default_value_t = 400)]
    corpus_count: usize,
}

impl CorpusArgs {
    fn load(&self) -> Result<Arc<Vec<Vec<u8>>>> {
        let generator = self
            .corpus_generator
            .clone()
            .unwrap_or_else(corpus::default_generator);
        let messages = corpus::load(self.corpus_mbox.as_deref(), &generator, self.corpus_count)?;
        Ok(Arc::new(messages))
    }
}

#[derive(Args)]
struct LmtpArgs {
    /// The server's LMTP address.
    #[arg(long, default_value = "127.0.0.1:1024")]
    addr: SocketAddr,
    /// Count every user's INBOX over IMAP (plain) at this address before and after the
    /// run, and fail unless each grew by exactly its 250s (needs --password).
    #[arg(long)]
    verify_imap: Option<SocketAddr>,
    /// Recipients are PREFIX1@DOMAIN … PREFIXM@DOMAIN.
    #[arg(long, default_value = "bench")]
    user_prefix: String,
    /// M: how many users.
    #[arg(long, default_value_t = 10)]
    users: usize,
    /// Every user's password (for --verify-imap).
    #[arg(long, env = "PLUTO_BENCH_PASSWORD")]
    password: Option<String>,
    /// The recipients' domain.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// The envelope sender (MAIL FROM).
    #[arg(long, default_value = "bench@localhost")]
    sender: String,
    /// C: concurrent LMTP connections.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// N: recipients per message, N different users (N ≤ M).
    #[arg(long, default_value_t = 1)]
    recipients: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Stop after this many messages over all connections.
    #[arg(long)]
    max_messages: Option<u64>,
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Longest wait for one reply, in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    #[command(flatten)]
    report: ReportArgs,
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
            let rt = runtime(args.server.report.threads)?;
            let report = rt.block_on(run(&args))?;
            finish(args.server.report.json.as_deref(), &report)
        }
        Cmd::Lmtp(args) => {
            let rt = runtime(args.report.threads)?;
            let report = rt.block_on(deliver(&args))?;
            finish(args.report.json.as_deref(), &report)?;
            match report.lmtp.as_ref().and_then(|l| l.verified.as_ref()) {
                Some(v) if !v.ok() => Err(BenchError::Usage(format!(
                    "the server answered 250 for {} copies but {} arrived",
                    v.expected, v.found
                ))),
                _ => Ok(()),
            }
        }
        Cmd::IdleMemory(args) => {
            let rt = runtime(args.server.report.threads)?;
            let report = rt.block_on(idle(&args))?;
            finish(args.server.report.json.as_deref(), &report)
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
    Ok(Target {
        addr: s.addr,
        tls,
        timeout: timeout(s.timeout)?,
    })
}

fn timeout(secs: f64) -> Result<Duration> {
    if !secs.is_finite() || secs <= 0.0 {
        return Err(BenchError::Usage("--timeout must be positive".into()));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn users(s: &ServerArgs) -> Vec<User> {
    numbered_users(&s.user_prefix, s.users, &s.password)
}

fn numbered_users(prefix: &str, count: usize, password: &str) -> Vec<User> {
    (1..=count)
        .map(|i| User {
            name: format!("{prefix}{i}"),
            password: password.to_owned(),
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
    let corpus = args.corpus.load()?;
    workload::run(RunConfig {
        label: args.server.report.label.clone(),
        target: target(&args.server)?,
        workload: args.workload,
        clients: args.clients,
        users: users(&args.server),
        duration: seconds(args.duration, "--duration")?,
        max_cycles: args.max_cycles,
        fill: args.fill,
        watchers: args.watchers,
        corpus,
        progress: !args.quiet,
    })
    .await
}

async fn deliver(args: &LmtpArgs) -> Result<Report> {
    let timeout = timeout(args.timeout)?;
    let verify = match (args.verify_imap, &args.password) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(BenchError::Usage(
                "--verify-imap needs --password (or PLUTO_BENCH_PASSWORD)".into(),
            ));
        }
        (Some(addr), Some(_)) => Some(Target {
            addr,
            tls: None,
            timeout,
        }),
    };
    let password = args.password.clone().unwrap_or_default();
    lmtp::run(lmtp::LmtpConfig {
        label: args.report.label.clone(),
        addr: args.addr,
        timeout,
        clients: args.clients,
        recipients: args.recipients,
        users: numbered_users(&args.user_prefix, args.users, &password),
        domain: args.domain.clone(),
        sender: args.sender.clone(),
        duration: seconds(args.duration, "--duration")?,
        max_messages: args.max_messages,
        corpus: args.corpus.load()?,
        verify,
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
        label: args.server.report.label.clone(),
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

fn finish(json: Option<&Path>, report: &Report) -> Result<()> {
    if let Some(path) = json {
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
