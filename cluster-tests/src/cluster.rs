//! A pluto cluster of real processes on loopback: `pluto pki` makes the certificates,
//! one TOML file describes the cluster, each worker and storage node runs as
//! `pluto worker|storage` and a gateway as `pluto gateway`. Every address a process
//! dials (store and replication) is a [`FaultProxy`] in front of the real port, so a
//! test can cut, delay or black-hole any node's links.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use crate::proxy::FaultProxy;

pub const USER_PASSWORD: &str = "cluster-test-password";

/// The `pluto` binary of this workspace (built first when missing).
pub fn pluto_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/pluto
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let bin = dir.join("pluto");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "pluto-gateway", "--bin", "pluto"])
            .status()
            .unwrap();
        assert!(status.success(), "building pluto failed");
    }
    assert!(bin.exists(), "no pluto binary at {}", bin.display());
    bin
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Worker,
    Storage,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Storage => "storage",
        }
    }
}

pub struct Node {
    pub name: String,
    pub role: Role,
    pub data_dir: PathBuf,
    /// What peers dial for replication: the proxy in front of the node.
    pub replication_proxy: FaultProxy,
    /// What gateways dial: the proxy in front of the node's Store service.
    pub store_proxy: FaultProxy,
    /// Its Prometheus `/metrics` endpoint.
    pub metrics: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
}

pub struct Spec {
    pub workers: usize,
    pub storage: usize,
    /// "replica" or "local".
    pub ack: &'static str,
    /// `cluster.ack_timeout_ms`.
    pub ack_timeout_ms: u64,
    /// `cluster.rpc_timeout_ms`.
    pub rpc_timeout_ms: u64,
    /// `limits.append_limit` for every process (gateway and nodes), when not the
    /// default.
    pub append_limit: Option<u32>,
    pub users: Vec<String>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            workers: 2,
            storage: 1,
            ack: "replica",
            ack_timeout_ms: 1500,
            rpc_timeout_ms: 10_000,
            append_limit: None,
            users: (1..=8).map(|i| format!("user{i}")).collect(),
        }
    }
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub config: PathBuf,
    pub nodes: Vec<Node>,
    pub imap: SocketAddr,
    gateway: Option<Child>,
}

async fn free_port() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A port for a child process to bind later. Taken below the kernel's ephemeral range
/// (32768 and up on Linux), from which `bind(:0)` and every outgoing connection draw:
/// a port reserved that way and released could be handed to someone else before the
/// child binds it, and was (a node's metrics port, taken meanwhile by another test).
/// Each port is handed out once per process; the start is spread by the process id so
/// that test binaries run side by side rarely meet.
fn reserve() -> SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 12_000;
    const SPAN: u16 = 20_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        (std::process::id() % u32::from(SPAN)) as u16 + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let addr = SocketAddr::from(([127, 0, 0, 1], FIRST + offset));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

impl Cluster {
    pub async fn start(spec: Spec) -> Cluster {
        let bin = pluto_bin();
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let mut names: Vec<(String, Role)> = Vec::new();
        for i in 1..=spec.workers {
            names.push((format!("worker{i}"), Role::Worker));
        }
        for i in 1..=spec.storage {
            names.push((format!("storage{i}"), Role::Storage));
        }
        let mut pki_args = vec![
            "pki".to_owned(),
            "--out".to_owned(),
            pki.display().to_string(),
            "gw1".to_owned(),
        ];
        pki_args.extend(names.iter().map(|(n, _)| n.clone()));
        run(&bin, &pki_args, "");

        let mut toml = format!(
            "[cluster]\npki_dir = \"{}\"\nack = \"{}\"\nack_timeout_ms = {}\nrpc_timeout_ms = {}\n",
            pki.display(),
            spec.ack,
            spec.ack_timeout_ms,
            spec.rpc_timeout_ms
        );
        let mut nodes = Vec::new();
        for (i, (name, role)) in names.iter().enumerate() {
            let store_real = reserve();
            let repl_real = reserve();
            let (sl, store_addr) = free_port().await;
            let (rl, repl_addr) = free_port().await;
            let store_proxy = FaultProxy::start_on(sl, store_real);
            let replication_proxy = FaultProxy::start_on(rl, repl_real);
            let _ = write!(
                toml,
                "\n[[cluster.nodes]]\nname = \"{name}\"\nrole = \"{}\"\nid = {}\nstore = \"{store_addr}\"\nlisten_store = \"{store_real}\"\nreplication = \"{repl_addr}\"\nlisten_replication = \"{repl_real}\"\n",
                role.as_str(),
                i + 1
            );
            nodes.push(Node {
                name: name.clone(),
                role: *role,
                data_dir: dir.path().join(name),
                replication_proxy,
                store_proxy,
                metrics: reserve(),
                child: None,
                log: dir.path().join(format!("{name}.log")),
            });
        }
        if let Some(limit) = spec.append_limit {
            let _ = write!(toml, "\n[limits]\nappend_limit = {limit}\n");
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, toml).unwrap();
        let users = dir.path().join("users");
        for u in &spec.users {
            run(
                &bin,
                &[
                    "user".into(),
                    "add".into(),
                    u.clone(),
                    "--users-file".into(),
                    users.display().to_string(),
                ],
                &format!("{USER_PASSWORD}\n"),
            );
        }
        let imap = reserve();
        let mut cluster = Cluster {
            dir,
            bin,
            config,
            nodes,
            imap,
            gateway: None,
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn_node(i);
        }
        cluster.spawn_gateway();
        cluster.wait_ready(Duration::from_secs(30)).await;
        cluster
    }

