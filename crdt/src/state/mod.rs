//! [`UserState`]: one replica's copy of a user's mail state. Local writes become
//! operations applied at once; remote batches go through the causal-delivery buffer;
//! after each batch the UID rules add the binds or floors this replica owes.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use crate::error::CrdtError;
#[cfg(not(feature = "mutations"))]
use crate::ids::fresh;
use crate::ids::{Dot, MailboxId, MessageId, ModSeq, ReplicaId, Uid, VersionVector, nonzero};
use crate::mailbox::{Mailbox, Message};
#[cfg(feature = "mutations")]
use crate::mutations::{Mutation, on as mutated};
use crate::op::{NewMessage, Op};
use crate::view::MessageView;

mod claims;
mod compaction;
mod local;
mod queries;
mod remote;
mod uids;

/// The snapshot format this code writes (and the only one it reads).
pub const SNAPSHOT_VERSION: u32 = 2;

/// Settings every replica of a user must share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// K: replica `r` binds only UIDs `≡ r (mod K)`. Every replica id must be below it.
    /// Fixed for the life of the user's state.
    pub uid_stride: u16,
    /// Every replica of the user: compaction waits until all of them have reported.
    pub members: Vec<ReplicaId>,
}

/// What one remote batch changed, for the UID rules that run after it.
#[derive(Default)]
struct Batch {
    /// Per mailbox: T (its H before the batch) and the messages whose shown UID
    /// changed, with the UID they had before the batch.
    mailboxes: BTreeMap<MailboxId, (u32, BTreeMap<MessageId, Option<u32>>)>,
    /// False for this replica's own writes, which owe no follow-ups.
    local: bool,
}

impl Batch {
    fn local() -> Self {
        Batch {
            local: true,
            ..Batch::default()
        }
    }
}

/// A replica's progress as reported: the latest report, and the latest one usable for
/// causal stability (usable once this replica holds every op of the reporter that the
/// report includes: any op of it still to come was then made after the report).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Progress {
    latest: VersionVector,
    usable: Option<VersionVector>,
}

/// The UIDVALIDITY of the mailboxes a user starts with
/// ([`UserState::create_default_mailbox`]); the same on every replica.
pub const DEFAULT_UID_VALIDITY: u32 = 1;

/// One replica's state of one user's mail.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserState {
    replica: ReplicaId,
    config: Config,
    /// The operations applied here (a causally closed set).
    clock: VersionVector,
    mailboxes: BTreeMap<MailboxId, Mailbox>,
    /// Display name → mailbox, for live mailboxes. Derived from `mailboxes`.
    names: BTreeMap<String, MailboxId>,
    /// The highest incarnation of each creation name ever seen.
    incarnations: BTreeMap<String, u32>,
    max_uid_validity: u32,
    /// Subscribed names, add-wins: the subscribe ops no unsubscribe has seen.
    subscriptions: BTreeMap<String, Vec<Dot>>,
    /// Remote ops waiting for their causal dependencies.
    pending: BTreeMap<Dot, Op>,
    progress: BTreeMap<ReplicaId, Progress>,
    /// Every replica's UID claims as known here (dense UIDs, `claims.rs`).
    claims: BTreeMap<ReplicaId, claims::OriginClaims>,
    /// This replica's own claims that may still be the one it binds under, oldest first.
    own_claims: Vec<claims::OwnClaim>,
    /// The peers this replica believes reachable; `None` until the caller says
    /// (volatile: told again after a restart). A replica never told is not leader.
    #[serde(skip)]
    reachable: Option<BTreeSet<ReplicaId>>,
    /// The other members whose progress this replica must hear before it issues
    /// anything ([`await_peers`](Self::await_peers)). Volatile: the caller says again
    /// after a restart.
    #[serde(skip)]
    awaiting: BTreeSet<ReplicaId>,
    /// The awaited members' first reports: a replica that awaited its peers issues
    /// nothing until it holds all they name (what it once held, and peers may have
    /// compacted away as seen by it, is in there). A member that reports less than
    /// before lost its history too: its newer report replaces the older.
    #[serde(skip)]
    recovery: Option<BTreeMap<ReplicaId, VersionVector>>,
    /// What peers said they hold ([`hear_peer`](Self::hear_peer), and every
    /// [`report_progress`](Self::report_progress)): evidence of ops of this replica's
    /// own id, not progress for compaction. Volatile.
    #[serde(skip)]
    heard: BTreeMap<ReplicaId, VersionVector>,
    /// What peers reported before they reported less (they lost their history), and
    /// the members heard from since the latest such shrink. The lost reports still
    /// count as evidence of this replica's own ops until every other member has been
    /// heard after the shrink: another may hold what the shrunk peer no longer does
    /// (found by the simulator: a replica re-issued a dot a peer still held). Volatile.
    #[serde(skip)]
    shrunk: Option<(VersionVector, BTreeSet<ReplicaId>)>,
    /// Follow-ups were skipped while this replica could not issue: once it can, the
    /// leader binds every hidden message ([`bind_hidden`](Self::bind_hidden)).
    #[serde(skip)]
    owed: bool,
}

