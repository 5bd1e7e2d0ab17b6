//! The simulated world: replicas with a durable log and snapshots, a network that
//! delivers in any order with duplicates, partitions, crashes, and an observer that
//! checks the invariants at every step and at quiescence, plus semantic oracles that
//! recompute from the ops issued what the conflict rules say a replica must show.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use pluto_crdt::{
    BodyRef, Changes, Config, CrdtError, Dot, Flag, FlagChange, FlagOp, FlagSet, InternalDate,
    Keyword, MailboxId, MailboxName, MailboxSnapshot, MessageData, MessageId, MessageView, ModSeq,
    NewMessage, Op, OpKind, ReplicaId, StoreOutcome, Uid, UserState,
};

/// The settling-cost bound: at quiescence the replicas may issue at most this many
/// reaction ops (binds and floors) per message the scenario created, plus
/// [`SETTLE_SLACK`]. Measured over 200,000 scenarios with every order (see
/// `crdt/README.md`); a rule that chases its own binds exceeds it.
pub(crate) const SETTLE_OPS_PER_MESSAGE: u64 = 4;
/// Reaction ops quiescence may cost on top of the per-message bound.
pub(crate) const SETTLE_SLACK: u64 = 16;

/// The UID stride of every simulated user.
pub(crate) const STRIDE: u16 = 8;

/// With [`World::new_with`]'s `high_uids`, every mailbox a client creates starts with
/// a message bound this close below `u32::MAX` (in its creator's residue): the
/// mailbox's UIDs run out after a few more appends.
pub(crate) const HIGH_UID_ROOM: u32 = 3 * STRIDE as u32;

/// The order in which quiescence delivers what is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// A scrambled but deterministic pick (the simulator's first order).
    Scrambled,
    /// Round-robin over the links, each link first-in first-out: fair.
    FifoRoundRobin,
    /// A seeded random pick.
    Random(u64),
    /// Always the packet sent last: follow-ups overtake everything.
    NewestFirst,
}

impl Order {
    /// Every order, the random one seeded with `seed`.
    pub(crate) fn all(seed: u64) -> [Order; 4] {
        [
            Order::FifoRoundRobin,
            Order::Random(seed),
            Order::NewestFirst,
            Order::Scrambled,
        ]
    }
}

/// Mailbox names the clients use: a hierarchy, so renames carry children.
pub(crate) const NAMES: [&str; 4] = ["INBOX", "Work", "Work/Old", "Trash"];

#[derive(Clone, Debug)]
pub(crate) enum ClientOp {
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
        /// UNCHANGEDSINCE this far below the mailbox's HIGHESTMODSEQ, if any.
        unchanged_since: Option<u8>,
    },
}

#[derive(Clone, Debug)]
pub(crate) enum Action {
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
    /// Up to four groups: replica `i` joins group `(assign >> 2i) & 3`; every link
    /// between groups is cut.
    Groups {
        assign: u16,
    },
    /// Cuts the link from one replica to another, one way only: the receiver stops
    /// hearing from the sender and (told so) believes it unreachable; the sender does not.
    CutOneWay {
        from: u8,
        to: u8,
    },
    /// A packet in flight is lost; its ops come again only from a resend of the log.
    Lose {
        pick: u16,
    },
    /// A replica is told a stale or wrong set of reachable peers (bit `j` of `mask`),
    /// whatever the links are: two leaders in one group, or none.
    Believe {
        replica: u8,
        mask: u8,
    },
    Heal,
    Crash {
        replica: u8,
    },
    /// The replica loses its data (snapshot and log) and restarts empty under its old
    /// id, told to await its peers' progress (as the store does on an empty data
    /// directory); the peers it reaches send it their progress and what they hold.
    /// Whatever only it held is lost — with what it had sent that nobody received yet,
    /// the writes it acknowledged, and the ops of others that depend on them.
    RestartEmpty {
        replica: u8,
    },
    Snapshot {
        replica: u8,
    },
    /// One replica's progress reaches another (the heartbeat of a link), unless the
    /// link is cut: it acknowledges the claims it holds.
    Report {
        from: u8,
        to: u8,
    },
    /// The replica starts taking writes: it claims dense UIDs if it needs to.
    Claim {
        replica: u8,
    },
    /// Replicas that can reach each other exchange progress; all compact.
    Compact,
    /// The partition stays up: inside each group everything in flight is delivered and
    /// members resend each other what they hold from their logs, until nothing flows;
    /// then each group's members must agree and hide nothing (its leader bound it).
    SettleGroups,
}

#[derive(Clone)]
struct Node {
    state: UserState,
    snapshot: Option<Vec<u8>>,
    /// Durable steps since the snapshot, each as it was written.
    log: Vec<Vec<Op>>,
}

#[derive(Clone)]
struct Packet {
    /// When it was sent: FIFO and newest-first orders go by it.
    seq: u64,
    from: usize,
    to: usize,
    ops: Vec<Op>,
}

/// What one replica has shown, per UIDVALIDITY.
#[derive(Clone, Default)]
struct Shown {
    max_uid: u32,
    pairs: BTreeSet<(u32, MessageId)>,
}

/// A replica's last view of one mailbox incarnation, for the CONDSTORE check.
#[derive(Clone)]
struct LastView {
    uid_validity: u32,
    highest_modseq: u64,
    messages: BTreeMap<u32, (MessageId, FlagSet)>,
}

#[derive(Clone)]
pub(crate) struct World {
    nodes: Vec<Node>,
    net: Vec<Packet>,
    sent: u64,
    /// Reaction ops (binds and floors) issued so far.
    reactions: u64,
    /// How often each replica floored each message since settling began.
    floor_counts: BTreeMap<(usize, MessageId), u32>,
    /// How often each message was bound by a `Bind` (anywhere, ever).
    bind_counts: BTreeMap<MessageId, u32>,
    /// The peers each replica was last told it reaches.
    beliefs: Vec<Vec<ReplicaId>>,
    cut: BTreeSet<(usize, usize)>,
    /// (UIDVALIDITY, UID) → the message any replica ever showed there, and which
    /// replicas showed it (a replica that loses its data forgets what it showed).
    bound: BTreeMap<(u32, u32), (MessageId, BTreeSet<usize>)>,
    shown: Vec<BTreeMap<u32, Shown>>,
    last: Vec<BTreeMap<MailboxId, LastView>>,
    /// Every op any replica issued.
    issued: Vec<Op>,
    /// Messages whose APPEND/COPY/MOVE was answered OK: (mailbox, message).
    acked: Vec<(MailboxId, MessageId)>,
    bodies: u64,
    /// Every created mailbox starts near the end of the UID space.
    high_uids: bool,
    /// The window every claim of the scenario asks for.
    window: u32,
    /// Only replica 0 takes client writes: no message may ever be renumbered, and
    /// while it holds its claim, every new message gets exactly the UIDNEXT before.
    single_writer: bool,
    /// Replicas restarted empty that have not had their whole history back since
    /// (the store keeps this as the absence of its recovery marker): a crash makes
    /// them await their peers again.
    unconfirmed: BTreeSet<usize>,
}

pub(crate) type Check = Result<(), String>;

/// How often the runs took the paths that matter (summed over all runs).
#[derive(Debug, Default)]
pub(crate) struct Coverage {
    pub binds: u64,
    pub floors: u64,
    pub crashes: u64,
    pub tombstones_dropped: u64,
    /// Two live mailboxes claimed one name (one shows as `name~UIDVALIDITY`).
    pub name_conflicts: u64,
    /// Groups of a partition that stayed up checked settled (they agreed on a leader).
    pub settled_groups: u64,
    /// The most floors one replica issued for one message while settling.
    pub most_floors_of_one_message: u64,
    /// The most reaction ops one settling cost, minus 4 per message it had to settle
    /// (0 if never above), to compare with [`SETTLE_SLACK`].
    pub most_settle_ops_over_bound: u64,
    /// Replicas restarted empty under their old id.
    pub restarts_empty: u64,
    /// Client writes refused because the replica lacked its own history.
    pub own_history_refusals: u64,
    /// Client writes refused because the mailbox's UIDs were used up.
    pub uids_exhausted_refusals: u64,
    /// Messages left hidden at quiescence in a mailbox with no UID left to give them.
    pub hidden_at_exhaustion: u64,
}

