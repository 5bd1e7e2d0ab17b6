//! The simulated world: replicas with a durable log and snapshots, a network that
//! delivers in any order with duplicates, partitions, crashes, and an observer that
//! checks the invariants at every step and at quiescence.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use pluto_crdt::{
    BodyRef, Changes, Config, Flag, FlagChange, FlagSet, InternalDate, MailboxId, MessageData,
    MessageId, ModSeq, Op, OpKind, ReplicaId, Uid, UserState,
};

/// Mailbox names the clients use: a hierarchy, so renames carry children.
pub const NAMES: [&str; 4] = ["INBOX", "Work", "Work/Old", "Trash"];

#[derive(Clone, Debug)]
pub enum ClientOp {
    Create {
        name: u8,
    },
    Delete {
        name: u8,
    },
    Rename {
        from: u8,
        to: u8,
    },
    Subscribe {
        name: u8,
    },
    Unsubscribe {
        name: u8,
    },
    Append {
        mailbox: u8,
        count: u8,
    },
    Copy {
        from: u8,
        pick: u16,
        to: u8,
    },
    Move {
        from: u8,
        pick: u16,
        to: u8,
    },
    Expunge {
        mailbox: u8,
        pick: u16,
    },
    Store {
        mailbox: u8,
        pick: u16,
        flag: u8,
        mode: u8,
    },
}

#[derive(Clone, Debug)]
pub enum Action {
    Client {
        replica: u8,
        op: ClientOp,
    },
    Deliver {
        pick: u16,
    },
    Duplicate {
        pick: u16,
    },
    /// Cuts every link between the replicas whose bit is set and the others.
    Partition {
        mask: u8,
    },
    Heal,
    Crash {
        replica: u8,
    },
    Snapshot {
        replica: u8,
    },
    /// Replicas that can reach each other exchange progress; all compact.
    Compact,
}

struct Node {
    state: UserState,
    snapshot: Option<Vec<u8>>,
    /// Durable steps since the snapshot, each as it was written.
    log: Vec<Vec<Op>>,
}

struct Packet {
    from: usize,
    to: usize,
    ops: Vec<Op>,
}

/// What one replica has shown, per UIDVALIDITY.
#[derive(Default)]
struct Shown {
    max_uid: u32,
    pairs: BTreeSet<(u32, MessageId)>,
}

/// A replica's last view of one mailbox incarnation, for the CONDSTORE check.
struct LastView {
    uid_validity: u32,
    highest_modseq: u64,
    messages: BTreeMap<u32, (MessageId, FlagSet)>,
}

pub struct World {
    nodes: Vec<Node>,
    net: Vec<Packet>,
    cut: BTreeSet<(usize, usize)>,
    /// (UIDVALIDITY, UID) → the message any replica ever showed there.
    bound: BTreeMap<(u32, u32), MessageId>,
    shown: Vec<BTreeMap<u32, Shown>>,
    last: Vec<BTreeMap<MailboxId, LastView>>,
    /// Every op any replica issued.
    issued: Vec<Op>,
    /// Messages whose APPEND/COPY/MOVE was answered OK: (mailbox, message).
    acked: Vec<(MailboxId, MessageId)>,
    bodies: u64,
}

pub type Check = Result<(), String>;

/// How often the runs took the paths that matter (summed over all runs).
#[derive(Debug, Default)]
pub struct Coverage {
    pub binds: u64,
    pub floors: u64,
    pub crashes: u64,
    pub tombstones_dropped: u64,
    /// Two live mailboxes claimed one name (one shows as `name~UIDVALIDITY`).
    pub name_conflicts: u64,
}

// Per thread, so that each test counts only its own runs.
thread_local! {
    static BINDS: Cell<u64> = const { Cell::new(0) };
    static FLOORS: Cell<u64> = const { Cell::new(0) };
    static CRASHES: Cell<u64> = const { Cell::new(0) };
    static TOMBSTONES: Cell<u64> = const { Cell::new(0) };
    static NAME_CONFLICTS: Cell<u64> = const { Cell::new(0) };
}

fn count(counter: &'static std::thread::LocalKey<Cell<u64>>, n: u64) {
    counter.with(|c| c.set(c.get() + n));
}

fn count_rules(ops: &[Op]) {
    for op in ops {
        match op.kind {
            OpKind::Bind { .. } => count(&BINDS, 1),
            OpKind::Floor { .. } => count(&FLOORS, 1),
            _ => {}
        }
    }
}