impl UserState {
    /// An empty state for `replica`.
    pub fn new(replica: ReplicaId, config: Config) -> Result<Self, CrdtError> {
        if config.uid_stride == 0 {
            return Err(CrdtError::InvalidConfig(
                "the UID stride must be at least 1".into(),
            ));
        }
        if let Some(r) = config
            .members
            .iter()
            .chain([&replica])
            .find(|r| r.0 >= config.uid_stride)
        {
            return Err(CrdtError::InvalidConfig(format!(
                "replica id {} is not below the UID stride {}",
                r.0, config.uid_stride
            )));
        }
        Ok(Self {
            replica,
            config,
            clock: VersionVector::new(),
            mailboxes: BTreeMap::new(),
            names: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            max_uid_validity: 0,
            subscriptions: BTreeMap::new(),
            pending: BTreeMap::new(),
            progress: BTreeMap::new(),
            claims: BTreeMap::new(),
            own_claims: Vec::new(),
            reachable: None,
            awaiting: BTreeSet::new(),
            recovery: None,
            heard: BTreeMap::new(),
            shrunk: None,
            owed: false,
        })
    }

    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The operations applied here: what to report to peers as this replica's progress.
    pub fn version(&self) -> &VersionVector {
        &self.clock
    }

    // ---------------------------------------------------------------- own history

    /// For a replica that may have lost its history (its data was gone when it started):
    /// it issues nothing — no write, no follow-up — until every other member of
    /// [`Config::members`] has reported its progress ([`report_progress`](Self::report_progress))
    /// and it holds every op those first reports name. A new op then takes the dot
    /// after the highest one of its id anywhere, never one a peer holds already, and
    /// is causally after everything its peers hold (which they may have compacted,
    /// counting it as seen by this replica before it lost it).
    pub fn await_peers(&mut self) {
        self.awaiting = self
            .config
            .members
            .iter()
            .copied()
            .filter(|r| *r != self.replica)
            .collect();
        self.recovery = Some(BTreeMap::new());
    }

    /// The highest sequence number of this replica's own id that it knows exists: in
    /// what peers last said they hold (since this state was made or decoded: a replica
    /// restarted with its data has all of its own ops), and in the origin and context
    /// of the ops waiting in the causal buffer. Ops applied here have their context here, so they add nothing.
    fn known_own(&self) -> u64 {
        let me = self.replica;
        // The latest word of each peer: a peer that lost its history itself no longer
        // holds what it once reported.
        let reported = self
            .heard
            .iter()
            .filter(|(r, _)| **r != me)
            .map(|(_, v)| v.get(me))
            .chain(self.shrunk.as_ref().map(|(v, _)| v.get(me)))
            .max()
            .unwrap_or(0);
        let waiting = self
            .pending
            .values()
            .map(|op| {
                if op.id.replica == me {
                    op.id.seq
                } else {
                    op.deps.get(me)
                }
            })
            .max()
            .unwrap_or(0);
        reported.max(waiting)
    }

    /// Whether this replica may issue ops: it holds every op of its own id that any
    /// peer knows of, and it waits for no peer's progress ([`await_peers`](Self::await_peers)).
    /// A replica that restarted empty under its old id would otherwise give its new
    /// ops the dots of its lost ones, which its peers ignore as already held: writes
    /// acknowledged that never converge. Local writes fail with this error; follow-ups
    /// are held back until it clears.
    pub fn check_own_history(&self) -> Result<(), CrdtError> {
        #[cfg(feature = "mutations")]
        if mutated(Mutation::OwnHistoryUnchecked) {
            return Ok(());
        }
        let issued = self.clock.get(self.replica);
        let known = self.known_own();
        let behind = self
            .recovery
            .as_ref()
            .is_some_and(|reports| reports.values().any(|v| !v.le(&self.clock)));
        if known > issued || !self.awaiting.is_empty() || behind {
            return Err(CrdtError::OwnHistoryMissing {
                replica: self.replica,
                issued,
                known,
                awaiting: self.awaiting.len(),
            });
        }
        Ok(())
    }

    /// The binds held back while this replica could not issue, once it can.
    fn owed_binds(&mut self) -> Vec<Op> {
        if self.check_own_history().is_err() {
            return Vec::new();
        }
        // Recovered: later reports no longer hold it back.
        self.recovery = None;
        if !self.owed {
            return Vec::new();
        }
        self.owed = false;
        self.bind_hidden()
    }
}

/// Mutation hook: [`Mutation::NoResidue`] makes fresh UIDs ignore the residue.
#[cfg(feature = "mutations")]
pub(super) fn fresh(above: u32, residue: u16, stride: u16) -> Option<u32> {
    if mutated(Mutation::NoResidue) {
        return above.checked_add(1);
    }
    crate::ids::fresh(above, residue, stride)
}

/// A fresh UID: as [`fresh`], below `u32::MAX` (UIDNEXT, one more than the highest
/// UID, must be a 32-bit number too). `None` when the mailbox's UIDs are used up.
pub(super) fn fresh_uid(above: u32, residue: u16, stride: u16) -> Option<u32> {
    fresh(above, residue, stride).filter(|u| *u < u32::MAX)
}

pub use claims::DEFAULT_CLAIM_WINDOW;

pub(super) fn add_messages(mb: &mut Mailbox, dot: Dot, messages: &[NewMessage]) {
    for (index, new) in messages.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        mb.add_message(MessageId { op: dot, index }, new, dot);
    }
}

pub(super) fn uid_of(number: u32) -> Uid {
    Uid(nonzero(number))
}

pub(super) fn uid_next(mb: &Mailbox) -> Uid {
    Uid(NonZeroU32::MIN.saturating_add(mb.h))
}

pub(super) fn view(uid: u32, id: MessageId, m: &Message) -> MessageView {
    MessageView {
        uid: uid_of(uid),
        id,
        flags: m.flags.visible.clone(),
        modseq: ModSeq(m.modseq),
        body: m.body,
        size: m.size,
        internal_date: m.internal_date,
    }
}
