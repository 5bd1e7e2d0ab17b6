//! A pluto cluster of real processes on loopback: `pluto pki` makes the certificates,
//! one TOML file describes the cluster, each worker and storage node runs as
//! `pluto worker|storage` and a gateway as `pluto gateway`. Every address a process
//! dials (store and replication) is a [`FaultProxy`] in front of the real port, so a
//! test can cut, delay or black-hole any node's links.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use pluto_testkit::ports::reserve;
pub use pluto_testkit::serve::pluto_bin;
use pluto_testkit::serve::run_pluto;

use crate::proxy::FaultProxy;

pub const USER_PASSWORD: &str = "cluster-test-password";

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
    /// `quota.messages` for every process, when set.
    pub quota_messages: Option<u64>,
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
            quota_messages: None,
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
    /// The gateway's LMTP listener (a reserved port, never the default 1024).
    pub lmtp: SocketAddr,
    /// The gateway's Prometheus `/metrics` endpoint.
    pub gateway_metrics: SocketAddr,
    gateway: Option<Child>,
}

/// A further gateway in front of the same nodes ([`Cluster::start_gateway`]), with its
/// own configuration file; stopped when dropped.
pub struct Gateway {
    pub imap: SocketAddr,
    pub lmtp: SocketAddr,
    pub metrics: SocketAddr,
    child: Child,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn free_port() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
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
        run_pluto(&pki_args, "");

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
        if let Some(messages) = spec.quota_messages {
            let _ = write!(toml, "\n[quota]\nmessages = {messages}\n");
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, toml).unwrap();
        let users = dir.path().join("users");
        for u in &spec.users {
            run_pluto(
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
        let lmtp = reserve();
        let mut cluster = Cluster {
            dir,
            bin,
            config,
            nodes,
            imap,
            lmtp,
            gateway_metrics: reserve(),
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
        let addrs = [self.imap, self.lmtp, self.gateway_metrics];
        let child = self.spawn_gateway_process("gw1", &self.config, addrs);
        self.gateway = Some(child);
    }

    /// `pluto gateway` as `label` (its data dir and log), with gw1's certificate and the
    /// users file, listening on IMAP, LMTP and metrics `addrs`.
    fn spawn_gateway_process(
        &self,
        label: &str,
        config: &std::path::Path,
        [imap, lmtp, metrics]: [SocketAddr; 3],
    ) -> Child {
        let log_path = self.dir.path().join(format!("{label}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let users = self.dir.path().join("users");
        Command::new(&self.bin)
            .args(["gateway", "--config"])
            .arg(config)
            .args(["--imap", &imap.to_string(), "--imaps", ""])
            .args(["--lmtp", &lmtp.to_string()])
            .env("PLUTO_CLUSTER__NAME", "gw1")
            .env("PLUTO_DATA_DIR", self.dir.path().join(label))
            .env("PLUTO_AUTH__USERS_FILE", users)
            .env("PLUTO_METRICS__LISTEN", metrics.to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Starts another gateway with `config` (e.g. [`Self::config_blind_to`]) and waits
    /// until it answers IMAP and its prober has had time to see the nodes.
    pub async fn start_gateway(&self, label: &str, config: &std::path::Path) -> Gateway {
        let (imap, lmtp, metrics) = (reserve(), reserve(), reserve());
        let child = self.spawn_gateway_process(label, config, [imap, lmtp, metrics]);
        let gateway = Gateway {
            imap,
            lmtp,
            metrics,
            child,
        };
        let start = Instant::now();
        while tokio::net::TcpStream::connect(imap).await.is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{label} did not start:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        gateway
    }

    /// A copy of the cluster's configuration (as `file_name` in the cluster's
    /// directory) in which the Store service of each of `nodes` is a port nothing
    /// listens on: a gateway started with it never reaches them and serves their users
    /// from the next replica, while the nodes still replicate among themselves.
    pub fn config_blind_to(&self, nodes: &[&str], file_name: &str) -> PathBuf {
        let mut toml = std::fs::read_to_string(&self.config).unwrap();
        for name in nodes {
            let real = format!("store = \"{}\"", self.node(name).store_proxy.addr());
            assert!(toml.contains(&real), "{name}'s store address in the config");
            toml = toml.replace(&real, &format!("store = \"{}\"", reserve()));
        }
        let path = self.dir.path().join(file_name);
        std::fs::write(&path, toml).unwrap();
        path
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
        metric_at(self.node(name).metrics, metric).await
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
        // gw1 and the gateways of start_gateway (gw2.log, …).
        let mut gateways: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("gw") && n.ends_with(".log"))
            })
            .collect();
        gateways.sort();
        files.extend(gateways);
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

/// One value from the `/metrics` endpoint at `addr`: the first sample of `metric`
/// (with `{labels}` in `metric` to pick one series), if there.
pub async fn metric_at(addr: SocketAddr, metric: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
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
    /// Waits until every replica of `user` counts `messages` messages and the same
    /// usage (from its own replicated state); that usage. Panics with what they count
    /// after 60 s.
    pub async fn wait_usage(&self, user: &str, messages: u64) -> pluto_backends::Usage {
        use pluto_backends::MailStore;
        let id = pluto_backends::UserId::new(user).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut usages = Vec::new();
            for name in self.replicas_of(user) {
                usages.push(self.remote(&name).usage(&id).await.ok());
            }
            if let Some(Some(first)) = usages.first().copied() {
                if first.messages == messages && usages.iter().all(|u| *u == Some(first)) {
                    return first;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{user}: replicas count {usages:?}, not {messages} messages each\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Adds a worker while the cluster runs: its certificate, its entry in the
    /// configuration, the process, then `SIGHUP` to every other process so that the
    /// ring and the peers change in place.
    pub async fn add_worker(&mut self, name: &str) {
        let pki = self.dir.path().join("pki");
        run_pluto(
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
