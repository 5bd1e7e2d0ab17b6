//! Membership changes of running replicated nodes (loopback, real mutual TLS): a node
//! added with `Node::reconfigure` receives the whole state of the users that move to
//! it and says it is caught up only once it holds them; a removed node's users move to
//! a peer whose cursor was already past their records, and that peer gets them whole;
//! writes that keep flowing during a reconfiguration all reach every replica; a known
//! peer's replica id cannot change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod replicated_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pluto_backends::net::pki;
use pluto_backends::replicated::{
    AckMode, Node, NodeConfig, PeerConfig, ReplicasOf, ReplicatedStore,
};
use pluto_backends::*;
use replicated_support::{converge, dump, msg, tls};
use tokio::net::TcpListener;

/// A node of the test cluster: name, replica id, replication address.
#[derive(Clone)]
struct Spec {
    name: &'static str,
    id: u16,
    addr: SocketAddr,
}

/// Which nodes hold a user (the whole replica set, the node itself included).
type Placement = fn(&UserId) -> Vec<&'static str>;

/// `replicas_of` as a node sees a placement: the set without itself.
fn replicas_of(placement: Placement, me: &'static str) -> ReplicasOf {
    Arc::new(move |user| {
        placement(user)
            .into_iter()
            .filter(|n| *n != me)
            .map(str::to_owned)
            .collect()
    })
}

fn peers(me: &Spec, cluster: &[&Spec]) -> Vec<PeerConfig> {
    cluster
        .iter()
        .filter(|s| s.name != me.name)
        .map(|s| PeerConfig {
            name: s.name.to_owned(),
            replica_id: s.id,
            replication_addr: s.addr.to_string(),
        })
        .collect()
}

fn config(me: &Spec, dir: &Path, cluster: &[&Spec], placement: Placement) -> NodeConfig {
    let mut c = NodeConfig::new(me.name, me.id, dir);
    c.peers = peers(me, cluster);
    c.replicas_of = replicas_of(placement, me.name);
    c.ack = AckMode::Replica;
    c.ack_timeout = Duration::from_secs(1);
    c.link_timeout = Duration::from_millis(800);
    c
}

/// Starts `me` as a member of `cluster` with `placement`, its certificate from `pki`.
async fn start(
    me: &Spec,
    dir: &Path,
    cluster: &[&Spec],
    placement: Placement,
    pki: &Path,
    listener: TcpListener,
) -> Node {
    Node::start(
        config(me, dir, cluster, placement),
        tls(pki, me.name),
        listener,
    )
    .await
    .unwrap()
}

async fn reconfigure(node: &Node, me: &Spec, cluster: &[&Spec], placement: Placement) {
    node.reconfigure(peers(me, cluster), replicas_of(placement, me.name))
        .await
        .unwrap();
}

fn user(i: usize) -> UserId {
    UserId::new(format!("u{i}")).unwrap()
}

fn number(user: &UserId) -> usize {
    user.as_str()[1..].parse().unwrap()
}