    fn spawn_node(&mut self, i: usize) {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap();
        let child = Command::new(&self.bin)
            .arg(node.role.as_str())
            .arg("--config")
            .arg(&self.config)
            .env("PLUTO_CLUSTER__NAME", &node.name)
            .env("PLUTO_DATA_DIR", &node.data_dir)
            .env("PLUTO_METRICS__LISTEN", node.metrics.to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.nodes[i].child = Some(child);
    }

    fn spawn_gateway(&mut self) {
        let log_path = self.dir.path().join("gw1.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let users = self.dir.path().join("users");
        let child = Command::new(&self.bin)
            .args(["gateway", "--config"])
            .arg(&self.config)
            .args(["--imap", &self.imap.to_string(), "--imaps", ""])
            .env("PLUTO_CLUSTER__NAME", "gw1")
            .env("PLUTO_DATA_DIR", self.dir.path().join("gw1"))
            .env("PLUTO_AUTH__USERS_FILE", users)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.gateway = Some(child);
    }

    /// Waits until the gateway answers and every node is caught up.
    pub async fn wait_ready(&self, within: Duration) {
        let start = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(self.imap).await.is_ok() && self.all_caught_up() {
                // The gateway's own prober sees it within one probe interval.
                tokio::time::sleep(Duration::from_millis(1200)).await;
                return;
            }
            assert!(
                start.elapsed() < within,
                "cluster not ready in {within:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `pluto cluster status` says every node is reachable and caught up.
    pub fn all_caught_up(&self) -> bool {
        let out = self.status();
        self.nodes.iter().all(|n| {
            out.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&n.name.as_str())
                    && cols.get(2) == Some(&"yes")
                    && cols.get(3) == Some(&"yes")
            })
        })
    }

    pub fn status(&self) -> String {
        let out = Command::new(&self.bin)
            .args(["cluster", "status", "--config"])
            .arg(&self.config)
            .env("PLUTO_CLUSTER__NAME", "gw1")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).unwrap()
    }

    fn index(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap()
    }

    /// SIGKILL: no clean shutdown, nothing flushed that was not already durable.
    pub fn kill(&mut self, name: &str) {
        let i = self.index(name);
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (`"STOP"`, `"CONT"`, …) to a node's process.
    pub fn signal(&self, name: &str, signal: &str) {
        let pid = self.node(name).child.as_ref().map(Child::id).unwrap();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {name}");
    }

    /// One value from a node's `/metrics` (the first sample of `metric`), if there.
    pub async fn metric(&self, name: &str, metric: &str) -> Option<f64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(self.node(name).metrics)
            .await
            .ok()?;
        tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .ok()?;
        let mut text = String::new();
        tcp.read_to_string(&mut text).await.ok()?;
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(metric)?;
            let value = rest.rsplit(' ').next()?;
            (rest.starts_with(' ') || rest.starts_with('{'))
                .then(|| value.parse().ok())
                .flatten()
        })
    }

    pub fn restart(&mut self, name: &str) {
        let i = self.index(name);
        self.kill(name);
        self.spawn_node(i);
    }

    /// Cuts replication between two nodes (both directions), leaving gateways' links.
    pub fn partition(&self, a: &str, b: &str) {
        self.node(a).replication_proxy.cut();
        self.node(b).replication_proxy.cut();
    }

    pub fn heal(&self, a: &str, b: &str) {
        self.node(a).replication_proxy.heal();
        self.node(b).replication_proxy.heal();
    }

    /// A Store client straight to one node (as the gateway would call it), for reading
    /// each replica and for clients pinned to one side.
    pub fn remote(&self, name: &str) -> pluto_backends::remote::RemoteStore {
        let pki = self.dir.path().join("pki");
        let tls = pluto_backends::net::NodeTls::load(
            &pki.join("ca.pem"),
            &pki.join("gw1.pem"),
            &pki.join("gw1-key.pem"),
        )
        .unwrap();
        pluto_backends::remote::RemoteStore::new(
            name,
            self.node(name).store_proxy.addr().to_string(),
            "gw1",
            tls,
        )
    }

    /// Waits until `name` answers its Store service and says it is caught up.
    pub async fn wait_caught_up(&self, name: &str, within: Duration) {
        let remote = self.remote(name);
        let start = Instant::now();
        loop {
            if let Ok(s) = remote.node_status().await {
                if s.caught_up {
                    return;
                }
            }
            assert!(
                start.elapsed() < within,
                "{name} not caught up in {within:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The owner worker of `user` (asks `pluto cluster`'s ring via the gateway config).
    pub fn workers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Worker)
            .map(|n| n.name.clone())
            .collect()
    }

    pub fn storage(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.role == Role::Storage)
            .map(|n| n.name.clone())
            .collect()
    }

    /// Every process's log, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> = self.nodes.iter().map(|n| n.log.clone()).collect();
        files.push(self.dir.path().join("gw1.log"));
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let _ = writeln!(out, "--- {}", f.display());
            for l in tail.into_iter().rev() {
                let _ = writeln!(out, "{l}");
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut g) = self.gateway.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn run(bin: &Path, args: &[String], stdin: &str) {
    use std::io::Write;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pluto {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// The user's replicas as the gateway places them: the owner worker, then storage.
    pub fn replicas_of(&self, user: &str) -> Vec<String> {
        use pluto_gateway::ring::{Ring, RingNode};
        let ring = Ring::new(
            self.workers()
                .into_iter()
                .map(|name| RingNode { name, weight: 1 })
                .collect(),
        );
        let placement = pluto_gateway::route::Placement {
            ring,
            storage: self.storage(),
        };
        placement.replica_set(&pluto_backends::UserId::new(user).unwrap())
    }
}

/// One replica's view of a mailbox: UIDVALIDITY, and per UID its flags and bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct ReplicaView {
    pub uid_validity: u32,
    pub uid_next: u32,
    pub messages: Vec<(u32, Vec<String>, bytes::Bytes)>,
}

