//! `scripts/cluster.sh` (what `just cluster` runs) brings up two gateways, two workers
//! and a storage node as local processes, and they serve mail: a message appended
//! through one gateway reads back through the other, `cluster.sh status` shows every
//! node reachable and caught up, `cluster.sh stop` ends every process, and the mail is
//! still there after a restart from the same state directory.
//!
//! The script runs exactly as a person would run it (a debug build to keep the test
//! quick), in a temporary state directory, on ports from `PLUTO_CLUSTER_PORT_BASE`
//! chosen free.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pluto_cluster_tests::mail::{self, Client, message};

/// One cluster at a time: two would compete for this machine's two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PASSWORD: &str = "cluster-script-password";

/// Port offsets from `PLUTO_CLUSTER_PORT_BASE`, as documented in the script.
const GW1_IMAP: u16 = 143;
const GW2_IMAP: u16 = 144;
const OFFSETS: [u16; 10] = [143, 144, 993, 994, 701, 702, 703, 704, 705, 706];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// A base where every port the script will use is free on loopback right now.
fn free_base() -> u16 {
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    for i in 0..200u64 {
        // Below the kernel's ephemeral range (32768 and up), where outgoing connections
        // would take a port between this check and the script's bind.
        let base = 10_000 + ((seed.wrapping_add(i * 7919)) % 22) as u16 * 1_000;
        let free = OFFSETS
            .iter()
            .all(|o| std::net::TcpListener::bind(("127.0.0.1", base + o)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free port range found on 127.0.0.1");
}

/// A state directory, the environment the script runs with, and `stop` when dropped
/// so that a failing test leaves no process behind.
struct Script {
    dir: tempfile::TempDir,
    base: u16,
    env: Vec<(String, String)>,
}

impl Script {
    fn new(extra_env: &[(&str, &str)]) -> Script {
        let dir = tempfile::tempdir().unwrap();
        let base = free_base();
        let mut env = vec![
            (
                "PLUTO_CLUSTER_DIR".to_owned(),
                dir.path().join("state").display().to_string(),
            ),
            ("PLUTO_CLUSTER_PORT_BASE".to_owned(), base.to_string()),
            ("PLUTO_CLUSTER_PASSWORD".to_owned(), PASSWORD.to_owned()),
            ("PLUTO_CLUSTER_WAIT".to_owned(), "180".to_owned()),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Script { dir, base, env }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(repo_root().join("scripts/cluster.sh"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // The script's own binary choice is under test: no override from outside.
            .env_remove("PLUTO_BIN")
            .current_dir(repo_root())
            .output()
            .unwrap()
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "cluster.sh {args:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn addr(&self, offset: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base + offset))
    }

    fn pids(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for name in ["gw1", "gw2", "worker1", "worker2", "storage1"] {
            let path = self.state().join("pids").join(format!("{name}.pid"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                out.push((name.to_owned(), text.trim().parse().unwrap()));
            }
        }
        out
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.state().join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
    }
}

/// Alive and not a zombie waiting for its parent.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Every node line of `pluto cluster status` says reachable and caught up.
fn all_caught_up(status: &str) -> bool {
    ["worker1", "worker2", "storage1"].iter().all(|node| {
        status.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.first() == Some(node) && cols.get(2) == Some(&"yes") && cols.get(3) == Some(&"yes")
        })
    })
}

/// The exact bytes of message `uid`, found among whatever untagged responses the server
/// sends with it (an EXISTS or a flag change may come first).
async fn body(c: &mut Client, uid: u32) -> Vec<u8> {
    c.try_body(uid)
        .await
        .unwrap_or_else(|e| panic!("no BODY[] for UID {uid}: {e}"))
}

async fn login(addr: SocketAddr, user: &str, password: &str) -> Client {
    mail::login(addr, user, password)
        .await
        .unwrap_or_else(|e| panic!("login as {user} at {addr}: {e}"))
}

/// Appends through gw1, reads back through gw2; returns the message.
async fn append_and_read_back(s: &Script, user: &str, id: &str) -> Vec<u8> {
    let msg = message(id, 3_000);
    let mut c1 = login(s.addr(GW1_IMAP), user, PASSWORD).await;
    let r = c1.try_append_plus("INBOX", "", &msg).await.unwrap();
    assert!(
        r.ok() && r.tagged.contains("APPENDUID"),
        "{r:?}\n{}",
        s.log("gw1")
    );
    let mut c2 = login(s.addr(GW2_IMAP), user, PASSWORD).await;
    let (_, listed) = c2.try_list_messages("INBOX").await.unwrap();
    let wanted = format!("<{id}@cluster.test>");
    let (uid, _) = listed
        .iter()
        .find(|(_, mid)| *mid == wanted)
        .unwrap_or_else(|| panic!("{wanted} not listed through gw2: {listed:?}"));
    assert_eq!(body(&mut c2, *uid).await, msg, "gw2 read other bytes");
    msg
}

async fn wrong_password_is_refused(s: &Script, user: &str) {
    let err = mail::login(s.addr(GW1_IMAP), user, "not-the-password")
        .await
        .err();
    assert!(
        err.is_some_and(|e| e.to_string().contains("NO")),
        "a wrong password was not refused"
    );
}

fn stop_and_check(s: &Script) {
    let pids = s.pids();
    assert_eq!(pids.len(), 5, "pid files: {pids:?}");
    let out = s.run_ok(&["stop"]);
    assert!(out.contains("stopped 5 process"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    for (name, pid) in &pids {
        while alive(*pid) {
            assert!(Instant::now() < deadline, "{name} (pid {pid}) still runs");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(
        std::net::TcpStream::connect(s.addr(GW1_IMAP)).is_err(),
        "gw1 still listens after stop"
    );
    assert!(
        !s.run(&["status"]).status.success(),
        "status says all is well with the cluster stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_sh_starts_serves_restarts_and_stops() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Script::new(&[]);

    let out = s.run_ok(&["start", "--debug"]);
    assert!(
        out.contains(&format!(
            "gw1: IMAP+STARTTLS 127.0.0.1:{}",
            s.base + GW1_IMAP
        )),
        "{out}"
    );
    assert!(
        all_caught_up(&out),
        "start printed no healthy status:\n{out}"
    );
    let pids = s.pids();
    assert_eq!(pids.len(), 5, "pid files: {pids:?}");
    for (name, pid) in &pids {
        assert!(alive(*pid), "{name} (pid {pid}) is not running");
    }

    // The configuration it wrote is one the real loader accepts, with the documented ports.
    let config = pluto_gateway::Config::load(Some(&s.state().join("cluster.toml"))).unwrap();
    config.cluster.validate().unwrap();
    let stores: Vec<(&str, &str)> = config
        .cluster
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.store.as_str()))
        .collect();
    let b = s.base;
    assert_eq!(
        stores,
        [
            ("worker1", format!("127.0.0.1:{}", b + 701).as_str()),
            ("worker2", format!("127.0.0.1:{}", b + 703).as_str()),
            ("storage1", format!("127.0.0.1:{}", b + 705).as_str()),
        ]
    );

    // A second start from the same directory refuses, and leaves the cluster alone.
    let again = s.run(&["start", "--debug"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));

    let first = append_and_read_back(&s, "demo", "before-restart").await;
    wrong_password_is_refused(&s, "demo").await;

    let status = s.run_ok(&["status"]);
    assert!(all_caught_up(&status), "{status}");

    stop_and_check(&s);

    // Restart from the same state: the certificates and the user are kept, the mail too.
    s.run_ok(&["start", "--debug"]);
    let mut c = login(s.addr(GW2_IMAP), "demo", PASSWORD).await;
    let (_, listed) = c.try_list_messages("INBOX").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(body(&mut c, listed[0].0).await, first);
    drop(c);
    append_and_read_back(&s, "demo", "after-restart").await;
    stop_and_check(&s);
}

/// With PostgreSQL for logins and Redis for the throttle, as `PLUTO_CLUSTER_POSTGRES_URL`
/// and `PLUTO_CLUSTER_REDIS_URL` ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_sh_with_postgres_and_redis() {
    let (Ok(pg), Ok(redis)) = (
        std::env::var("PLUTO_TEST_POSTGRES_URL"),
        std::env::var("PLUTO_TEST_REDIS_URL"),
    ) else {
        println!(
            "skipped: set PLUTO_TEST_POSTGRES_URL and PLUTO_TEST_REDIS_URL to run cluster.sh on them"
        );
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Script::new(&[
        ("PLUTO_CLUSTER_POSTGRES_URL", &pg),
        ("PLUTO_CLUSTER_REDIS_URL", &redis),
        ("PLUTO_CLUSTER_USER", "script_pg_user"),
        // A table of this test's own, so that the auth crate's tests are not disturbed.
        ("PLUTO_AUTH__POSTGRES__TABLE", "cluster_script_users"),
    ]);
    let out = s.run_ok(&["start", "--debug"]);
    assert!(all_caught_up(&out), "{out}");
    let config = std::fs::read_to_string(s.state().join("cluster.toml")).unwrap();
    assert!(config.contains("backend = \"postgres\""), "{config}");
    assert!(config.contains(&redis), "{config}");
    // The user is in PostgreSQL, not in a users file.
    assert!(!s.state().join("users").exists());
    append_and_read_back(&s, "script_pg_user", "through-postgres").await;
    wrong_password_is_refused(&s, "script_pg_user").await;
    stop_and_check(&s);
}
