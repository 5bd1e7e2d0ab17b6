//! Scenarios: the random strategies and how one scenario runs (shared by the
//! simulator, `sim/main.rs`, and the mutation test, `mutations.rs`).

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::world::{Action, ClientOp, Order, World};

fn client_op() -> impl Strategy<Value = ClientOp> {
    let name = || 0u8..4;
    prop_oneof![
        2 => name().prop_map(|name| ClientOp::Create { name }),
        1 => name().prop_map(|name| ClientOp::Delete { name }),
        1 => (name(), name()).prop_map(|(from, to)| ClientOp::Rename { from, to }),
        1 => name().prop_map(|name| ClientOp::Subscribe { name }),
        1 => name().prop_map(|name| ClientOp::Unsubscribe { name }),
        6 => (name(), any::<u8>()).prop_map(|(mailbox, count)| ClientOp::Append { mailbox, count }),
        2 => (name(), any::<u16>(), name()).prop_map(|(from, pick, to)| ClientOp::Copy { from, pick, to }),
        2 => (name(), any::<u16>(), name()).prop_map(|(from, pick, to)| ClientOp::Move { from, pick, to }),
        2 => (name(), any::<u16>()).prop_map(|(mailbox, pick)| ClientOp::Expunge { mailbox, pick }),
        4 => (name(), any::<u16>(), any::<u8>(), any::<u8>(), prop::option::of(any::<u8>()))
            .prop_map(|(mailbox, pick, flag, mode, unchanged_since)| ClientOp::Store {
                mailbox,
                pick,
                flag,
                mode,
                unchanged_since,
            }),
    ]
}

/// How often the rarer actions are drawn, against 12 client writes and 10 deliveries
/// (each weight at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Profile {
    pub crash: u32,
    pub snapshot: u32,
    pub compact: u32,
    /// Partitions (two groups) and settling inside them.
    pub partition: u32,
    /// One-way cuts, lost packets and wrong leader beliefs.
    pub chaos: u32,
    /// Replicas that lose their data and restart empty under their old id.
    pub restart_empty: u32,
}

impl Profile {
    /// The simulator's mix.
    pub(crate) const DEFAULT: Profile = Profile {
        crash: 1,
        snapshot: 1,
        compact: 1,
        partition: 1,
        chaos: 1,
        restart_empty: 1,
    };
    /// Restarts from snapshot plus log, often.
    pub(crate) const CRASHES: Profile = Profile {
        crash: 8,
        snapshot: 3,
        compact: 1,
        partition: 1,
        chaos: 1,
        restart_empty: 1,
    };
    /// Partitions that stay up and settle, leaders that agree.
    pub(crate) const PARTITIONS: Profile = Profile {
        crash: 1,
        snapshot: 1,
        compact: 1,
        partition: 6,
        chaos: 1,
        restart_empty: 1,
    };
    /// Replicas restarting empty, often.
    pub(crate) const RESTARTS: Profile = Profile {
        crash: 1,
        snapshot: 1,
        compact: 1,
        partition: 1,
        chaos: 1,
        restart_empty: 6,
    };
}

fn action(profile: Profile) -> impl Strategy<Value = Action> {
    prop_oneof![
        12 => (any::<u8>(), client_op()).prop_map(|(replica, op)| Action::Client { replica, op }),
        10 => any::<u16>().prop_map(|pick| Action::Deliver { pick }),
        1 => any::<u16>().prop_map(|pick| Action::Duplicate { pick }),
        2 * profile.partition => any::<u8>().prop_map(|mask| Action::Partition { mask }),
        profile.partition => any::<u16>().prop_map(|assign| Action::Groups { assign }),
        profile.chaos => (any::<u8>(), any::<u8>()).prop_map(|(from, to)| Action::CutOneWay { from, to }),
        profile.chaos => any::<u16>().prop_map(|pick| Action::Lose { pick }),
        profile.chaos => (any::<u8>(), any::<u8>()).prop_map(|(replica, mask)| Action::Believe { replica, mask }),
        2 => Just(Action::Heal),
        profile.crash => any::<u8>().prop_map(|replica| Action::Crash { replica }),
        profile.restart_empty => any::<u8>().prop_map(|replica| Action::RestartEmpty { replica }),
        profile.snapshot => any::<u8>().prop_map(|replica| Action::Snapshot { replica }),
        profile.compact => Just(Action::Compact),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(from, to)| Action::Report { from, to }),
        1 => any::<u8>().prop_map(|replica| Action::Claim { replica }),
        profile.partition => Just(Action::SettleGroups),
    ]
}

/// A scenario: how many replicas, the seed of the random quiescence order, whether
/// every mailbox starts near the end of the UID space, the claim window, whether only
/// replica 0 takes writes, the actions.
pub(crate) type Scenario = (usize, u64, bool, u32, bool, Vec<Action>);

pub(crate) fn scenario() -> impl Strategy<Value = Scenario> {
    scenario_with(Profile::DEFAULT)
}

pub(crate) fn scenario_with(profile: Profile) -> impl Strategy<Value = Scenario> {
    (
        prop_oneof![9 => 2usize..=5, 1 => 6usize..=8],
        any::<u64>(),
        prop_oneof![9 => Just(false), 1 => Just(true)],
        // Small windows run out and are claimed again; the store's never does here.
        prop_oneof![3 => 2u32..=32, 1 => Just(pluto_crdt::DEFAULT_CLAIM_WINDOW)],
        prop_oneof![4 => Just(false), 1 => Just(true)],
        prop::collection::vec(action(profile), 1..120),
    )
}

/// Runs the actions, then quiesces a copy of the world in each order.
pub(crate) fn run(
    (replicas, seed, high_uids, window, single_writer, actions): Scenario,
) -> Result<(), TestCaseError> {
    // A single writer's density is checked with the store's window, which these
    // scenarios never use up.
    let window = if single_writer {
        pluto_crdt::DEFAULT_CLAIM_WINDOW
    } else {
        window
    };
    let mut world =
        World::new_with(replicas, high_uids, window, single_writer).map_err(TestCaseError::fail)?;
    for (step, action) in actions.iter().enumerate() {
        world
            .step(action)
            .map_err(|e| TestCaseError::fail(format!("step {step} ({action:?}): {e}")))?;
    }
    for order in Order::all(seed) {
        world
            .clone()
            .quiesce(order)
            .map_err(|e| TestCaseError::fail(format!("quiescence in {order:?} order: {e}")))?;
    }
    Ok(())
}
