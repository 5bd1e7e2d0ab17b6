//! A real Postfix (Debian's) for delivery tests: its own configuration and queue in a
//! temp dir (`postfix -c DIR start`, run as root), on loopback only, sending every
//! recipient of `example.org` to one LMTP destination (`lmtp:inet:HOST:PORT` or
//! `lmtp:unix:/path`), retrying deferred mail every second. Mail goes in with
//! `sendmail -C DIR`. Stopped (`postfix stop`) when dropped.
//!
//! No Postfix on the machine is a test failure, never a silent pass: `scripts/test.sh`
//! installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts Postfix's commands (a non-login PATH may lack /usr/sbin).
fn command(name: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from(name)
    }
}

pub struct Postfix {
    dir: tempfile::TempDir,
}

const MASTER_CF: &str = "\
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
";

impl Postfix {
    /// Starts a Postfix that delivers `example.org` to `destination` (Postfix's own
    /// syntax: `inet:127.0.0.1:1024` or `unix:/path/to/socket`).
    pub fn start(destination: &str) -> Postfix {
        assert!(
            command("postfix").exists() || which("postfix"),
            "Postfix is not installed (apt-get install postfix; scripts/test.sh does it)"
        );
        let dir = tempfile::tempdir().unwrap();
        // Postfix's daemons run as `postfix` and must reach the queue under it.
        set_mode(dir.path(), 0o755);
        let root = dir.path();
        let etc = root.join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(root.join("queue")).unwrap();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mta.test
mydomain = test
myorigin = mta.test
mydestination =
relay_domains =
local_recipient_maps =
virtual_mailbox_domains = example.org
virtual_transport = lmtp:{destination}
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
lmtp_connect_timeout = 3s
smtputf8_enable = no
biff = no
",
            root = root.display()
        );
        std::fs::write(etc.join("main.cf"), main_cf).unwrap();
        std::fs::write(etc.join("master.cf"), MASTER_CF).unwrap();
        let postfix = Postfix { dir };
        let out = Command::new(command("postfix"))
            .arg("-c")
            .arg(postfix.etc())
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "postfix start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            postfix.log()
        );
        postfix
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// Postfix's own log (`maillog_file`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Queues one message for `rcpts` with `sendmail -C DIR -i -f FROM RCPT…`.
    pub fn send(&self, from: &str, rcpts: &[&str], message: &[u8]) {
        use std::io::Write;
        let mut child = Command::new(command("sendmail"))
            .arg("-C")
            .arg(self.etc())
            .args(["-i", "-f", from])
            .args(rcpts)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(message).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "sendmail failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Asks Postfix to try every deferred message now (`postqueue -f`).
    pub fn flush(&self) {
        let _ = Command::new(command("postqueue"))
            .arg("-c")
            .arg(self.etc())
            .arg("-f")
            .output();
    }

    /// Whether the queue is empty (`postqueue -p`).
    pub fn queue_is_empty(&self) -> bool {
        let out = Command::new(command("postqueue"))
            .arg("-c")
            .arg(self.etc())
            .arg("-p")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("Mail queue is empty")
    }

    /// Waits until the queue is empty.
    pub fn wait_empty(&self, within: Duration) {
        let start = Instant::now();
        while !self.queue_is_empty() {
            assert!(
                start.elapsed() < within,
                "Postfix's queue not empty after {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// How many deliveries Postfix logged as deferred so far.
    pub fn deferrals(&self) -> usize {
        self.log().matches("status=deferred").count()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(command("postfix"))
            .arg("-c")
            .arg(self.etc())
            .arg("stop")
            .output();
    }
}

fn which(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