/// This thread's counts.
pub fn coverage() -> Coverage {
    Coverage {
        binds: BINDS.with(Cell::get),
        floors: FLOORS.with(Cell::get),
        crashes: CRASHES.with(Cell::get),
        tombstones_dropped: TOMBSTONES.with(Cell::get),
        name_conflicts: NAME_CONFLICTS.with(Cell::get),
    }
}

fn members(n: usize) -> Vec<ReplicaId> {
    (0..n).map(|i| ReplicaId(i as u16)).collect()
}

fn config(n: usize) -> Config {
    Config {
        uid_stride: 8,
        members: members(n),
    }
}

impl World {
    pub fn new(replicas: usize) -> Result<Self, String> {
        let mut nodes = Vec::new();
        for i in 0..replicas {
            let state =
                UserState::new(ReplicaId(i as u16), config(replicas)).map_err(|e| e.to_string())?;
            nodes.push(Node {
                state,
                snapshot: None,
                log: Vec::new(),
            });
        }
        let mut world = World {
            nodes,
            net: Vec::new(),
            cut: BTreeSet::new(),
            bound: BTreeMap::new(),
            shown: (0..replicas).map(|_| BTreeMap::new()).collect(),
            last: (0..replicas).map(|_| BTreeMap::new()).collect(),
            issued: Vec::new(),
            acked: Vec::new(),
            bodies: 0,
        };
        // Replica 0 starts the user with an INBOX, as the backend does at first login.
        world.client(0, &ClientOp::Create { name: 0 })?;
        world.update_reachability()?;
        Ok(world)
    }

    pub fn step(&mut self, action: &Action) -> Check {
        let n = self.nodes.len();
        match action {
            Action::Client { replica, op } => self.client(*replica as usize % n, op),
            Action::Deliver { pick } => self.deliver(*pick as usize),
            Action::Duplicate { pick } => {
                if !self.net.is_empty() {
                    let p = &self.net[*pick as usize % self.net.len()];
                    let copy = Packet {
                        from: p.from,
                        to: p.to,
                        ops: p.ops.clone(),
                    };
                    self.net.push(copy);
                }
                Ok(())
            }
            Action::Partition { mask } => {
                self.cut.clear();
                for a in 0..n {
                    for b in 0..n {
                        if (mask >> a) & 1 != (mask >> b) & 1 {
                            self.cut.insert((a, b));
                        }
                    }
                }
                self.update_reachability()
            }
            Action::Heal => {
                self.cut.clear();
                self.update_reachability()
            }
            Action::Crash { replica } => self.crash(*replica as usize % n),
            Action::Snapshot { replica } => {
                let node = &mut self.nodes[*replica as usize % n];
                node.snapshot = Some(node.state.encode_snapshot().map_err(|e| e.to_string())?);
                node.log.clear();
                Ok(())
            }
            Action::Compact => {
                self.exchange_progress();
                for node in &mut self.nodes {
                    let report = node.state.compact();
                    count(&TOMBSTONES, report.tombstones_dropped as u64);
                }
                Ok(())
            }
        }
    }

    /// Heals everything, delivers until nothing is in flight, and checks convergence,
    /// durability and compaction.
    pub fn quiesce(&mut self) -> Check {
        self.cut.clear();
        self.update_reachability()?;
        let mut deliveries = 0;
        while !self.net.is_empty() {
            deliveries += 1;
            if deliveries > 100_000 {
                return Err("did not settle: operations kept flowing after healing".into());
            }
            // Deliver in a scrambled but deterministic order.
            self.deliver(deliveries * 7919)?;
        }
        self.check_converged("at quiescence")?;
        for (i, node) in self.nodes.iter().enumerate() {
            let stats = node.state.stats();
            if stats.hidden_messages != 0 || stats.pending_ops != 0 {
                return Err(format!("replica {i} did not settle: {stats:?}"));
            }
        }
        self.check_durability()?;
        // Everyone learns everyone's progress, then compacts.
        self.exchange_progress();
        for node in &mut self.nodes {
            node.state.compact();
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let stats = node.state.stats();
            if stats.tombstones != 0 || stats.dead_mailboxes != 0 || stats.unstable_dots != 0 {
                return Err(format!(
                    "replica {i} kept garbage after compaction: {stats:?}"
                ));
            }
        }
        self.check_converged("after compaction")?;
        for i in 0..self.nodes.len() {
            self.observe(i)?;
        }
        Ok(())
    }