/// Waits until every node's log is acknowledged by every peer (cursors at the head).
async fn drained(nodes: &[&Node], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let lagging: Vec<_> = nodes
            .iter()
            .flat_map(|n| n.status().peers)
            .filter(|p| p.ops_behind > 0 || !p.connected)
            .collect();
        if lagging.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "lag did not drain: {lagging:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Some history for a user, written on `s`: a mailbox, appends, flags, an expunge.
async fn history(s: &ReplicatedStore, user: &UserId) {
    let inbox = MailboxName::inbox();
    s.open_user(user).await.unwrap();
    let work = MailboxName::new("Work").unwrap();
    s.create_mailbox(user, &work, None).await.unwrap();
    let out = s
        .append(
            user,
            &inbox,
            (0..4).map(|i| msg(&format!("{user} old {i}"))).collect(),
        )
        .await
        .unwrap();
    s.append(user, &work, vec![msg(&format!("{user} work"))])
        .await
        .unwrap();
    s.store_flags(
        user,
        &inbox,
        &out.uids[..2],
        &FlagChange {
            op: FlagOp::Add,
            flags: [Flag::Seen, Flag::Deleted].into_iter().collect(),
        },
        None,
    )
    .await
    .unwrap();
    s.expunge(user, &inbox, Some(&out.uids[..1])).await.unwrap();
    s.store_flags(
        user,
        &inbox,
        &out.uids[2..],
        &FlagChange {
            op: FlagOp::Add,
            flags: [Flag::Flagged].into_iter().collect(),
        },
        None,
    )
    .await
    .unwrap();
}

/// Three nodes' names, certificates and listeners (bound now, so addresses are known).
async fn cluster3(
    pki_dir: &Path,
    names: [&'static str; 3],
) -> ([Spec; 3], [Option<TcpListener>; 3]) {
    pki::generate(pki_dir, &names.map(String::from), &[], false).unwrap();
    let mut listeners = Vec::new();
    for _ in names {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let specs = [0, 1, 2].map(|i| Spec {
        name: names[i],
        id: u16::try_from(i + 1).unwrap(),
        addr: listeners[i].local_addr().unwrap(),
    });
    let mut it = listeners.into_iter().map(Some);
    (
        specs,
        [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()],
    )
}

const USERS: usize = 6;

// (a) ------------------------------------------------------------------ adding a node

fn a_old(_: &UserId) -> Vec<&'static str> {
    vec!["ja", "jb"]
}

/// Even users move to the new node jc (its owner), jb no longer holds them.
fn a_new(user: &UserId) -> Vec<&'static str> {
    if number(user) % 2 == 0 {
        vec!["jc", "ja"]
    } else {
        vec!["ja", "jb"]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_node_gets_its_users_whole_before_it_says_it_is_caught_up() {
    let pki_dir = tempfile::tempdir().unwrap();
    let (specs, mut listeners) = cluster3(pki_dir.path(), ["ja", "jb", "jc"]).await;
    let [a, b, c] = &specs;
    let dirs: Vec<_> = specs.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let na = start(
        a,
        dirs[0].path(),
        &[a, b],
        a_old,
        pki_dir.path(),
        listeners[0].take().unwrap(),
    )
    .await;
    let nb = start(
        b,
        dirs[1].path(),
        &[a, b],
        a_old,
        pki_dir.path(),
        listeners[1].take().unwrap(),
    )
    .await;
    for i in 0..USERS {
        history(&na.store(), &user(i)).await;
        // Some of it from the other replica, so both origins are in the state.
        nb.store()
            .append(&user(i), &MailboxName::inbox(), vec![msg("from jb")])
            .await
            .unwrap();
    }
    for i in 0..USERS {
        converge(&[na.store(), nb.store()], &user(i), Duration::from_secs(20)).await;
    }
    drained(&[&na, &nb], Duration::from_secs(20)).await;

    // jc starts alone, then every node is told the new configuration.
    let nc = Node::start(
        NodeConfig::new(c.name, c.id, dirs[2].path()),
        tls(pki_dir.path(), "jc"),
        listeners[2].take().unwrap(),
    )
    .await
    .unwrap();
    reconfigure(&nc, c, &[a, b, c], a_new).await;
    assert!(
        !nc.status().caught_up,
        "jc is not caught up before its peers even know it: {:?}",
        nc.status()
    );
    reconfigure(&na, a, &[a, b, c], a_new).await;
    reconfigure(&nb, b, &[a, b, c], a_new).await;

    // The first moment jc says it is caught up, the moved users are whole there.
    assert!(
        nc.wait_caught_up(Duration::from_secs(30)).await,
        "{:?}",
        nc.status()
    );
    let st = nc.status();
    assert!(
        st.peers
            .iter()
            .all(|p| p.moves_pending == Some(0) && p.moved),
        "{st:?}"
    );
    for i in (0..USERS).step_by(2) {
        let want = dump(&na.store(), &user(i)).await;
        assert_eq!(want.messages(), 5, "{want:#?}");
        assert_eq!(
            dump(&nc.store(), &user(i)).await,
            want,
            "{} is whole on jc when it says it is caught up",
            user(i)
        );
    }
    // Users that did not move are not sent to jc.
    for i in (1..USERS).step_by(2) {
        assert!(nc.store().version(&user(i)).await.is_none(), "u{i} on jc");
    }

    // jc takes writes for its users; they reach ja, and not jb, which let them go.
    for i in (0..USERS).step_by(2) {
        nc.store()
            .append(&user(i), &MailboxName::inbox(), vec![msg("on jc")])
            .await
            .unwrap();
    }
    for i in (0..USERS).step_by(2) {
        let d = converge(&[nc.store(), na.store()], &user(i), Duration::from_secs(20)).await;
        assert_eq!(d.messages(), 6);
        assert!(d.bodies().contains(&msg("on jc").body));
    }
    drained(&[&na, &nb, &nc], Duration::from_secs(20)).await;
    for i in (0..USERS).step_by(2) {
        assert_eq!(dump(&nb.store(), &user(i)).await.messages(), 5);
    }
    // ja's writes for users that stayed reach jb, not jc.
    na.store()
        .append(&user(1), &MailboxName::inbox(), vec![msg("on ja")])
        .await
        .unwrap();
    let d = converge(&[na.store(), nb.store()], &user(1), Duration::from_secs(20)).await;
    assert_eq!(d.messages(), 6);
    drained(&[&na, &nb, &nc], Duration::from_secs(20)).await;
    assert!(nc.store().version(&user(1)).await.is_none());
    for n in [&na, &nb] {
        assert!(
            n.wait_caught_up(Duration::from_secs(10)).await,
            "{:?}",
            n.status()
        );
    }
    for n in [na, nb, nc] {
        n.shutdown().await;
    }
}

// (b) ---------------------------------------------------------------- removing a node

/// Even users live on kc (their owner) and ka; odd ones on ka and kb.
fn b_old(user: &UserId) -> Vec<&'static str> {
    if number(user) % 2 == 0 {
        vec!["kc", "ka"]
    } else {
        vec!["ka", "kb"]
    }
}

/// kc is gone: everyone lives on ka and kb.
fn b_new(_: &UserId) -> Vec<&'static str> {
    vec!["ka", "kb"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_nodes_users_reach_a_peer_whose_cursor_was_past_them() {
    let pki_dir = tempfile::tempdir().unwrap();
    let (specs, mut listeners) = cluster3(pki_dir.path(), ["ka", "kb", "kc"]).await;
    let [a, b, c] = &specs;
    let all = [a, b, c];
    let dirs: Vec<_> = specs.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        nodes.push(
            start(
                s,
                dirs[i].path(),
                &all,
                b_old,
                pki_dir.path(),
                listeners[i].take().unwrap(),
            )
            .await,
        );
    }
    let [na, nb, nc]: [Node; 3] = nodes.try_into().map_err(|_| ()).unwrap();
    for i in 0..USERS {
        let owner = if i % 2 == 0 { &nc } else { &na };
        history(&owner.store(), &user(i)).await;
        na.store()
            .append(&user(i), &MailboxName::inbox(), vec![msg("from ka")])
            .await
            .unwrap();
    }
    for i in 0..USERS {
        let holders = if i % 2 == 0 {
            [nc.store(), na.store()]
        } else {
            [na.store(), nb.store()]
        };
        converge(&holders, &user(i), Duration::from_secs(20)).await;
    }
    // Every cursor is at its log's head: kb's cursors on ka and kc are past every
    // record of the even users, which were filtered out, never sent.
    drained(&[&na, &nb, &nc], Duration::from_secs(20)).await;
    for i in (0..USERS).step_by(2) {
        assert!(nb.store().version(&user(i)).await.is_none(), "u{i} on kb");
    }

    // kc is decommissioned; kb is told, then ka.
    nc.shutdown().await;
    reconfigure(&nb, b, &[a, b], b_new).await;
    assert!(
        !nb.status().caught_up,
        "kb had delivered ka's backlog long ago, yet ka has not reported its moves: {:?}",
        nb.status()
    );
    reconfigure(&na, a, &[a, b], b_new).await;
    assert!(
        nb.wait_caught_up(Duration::from_secs(30)).await,
        "{:?}",
        nb.status()
    );
    assert_eq!(
        nb.status()
            .peers
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["ka"],
        "kc's link is gone"
    );
    for i in (0..USERS).step_by(2) {
        let want = dump(&na.store(), &user(i)).await;
        assert_eq!(want.messages(), 5, "{want:#?}");
        assert_eq!(
            dump(&nb.store(), &user(i)).await,
            want,
            "{} is whole on kb when it says it is caught up",
            user(i)
        );
    }
    // kb serves them now: its writes reach ka.
    for i in (0..USERS).step_by(2) {
        nb.store()
            .append(&user(i), &MailboxName::inbox(), vec![msg("on kb")])
            .await
            .unwrap();
        let d = converge(&[na.store(), nb.store()], &user(i), Duration::from_secs(20)).await;
        assert_eq!(d.messages(), 6);
    }
    for n in [na, nb] {
        n.shutdown().await;
    }
}

/// The moves are durable: ka is reconfigured while kb is down, and crashes before it
/// could send them; restarted, it still sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_owed_to_a_down_peer_survive_a_restart() {
    let pki_dir = tempfile::tempdir().unwrap();
    let (specs, mut listeners) = cluster3(pki_dir.path(), ["ka", "kb", "kc"]).await;
    let [a, b, c] = &specs;
    let all = [a, b, c];
    let dirs: Vec<_> = specs.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        nodes.push(
            start(
                s,
                dirs[i].path(),
                &all,
                b_old,
                pki_dir.path(),
                listeners[i].take().unwrap(),
            )
            .await,
        );
    }
    let [na, nb, nc]: [Node; 3] = nodes.try_into().map_err(|_| ()).unwrap();
    for i in (0..USERS).step_by(2) {
        history(&nc.store(), &user(i)).await;
        converge(&[nc.store(), na.store()], &user(i), Duration::from_secs(20)).await;
    }
    drained(&[&na, &nb, &nc], Duration::from_secs(20)).await;
    nb.shutdown().await;
    nc.shutdown().await;
    reconfigure(&na, a, &[a, b], b_new).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A crash: no checkpoint, so only what the reconfiguration wrote is on disk.
    na.kill().await;

    let na = start(
        a,
        dirs[0].path(),
        &[a, b],
        b_new,
        pki_dir.path(),
        TcpListener::bind(a.addr).await.unwrap(),
    )
    .await;
    let nb = start(
        b,
        dirs[1].path(),
        &[a, b],
        b_new,
        pki_dir.path(),
        TcpListener::bind(b.addr).await.unwrap(),
    )
    .await;
    assert!(
        nb.wait_caught_up(Duration::from_secs(30)).await,
        "{:?}",
        nb.status()
    );
    for i in (0..USERS).step_by(2) {
        let want = dump(&na.store(), &user(i)).await;
        assert_eq!(want.messages(), 4, "{want:#?}");
        assert_eq!(dump(&nb.store(), &user(i)).await, want, "{}", user(i));
    }
    for n in [na, nb] {
        n.shutdown().await;
    }
}

