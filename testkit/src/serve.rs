//! The `pluto` binary run as a child process: `pluto serve` on free loopback ports
//! with a throw-away data dir and its users file, and any command with a deadline.
//! These tests see exactly what a user sees, including what survives a SIGKILL.

use std::ffi::OsStr;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::ports::reserve;

/// The `pluto` binary of this workspace, beside the running test binary
/// (`target/<profile>/deps/<test>` → `target/<profile>/pluto`); built first when it is
/// missing (a crate that does not build it for its tests).
pub fn pluto_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf();
    let bin = dir.join("pluto");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "pluto-gateway", "--bin", "pluto"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building pluto failed");
    }
    assert!(bin.exists(), "no pluto binary at {}", bin.display());
    bin
}

/// Runs `pluto ARGS` with `stdin` as its standard input; panics with its output unless
/// it exits 0.
pub fn run_pluto<S: AsRef<OsStr>>(args: &[S], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(pluto_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning pluto");
    {
        let mut input = child.stdin.take().expect("piped stdin");
        input
            .write_all(stdin.as_bytes())
            .expect("writing pluto's standard input");
    }
    let out = child.wait_with_output().expect("waiting for pluto");
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    assert_success(&format!("pluto {}", shown.join(" ")), &out);
    out
}

/// `printf 'PASSWORD\n' | pluto user add NAME --data-dir DIR`.
pub fn add_user(data_dir: &Path, name: &str, password: &str) {
    let args: [&OsStr; 5] = [
        "user".as_ref(),
        "add".as_ref(),
        name.as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
    ];
    run_pluto(&args, &format!("{password}\n"));
}

/// Panics with the command's stdout and stderr unless it exited 0.
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command with a hard time limit; panics (with its output so far) when it is
/// exceeded, so that a hung client cannot hang the test suite.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let tmp = tempfile::tempdir().expect("temp dir for output");
    let out_path = tmp.path().join("stdout");
    let err_path = tmp.path().join("stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {limit:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

/// A running `pluto serve`, killed (SIGKILL) when dropped.
pub struct Pluto {
    child: Option<Child>,
    /// Holds the data dir (`data/`) and the server's log files; removed on drop.
    pub tmp: tempfile::TempDir,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    /// LMTP over TCP (a port of the kit's allocator, never the default 1024: tests run
    /// side by side).
    pub lmtp: SocketAddr,
    /// LMTP over a Unix socket (`listen.lmtp_socket`), in the temp dir.
    pub lmtp_socket: PathBuf,
    /// How many times the server was started; each start logs to its own file.
    starts: u32,
}

impl Pluto {
    /// A fresh data dir whose users file holds `users` (name, password), and the
    /// server started on it, both ports accepting.
    pub fn start(users: &[(&str, &str)]) -> Pluto {
        let tmp = tempfile::tempdir().expect("creating a temp dir");
        let data = tmp.path().join("data");
        for (name, password) in users {
            add_user(&data, name, password);
        }
        let lmtp_socket = tmp.path().join("lmtp.sock");
        let mut pluto = Pluto {
            child: None,
            tmp,
            imap: reserve(),
            imaps: reserve(),
            lmtp: reserve(),
            lmtp_socket,
            starts: 0,
        };
        pluto.spawn();
        pluto
    }

    pub fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// The self-signed certificate the server generated at first start.
    pub fn cert_path(&self) -> PathBuf {
        self.data_dir().join("tls").join("cert.pem")
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.tmp.path().join(format!("pluto-{start}.log"))
    }

    /// Everything every run of the server wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for start in 1..=self.starts {
            let text = std::fs::read_to_string(self.log_path(start)).unwrap_or_default();
            all.push_str(&format!("----- pluto run {start} -----\n{text}"));
        }
        all
    }

    /// Starts the binary and waits until both ports accept connections.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "pluto is already running");
        self.starts += 1;
        let log = File::create(self.log_path(self.starts)).expect("creating the log file");
        let log2 = log.try_clone().expect("cloning the log file handle");
        let child = Command::new(pluto_bin())
            .arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--imap")
            .arg(self.imap.to_string())
            .arg("--imaps")
            .arg(self.imaps.to_string())
            .arg("--lmtp")
            .arg(self.lmtp.to_string())
            .env("PLUTO_LISTEN__LMTP_SOCKET", &self.lmtp_socket)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("spawning pluto serve");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "pluto serve exited before listening ({status}):\n{}",
                        self.logs()
                    );
                }
            }
            let up = |addr: &SocketAddr| {
                TcpStream::connect_timeout(addr, Duration::from_millis(200)).is_ok()
            };
            if up(&self.imap) && up(&self.imaps) && up(&self.lmtp) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pluto serve did not accept on {} and {} within 30 s:\n{}",
                self.imap,
                self.imaps,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, no BYE, no flushing — a power cut as far as the process goes.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data dir, on fresh ports (the old ones may
    /// still have connections in TIME_WAIT).
    pub fn restart(&mut self) {
        self.kill();
        self.imap = reserve();
        self.imaps = reserve();
        self.lmtp = reserve();
        self.spawn();
    }

    /// Starts the server again on the same data dir and the same addresses, for a
    /// client that must find it where it was (an MTA that deferred to it).
    pub fn start_again(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The server's process id, while it runs (for reading its memory in /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still alive (it must not have crashed on its own).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Pluto {
    fn drop(&mut self) {
        self.kill();
    }
}
