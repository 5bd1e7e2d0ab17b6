//! Replicated nodes on loopback with real mutual TLS: writes on one node reach the
//! others; a cut link (a proxy in the test) with writes on both sides heals into
//! identical replicas and no UID ever names two messages; `ack = Replica` waits for a
//! reachable peer and not for one known to be down; a restarted node, and a new one
//! behind a truncated log (snapshots), catch up and then say so; bodies larger than a
//! frame (45 and 90 MiB in one write) reach the peer whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicated_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pluto_backends::net::pki;
use pluto_backends::replicated::{AckMode, Node, NodeConfig, PeerConfig, ReplicatedStore};
use pluto_backends::*;
use replicated_support::{converge, dump, msg, tls};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy the test can cut (every connection dropped, new ones refused) and heal.
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut a, mut b) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = cut_rx.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Proxy { addr, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

struct Spec {
    name: &'static str,
    id: u16,
}

fn config(
    me: &Spec,
    dir: &Path,
    peers: Vec<(&Spec, String)>,
    ack: AckMode,
    ack_timeout: Duration,
) -> NodeConfig {
    let mut c = NodeConfig::new(me.name, me.id, dir);
    c.peers = peers
        .iter()
        .map(|(p, addr)| PeerConfig {
            name: p.name.to_owned(),
            replica_id: p.id,
            replication_addr: addr.clone(),
        })
        .collect();
    let names: Vec<String> = peers.iter().map(|(p, _)| p.name.to_owned()).collect();
    c.replicas_of = Arc::new(move |_| names.clone());
    c.ack = ack;
    c.ack_timeout = ack_timeout;
    c.link_timeout = Duration::from_millis(800);
    c
}

/// Two nodes, "wa" (replica 1) and "sb" (replica 2), each dialling the other through a
/// proxy the test can cut; `cut` starts them apart.
struct ProxiedPair {
    a: Node,
    b: Node,
    /// What a dials to reach b, and b to reach a.
    to_b: Proxy,
    to_a: Proxy,
    _dirs: [tempfile::TempDir; 3],
}

impl ProxiedPair {
    async fn start(ack: AckMode, cut: bool) -> ProxiedPair {
        Self::start_with(ack, cut, |_| {}).await
    }

    /// [`Self::start`], each node's configuration changed by `edit` first.
    async fn start_with(ack: AckMode, cut: bool, edit: fn(&mut NodeConfig)) -> ProxiedPair {
        let pki_dir = tempfile::tempdir().unwrap();
        let a = Spec { name: "wa", id: 1 };
        let b = Spec { name: "sb", id: 2 };
        pki::generate(pki_dir.path(), &["wa".into(), "sb".into()], &[], false).unwrap();
        let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to_b = Proxy::start(lb.local_addr().unwrap()).await;
        let to_a = Proxy::start(la.local_addr().unwrap()).await;
        to_b.set_cut(cut);
        to_a.set_cut(cut);
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let timeout = Duration::from_millis(300);
        let mut ca = config(
            &a,
            da.path(),
            vec![(&b, to_b.addr.to_string())],
            ack,
            timeout,
        );
        let mut cb = config(
            &b,
            db.path(),
            vec![(&a, to_a.addr.to_string())],
            ack,
            timeout,
        );
        // New nodes that may start apart and write: their empty data directories are
        // new, not lost ones (which wait for their peer, replicated_restart_empty.rs).
        ca.trust_empty_data_dir = true;
        cb.trust_empty_data_dir = true;
        edit(&mut ca);
        edit(&mut cb);
        let na = Node::start(ca, tls(pki_dir.path(), "wa"), la)
            .await
            .unwrap();
        let nb = Node::start(cb, tls(pki_dir.path(), "sb"), lb)
            .await
            .unwrap();
        ProxiedPair {
            a: na,
            b: nb,
            to_b,
            to_a,
            _dirs: [pki_dir, da, db],
        }
    }
}

/// Records every (mailbox UIDVALIDITY, UID) → body a client ever saw, anywhere.
#[derive(Default)]
struct Observer {
    seen: HashMap<(String, u32, u32), Bytes>,
}

impl Observer {
    async fn look(&mut self, s: &ReplicatedStore, user: &UserId) {
        let d = dump(s, user).await;
        for (name, (snap, bodies)) in d.mailboxes {
            for (m, b) in snap.messages.iter().zip(bodies) {
                let key = (name.clone(), snap.uid_validity.get(), m.uid.get());
                if let Some(before) = self.seen.insert(key.clone(), b.clone()) {
                    assert_eq!(before, b, "UID {key:?} named two messages");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_one_node_reach_the_others() {
    let pki_dir = tempfile::tempdir().unwrap();
    let specs = [
        Spec { name: "n1", id: 1 },
        Spec { name: "n2", id: 2 },
        Spec { name: "n3", id: 3 },
    ];
    let names: Vec<String> = specs.iter().map(|s| s.name.to_owned()).collect();
    pki::generate(pki_dir.path(), &names, &[], false).unwrap();
    let mut listeners = Vec::new();
    for _ in &specs {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let dirs: Vec<_> = specs.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let peers = specs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, s)| (s, addrs[j].clone()))
            .collect();
        let c = config(
            &specs[i],
            dirs[i].path(),
            peers,
            AckMode::Replica,
            Duration::from_secs(5),
        );
        nodes.push(
            Node::start(c, tls(pki_dir.path(), specs[i].name), listener)
                .await
                .unwrap(),
        );
    }
    let stores: Vec<_> = nodes.iter().map(|n| n.store()).collect();
    let user = UserId::new("alice").unwrap();
    let inbox = MailboxName::inbox();
    stores[0].open_user(&user).await.unwrap();
    let out = stores[0]
        .append(&user, &inbox, vec![msg("one"), msg("two")])
        .await
        .unwrap();
    // ack = Replica: once answered, some peer holds it durably already.
    let held = {
        let a = stores[1]
            .select(&user, &inbox)
            .await
            .unwrap()
            .messages
            .len();
        let b = stores[2]
            .select(&user, &inbox)
            .await
            .unwrap()
            .messages
            .len();
        a.max(b)
    };
    assert_eq!(held, 2, "an acknowledged append is on a peer");
    let work = MailboxName::new("Work/2024").unwrap();
    stores[1].create_mailbox(&user, &work, None).await.unwrap();
    stores[2]
        .copy(&user, &inbox, &out.uids[..1], &work)
        .await
        .ok();
    stores[0]
        .store_flags(
            &user,
            &inbox,
            &out.uids,
            &FlagChange {
                op: FlagOp::Add,
                flags: [Flag::Flagged].into_iter().collect(),
            },
            None,
        )
        .await
        .unwrap();
    let d = converge(&stores, &user, Duration::from_secs(20)).await;
    let (inbox_snap, bodies) = &d.mailboxes["INBOX"];
    assert_eq!(inbox_snap.messages.len(), 2);
    assert!(
        inbox_snap
            .messages
            .iter()
            .all(|m| m.flags.contains(&Flag::Flagged))
    );
    assert_eq!(bodies[0], msg("one").body);
    assert!(d.mailboxes.contains_key("Work/2024"));
    // Lag drains to zero on every link.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lagging: Vec<_> = nodes
            .iter()
            .flat_map(|n| n.status().peers)
            .filter(|p| p.ops_behind > 0 || !p.connected)
            .collect();
        if lagging.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "lag did not drain: {lagging:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in &nodes {
        assert!(n.status().caught_up, "{:?}", n.status());
    }
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_with_writes_on_both_sides_heals_and_converges() {
    let ProxiedPair {
        a: na,
        b: nb,
        to_a,
        to_b,
        _dirs,
    } = ProxiedPair::start(AckMode::Replica, false).await;
    let (sa, sb) = (na.store(), nb.store());
    let user = UserId::new("bob").unwrap();
    let inbox = MailboxName::inbox();
    sa.open_user(&user).await.unwrap();
    sa.append(&user, &inbox, vec![msg("before")]).await.unwrap();
    converge(&[sa.clone(), sb.clone()], &user, Duration::from_secs(10)).await;
    let mut observer = Observer::default();
    observer.look(&sa, &user).await;

    // Partition: both sides keep taking writes.
    to_b.set_cut(true);
    to_a.set_cut(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while na.status().peers[0].connected || nb.status().peers[0].connected {
        assert!(Instant::now() < deadline, "the cut was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shared = MailboxName::new("Shared").unwrap();
    sa.create_mailbox(&user, &shared, None).await.unwrap();
    sb.create_mailbox(&user, &shared, None).await.unwrap();
    for i in 0..6 {
        sa.append(&user, &inbox, vec![msg(&format!("a{i}"))])
            .await
            .unwrap();
        sb.append(&user, &inbox, vec![msg(&format!("b{i}"))])
            .await
            .unwrap();
        sa.append(&user, &shared, vec![msg(&format!("sa{i}"))])
            .await
            .unwrap();
        sb.append(&user, &shared, vec![msg(&format!("sb{i}"))])
            .await
            .unwrap();
        observer.look(&sa, &user).await;
        observer.look(&sb, &user).await;
    }
    let first = sa.select(&user, &inbox).await.unwrap().messages[0].uid;
    sa.store_flags(
        &user,
        &inbox,
        &[first],
        &FlagChange {
            op: FlagOp::Add,
            flags: [Flag::Seen].into_iter().collect(),
        },
        None,
    )
    .await
    .unwrap();
    sb.store_flags(
        &user,
        &inbox,
        &[first],
        &FlagChange {
            op: FlagOp::Add,
            flags: [Flag::Answered].into_iter().collect(),
        },
        None,
    )
    .await
    .unwrap();

    // Heal; watch both sides while they settle.
    to_b.set_cut(false);
    to_a.set_cut(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    let d = loop {
        observer.look(&sa, &user).await;
        observer.look(&sb, &user).await;
        let (x, y) = (dump(&sa, &user).await, dump(&sb, &user).await);
        let settled = sa.stats(&user).await.unwrap().hidden_messages == 0
            && sb.stats(&user).await.unwrap().hidden_messages == 0;
        if x == y && settled {
            break x;
        }
        assert!(Instant::now() < deadline, "no convergence:\n{x:#?}\n{y:#?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    let final_dump = converge(&[sa.clone(), sb.clone()], &user, Duration::from_secs(5)).await;
    assert_eq!(d, final_dump);
    let (inbox_snap, _) = &d.mailboxes["INBOX"];
    assert_eq!(
        inbox_snap.messages.len(),
        13,
        "every acknowledged append kept"
    );
    let (shared_snap, _) = &d.mailboxes["Shared"];
    assert_eq!(
        shared_snap.messages.len(),
        12,
        "one Shared, mail from both sides"
    );
    let f = &inbox_snap.messages[0].flags;
    assert!(
        f.contains(&Flag::Seen) && f.contains(&Flag::Answered),
        "flags merged: {f:?}"
    );
    observer.look(&sa, &user).await;
    observer.look(&sb, &user).await;
    na.shutdown().await;
    nb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_replica_waits_for_a_reachable_peer_not_for_one_known_down() {
    let pki_dir = tempfile::tempdir().unwrap();
    let a = Spec { name: "a1", id: 1 };
    let b = Spec { name: "b2", id: 2 };
    pki::generate(pki_dir.path(), &["a1".into(), "b2".into()], &[], false).unwrap();
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to_b = Proxy::start(lb.local_addr().unwrap()).await;
    let to_a = Proxy::start(la.local_addr().unwrap()).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Long enough that a loaded CI machine still gets the peer's ack before it, and
    // that five writes waiting it each could not pass for writes that did not.
    let timeout = Duration::from_secs(20);
    let ca = config(
        &a,
        da.path(),
        vec![(&b, to_b.addr.to_string())],
        AckMode::Replica,
        timeout,
    );
    let cb = config(
        &b,
        db.path(),
        vec![(&a, to_a.addr.to_string())],
        AckMode::Replica,
        timeout,
    );
    let na = Node::start(ca, tls(pki_dir.path(), "a1"), la)
        .await
        .unwrap();
    let nb = Node::start(cb, tls(pki_dir.path(), "b2"), lb)
        .await
        .unwrap();
    let (sa, sb) = (na.store(), nb.store());
    let user = UserId::new("carol").unwrap();
    let inbox = MailboxName::inbox();
    sa.open_user(&user).await.unwrap();
    // With the peer up, the answer means the peer holds it.
    let out = sa
        .append(&user, &inbox, vec![msg("replicated")])
        .await
        .unwrap();
    let on_b = sb.fetch(&user, &inbox, &out.uids).await.unwrap();
    assert_eq!(on_b.len(), 1, "acknowledged only once the peer held it");
    assert_eq!(on_b[0].bytes, msg("replicated").body);

    // The peer unreachable and known to be: writes are not held up by the timeout
    // (each would wait it whole), they are answered on the local fsync and counted.
    to_b.set_cut(true);
    let seen_down = Instant::now();
    while na.status().peers.iter().any(|p| p.connected) {
        assert!(
            seen_down.elapsed() < Duration::from_secs(20),
            "the cut was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = sa.local_only_acks();
    let writes = async {
        let mut uids = Vec::new();
        for i in 0..5 {
            let out = sa
                .append(&user, &inbox, vec![msg(&format!("local only {i}"))])
                .await
                .unwrap();
            uids.extend(out.uids);
        }
        uids
    };
    // Five writes in less than one timeout: none of them waited for the dead peer.
    let uids = tokio::time::timeout(timeout, writes)
        .await
        .expect("writes waited for a peer known to be down");
    assert_eq!(sa.local_only_acks() - before, 5);
    assert!(sb.fetch(&user, &inbox, &uids).await.unwrap().is_empty());
    // ack = Local does not wait.
    na.shutdown().await;
    drop(sa);
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut ca = config(
        &a,
        da.path(),
        vec![(&b, to_b.addr.to_string())],
        AckMode::Local,
        Duration::from_secs(30),
    );
    ca.ack = AckMode::Local;
    let na = Node::start(ca, tls(pki_dir.path(), "a1"), la)
        .await
        .unwrap();
    let started = Instant::now();
    na.store()
        .append(&user, &inbox, vec![msg("fast")])
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(
        na.store()
            .select(&user, &inbox)
            .await
            .unwrap()
            .messages
            .len(),
        7
    );
    na.shutdown().await;
    nb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_and_new_nodes_catch_up_then_say_so() {
    let pki_dir = tempfile::tempdir().unwrap();
    let a = Spec { name: "ra", id: 1 };
    let b = Spec { name: "rb", id: 2 };
    let c = Spec { name: "rc", id: 3 };
    pki::generate(
        pki_dir.path(),
        &["ra".into(), "rb".into(), "rc".into()],
        &[],
        false,
    )
    .unwrap();
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr_a, addr_b, addr_c) = (
        la.local_addr().unwrap(),
        lb.local_addr().unwrap(),
        lc.local_addr().unwrap(),
    );
    drop(lc); // rc joins later
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mk_a = || {
        let mut c = config(
            &a,
            da.path(),
            vec![(&b, addr_b.to_string()), (&c, addr_c.to_string())],
            AckMode::Local,
            Duration::from_millis(200),
        );
        // A small log: rc, far behind, will need snapshots.
        c.segment_bytes = 4096;
        c.checkpoint_every = 10;
        c.max_lag_records = 5;
        // New nodes, writing before rc ever ran: their empty data directories are new,
        // not lost ones (which wait for every peer, replicated_restart_empty.rs).
        c.trust_empty_data_dir = true;
        c
    };
    let mk_b = || {
        let mut c = config(
            &b,
            db.path(),
            vec![(&a, addr_a.to_string()), (&c, addr_c.to_string())],
            AckMode::Local,
            Duration::from_millis(200),
        );
        c.trust_empty_data_dir = true;
        c
    };
    let na = Node::start(mk_a(), tls(pki_dir.path(), "ra"), la)
        .await
        .unwrap();
    let nb = Node::start(mk_b(), tls(pki_dir.path(), "rb"), lb)
        .await
        .unwrap();
    let user = UserId::new("dave").unwrap();
    let inbox = MailboxName::inbox();
    na.store().open_user(&user).await.unwrap();
    for i in 0..5 {
        na.store()
            .append(&user, &inbox, vec![msg(&format!("m{i}"))])
            .await
            .unwrap();
    }
    converge(&[na.store(), nb.store()], &user, Duration::from_secs(10)).await;

    // rb dies without a clean stop; ra keeps writing.
    nb.kill().await;
    for i in 5..40 {
        na.store()
            .append(&user, &inbox, vec![msg(&format!("m{i}"))])
            .await
            .unwrap();
    }
    na.store().checkpoint().await.unwrap();
    // rb comes back on its address and catches up before it says so.
    let lb = TcpListener::bind(addr_b).await.unwrap();
    let nb = Node::start(mk_b(), tls(pki_dir.path(), "rb"), lb)
        .await
        .unwrap();
    assert!(
        nb.status()
            .peers
            .iter()
            .all(|p| p.name != "ra" || !p.delivered),
        "not delivered before any link ran"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = nb.status();
        let from_a = st.peers.iter().find(|p| p.name == "ra").unwrap();
        if from_a.delivered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rb never caught up with ra: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Caught up with ra means ra's backlog is here, now.
    let want = dump(&na.store(), &user).await;
    assert_eq!(dump(&nb.store(), &user).await, want);
    assert_eq!(want.mailboxes["INBOX"].0.messages.len(), 40);

    // rc is new, and ra's log no longer reaches back to the start: snapshots.
    na.store().checkpoint().await.unwrap();
    assert!(
        na.status().log_start > 1,
        "ra's log was truncated past rc's cursor: {:?}",
        na.status()
    );
    let lc = TcpListener::bind(addr_c).await.unwrap();
    let cc = config(
        &c,
        dc.path(),
        vec![(&a, addr_a.to_string()), (&b, addr_b.to_string())],
        AckMode::Local,
        Duration::from_millis(200),
    );
    let nc = Node::start(cc, tls(pki_dir.path(), "rc"), lc)
        .await
        .unwrap();
    assert!(
        nc.wait_caught_up(Duration::from_secs(20)).await,
        "{:?}",
        nc.status()
    );
    let d = converge(
        &[na.store(), nb.store(), nc.store()],
        &user,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(d.mailboxes["INBOX"].0.messages.len(), 40);
    // rc can write, and its write reaches the others.
    nc.store()
        .append(&user, &inbox, vec![msg("from rc")])
        .await
        .unwrap();
    let d = converge(
        &[na.store(), nb.store(), nc.store()],
        &user,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(d.mailboxes["INBOX"].0.messages.len(), 41);
    assert!(nb.status().caught_up, "{:?}", nb.status());
    for n in [na, nb, nc] {
        n.shutdown().await;
    }
}

/// A body of `size` bytes, different for each `seed`.
fn big_body(seed: u8, size: usize) -> Bytes {
    let mut body = format!("Subject: big {seed}\r\n\r\n").into_bytes();
    let line: Vec<u8> = (0..76u8)
        .map(|i| b'a' + (i.wrapping_add(seed)) % 26)
        .chain(*b"\r\n")
        .collect();
    while body.len() + line.len() <= size {
        body.extend_from_slice(&line);
    }
    body.resize(size, b'x');
    Bytes::from(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_a_frame_in_one_write_replicate() {
    let pki_dir = tempfile::tempdir().unwrap();
    let a = Spec { name: "a1", id: 1 };
    let b = Spec { name: "b2", id: 2 };
    pki::generate(pki_dir.path(), &["a1".into(), "b2".into()], &[], false).unwrap();
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr_a, addr_b) = (
        la.local_addr().unwrap().to_string(),
        lb.local_addr().unwrap().to_string(),
    );
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = config(
        &a,
        da.path(),
        vec![(&b, addr_b)],
        AckMode::Local,
        Duration::from_secs(5),
    );
    let cb = config(
        &b,
        db.path(),
        vec![(&a, addr_a)],
        AckMode::Local,
        Duration::from_secs(5),
    );
    let na = Node::start(ca, tls(pki_dir.path(), "a1"), la)
        .await
        .unwrap();
    let nb = Node::start(cb, tls(pki_dir.path(), "b2"), lb)
        .await
        .unwrap();
    let (sa, sb) = (na.store(), nb.store());
    let user = UserId::new("dave").unwrap();
    let inbox = MailboxName::inbox();
    sa.open_user(&user).await.unwrap();
    let bodies = [
        big_body(1, 45 << 20),
        big_body(2, 45 << 20),
        big_body(3, 90 << 20),
    ];
    assert!(bodies[2].len() > pluto_backends::net::MAX_FRAME);
    // One write, one log record, three bodies: 180 MiB, the last alone more than a
    // frame holds; they go in pieces of at most MAX_CHUNK.
    sa.append(
        &user,
        &inbox,
        bodies
            .iter()
            .map(|body| NewMessage {
                body: body.clone(),
                flags: Flags::new(),
                internal_date: None,
            })
            .collect(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let got = loop {
        let snap = sb.select(&user, &inbox).await;
        if let Ok(snap) = snap {
            if snap.messages.len() == 3 {
                let uids: Vec<Uid> = snap.messages.iter().map(|m| m.uid).collect();
                break sb.fetch(&user, &inbox, &uids).await.unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the big messages never reached the peer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (got, sent) in got.iter().zip(&bodies) {
        assert!(got.bytes == *sent, "a body arrived different");
    }
    // The link carries on: a small write after them arrives too.
    sa.append(&user, &inbox, vec![msg("after")]).await.unwrap();
    converge(&[sa.clone(), sb.clone()], &user, Duration::from_secs(60)).await;
    na.shutdown().await;
    nb.shutdown().await;
}

/// A replica that holds a user but has no state for them yet (new, or it lost its data)
/// and gets a session before it caught up creates the user's default mailboxes itself:
/// once the replicas meet, the user's UIDVALIDITYs and UIDs are what the first replica's
/// clients had seen (issue: "a user's UIDVALIDITY must never change because a new
/// replica appeared").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_opening_a_user_before_catching_up_changes_no_uidvalidity() {
    let ProxiedPair {
        a: na,
        b: nb,
        to_a,
        to_b,
        _dirs,
    } = ProxiedPair::start(AckMode::Local, true).await;
    let (sa, sb) = (na.store(), nb.store());
    let user = UserId::new("carol").unwrap();
    let inbox = MailboxName::inbox();

    sa.open_user(&user).await.unwrap();
    sa.append(&user, &inbox, vec![msg("one"), msg("two")])
        .await
        .unwrap();
    let mut observer = Observer::default();
    observer.look(&sa, &user).await;
    let before = sa.status(&user, &inbox).await.unwrap().uid_validity;
    let listed_before = sa.list(&user).await.unwrap();

    // b knows nothing of carol yet and a session reaches it.
    sb.open_user(&user).await.unwrap();
    assert_eq!(sb.status(&user, &inbox).await.unwrap().uid_validity, before);

    to_b.set_cut(false);
    to_a.set_cut(false);
    converge(&[sa.clone(), sb.clone()], &user, Duration::from_secs(20)).await;
    for s in [&sa, &sb] {
        assert_eq!(s.status(&user, &inbox).await.unwrap().uid_validity, before);
        assert_eq!(
            s.list(&user).await.unwrap().mailboxes,
            listed_before.mailboxes
        );
        observer.look(s, &user).await;
    }
}

/// Issue 16: a body whose last reference is gone is removed on every replica once no
/// replica can still need it — after the removal is stable (every replica applied it)
/// and compaction forgot it; a body another message still names stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_no_replica_needs_are_removed_on_every_replica() {
    let pair = ProxiedPair::start_with(AckMode::Replica, false, |c| {
        c.body_grace = Duration::ZERO;
    })
    .await;
    let (a, b) = (pair.a.store(), pair.b.store());
    let user = UserId::new("erin").unwrap();
    let inbox = MailboxName::inbox();
    let kept = MailboxName::new("Kept").unwrap();
    a.open_user(&user).await.unwrap();
    a.create_mailbox(&user, &kept, None).await.unwrap();
    let mut uids = Vec::new();
    for i in 0..6 {
        let out = a
            .append(&user, &inbox, vec![msg(&format!("freed {i}"))])
            .await
            .unwrap();
        uids.extend(out.uids);
    }
    // One body is also named by a copy in another mailbox.
    a.copy(&user, &inbox, &uids[..1], &kept).await.unwrap();
    converge(&[a.clone(), b.clone()], &user, Duration::from_secs(10)).await;
    let stored = |s: &ReplicatedStore| s.blob_usage().unwrap();
    assert_eq!(stored(&a).bodies, 6);
    assert_eq!(stored(&b).bodies, 6);

    let all: Vec<Flag> = vec![Flag::Deleted];
    a.store_flags(
        &user,
        &inbox,
        &uids,
        &FlagChange::add(all.into_iter().collect()),
        None,
    )
    .await
    .unwrap();
    a.expunge(&user, &inbox, Some(&uids)).await.unwrap();
    converge(&[a.clone(), b.clone()], &user, Duration::from_secs(10)).await;
    // The removal becomes stable once each has heard the other's progress; the next
    // checkpoints compact and sweep.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        a.checkpoint().await.unwrap();
        b.checkpoint().await.unwrap();
        if stored(&a).bodies == 1 && stored(&b).bodies == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bodies left: {:?} on wa, {:?} on sb",
            stored(&a),
            stored(&b)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The copy still reads back on both.
    for s in [&a, &b] {
        assert_eq!(dump(s, &user).await.mailboxes["Kept"].0.messages.len(), 1);
        assert_eq!(dump(s, &user).await.bodies(), [msg("freed 0").body].into());
    }
}