// Per thread, so that each test counts only its own runs.
thread_local! {
    static BINDS: Cell<u64> = const { Cell::new(0) };
    static FLOORS: Cell<u64> = const { Cell::new(0) };
    static CRASHES: Cell<u64> = const { Cell::new(0) };
    static TOMBSTONES: Cell<u64> = const { Cell::new(0) };
    static NAME_CONFLICTS: Cell<u64> = const { Cell::new(0) };
    static MOST_FLOORS: Cell<u64> = const { Cell::new(0) };
    static SETTLED_GROUPS: Cell<u64> = const { Cell::new(0) };
    static MOST_SETTLE_OPS: Cell<u64> = const { Cell::new(0) };
    static RESTARTS_EMPTY: Cell<u64> = const { Cell::new(0) };
    static OWN_HISTORY_REFUSALS: Cell<u64> = const { Cell::new(0) };
    static UIDS_EXHAUSTED: Cell<u64> = const { Cell::new(0) };
    static HIDDEN_AT_EXHAUSTION: Cell<u64> = const { Cell::new(0) };
}

fn count(counter: &'static std::thread::LocalKey<Cell<u64>>, n: u64) {
    counter.with(|c| c.set(c.get() + n));
}

fn count_max(counter: &'static std::thread::LocalKey<Cell<u64>>, n: u64) {
    counter.with(|c| c.set(c.get().max(n)));
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
pub(crate) fn coverage() -> Coverage {
    Coverage {
        binds: BINDS.with(Cell::get),
        floors: FLOORS.with(Cell::get),
        crashes: CRASHES.with(Cell::get),
        tombstones_dropped: TOMBSTONES.with(Cell::get),
        name_conflicts: NAME_CONFLICTS.with(Cell::get),
        most_floors_of_one_message: MOST_FLOORS.with(Cell::get),
        settled_groups: SETTLED_GROUPS.with(Cell::get),
        most_settle_ops_over_bound: MOST_SETTLE_OPS.with(Cell::get),
        restarts_empty: RESTARTS_EMPTY.with(Cell::get),
        own_history_refusals: OWN_HISTORY_REFUSALS.with(Cell::get),
        uids_exhausted_refusals: UIDS_EXHAUSTED.with(Cell::get),
        hidden_at_exhaustion: HIDDEN_AT_EXHAUSTION.with(Cell::get),
    }
}

fn members(n: usize) -> Vec<ReplicaId> {
    (0..n).map(|i| ReplicaId(i as u16)).collect()
}

fn config(n: usize) -> Config {
    Config {
        uid_stride: STRIDE,
        members: members(n),
    }
}

/// The claim window of [`World::new`].
pub(crate) const WINDOW: u32 = 16;

impl World {
    pub(crate) fn new(replicas: usize) -> Result<Self, String> {
        Self::new_with(replicas, false, WINDOW, false)
    }

    /// With `high_uids`, every mailbox a client creates starts near the end of the UID
    /// space ([`HIGH_UID_ROOM`]); claims ask for `window` UIDs; with `single_writer`
    /// only replica 0 takes client writes.
    pub(crate) fn new_with(
        replicas: usize,
        high_uids: bool,
        window: u32,
        single_writer: bool,
    ) -> Result<Self, String> {
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
            sent: 0,
            reactions: 0,
            floor_counts: BTreeMap::new(),
            bind_counts: BTreeMap::new(),
            beliefs: vec![Vec::new(); replicas],
            cut: BTreeSet::new(),
            bound: BTreeMap::new(),
            shown: (0..replicas).map(|_| BTreeMap::new()).collect(),
            last: (0..replicas).map(|_| BTreeMap::new()).collect(),
            issued: Vec::new(),
            acked: Vec::new(),
            bodies: 0,
            high_uids,
            window,
            single_writer,
            unconfirmed: BTreeSet::new(),
        };
        // Replica 0 starts the user with an INBOX, as the backend does at first login,
        // claims dense UIDs, and hears every peer acknowledge it (a heartbeat later).
        world.client(0, &ClientOp::Create { name: 0 })?;
        world.update_reachability()?;
        while !world.net.is_empty() {
            world.deliver_at(0)?;
        }
        world.exchange_progress()?;
        Ok(world)
    }

    pub(crate) fn step(&mut self, action: &Action) -> Check {
        let n = self.nodes.len();
        match action {
            Action::Client { replica, op } => {
                let i = if self.single_writer {
                    0
                } else {
                    *replica as usize % n
                };
                self.client(i, op)
            }
            Action::Report { from, to } => {
                let (from, to) = (*from as usize % n, *to as usize % n);
                if from == to || self.cut.contains(&(from, to)) {
                    return Ok(());
                }
                let ops = self.tell_progress(from, to);
                self.persist_and_send(to, ops)?;
                self.observe(to)
            }
            Action::Claim { replica } => {
                let i = if self.single_writer {
                    0
                } else {
                    *replica as usize % n
                };
                self.claim(i)
            }
            Action::Deliver { pick } => self.deliver(*pick as usize),
            Action::Duplicate { pick } => {
                if !self.net.is_empty() {
                    let p = &self.net[*pick as usize % self.net.len()];
                    let copy = Packet {
                        seq: self.sent,
                        from: p.from,
                        to: p.to,
                        ops: p.ops.clone(),
                    };
                    self.sent += 1;
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
            Action::Groups { assign } => {
                self.cut.clear();
                let group = |i: usize| (assign >> (2 * i)) & 3;
                for a in 0..n {
                    for b in 0..n {
                        if group(a) != group(b) {
                            self.cut.insert((a, b));
                        }
                    }
                }
                self.update_reachability()
            }
            Action::CutOneWay { from, to } => {
                let (from, to) = (*from as usize % n, *to as usize % n);
                if from != to {
                    self.cut.insert((from, to));
                }
                self.update_reachability()
            }
            Action::Lose { pick } => {
                if !self.net.is_empty() {
                    self.net.swap_remove(*pick as usize % self.net.len());
                }
                Ok(())
            }
            Action::Believe { replica, mask } => {
                let i = *replica as usize % n;
                let peers: Vec<ReplicaId> = (0..n)
                    .filter(|&j| j != i && (mask >> j) & 1 == 1)
                    .map(|j| ReplicaId(j as u16))
                    .collect();
                self.tell_reachable(i, peers)?;
                self.observe(i)
            }
            Action::Crash { replica } => self.crash(*replica as usize % n),
            Action::RestartEmpty { replica } => self.restart_empty(*replica as usize % n),
            Action::Snapshot { replica } => {
                let node = &mut self.nodes[*replica as usize % n];
                node.snapshot = Some(node.state.encode_snapshot().map_err(|e| e.to_string())?);
                node.log.clear();
                Ok(())
            }
            Action::Compact => {
                self.exchange_progress()?;
                for node in &mut self.nodes {
                    let report = node.state.compact();
                    count(&TOMBSTONES, report.tombstones_dropped as u64);
                }
                Ok(())
            }
            Action::SettleGroups => self.settle_groups(),
        }
    }

    /// Heals everything, delivers until nothing is in flight in `order`, and checks
    /// convergence, settling and its cost, durability, the semantic oracles and
    /// compaction.
    pub(crate) fn quiesce(&mut self, order: Order) -> Check {
        self.cut.clear();
        self.update_reachability()?;
        let everyone: Vec<usize> = (0..self.nodes.len()).collect();
        self.settle(&everyone, order)?;
        self.check_converged("at quiescence")?;
        for (i, node) in self.nodes.iter().enumerate() {
            let stats = node.state.stats();
            if stats.pending_ops != 0 || (stats.hidden_messages != 0 && !self.exhausted(i)) {
                return Err(format!("replica {i} did not settle: {stats:?}"));
            }
            // A replica restarted empty has its history back once everyone is heard.
            node.state
                .check_own_history()
                .map_err(|e| format!("replica {i} did not recover at quiescence: {e}"))?;
        }
        self.check_durability()?;
        self.check_renumbering()?;
        self.check_semantics()?;
        // Everyone learns everyone's progress, then compacts.
        self.exchange_progress()?;
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

    /// The most reaction ops settling may cost from now on (see [`SETTLE_OPS_PER_MESSAGE`]).
    fn settle_budget(&self) -> u64 {
        self.reactions + self.ops_per_message() * self.acked.len() as u64 + SETTLE_SLACK
    }

    /// [`SETTLE_OPS_PER_MESSAGE`], or one per replica when there are more (each
    /// non-leader may floor a message once, the leader binds it).
    fn ops_per_message(&self) -> u64 {
        SETTLE_OPS_PER_MESSAGE.max(self.nodes.len() as u64)
    }

    /// Delivers, in `order`, every packet between members of `group` until none is
    /// left, within the settling-cost bound. Returns the reaction ops it cost.
    fn drain(&mut self, group: &[usize], order: Order, budget: u64) -> Result<u64, String> {
        let start = self.reactions;
        let inside = |p: &Packet, cut: &BTreeSet<(usize, usize)>| {
            group.contains(&p.from) && group.contains(&p.to) && !cut.contains(&(p.from, p.to))
        };
        let n = self.nodes.len();
        let mut rng = match order {
            Order::Random(seed) => seed | 1,
            _ => 1,
        };
        let mut link = 0usize;
        let mut deliveries = 0usize;
        loop {
            let ready: Vec<usize> = (0..self.net.len())
                .filter(|&k| inside(&self.net[k], &self.cut))
                .collect();
            if ready.is_empty() {
                let cost = self.reactions - start;
                count_max(
                    &MOST_SETTLE_OPS,
                    cost.saturating_sub(self.ops_per_message() * self.acked.len() as u64),
                );
                return Ok(cost);
            }
            deliveries += 1;
            if self.reactions > budget {
                return Err(format!(
                    "settling cost: {} reaction ops after healing for {} messages \
                     (bound {} per message + {SETTLE_SLACK}), {order:?} order",
                    self.reactions - start,
                    self.acked.len(),
                    self.ops_per_message()
                ));
            }
            if deliveries > 100_000 {
                return Err(format!(
                    "did not settle: operations kept flowing after healing ({order:?} order)"
                ));
            }
            let k = match order {
                Order::Scrambled => ready[deliveries * 7919 % ready.len()],
                Order::Random(_) => {
                    // xorshift64
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    ready[(rng % ready.len() as u64) as usize]
                }
                Order::NewestFirst => *ready
                    .iter()
                    .max_by_key(|&&k| self.net[k].seq)
                    .expect("ready is not empty"),
                Order::FifoRoundRobin => {
                    // The next link (from, to) after the last one served that carries
                    // a packet; its oldest packet.
                    let mut chosen = None;
                    for step in 0..n * n {
                        let l = (link + step) % (n * n);
                        let (from, to) = (l / n, l % n);
                        if let Some(&k) = ready
                            .iter()
                            .filter(|&&k| self.net[k].from == from && self.net[k].to == to)
                            .min_by_key(|&&k| self.net[k].seq)
                        {
                            link = l + 1;
                            chosen = Some(k);
                            break;
                        }
                    }
                    chosen.expect("a ready packet is on some link")
                }
            };
            self.deliver_at(k)?;
            // A replica floors a message again only once a new bind of it showed it
            // again at or below T.
            for ((i, id), floors) in &self.floor_counts {
                count_max(&MOST_FLOORS, u64::from(*floors));
                let binds = self.bind_counts.get(id).copied().unwrap_or(0);
                if *floors > binds + 1 {
                    return Err(format!(
                        "settling cost: replica {i} floored {id} {floors} times while settling, \
                         though it was bound only {binds} times, {order:?} order"
                    ));
                }
            }
        }
    }

    /// The groups of replicas that reach each other both ways.
    fn groups(&self) -> Vec<Vec<usize>> {
        let n = self.nodes.len();
        let mut group_of: Vec<Option<usize>> = vec![None; n];
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in 0..n {
            if group_of[i].is_some() {
                continue;
            }
            let mut members = vec![i];
            group_of[i] = Some(groups.len());
            let mut at = 0;
            while at < members.len() {
                let a = members[at];
                at += 1;
                for (b, slot) in group_of.iter_mut().enumerate() {
                    if slot.is_none() && !self.cut.contains(&(a, b)) && !self.cut.contains(&(b, a))
                    {
                        *slot = Some(groups.len());
                        members.push(b);
                    }
                }
            }
            members.sort_unstable();
            groups.push(members);
        }
        groups
    }

    /// Delivers everything in flight inside `group` in `order`, then has its members
    /// resend each other, from their logs, what the other lacks (one multi-origin
    /// catch-up batch per pair, lost packets included), until nothing flows; all within
    /// one settling-cost budget.
    fn settle(&mut self, group: &[usize], order: Order) -> Check {
        let budget = self.settle_budget();
        self.floor_counts.clear();
        loop {
            self.drain(group, order, budget)?;
            let mut resent = false;
            // The catch-up handshake carries the sender's progress, which a replica
            // that restarted empty waits for; the store's links repeat it with every
            // batch and heartbeat. Twice around: a report that shrank (its sender lost
            // its history too) counts until every member has been heard after it.
            for _ in 0..2 {
                for &to in group {
                    for &from in group {
                        if from == to
                            || self.cut.contains(&(from, to))
                            || self.nodes[to].state.check_own_history().is_ok()
                        {
                            continue;
                        }
                        let ops = self.tell_progress(from, to);
                        resent |= !ops.is_empty();
                        self.persist_and_send(to, ops)?;
                    }
                }
            }
            for &from in group {
                for &to in group {
                    if from == to || self.cut.contains(&(from, to)) {
                        continue;
                    }
                    let have = self.nodes[from].state.version();
                    let lack = self.nodes[to].state.version();
                    let ops: Vec<Op> = self
                        .issued
                        .iter()
                        .filter(|op| have.contains(op.id) && !lack.contains(op.id))
                        .cloned()
                        .collect();
                    if !ops.is_empty() {
                        resent = true;
                        self.send(from, to, ops);
                    }
                }
            }
            if !resent {
                return Ok(());
            }
        }
    }

    /// See [`Action::SettleGroups`]. Groups whose members do not agree on a leader
    /// among them (stale or one-sided beliefs) are left alone: safety never depends on
    /// leadership (every step checks it), only termination does.
    fn settle_groups(&mut self) -> Check {
        for group in self.groups() {
            if group.len() < 2 {
                continue;
            }
            // Without one leader the group need not settle (two leaders may chase
            // each other's binds): it waits for the beliefs to be put right.
            let leader = self.believed_leader(group[0]);
            if !group.contains(&leader) || group.iter().any(|&i| self.believed_leader(i) != leader)
            {
                continue;
            }
            self.settle(&group, Order::FifoRoundRobin)?;
            // A leader that restarted empty and waits for a peer outside the group
            // issues nothing: its binds wait until it has heard everyone.
            if self.nodes[leader].state.check_own_history().is_err() {
                continue;
            }
            count(&SETTLED_GROUPS, 1);
            let first = describe(&self.nodes[group[0]].state);
            for &i in &group {
                let stats = self.nodes[i].state.stats();
                if stats.hidden_messages != 0 && !self.exhausted(i) {
                    return Err(format!(
                        "inside the partition {group:?}, replica {i} still hides messages \
                         after everything there was delivered: {stats:?}"
                    ));
                }
                if describe(&self.nodes[i].state) != first {
                    return Err(format!(
                        "inside the partition {group:?}, replicas {} and {i} hold the same \
                         ops but differ",
                        group[0]
                    ));
                }
            }
        }
        Ok(())
    }

    fn client(&mut self, i: usize, op: &ClientOp) -> Check {
        let raw = |k: &u8| NAMES[*k as usize % NAMES.len()];
        let name = |k: &u8| MailboxName::new(raw(k)).unwrap();
        let state = &mut self.nodes[i].state;
        let pick_uids = |state: &UserState, mailbox: &MailboxName, pick: u16| -> Vec<Uid> {
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
        // cleanly and change nothing. What the others answer is checked against what
        // the replica shows right after (`check_reply`).
        let mut reply = Reply::None;
        // A refused write, and how many new UIDs it asked for.
        let mut refused: Option<(CrdtError, u64)> = None;
        let mut refuse = |e: CrdtError, uids: u64| {
            refused = Some((e, uids));
            Vec::new()
        };
        let version_before = state.version().clone();
        // Single writer, holding its claim: the UIDNEXT each target showed before. (Not
        // with high UIDs: a mailbox that starts near the end lies outside the claim.)
        let dense_before: BTreeMap<&str, u32> =
            if self.single_writer && !self.high_uids && state.holds_uid_claim() {
                NAMES
                    .iter()
                    .filter_map(|n| {
                        Some((
                            *n,
                            state
                                .snapshot(&MailboxName::new(*n).ok()?)
                                .ok()?
                                .uid_next
                                .get(),
                        ))
                    })
                    .collect()
            } else {
                BTreeMap::new()
            };
        let ops = match op {
            ClientOp::Create { name: k } => state
                .create_mailbox(&name(k), None)
                .unwrap_or_else(|e| refuse(e, 0)),
            ClientOp::Delete { name: k } => state
                .delete_mailbox(&name(k))
                .unwrap_or_else(|e| refuse(e, 0)),
            ClientOp::Rename { from, to } => state
                .rename_mailbox(&name(from), &name(to))
                .unwrap_or_else(|e| refuse(e, 0)),
            ClientOp::Subscribe { name: k } => {
                state.subscribe(&name(k)).unwrap_or_else(|e| refuse(e, 0))
            }
            ClientOp::Unsubscribe { name: k } => {
                state.unsubscribe(&name(k)).unwrap_or_else(|e| refuse(e, 0))
            }
            ClientOp::Append { mailbox, count } => {
                let wanted = u64::from(*count % 3 + 1);
                let messages = (0..wanted)
                    .map(|_| {
                        self.bodies += 1;
                        body(self.bodies)
                    })
                    .collect();
                match state.append(&name(mailbox), messages) {
                    Ok(applied) => {
                        reply = Reply::Append {
                            mailbox: raw(mailbox),
                            uid_validity: applied.outcome.uid_validity.get(),
                            uids: applied.outcome.uids.clone(),
                        };
                        applied.ops
                    }
                    Err(e) => refuse(e, wanted),
                }
            }
            ClientOp::Copy { from, pick, to } | ClientOp::Move { from, pick, to } => {
                let uids = pick_uids(state, &name(from), *pick);
                let is_move = matches!(op, ClientOp::Move { .. });
                let before = state.snapshot(&name(from)).ok();
                let result = if is_move {
                    state.move_messages(&name(from), &uids, &name(to))
                } else {
                    state.copy(&name(from), &uids, &name(to))
                };
                let wanted = uids.len() as u64;
                match (result, before) {
                    (Err(e), _) => refuse(e, wanted),
                    (Ok(applied), Some(before)) => {
                        reply = Reply::Copy {
                            from: raw(from),
                            to: raw(to),
                            is_move,
                            requested: uids,
                            before,
                            uid_validity: applied.outcome.uid_validity.get(),
                            mapping: applied.outcome.mapping.clone(),
                        };
                        applied.ops
                    }
                    _ => Vec::new(),
                }
            }
            ClientOp::Expunge { mailbox, pick } => {
                let uids = pick_uids(state, &name(mailbox), *pick);
                match state.expunge(&name(mailbox), &uids) {
                    Ok(applied) => {
                        reply = Reply::Expunge {
                            mailbox: raw(mailbox),
                            requested: uids,
                            expunged: applied.outcome.clone(),
                        };
                        applied.ops
                    }
                    Err(e) => refuse(e, 0),
                }
            }
            ClientOp::Store {
                mailbox,
                pick,
                flag,
                mode,
                unchanged_since,
            } => {
                let uids = pick_uids(state, &name(mailbox), *pick);
                let flag = match flag % 4 {
                    0 => Flag::Seen,
                    1 => Flag::Flagged,
                    2 => Flag::Keyword(Keyword::new("$A").unwrap()),
                    _ => Flag::Keyword(Keyword::new("$B").unwrap()),
                };
                let set: FlagSet = [flag].into_iter().collect();
                let change = match mode % 3 {
                    0 => FlagChange::add(set),
                    1 => FlagChange::remove(set),
                    _ => FlagChange::replace(set),
                };
                let before = state.snapshot(&name(mailbox)).ok();
                let since = unchanged_since.and_then(|below| {
                    let highest = before.as_ref()?.highest_modseq.0;
                    Some(ModSeq(highest.saturating_sub(u64::from(below % 4))))
                });
                match (
                    state.store_flags(&name(mailbox), &uids, &change, since),
                    before,
                ) {
                    (Err(e), _) => refuse(e, 0),
                    (Ok(applied), Some(before)) => {
                        reply = Reply::Store {
                            mailbox: raw(mailbox),
                            requested: uids,
                            before,
                            change,
                            since,
                            outcome: applied.outcome.clone(),
                        };
                        applied.ops
                    }
                    _ => Vec::new(),
                }
            }
        };
        if let Some((e, uids)) = refused {
            self.check_refusal(i, op, &e, uids, &version_before)?;
        }
        check_reply(&self.nodes[i].state, &reply, &ops).map_err(|e| format!("replica {i}: {e}"))?;
        check_dense(&reply, &dense_before).map_err(|e| format!("replica {i}: {e}"))?;
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
        let created: Vec<MailboxId> = ops
            .iter()
            .filter_map(|op| match &op.kind {
                OpKind::Create { mailbox, .. } => Some(mailbox.clone()),
                _ => None,
            })
            .collect();
        let wrote = !ops.is_empty();
        self.persist_and_send(i, ops)?;
        if self.high_uids && matches!(op, ClientOp::Create { .. }) {
            for mailbox in created {
                self.start_near_the_end(i, mailbox)?;
            }
        }
        self.observe(i)?;
        if wrote {
            // As the store does after each write.
            self.claim(i)?;
        }
        Ok(())
    }

    /// The replica claims dense UIDs if it needs to ([`UserState::claim_uids`]).
    fn claim(&mut self, i: usize) -> Check {
        match self.nodes[i].state.claim_uids(self.window) {
            Ok(ops) => {
                self.persist_and_send(i, ops)?;
                self.observe(i)
            }
            Err(CrdtError::OwnHistoryMissing { .. }) => Ok(()),
            Err(e) => Err(format!("replica {i}: claiming UIDs failed: {e}")),
        }
    }

    /// A refused client write: a clear error of the kind the state was in, nothing
    /// issued. A replica lacking its own history says so; UIDs are refused as used up
    /// only near the end of the UID space.
    fn check_refusal(
        &self,
        i: usize,
        op: &ClientOp,
        e: &CrdtError,
        uids: u64,
        before: &pluto_crdt::VersionVector,
    ) -> Check {
        let state = &self.nodes[i].state;
        if state.version() != before {
            return Err(format!(
                "replica {i}: {op:?} was refused ({e}) but changed the state"
            ));
        }
        match e {
            CrdtError::OwnHistoryMissing { .. } => {
                if state.check_own_history().is_ok() {
                    return Err(format!(
                        "replica {i}: {op:?} refused for lack of its history, which it has"
                    ));
                }
                count(&OWN_HISTORY_REFUSALS, 1);
            }
            CrdtError::UidsExhausted(name) => {
                let uid_next = state
                    .snapshot(name)
                    .map_err(|e| format!("replica {i}: {e}"))?
                    .uid_next;
                // Another replica's claimed window may cover the rest of the space.
                if u64::from(uid_next.get()) + u64::from(STRIDE) * uids + u64::from(self.window)
                    <= u64::from(u32::MAX)
                {
                    return Err(format!(
                        "replica {i}: {op:?} refused as out of UIDs at UIDNEXT {uid_next}"
                    ));
                }
                count(&UIDS_EXHAUSTED, 1);
            }
            // A request naming what does not exist here, or a taken name: fine.
            CrdtError::Mailbox(_) => {}
            other => return Err(format!("replica {i}: {op:?} failed: {other}")),
        }
        Ok(())
    }

    /// [`World::new_with`]'s `high_uids`: the mailbox `i` just created gets a message
    /// bound [`HIGH_UID_ROOM`] below the end, as a valid op of `i` applied there as if
    /// it came from its log (a long-lived mailbox, in a few ops).
    fn start_near_the_end(&mut self, i: usize, mailbox: MailboxId) -> Check {
        let me = ReplicaId(i as u16);
        let stride = u32::from(STRIDE);
        let uid = (u32::MAX - HIGH_UID_ROOM) / stride * stride + i as u32;
        self.bodies += 1;
        let state = &mut self.nodes[i].state;
        let op = Op {
            id: Dot::new(me, state.version().get(me) + 1),
            deps: state.version().clone(),
            kind: OpKind::Append {
                mailbox: mailbox.clone(),
                messages: vec![NewMessage {
                    data: body(self.bodies),
                    uid: Uid::new(uid).ok_or("UID 0")?,
                }],
            },
        };
        let follow = state
            .apply_remote([op.clone()])
            .map_err(|e| format!("replica {i} refused its own high-UID append: {e}"))?;
        self.acked.push((
            mailbox,
            MessageId {
                op: op.id,
                index: 0,
            },
        ));
        let mut ops = vec![op];
        ops.extend(follow);
        self.persist_and_send(i, ops)
    }

    /// A mailbox whose UIDNEXT is this close to the end may have run out of UIDs (for
    /// this replica, or above another's claimed window): a message needing a new one
    /// there may stay hidden.
    fn near_the_end(&self, uid_next: Uid) -> bool {
        u64::from(uid_next.get()) + 2 * u64::from(STRIDE) + u64::from(self.window)
            > u64::from(u32::MAX)
    }

    /// The replicas at `i` whose mailboxes may have run out of UIDs (see
    /// [`Self::near_the_end`]): a message that needs a new UID there stays hidden.
    fn exhausted(&self, i: usize) -> bool {
        self.nodes[i]
            .state
            .mailboxes()
            .iter()
            .any(|info| self.near_the_end(info.uid_next))
    }

    /// Persists and sends ops `i` issued. Each must have a dot no op ever had: a reused
    /// dot is a write its peers ignore as already held (accepted, never converging).
    fn persist_and_send(&mut self, i: usize, ops: Vec<Op>) -> Check {
        if ops.is_empty() {
            return Ok(());
        }
        self.check_fresh_dots(i, &ops)?;
        self.count_reactions(i, &ops)?;
        self.nodes[i].log.push(ops.clone());
        self.issued.extend(ops.iter().cloned());
        self.broadcast(i, ops);
        Ok(())
    }

    /// Each op `i` issued has a dot no op ever had: a reused dot is a write its peers
    /// ignore as already held (accepted, never converging).
    fn check_fresh_dots(&self, i: usize, ops: &[Op]) -> Check {
        for op in ops {
            if let Some(other) = self.issued.iter().find(|o| o.id == op.id) {
                return Err(format!(
                    "dot reuse: replica {i} issued {} again, as {:?} (it was {:?}): its peers \
                     ignore it as held, so the write never converges",
                    op.id, op.kind, other.kind
                ));
            }
        }
        Ok(())
    }

    fn count_reactions(&mut self, i: usize, ops: &[Op]) -> Check {
        count_rules(ops);
        if self.single_writer {
            if let Some(op) = ops
                .iter()
                .find(|op| matches!(op.kind, OpKind::Bind { .. } | OpKind::Floor { .. }))
            {
                return Err(format!(
                    "with a single writer, replica {i} renumbers messages: {:?}",
                    op.kind
                ));
            }
        }
        for op in ops {
            match &op.kind {
                OpKind::Floor { floors, .. } => {
                    for (id, _) in floors {
                        *self.floor_counts.entry((i, *id)).or_default() += 1;
                    }
                }
                OpKind::Bind { bindings, .. } => {
                    for (id, _) in bindings {
                        *self.bind_counts.entry(*id).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
        self.reactions += ops
            .iter()
            .filter(|op| matches!(op.kind, OpKind::Bind { .. } | OpKind::Floor { .. }))
            .count() as u64;
        Ok(())
    }

    fn send(&mut self, from: usize, to: usize, ops: Vec<Op>) {
        self.net.push(Packet {
            seq: self.sent,
            from,
            to,
            ops,
        });
        self.sent += 1;
    }

    fn broadcast(&mut self, from: usize, ops: Vec<Op>) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, ops.clone());
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
        self.deliver_at(ready[pick % ready.len()])
    }

    fn deliver_at(&mut self, k: usize) -> Check {
        let packet = self.net.swap_remove(k);
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
            check_floors_hide(&self.nodes[j].state, &follow)
                .map_err(|e| format!("replica {j}: {e}"))?;
            self.check_fresh_dots(j, &follow)?;
            self.count_reactions(j, &follow)?;
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
        // Still waiting for peers after restarting empty: the store knows from its
        // data directory (no marker yet) and says so again.
        let awaiting = self.unconfirmed.contains(&i);
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
        if awaiting {
            state.await_peers();
        }
        node.state = state;
        node.log = log;
        let peers = self.reachable_from(i);
        self.tell_reachable(i, peers)?;
        self.observe(i)
    }

    /// See [`Action::RestartEmpty`].
    fn restart_empty(&mut self, i: usize) -> Check {
        let n = self.nodes.len();
        let me = ReplicaId(i as u16);
        // Its connections die with it: what it sent and nobody received yet is gone
        // (the store resends unacknowledged records from its log, which is gone too).
        // What survives: ops another replica holds or another's packet carries, whose
        // whole history survives too. `issued` is in causal order, and what survives
        // of one origin is a prefix of its ops.
        let carried: BTreeSet<Dot> = self
            .net
            .iter()
            .filter(|p| p.from != i)
            .flat_map(|p| p.ops.iter().map(|op| op.id))
            .collect();
        let mut kept: BTreeMap<ReplicaId, u64> = BTreeMap::new();
        let mut lost: BTreeSet<Dot> = BTreeSet::new();
        for op in &self.issued {
            let held = carried.contains(&op.id)
                || (0..n).any(|j| j != i && self.nodes[j].state.version().contains(op.id));
            let upto = kept.get(&op.id.replica).copied().unwrap_or(0);
            let history = op.id.seq == upto + 1
                && op
                    .deps
                    .iter()
                    .all(|(r, s)| kept.get(&r).copied().unwrap_or(0) >= s);
            if held && history {
                kept.insert(op.id.replica, op.id.seq);
            } else {
                lost.insert(op.id);
            }
        }
        // A peer buffering an op whose history is lost would hold it forever: the
        // store cannot get there (a link delivers a prefix of its sender's log, and what
        // it relays it holds), the simulator's reordering can. Not now, then.
        let orphaned = (0..n).filter(|&j| j != i).any(|j| {
            let state = &self.nodes[j].state;
            state.pending_ops().iter().any(|op| {
                lost.contains(&op.id)
                    || op
                        .deps
                        .iter()
                        .any(|(r, s)| s > kept.get(&r).copied().unwrap_or(0))
            })
        });
        if orphaned {
            return Ok(());
        }
        count(&RESTARTS_EMPTY, 1);
        self.net.retain(|p| p.from != i);
        self.issued.retain(|op| !lost.contains(&op.id));
        self.acked.retain(|(_, id)| !lost.contains(&id.op));
        // What only it showed is forgotten with its data: a bind nobody received is
        // lost, and its UID may be bound again (see crdt/README.md, what it does not
        // check).
        for (id, by) in self.bound.values_mut() {
            by.remove(&i);
            if lost.contains(&id.op) {
                by.clear();
            }
        }
        self.bound.retain(|_, (_, by)| !by.is_empty());
        for packet in &mut self.net {
            packet.ops.retain(|op| !lost.contains(&op.id));
        }
        self.net.retain(|p| !p.ops.is_empty());
        let mut state = UserState::new(me, config(n)).map_err(|e| e.to_string())?;
        state.await_peers();
        self.unconfirmed.insert(i);
        let node = &mut self.nodes[i];
        node.state = state;
        node.snapshot = None;
        node.log.clear();
        // Its clients' sessions ended with its data.
        self.shown[i].clear();
        self.last[i].clear();
        self.floor_counts.retain(|(j, _), _| *j != i);
        let peers = self.reachable_from(i);
        self.tell_reachable(i, peers.clone())?;
        // The catch-up handshake: each peer it hears from reports its progress and
        // sends everything it holds (the restarted replica's own ops included).
        for peer in peers {
            let j = peer.0 as usize;
            let version = self.nodes[j].state.version().clone();
            let ops = self.tell_progress(j, i);
            self.persist_and_send(i, ops)?;
            let holds: Vec<Op> = self
                .issued
                .iter()
                .filter(|op| version.contains(op.id))
                .cloned()
                .collect();
            if !holds.is_empty() {
                self.send(j, i, holds);
            }
        }
        self.observe(i)
    }

    /// The peers replica `i` hears from (a one-way cut makes this one-sided).
    fn reachable_from(&self, i: usize) -> Vec<ReplicaId> {
        (0..self.nodes.len())
            .filter(|&j| j != i && !self.cut.contains(&(j, i)))
            .map(|j| ReplicaId(j as u16))
            .collect()
    }

    fn tell_reachable(&mut self, i: usize, peers: Vec<ReplicaId>) -> Check {
        self.beliefs[i] = peers.clone();
        let ops = self.nodes[i].state.set_reachable(peers);
        self.persist_and_send(i, ops)
    }

    fn update_reachability(&mut self) -> Check {
        for i in 0..self.nodes.len() {
            let peers = self.reachable_from(i);
            self.tell_reachable(i, peers)?;
            self.observe(i)?;
        }
        Ok(())
    }

    /// The leader replica `i` believes in: the lowest id it believes reachable, itself
    /// included.
    fn believed_leader(&self, i: usize) -> usize {
        self.beliefs[i]
            .iter()
            .map(|r| r.0 as usize)
            .chain([i])
            .min()
            .unwrap_or(i)
    }

    fn exchange_progress(&mut self) -> Check {
        let n = self.nodes.len();
        for i in 0..n {
            for j in 0..n {
                if i != j && !self.cut.contains(&(j, i)) {
                    let ops = self.tell_progress(j, i);
                    self.persist_and_send(i, ops)?;
                }
            }
        }
        Ok(())
    }

    /// `to` learns what `from` holds: as progress (for compaction too), or, while
    /// `from` lacks its own history (its version may miss ops still to come from
    /// elsewhere), as evidence only — as the store does, which sends no progress then.
    fn tell_progress(&mut self, from: usize, to: usize) -> Vec<Op> {
        let version = self.nodes[from].state.version().clone();
        let peer = ReplicaId(from as u16);
        if self.nodes[from].state.check_own_history().is_ok() {
            self.nodes[to].state.report_progress(peer, &version)
        } else {
            self.nodes[to].state.hear_peer(peer, &version)
        }
    }

    /// Invariants 2 and 3, and the CONDSTORE contract, for what replica `i` shows now.
    fn observe(&mut self, i: usize) -> Check {
        let state = &self.nodes[i].state;
        // A replica without its own history is not served (the store refuses it): only
        // invariant 2 is checked, and what it shows once served starts afresh.
        let served = state.check_own_history().is_ok();
        if served {
            self.unconfirmed.remove(&i);
        } else {
            self.shown[i].clear();
            self.last[i].clear();
        }
        for info in state.mailboxes() {
            if info.name.contains('~') {
                count(&NAME_CONFLICTS, 1);
            }
            let snap = state
                .snapshot(&named(&info.name)?)
                .map_err(|e| e.to_string())?;
            let v = snap.uid_validity.get();
            // Invariant 2: one UID, one message, everywhere and forever.
            for m in &snap.messages {
                let key = (v, m.uid.get());
                match self.bound.get_mut(&key) {
                    Some((other, _)) if *other != m.id => {
                        return Err(format!(
                            "invariant 2: replica {i} shows UID {} of UIDVALIDITY {v} as {}, \
                             but it was shown as {other}",
                            m.uid, m.id
                        ));
                    }
                    Some((_, by)) => {
                        by.insert(i);
                    }
                    None => {
                        self.bound.insert(key, (m.id, BTreeSet::from([i])));
                    }
                }
            }
            if !served {
                continue;
            }
            // Invariant 3: what appears is above everything shown before.
            let shown = self.shown[i].entry(v).or_default();
            let now: BTreeSet<(u32, MessageId)> =
                snap.messages.iter().map(|m| (m.uid.get(), m.id)).collect();
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
            if snap.uid_next.get() <= shown.max_uid {
                return Err(format!(
                    "replica {i}: UIDNEXT {} is not above UID {}",
                    snap.uid_next, shown.max_uid
                ));
            }
            // CONDSTORE: everything that changed since the last look is reported.
            let messages: BTreeMap<u32, (MessageId, FlagSet)> = snap
                .messages
                .iter()
                .map(|m| (m.uid.get(), (m.id, m.flags.clone())))
                .collect();
            if let Some(last) = self.last[i].get(&info.id).filter(|l| l.uid_validity == v) {
                if snap.highest_modseq.0 < last.highest_modseq {
                    return Err(format!(
                        "replica {i}: HIGHESTMODSEQ of {} went down",
                        info.name
                    ));
                }
                match state
                    .changes_since(&named(&info.name)?, ModSeq(last.highest_modseq))
                    .map_err(|e| e.to_string())?
                {
                    Changes::TooOld => {}
                    Changes::Delta {
                        updated, expunged, ..
                    } => {
                        let updated: BTreeSet<u32> = updated.iter().map(|m| m.uid.get()).collect();
                        let expunged: BTreeSet<u32> = expunged.iter().map(|u| u.get()).collect();
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

    /// Invariant 1: every replica shows the same thing (its usage, kept as messages
    /// appear and disappear, included, and equal to a recount of what it shows).
    fn check_converged(&self, when: &str) -> Check {
        for (i, node) in self.nodes.iter().enumerate() {
            check_usage(&node.state).map_err(|e| format!("usage ({when}), replica {i}: {e}"))?;
        }
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

    /// The semantic oracles, recomputed from the ops issued, on replica 0 at quiescence
    /// (every replica shows the same by then): one incarnation per concurrent create,
    /// add-wins flags, expunge (and delete) beats store, subscribe add-wins, messages
    /// follow their mailbox's id through renames and names are last-writer-wins.
    fn check_semantics(&self) -> Check {
        let state = &self.nodes[0].state;
        // A create's incarnation is one more than the highest of its name its creator
        // had seen: concurrent creates from the same knowledge make one mailbox.
        for op in &self.issued {
            let OpKind::Create { mailbox, .. } = &op.kind else {
                continue;
            };
            let seen = self
                .issued
                .iter()
                .filter_map(|c| match &c.kind {
                    OpKind::Create { mailbox: m, .. }
                        if m.name == mailbox.name && op.deps.contains(c.id) =>
                    {
                        Some(m.incarnation)
                    }
                    _ => None,
                })
                .max();
            let expected = seen.map_or(0, |i| i + 1);
            if mailbox.incarnation != expected {
                return Err(format!(
                    "one incarnation per concurrent create: {} created {mailbox} after seeing \
                     incarnation {seen:?}",
                    op.id
                ));
            }
        }
        // Where each message was created, and what removes it.
        let home: BTreeMap<MessageId, &MailboxId> =
            self.acked.iter().map(|(mb, id)| (*id, mb)).collect();
        let removed = |id: &MessageId| {
            self.issued.iter().any(|op| match &op.kind {
                OpKind::Expunge { messages, .. } => messages.contains(id),
                OpKind::Move { sources, .. } => sources.contains(id),
                OpKind::Delete { mailboxes } => {
                    home.get(id).is_some_and(|mb| mailboxes.contains(mb)) && op.deps.contains(id.op)
                }
                _ => false,
            })
        };
        let mut flag_ops: BTreeMap<MessageId, Vec<&Op>> = BTreeMap::new();
        for op in &self.issued {
            if let OpKind::StoreFlags { messages, .. } = &op.kind {
                for id in messages {
                    flag_ops.entry(*id).or_default().push(op);
                }
            }
        }
        for info in state.mailboxes() {
            let snap = state
                .snapshot(&named(&info.name)?)
                .map_err(|e| e.to_string())?;
            // The name: last writer (by stamp) among the create and the renames.
            let mut name = (None, info.id.name.clone());
            for op in &self.issued {
                let candidate = match &op.kind {
                    OpKind::Create { mailbox, .. } if *mailbox == info.id => {
                        Some(mailbox.name.clone())
                    }
                    OpKind::Rename { renames } => renames
                        .iter()
                        .find(|(id, _)| *id == info.id)
                        .map(|(_, to)| to.clone()),
                    _ => None,
                };
                if let Some(candidate) = candidate {
                    if name.0.is_none_or(|stamp| op.stamp() > stamp) {
                        name = (Some(op.stamp()), candidate);
                    }
                }
            }
            // Listed under it, or as `name~UIDVALIDITY` when another claims it too.
            let listed = info.name == name.1
                || info
                    .name
                    .strip_prefix(&name.1)
                    .is_some_and(|rest| rest.starts_with('~'));
            if !listed {
                return Err(format!(
                    "rename: {} is listed as {}, but the last rename names it {}",
                    info.id, info.name, name.1
                ));
            }
            for m in &snap.messages {
                // Messages follow the mailbox id, whatever it is called now.
                if home.get(&m.id).is_some_and(|mb| **mb != info.id) {
                    return Err(format!(
                        "rename-follows-id: {} shows in {} ({}), but was put in {}",
                        m.id, info.name, info.id, home[&m.id]
                    ));
                }
                // Expunge, move and delete beat everything (a store included).
                if removed(&m.id) {
                    return Err(format!(
                        "expunge beats store: {} in {} shows at UID {} after its removal",
                        m.id, info.name, m.uid
                    ));
                }
                // Add-wins flags: a flag shows iff some add of it is seen by no remove.
                let creating = self.issued.iter().find(|op| op.id == m.id.op);
                let mut adds: Vec<(Flag, Dot)> = Vec::new();
                if let Some(op) = creating {
                    if let OpKind::Append { messages, .. } | OpKind::Move { messages, .. } =
                        &op.kind
                    {
                        if let Some(new) = messages.get(m.id.index as usize) {
                            adds.extend(new.data.flags.iter().map(|f| (f, op.id)));
                        }
                    }
                }
                let stores = flag_ops.get(&m.id).map(Vec::as_slice).unwrap_or_default();
                for op in stores {
                    if let OpKind::StoreFlags { change, .. } = &op.kind
                        && matches!(change.op, FlagOp::Add | FlagOp::Replace)
                    {
                        adds.extend(change.flags.iter().map(|f| (f, op.id)));
                    }
                }
                let expected: FlagSet = adds
                    .iter()
                    .filter(|(flag, dot)| {
                        !stores.iter().any(|r| {
                            let removes = match &r.kind {
                                OpKind::StoreFlags { change, .. } => match change.op {
                                    FlagOp::Remove => change.flags.contains(flag),
                                    FlagOp::Replace => true,
                                    FlagOp::Add => false,
                                },
                                _ => false,
                            };
                            removes && r.id != *dot && r.deps.contains(*dot)
                        })
                    })
                    .map(|(flag, _)| flag.clone())
                    .collect();
                if m.flags != expected {
                    return Err(format!(
                        "add-wins flags: {} in {} shows {:?}, the ops say {expected:?}",
                        m.id, info.name, m.flags
                    ));
                }
            }
        }
        // Subscriptions: add-wins over subscribe and unsubscribe.
        let mut subscribed = BTreeSet::new();
        for op in &self.issued {
            let OpKind::Subscribe { name } = &op.kind else {
                continue;
            };
            let undone = self.issued.iter().any(|u| {
                matches!(&u.kind, OpKind::Unsubscribe { name: n } if n == name)
                    && u.deps.contains(op.id)
            });
            if !undone {
                subscribed.insert(name.clone());
            }
        }
        let shown: BTreeSet<String> = state.subscriptions().into_iter().collect();
        if shown != subscribed {
            return Err(format!(
                "subscribe add-wins: subscriptions are {shown:?}, the ops say {subscribed:?}"
            ));
        }
        Ok(())
    }

    /// Invariant 4: an acknowledged message is shown, unless an expunge, move or
    /// delete that had seen it removed it.
    fn check_durability(&self) -> Check {
        let state = &self.nodes[0].state;
        let mut visible = BTreeSet::new();
        let mut out_of_uids = BTreeSet::new();
        for info in state.mailboxes() {
            let snap = state
                .snapshot(&named(&info.name)?)
                .map_err(|e| e.to_string())?;
            visible.extend(snap.messages.iter().map(|m| m.id));
            if self.near_the_end(info.uid_next) {
                out_of_uids.insert(info.id.clone());
            }
        }
        for (mailbox, id) in &self.acked {
            if visible.contains(id) {
                continue;
            }
            // No UID is left to show it at: acknowledged, kept, hidden (a limit).
            if out_of_uids.contains(mailbox) {
                count(&HIDDEN_AT_EXHAUSTION, 1);
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

impl World {
    /// A message keeps the UID its APPEND, COPY or MOVE answered unless another
    /// replica bound UIDs in that mailbox concurrently with it (dense UIDs cost
    /// renumbering only under real concurrency).
    fn check_renumbering(&self) -> Check {
        let state = &self.nodes[0].state;
        let mut now: BTreeMap<MessageId, u32> = BTreeMap::new();
        for info in state.mailboxes() {
            let snap = state
                .snapshot(&named(&info.name)?)
                .map_err(|e| e.to_string())?;
            now.extend(snap.messages.iter().map(|m| (m.id, m.uid.get())));
        }
        let binds_in = |op: &Op, mailbox: &MailboxId| match &op.kind {
            OpKind::Append { mailbox: m, .. }
            | OpKind::Move { to: m, .. }
            | OpKind::Bind { mailbox: m, .. } => m == mailbox,
            _ => false,
        };
        for (mailbox, id) in &self.acked {
            let Some(&shown) = now.get(id) else {
                continue;
            };
            let Some(created) = self.issued.iter().find(|op| op.id == id.op) else {
                continue;
            };
            let answered = match &created.kind {
                OpKind::Append { messages, .. } | OpKind::Move { messages, .. } => {
                    messages.get(id.index as usize).map(|m| m.uid.get())
                }
                _ => None,
            };
            if answered.is_none_or(|u| u == shown) {
                continue;
            }
            let concurrent = self.issued.iter().any(|op| {
                op.id.replica != created.id.replica
                    && binds_in(op, mailbox)
                    && !op.deps.contains(created.id)
                    && !created.deps.contains(op.id)
            });
            if !concurrent {
                return Err(format!(
                    "message {id} in {mailbox} was answered at UID {answered:?} and now shows \
                     at {shown}, with no concurrent bind by another replica"
                ));
            }
        }
        Ok(())
    }
}

/// The `n`th message body a client appends.
fn body(n: u64) -> MessageData {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&n.to_le_bytes());
    MessageData {
        body: BodyRef(hash),
        size: 100 + n as u32,
        internal_date: InternalDate {
            seconds: 1_700_000_000 + n as i64,
            offset_minutes: 60,
        },
        flags: FlagSet::new(),
    }
}

/// A name the state shows (the simulator's names and their `~UIDVALIDITY` variants
/// are short) as the API takes it.
fn named(name: &str) -> Result<MailboxName, String> {
    MailboxName::new(name).map_err(|e| format!("{name:?} is not a mailbox name: {e}"))
}

/// The usage a state keeps against a recount of the messages it shows and hides.
fn check_usage(state: &UserState) -> Check {
    let mut recount = pluto_model::Usage::default();
    for info in state.mailboxes() {
        // A `name~UIDVALIDITY` variant may be no MailboxName: nothing to recount with.
        let Ok(name) = named(&info.name) else {
            return Ok(());
        };
        let snapshot = state.snapshot(&name).map_err(|e| e.to_string())?;
        for m in &snapshot.messages {
            recount = recount.plus(pluto_model::Usage::new(u64::from(m.size), 1));
        }
    }
    // Messages hidden while they wait for a UID (only at UID exhaustion once settled)
    // count too: their number is known, their sizes are not.
    let hidden = state.stats().hidden_messages as u64;
    let kept = state.usage();
    if hidden == 0 && kept != recount || kept.messages != recount.messages + hidden {
        return Err(format!(
            "kept {kept:?}, recounted {recount:?} and {hidden} hidden"
        ));
    }
    Ok(())
}

/// Everything a replica shows, for comparing replicas.
fn describe(state: &UserState) -> String {
    let mut out = format!(
        "{:?}\n{:?}\n{:?}\n",
        state.mailboxes(),
        state.subscriptions(),
        state.usage()
    );
    for info in state.mailboxes() {
        let snap = named(&info.name).map(|name| state.snapshot(&name));
        out.push_str(&format!("{snap:?}\n"));
    }
    out
}

/// What a client was told, for [`check_reply`].
enum Reply {
    None,
    Append {
        mailbox: &'static str,
        uid_validity: u32,
        uids: Vec<Uid>,
    },
    Copy {
        from: &'static str,
        to: &'static str,
        is_move: bool,
        requested: Vec<Uid>,
        before: MailboxSnapshot,
        uid_validity: u32,
        mapping: Vec<(Uid, Uid)>,
    },
    Expunge {
        mailbox: &'static str,
        requested: Vec<Uid>,
        expunged: Vec<Uid>,
    },
    Store {
        mailbox: &'static str,
        requested: Vec<Uid>,
        before: MailboxSnapshot,
        change: FlagChange,
        since: Option<ModSeq>,
        outcome: StoreOutcome,
    },
}

/// The client replies against what the replica shows right after the write:
/// APPENDUID and COPYUID name the new messages at once, at UIDs the mailbox shows
/// them at and below UIDNEXT; EXPUNGE and STORE report exactly the messages they
/// acted on; UNCHANGEDSINCE leaves exactly the messages modified after it alone.
fn check_reply(state: &UserState, reply: &Reply, ops: &[Op]) -> Check {
    let new_ids: Vec<MessageId> = ops
        .iter()
        .flat_map(|op| match &op.kind {
            OpKind::Append { messages, .. } | OpKind::Move { messages, .. } => (0..messages.len())
                .map(|index| MessageId {
                    op: op.id,
                    index: index as u32,
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    let shows = |mailbox: &str| -> Result<(MailboxSnapshot, BTreeMap<Uid, MessageView>), String> {
        let snap = state
            .snapshot(&named(mailbox)?)
            .map_err(|e| e.to_string())?;
        let by_uid = snap.messages.iter().map(|m| (m.uid, m.clone())).collect();
        Ok((snap, by_uid))
    };
    let requested_visible = |before: &MailboxSnapshot, requested: &[Uid]| -> Vec<Uid> {
        let set: BTreeSet<Uid> = requested.iter().copied().collect();
        before
            .messages
            .iter()
            .filter(|m| set.contains(&m.uid))
            .map(|m| m.uid)
            .collect()
    };
    match reply {
        Reply::None => Ok(()),
        Reply::Append {
            mailbox,
            uid_validity,
            uids,
        } => {
            let (snap, by_uid) = shows(mailbox)?;
            if snap.uid_validity.get() != *uid_validity || uids.len() != new_ids.len() {
                return Err(format!(
                    "APPENDUID {uid_validity} {uids:?} does not match the append"
                ));
            }
            for (uid, id) in uids.iter().zip(&new_ids) {
                if by_uid.get(uid).map(|m| m.id) != Some(*id) || *uid >= snap.uid_next {
                    return Err(format!(
                        "APPENDUID named UID {uid} in {mailbox}, which does not show the new \\
                         message {id} there (UIDNEXT {})",
                        snap.uid_next
                    ));
                }
            }
            Ok(())
        }
        Reply::Copy {
            from,
            to,
            is_move,
            requested,
            before,
            uid_validity,
            mapping,
        } => {
            let expected = requested_visible(before, requested);
            let sources: Vec<Uid> = mapping.iter().map(|(s, _)| *s).collect();
            if sources != expected || mapping.len() != new_ids.len() {
                return Err(format!(
                    "COPYUID maps {sources:?}, but {expected:?} of {requested:?} showed in {from}"
                ));
            }
            let (snap, by_uid) = shows(to)?;
            if snap.uid_validity.get() != *uid_validity {
                return Err(format!("COPYUID gave UIDVALIDITY {uid_validity} for {to}"));
            }
            for ((_, uid), id) in mapping.iter().zip(&new_ids) {
                if by_uid.get(uid).map(|m| m.id) != Some(*id) {
                    return Err(format!(
                        "COPYUID named UID {uid} in {to}, which does not show the copy {id}"
                    ));
                }
            }
            if *is_move {
                let (_, now) = shows(from)?;
                let moved: BTreeSet<MessageId> = before
                    .messages
                    .iter()
                    .filter(|m| sources.contains(&m.uid))
                    .map(|m| m.id)
                    .collect();
                if now.values().any(|m| moved.contains(&m.id)) {
                    return Err(format!("MOVE left a source message in {from}"));
                }
            }
            Ok(())
        }
        Reply::Expunge {
            mailbox,
            requested,
            expunged,
        } => {
            let before = requested.clone();
            let (_, now) = shows(mailbox)?;
            if expunged.iter().any(|u| now.contains_key(u)) || *expunged != before {
                return Err(format!(
                    "EXPUNGE of {requested:?} in {mailbox} reported {expunged:?}"
                ));
            }
            Ok(())
        }
        Reply::Store {
            mailbox,
            requested,
            before,
            change,
            since,
            outcome,
        } => {
            let visible = requested_visible(before, requested);
            let by_uid: BTreeMap<Uid, &MessageView> =
                before.messages.iter().map(|m| (m.uid, m)).collect();
            let modified: Vec<Uid> = visible
                .iter()
                .copied()
                .filter(|u| since.is_some_and(|s| by_uid[u].modseq > s))
                .collect();
            let updated: Vec<Uid> = visible
                .iter()
                .copied()
                .filter(|u| !modified.contains(u))
                .collect();
            let told: Vec<Uid> = outcome.updated.iter().map(|m| m.uid).collect();
            if outcome.modified != modified || told != updated {
                return Err(format!(
                    "STORE UNCHANGEDSINCE {since:?} on {visible:?} of {mailbox}: reported \\
                     updated {told:?} modified {:?}, expected updated {updated:?} modified \\
                     {modified:?}",
                    outcome.modified
                ));
            }
            let (snap, now) = shows(mailbox)?;
            for m in &outcome.updated {
                let mut flags = by_uid[&m.uid].flags.clone();
                let set = &change.flags;
                match change.op {
                    FlagOp::Add => set.iter().for_each(|f| {
                        flags.insert(f);
                    }),
                    FlagOp::Remove => set.iter().for_each(|f| {
                        flags.remove(&f);
                    }),
                    FlagOp::Replace => flags = set.clone(),
                }
                let shown = now.get(&m.uid);
                if m.flags != flags
                    || shown.map(|s| &s.flags) != Some(&flags)
                    || m.modseq != snap.highest_modseq
                    || m.modseq <= before.highest_modseq
                {
                    return Err(format!(
                        "STORE {change:?} on UID {} of {mailbox} answered {m:?}, expected flags \\
                         {flags:?} at a new modseq (now shown {shown:?})",
                        m.uid
                    ));
                }
            }
            for u in &modified {
                if now.get(u) != Some(by_uid[u]) {
                    return Err(format!(
                        "STORE UNCHANGEDSINCE changed UID {u} of {mailbox}, which it left alone"
                    ));
                }
            }
            Ok(())
        }
    }
}

/// A floor is owed only for a message that would show at or below T: each floor a
/// replica issues must hide its message there (one that hides nothing is wasted cost).
/// With a single writer holding its claim, the new messages of an APPEND, COPY or MOVE
/// get exactly the UIDNEXT the target showed before, and the UIDs after it: dense UIDs,
/// and a UIDNEXT that predicted APPENDUID/COPYUID.
fn check_dense(reply: &Reply, uid_next_before: &BTreeMap<&str, u32>) -> Check {
    let (mailbox, uids): (&str, Vec<u32>) = match reply {
        Reply::Append { mailbox, uids, .. } => (mailbox, uids.iter().map(|u| u.get()).collect()),
        Reply::Copy { to, mapping, .. } => (to, mapping.iter().map(|(_, u)| u.get()).collect()),
        _ => return Ok(()),
    };
    let Some(first) = uid_next_before.get(mailbox) else {
        return Ok(());
    };
    let expected: Vec<u32> = (0..uids.len() as u32).map(|k| first + k).collect();
    if uids != expected {
        return Err(format!(
            "single writer with its claim: new UIDs {uids:?} in {mailbox}, but UIDNEXT was \
             {first} (expected {expected:?})"
        ));
    }
    Ok(())
}

fn check_floors_hide(state: &UserState, follow: &[Op]) -> Check {
    let floors: BTreeMap<MessageId, u32> = follow
        .iter()
        .flat_map(|op| match &op.kind {
            OpKind::Floor { floors, .. } => floors.iter().map(|(id, u)| (*id, u.get())).collect(),
            _ => Vec::new(),
        })
        .collect();
    if floors.is_empty() {
        return Ok(());
    }
    for info in state.mailboxes() {
        let snap = state
            .snapshot(&named(&info.name)?)
            .map_err(|e| e.to_string())?;
        for m in &snap.messages {
            if let Some(floor) = floors.get(&m.id) {
                return Err(format!(
                    "settling cost: a floor at {floor} that hides nothing: {} still shows at UID {}",
                    m.id, m.uid
                ));
            }
        }
    }
    Ok(())
}