    fn client(&mut self, i: usize, op: &ClientOp) -> Check {
        let name = |k: &u8| NAMES[*k as usize % NAMES.len()];
        let state = &mut self.nodes[i].state;
        let pick_uids = |state: &UserState, mailbox: &str, pick: u16| -> Vec<Uid> {
            match state.snapshot(mailbox) {
                Ok(s) if !s.messages.is_empty() => {
                    // One message, or (pick odd) every message from it on.
                    let at = pick as usize % s.messages.len();
                    let take = if pick % 2 == 1 {
                        s.messages.len()
                    } else {
                        at + 1
                    };
                    s.messages[at..take].iter().map(|m| m.uid).collect()
                }
                _ => Vec::new(),
            }
        };
        // Requests a client could not make (a mailbox that does not exist here) fail
        // cleanly and change nothing.
        let ops = match op {
            ClientOp::Create { name: k } => state.create_mailbox(name(k), None).unwrap_or_default(),
            ClientOp::Delete { name: k } => state.delete_mailbox(name(k)).unwrap_or_default(),
            ClientOp::Rename { from, to } => state
                .rename_mailbox(name(from), name(to))
                .unwrap_or_default(),
            ClientOp::Subscribe { name: k } => state.subscribe(name(k)),
            ClientOp::Unsubscribe { name: k } => state.unsubscribe(name(k)),
            ClientOp::Append { mailbox, count } => {
                let messages = (0..(*count % 3 + 1))
                    .map(|_| {
                        self.bodies += 1;
                        let mut hash = [0u8; 32];
                        hash[..8].copy_from_slice(&self.bodies.to_le_bytes());
                        MessageData {
                            body: BodyRef(hash),
                            size: 100 + self.bodies as u32,
                            internal_date: InternalDate {
                                seconds: 1_700_000_000 + self.bodies as i64,
                                offset_minutes: 60,
                            },
                            flags: FlagSet::new(),
                        }
                    })
                    .collect();
                match state.append(name(mailbox), messages) {
                    Ok(applied) => applied.ops,
                    Err(_) => Vec::new(),
                }
            }
            ClientOp::Copy { from, pick, to } | ClientOp::Move { from, pick, to } => {
                let uids = pick_uids(state, name(from), *pick);
                let result = if matches!(op, ClientOp::Copy { .. }) {
                    state.copy(name(from), &uids, name(to))
                } else {
                    state.move_messages(name(from), &uids, name(to))
                };
                result.map(|a| a.ops).unwrap_or_default()
            }
            ClientOp::Expunge { mailbox, pick } => {
                let uids = pick_uids(state, name(mailbox), *pick);
                state
                    .expunge(name(mailbox), &uids)
                    .map(|a| a.ops)
                    .unwrap_or_default()
            }
            ClientOp::Store {
                mailbox,
                pick,
                flag,
                mode,
            } => {
                let uids = pick_uids(state, name(mailbox), *pick);
                let flag = match flag % 4 {
                    0 => Flag::Seen,
                    1 => Flag::Flagged,
                    2 => Flag::Keyword("$A".into()),
                    _ => Flag::Keyword("$B".into()),
                };
                let set: FlagSet = [flag].into_iter().collect();
                let change = match mode % 3 {
                    0 => FlagChange::Add(set),
                    1 => FlagChange::Remove(set),
                    _ => FlagChange::Replace(set),
                };
                state
                    .store_flags(name(mailbox), &uids, &change, None)
                    .map(|a| a.ops)
                    .unwrap_or_default()
            }
        };
        // The answer is OK once the ops are durable: record what it acknowledged.
        for op in &ops {
            let (OpKind::Append { mailbox, messages }
            | OpKind::Move {
                to: mailbox,
                messages,
                ..
            }) = &op.kind
            else {
                continue;
            };
            for index in 0..messages.len() {
                self.acked.push((
                    mailbox.clone(),
                    MessageId {
                        op: op.id,
                        index: index as u32,
                    },
                ));
            }
        }
        self.persist_and_send(i, ops);
        self.observe(i)
    }