// (c) ------------------------------------------------------ writes during the change

/// Even users on ma and mb; odd ones on ma alone.
fn c_old(user: &UserId) -> Vec<&'static str> {
    if number(user) % 2 == 0 {
        vec!["ma", "mb"]
    } else {
        vec!["ma"]
    }
}

/// Even users move to the new node mc; odd ones gain mb, whose cursor on ma is past
/// all their records.
fn c_new(user: &UserId) -> Vec<&'static str> {
    if number(user) % 2 == 0 {
        vec!["mc", "ma"]
    } else {
        vec!["ma", "mb"]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_a_reconfiguration_all_reach_every_replica() {
    let pki_dir = tempfile::tempdir().unwrap();
    let (specs, mut listeners) = cluster3(pki_dir.path(), ["ma", "mb", "mc"]).await;
    let [a, b, c] = &specs;
    let dirs: Vec<_> = specs.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let na = start(
        a,
        dirs[0].path(),
        &[a, b],
        c_old,
        pki_dir.path(),
        listeners[0].take().unwrap(),
    )
    .await;
    let nb = start(
        b,
        dirs[1].path(),
        &[a, b],
        c_old,
        pki_dir.path(),
        listeners[1].take().unwrap(),
    )
    .await;
    for i in 0..USERS {
        history(&na.store(), &user(i)).await;
    }
    drained(&[&na, &nb], Duration::from_secs(20)).await;
    for i in (1..USERS).step_by(2) {
        assert!(nb.store().version(&user(i)).await.is_none(), "u{i} on mb");
    }

    // Writers, until told to stop, each keeping what was acknowledged: on ma for
    // every user (ma holds all, before and after), on mb for the users it holds
    // before (and lets go of: its writes must still reach their new holders).
    let stop = Arc::new(AtomicBool::new(false));
    let writer = |store: Arc<ReplicatedStore>, tag: &'static str, users: Vec<UserId>| {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acked: Vec<(UserId, Bytes)> = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let u = users[n % users.len()].clone();
                let m = msg(&format!("{tag} {n}"));
                let body = m.body.clone();
                store
                    .append(&u, &MailboxName::inbox(), vec![m])
                    .await
                    .unwrap();
                acked.push((u, body));
                n += 1;
            }
            acked
        })
    };
    let wa = writer(na.store(), "ma", (0..USERS).map(user).collect());
    let wb = writer(nb.store(), "mb", (0..USERS).step_by(2).map(user).collect());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let nc = Node::start(
        NodeConfig::new(c.name, c.id, dirs[2].path()),
        tls(pki_dir.path(), "mc"),
        listeners[2].take().unwrap(),
    )
    .await
    .unwrap();
    reconfigure(&nc, c, &[a, b, c], c_new).await;
    reconfigure(&na, a, &[a, b, c], c_new).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    reconfigure(&nb, b, &[a, b, c], c_new).await;
    for n in [&nb, &nc] {
        assert!(
            n.wait_caught_up(Duration::from_secs(30)).await,
            "{:?}",
            n.status()
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Release);
    let mut acked = wa.await.unwrap();
    let from_b = wb.await.unwrap();
    assert!(
        acked.len() > USERS && from_b.len() > USERS / 2,
        "the writers ran: {} and {} appends",
        acked.len(),
        from_b.len()
    );
    acked.extend(from_b);

    let nodes: BTreeMap<&str, Arc<ReplicatedStore>> =
        [("ma", na.store()), ("mb", nb.store()), ("mc", nc.store())]
            .into_iter()
            .collect();
    for i in 0..USERS {
        let u = user(i);
        let holders: Vec<_> = c_new(&u).iter().map(|n| nodes[n].clone()).collect();
        let d = converge(&holders, &u, Duration::from_secs(30)).await;
        let bodies = d.bodies();
        // The history, and every acknowledged append.
        assert!(bodies.contains(&msg(&format!("{u} work")).body), "{d:#?}");
        for (_, body) in acked.iter().filter(|(w, _)| *w == u) {
            assert!(
                bodies.contains(body),
                "{u}: an acknowledged append is missing: {body:?}"
            );
        }
    }
    for n in [na, nb, nc] {
        n.shutdown().await;
    }
}

// ------------------------------------------------------------------ refusals

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_peers_replica_id_cannot_change() {
    let pki_dir = tempfile::tempdir().unwrap();
    let (specs, mut listeners) = cluster3(pki_dir.path(), ["la", "lb", "lc"]).await;
    let [a, b, c] = &specs;
    let dir = tempfile::tempdir().unwrap();
    let na = start(
        a,
        dir.path(),
        &[a, b],
        a_old,
        pki_dir.path(),
        listeners[0].take().unwrap(),
    )
    .await;
    // lb again, with another id.
    let mut renumbered = peers(a, &[a, b]);
    renumbered[0].replica_id = 5;
    let err = na
        .reconfigure(renumbered, replicas_of(a_old, "la"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("replica id"), "{err}");
    // A new node taking lb's id.
    let mut taken = peers(a, &[a, c]);
    taken[0].replica_id = b.id;
    let err = na
        .reconfigure(taken, replicas_of(a_old, "la"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("belongs to lb"), "{err}");
    // Nothing changed.
    let names: Vec<String> = na.status().peers.into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["lb"]);
    na.shutdown().await;
}
