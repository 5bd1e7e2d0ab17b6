//! Deliberate bugs, for the simulator's mutation test only (`crdt/tests/mutations.rs`).
//!
//! Compiled only with the test-only cargo feature `mutations`, which nothing in the
//! product enables. A test thread picks one mutant with [`set`]; the crate's code then
//! takes the mutant's path at the spots marked `#[cfg(feature = "mutations")]`. The
//! choice is per thread, so tests running in parallel do not see each other's.

use std::cell::Cell;

/// One deliberate departure from the rules in `crdt/README.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Every replica re-binds the messages a batch makes conflict, not only the leader
    /// (no floors): the chase of binds never has to end.
    NaiveRebind,
    /// A message is shown at its lowest binding instead of its highest.
    LowestBindingShown,
    /// T is the highest UID shown now instead of H (which never falls).
    VolatileThreshold,
    /// Fresh UIDs ignore the replica's residue (and receipt no longer checks it).
    NoResidue,
    /// Ops wait only for their origin's previous op, not for their whole context.
    NoCausalBuffer,
    /// A flag remove beats a concurrent add.
    RemoveWinsFlags,
    /// A progress report counts for stability before this replica holds the ops it
    /// includes: tombstones can be dropped while an op concerning them is still coming.
    EarlyTombstoneDrop,
    /// A replica that becomes leader does not bind the messages hidden so far.
    LeaderSkipsHidden,
    /// The threshold is H after the batch instead of T before it: a message that moved
    /// above T still counts as moved below it, and is floored or re-bound again.
    ThresholdAfterBatch,
    /// Messages touched by a concurrent op get no extra modseq.
    NoConcurrentModseqBump,
    /// Concurrent creates of one name from the same knowledge make one incarnation per
    /// creating replica.
    IncarnationPerReplica,
    /// Replay re-derives the follow-ups a batch owed, as the leader it may have been,
    /// although they are in the log already (the new ones are never sent).
    ReplayRederives,
    /// A replica issues operations whatever its peers know of its own id: one that
    /// restarted empty reuses the dots of its lost operations.
    OwnHistoryUnchecked,
    /// A replica binds densely under its claim before every member acknowledged it.
    UnacknowledgedClaim,
    /// Residue binds ignore the windows other replicas claimed.
    ClaimsIgnored,
}

impl Mutation {
    pub const ALL: [Mutation; 15] = [
        Mutation::NaiveRebind,
        Mutation::LowestBindingShown,
        Mutation::VolatileThreshold,
        Mutation::NoResidue,
        Mutation::NoCausalBuffer,
        Mutation::RemoveWinsFlags,
        Mutation::EarlyTombstoneDrop,
        Mutation::LeaderSkipsHidden,
        Mutation::ThresholdAfterBatch,
        Mutation::NoConcurrentModseqBump,
        Mutation::IncarnationPerReplica,
        Mutation::ReplayRederives,
        Mutation::OwnHistoryUnchecked,
        Mutation::UnacknowledgedClaim,
        Mutation::ClaimsIgnored,
    ];
}

thread_local! {
    static ACTIVE: Cell<Option<Mutation>> = const { Cell::new(None) };
}

/// Makes this thread's calls into the crate take `mutation`'s path (`None`: the real
/// crate).
pub fn set(mutation: Option<Mutation>) {
    ACTIVE.with(|a| a.set(mutation));
}

/// The mutant this thread runs, if any.
pub fn active() -> Option<Mutation> {
    ACTIVE.with(Cell::get)
}

pub(crate) fn on(mutation: Mutation) -> bool {
    active() == Some(mutation)
}