    fn persist_and_send(&mut self, i: usize, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        count_rules(&ops);
        self.nodes[i].log.push(ops.clone());
        self.issued.extend(ops.iter().cloned());
        self.broadcast(i, ops);
    }

    fn broadcast(&mut self, from: usize, ops: Vec<Op>) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.net.push(Packet {
                    from,
                    to,
                    ops: ops.clone(),
                });
            }
        }
    }

    fn deliver(&mut self, pick: usize) -> Check {
        let ready: Vec<usize> = (0..self.net.len())
            .filter(|&k| !self.cut.contains(&(self.net[k].from, self.net[k].to)))
            .collect();
        if ready.is_empty() {
            return Ok(());
        }
        let packet = self.net.swap_remove(ready[pick % ready.len()]);
        let j = packet.to;
        let follow = self.nodes[j]
            .state
            .apply_remote(packet.ops.clone())
            .map_err(|e| format!("replica {j} rejected a batch: {e}"))?;
        // The batch and its follow-ups are written in one step, then exposed.
        let mut step = packet.ops;
        step.extend(follow.iter().cloned());
        self.nodes[j].log.push(step);
        if !follow.is_empty() {
            count_rules(&follow);
            self.issued.extend(follow.iter().cloned());
            self.broadcast(j, follow);
        }
        self.observe(j)
    }

    /// The replica restarts from its snapshot plus its log, and must show nothing that
    /// contradicts what it showed before.
    fn crash(&mut self, i: usize) -> Check {
        count(&CRASHES, 1);
        let n = self.nodes.len();
        let node = &mut self.nodes[i];
        let mut state = match &node.snapshot {
            Some(bytes) => UserState::decode_snapshot(bytes).map_err(|e| e.to_string())?,
            None => UserState::new(ReplicaId(i as u16), config(n)).map_err(|e| e.to_string())?,
        };
        let log = std::mem::take(&mut node.log);
        for step in &log {
            state
                .replay(step.clone())
                .map_err(|e| format!("replay on {i}: {e}"))?;
        }
        node.state = state;
        node.log = log;
        let peers = self.reachable_from(i);
        let follow = self.nodes[i].state.set_reachable(peers);
        self.persist_and_send(i, follow);
        self.observe(i)
    }

    fn reachable_from(&self, i: usize) -> Vec<ReplicaId> {
        (0..self.nodes.len())
            .filter(|&j| j != i && !self.cut.contains(&(i, j)))
            .map(|j| ReplicaId(j as u16))
            .collect()
    }

    fn update_reachability(&mut self) -> Check {
        for i in 0..self.nodes.len() {
            let peers = self.reachable_from(i);
            let ops = self.nodes[i].state.set_reachable(peers);
            self.persist_and_send(i, ops);
            self.observe(i)?;
        }
        Ok(())
    }

    fn exchange_progress(&mut self) {
        let versions: Vec<_> = self
            .nodes
            .iter()
            .map(|n| n.state.version().clone())
            .collect();
        for i in 0..self.nodes.len() {
            for (j, version) in versions.iter().enumerate() {
                if i != j && !self.cut.contains(&(j, i)) {
                    self.nodes[i]
                        .state
                        .report_progress(ReplicaId(j as u16), version);
                }
            }
        }
    }

    /// Invariants 2 and 3, and the CONDSTORE contract, for what replica `i` shows now.
    fn observe(&mut self, i: usize) -> Check {
        let state = &self.nodes[i].state;
        for info in state.mailboxes() {
            if info.name.contains('~') {
                count(&NAME_CONFLICTS, 1);
            }
            let snap = state.snapshot(&info.name).map_err(|e| e.to_string())?;
            let v = snap.uid_validity.0;
            // Invariant 2: one UID, one message, everywhere and forever.
            for m in &snap.messages {
                let key = (v, m.uid.0);
                match self.bound.get(&key) {
                    Some(other) if *other != m.id => {
                        return Err(format!(
                            "invariant 2: replica {i} shows UID {} of UIDVALIDITY {v} as {}, \
                             but it was shown as {other}",
                            m.uid, m.id
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.bound.insert(key, m.id);
                    }
                }
            }
            // Invariant 3: what appears is above everything shown before.
            let shown = self.shown[i].entry(v).or_default();
            let now: BTreeSet<(u32, MessageId)> =
                snap.messages.iter().map(|m| (m.uid.0, m.id)).collect();
            for (uid, id) in now.difference(&shown.pairs) {
                if *uid <= shown.max_uid {
                    return Err(format!(
                        "invariant 3: replica {i} shows {id} at UID {uid} of UIDVALIDITY {v} \
                         after it showed UID {}",
                        shown.max_uid
                    ));
                }
            }
            shown.max_uid = shown
                .max_uid
                .max(now.iter().map(|(u, _)| *u).max().unwrap_or(0));
            shown.pairs = now;
            if snap.uid_next.0 <= shown.max_uid {
                return Err(format!(
                    "replica {i}: UIDNEXT {} is not above UID {}",
                    snap.uid_next, shown.max_uid
                ));
            }
            // CONDSTORE: everything that changed since the last look is reported.
            let messages: BTreeMap<u32, (MessageId, FlagSet)> = snap
                .messages
                .iter()
                .map(|m| (m.uid.0, (m.id, m.flags.clone())))
                .collect();
            if let Some(last) = self.last[i].get(&info.id).filter(|l| l.uid_validity == v) {
                if snap.highest_modseq.0 < last.highest_modseq {
                    return Err(format!(
                        "replica {i}: HIGHESTMODSEQ of {} went down",
                        info.name
                    ));
                }
                match state
                    .changes_since(&info.name, ModSeq(last.highest_modseq))
                    .map_err(|e| e.to_string())?
                {
                    Changes::TooOld => {}
                    Changes::Delta {
                        updated, expunged, ..
                    } => {
                        let updated: BTreeSet<u32> = updated.iter().map(|m| m.uid.0).collect();
                        let expunged: BTreeSet<u32> = expunged.iter().map(|u| u.0).collect();
                        for (uid, now) in &messages {
                            if last.messages.get(uid) != Some(now) && !updated.contains(uid) {
                                return Err(format!(
                                    "modseq: replica {i} changed UID {uid} of {} but changes_since({}) \
                                     does not report it",
                                    info.name, last.highest_modseq
                                ));
                            }
                        }
                        for uid in last.messages.keys() {
                            if !messages.contains_key(uid) && !expunged.contains(uid) {
                                return Err(format!(
                                    "modseq: replica {i} no longer shows UID {uid} of {} but \
                                     changes_since({}) does not report it",
                                    info.name, last.highest_modseq
                                ));
                            }
                        }
                    }
                }
            }
            self.last[i].insert(
                info.id.clone(),
                LastView {
                    uid_validity: v,
                    highest_modseq: snap.highest_modseq.0,
                    messages,
                },
            );
        }
        Ok(())
    }

    /// Invariant 1: every replica shows the same thing.
    fn check_converged(&self, when: &str) -> Check {
        let describe = |state: &UserState| {
            let mut out = format!("{:?}\n{:?}\n", state.mailboxes(), state.subscriptions());
            for info in state.mailboxes() {
                out.push_str(&format!("{:?}\n", state.snapshot(&info.name)));
            }
            out
        };
        let first = describe(&self.nodes[0].state);
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            let other = describe(&node.state);
            if other != first {
                return Err(format!(
                    "invariant 1 ({when}): replicas 0 and {i} differ:\n--- 0:\n{first}--- {i}:\n{other}"
                ));
            }
        }
        Ok(())
    }

    /// Invariant 4: an acknowledged message is shown, unless an expunge, move or
    /// delete that had seen it removed it.
    fn check_durability(&self) -> Check {
        let state = &self.nodes[0].state;
        let mut visible = BTreeSet::new();
        for info in state.mailboxes() {
            let snap = state.snapshot(&info.name).map_err(|e| e.to_string())?;
            visible.extend(snap.messages.iter().map(|m| m.id));
        }
        for (mailbox, id) in &self.acked {
            if visible.contains(id) {
                continue;
            }
            let removed = self.issued.iter().any(|op| match &op.kind {
                OpKind::Expunge { messages, .. } => messages.contains(id),
                OpKind::Move { sources, .. } => sources.contains(id),
                OpKind::Delete { mailboxes } => {
                    mailboxes.contains(mailbox) && op.deps.contains(id.op)
                }
                _ => false,
            });
            if !removed {
                return Err(format!(
                    "invariant 4: acknowledged message {id} in {mailbox} was lost"
                ));
            }
        }
        Ok(())
    }
}