/// Reads a whole mailbox from one node, straight from its Store service.
pub async fn read_replica(
    store: &pluto_backends::remote::RemoteStore,
    user: &str,
    mailbox: &str,
) -> Result<ReplicaView, String> {
    use pluto_backends::MailStore;
    let user = pluto_backends::UserId::new(user).unwrap();
    let name = pluto_backends::MailboxName::new(mailbox).unwrap();
    let snap = store
        .select(&user, &name)
        .await
        .map_err(|e| e.to_string())?;
    let uids: Vec<pluto_backends::Uid> = snap.messages.iter().map(|m| m.uid).collect();
    let mut bodies = Vec::new();
    for chunk in uids.chunks(64) {
        bodies.extend(
            store
                .fetch(&user, &name, chunk)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    let mut messages = Vec::new();
    for (meta, body) in snap.messages.iter().zip(bodies) {
        if meta.uid != body.uid {
            return Err(format!("fetch returned UID {} for {}", body.uid, meta.uid));
        }
        let flags = meta.flags.iter().map(|f| format!("{f:?}")).collect();
        messages.push((meta.uid.get(), flags, body.bytes));
    }
    Ok(ReplicaView {
        uid_validity: snap.uid_validity.get(),
        uid_next: snap.uid_next.get(),
        messages,
    })
}

impl Cluster {
    /// Adds a worker while the cluster runs: its certificate, its entry in the
    /// configuration, the process, then `SIGHUP` to every other process so that the
    /// ring and the peers change in place.
    pub async fn add_worker(&mut self, name: &str) {
        let pki = self.dir.path().join("pki");
        run(
            &self.bin,
            &[
                "pki".into(),
                "--out".into(),
                pki.display().to_string(),
                name.to_owned(),
            ],
            "",
        );
        let id = self.nodes.len() + 1;
        let store_real = reserve();
        let repl_real = reserve();
        let (sl, store_addr) = free_port().await;
        let (rl, repl_addr) = free_port().await;
        let mut toml = std::fs::read_to_string(&self.config).unwrap();
        let _ = write!(
            toml,
            "\n[[cluster.nodes]]\nname = \"{name}\"\nrole = \"worker\"\nid = {id}\nstore = \"{store_addr}\"\nlisten_store = \"{store_real}\"\nreplication = \"{repl_addr}\"\nlisten_replication = \"{repl_real}\"\n"
        );
        std::fs::write(&self.config, toml).unwrap();
        self.nodes.push(Node {
            name: name.to_owned(),
            role: Role::Worker,
            data_dir: self.dir.path().join(name),
            replication_proxy: FaultProxy::start_on(rl, repl_real),
            store_proxy: FaultProxy::start_on(sl, store_real),
            metrics: reserve(),
            child: None,
            log: self.dir.path().join(format!("{name}.log")),
        });
        self.spawn_node(self.nodes.len() - 1);
        // The new node already has the new configuration; the others reload theirs.
        self.hangup_all_but(name);
    }

    /// `SIGHUP` to every running process but `except`: re-read the cluster configuration.
    pub fn hangup_all_but(&self, except: &str) {
        let pids = self
            .nodes
            .iter()
            .filter(|n| n.name != except)
            .filter_map(|n| n.child.as_ref().map(Child::id))
            .chain(self.gateway.as_ref().map(Child::id));
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status();
        }
    }
}
