//! The deterministic multi-replica simulator: random client writes at each replica,
//! delivery in random order with duplicates and delays, partitions and heals, settling
//! inside partitions that stay up, crashes that restart a replica from its last
//! snapshot plus its log, compaction; then quiescence in four delivery orders. Every
//! step checks invariants 2 and 3, the CONDSTORE contract and the client's replies;
//! quiescence checks 1, 4, settling and its cost, the semantic oracles and compaction
//! (6). See `scenario.rs`, `world.rs` and "What it checks" in
//! `crdt/README.md`.
//!
//! `PLUTO_SIM_CASES=N` runs N scenarios (default 5000, split over two tests so they
//! run in parallel); `PLUTO_SIM_SEED=S` picks the seed. A failure prints the seed and
//! the shrunk scenario; the same seed replays it exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared with `tests/mutations.rs`, which uses parts this test does not.
#[allow(dead_code)]
mod scenario;
#[allow(dead_code)]
mod world;

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use scenario::{run, scenario};
use world::{Order, World};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `share` of the scenarios with a seed derived from `PLUTO_SIM_SEED`.
fn simulate(part: u64) {
    let seed = env_u64("PLUTO_SIM_SEED", 0x5EED_1DEA) ^ part;
    let cases = env_u64("PLUTO_SIM_CASES", 5000).div_ceil(2) as u32;
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    if let Err(failure) = runner.run(&scenario(), run) {
        panic!(
            "simulator found a violation (part {part}, seed {seed:#x}).\n{failure}\n\
             Replay exactly: PLUTO_SIM_SEED={} PLUTO_SIM_CASES={} cargo test -p pluto-crdt --test sim",
            seed ^ part,
            cases * 2
        );
    }
}

#[test]
fn simulated_replicas_keep_the_invariants_part_a() {
    simulate(0);
}

#[test]
fn simulated_replicas_keep_the_invariants_part_b() {
    simulate(1);
}

/// Found by the simulator (1,000,000 scenarios, 4 December 2026): replicas 0 and 1
/// restart empty; replica 2 tells 0 that 0's first op exists, then restarts empty
/// too and tells 0 it holds nothing. Replica 0 took the shrunk report as the whole
/// truth and re-issued dot r0.1, which replica 1 had got back meanwhile (ignored there
/// as held: a write that never converges). What a shrunk report said now counts
/// until every other member has been heard again.
#[test]
fn regression_a_shrunk_report_does_not_erase_evidence_of_own_ops() {
    use world::Action::*;
    use world::ClientOp::*;
    let create = |replica| Client {
        replica,
        op: Create { name: 0 },
    };
    let mut actions = vec![create(0); 6];
    actions.extend([
        Client {
            replica: 0,
            op: Copy {
                from: 0,
                pick: 0,
                to: 0,
            },
        },
        create(105),
        Partition { mask: 54 },
        RestartEmpty { replica: 15 },
        RestartEmpty { replica: 109 },
        Partition { mask: 63 },
        Compact,
        Deliver { pick: 0 },
        RestartEmpty { replica: 77 },
        Report { from: 146, to: 234 },
        Claim { replica: 21 },
    ]);
    replay(World::new_with(3, false, 2, false).unwrap(), &actions, 0);
}

/// The same, found in the other half of that run: four replicas, three restarted
/// empty, a shrunk report from replica 0 to replica 2 before 2 writes.
#[test]
fn regression_a_shrunk_report_does_not_erase_evidence_of_own_ops_of_four() {
    use world::Action::*;
    use world::ClientOp::*;
    let create = Client {
        replica: 0,
        op: Create { name: 0 },
    };
    let actions = vec![
        Client {
            replica: 159,
            op: Append {
                mailbox: 0,
                count: 0,
            },
        },
        Deliver { pick: 21365 },
        Partition { mask: 117 },
        SettleGroups,
        Lose { pick: 0 },
        Claim { replica: 94 },
        Client {
            replica: 83,
            op: Subscribe { name: 0 },
        },
        Deliver { pick: 11462 },
        Heal,
        Deliver { pick: 22183 },
        RestartEmpty { replica: 42 },
        Deliver { pick: 30736 },
        RestartEmpty { replica: 105 },
        Deliver { pick: 49877 },
        Duplicate { pick: 3386 },
        Duplicate { pick: 0 },
        RestartEmpty { replica: 84 },
        create.clone(),
        create.clone(),
        create,
        Report { from: 104, to: 62 },
        Client {
            replica: 254,
            op: Expunge {
                mailbox: 0,
                pick: 0,
            },
        },
    ];
    replay(World::new_with(4, false, 2, false).unwrap(), &actions, 0);
}

/// Found by the simulator: a restarted replica that issued follow-ups while it replayed
/// its log gave two different ops the same dot. Replay now issues nothing.
#[test]
fn regression_crash_replay_issues_no_op_twice() {
    use world::Action::*;
    use world::ClientOp::*;
    let actions = vec![
        Deliver { pick: 0 },
        Client {
            replica: 0,
            op: Create { name: 2 },
        },
        Deliver { pick: 0 },
        Client {
            replica: 0,
            op: Create { name: 3 },
        },
        Deliver { pick: 0 },
        Deliver { pick: 0 },
        Deliver { pick: 0 },
        Deliver { pick: 0 },
        Partition { mask: 86 },
        Client {
            replica: 25,
            op: Append {
                mailbox: 3,
                count: 0,
            },
        },
        Client {
            replica: 1,
            op: Subscribe { name: 0 },
        },
        Client {
            replica: 16,
            op: Subscribe { name: 0 },
        },
        Deliver { pick: 0 },
        Client {
            replica: 1,
            op: Append {
                mailbox: 0,
                count: 16,
            },
        },
        Client {
            replica: 76,
            op: Subscribe { name: 0 },
        },
        Client {
            replica: 78,
            op: Append {
                mailbox: 0,
                count: 0,
            },
        },
        Deliver { pick: 8473 },
        Deliver { pick: 2025 },
        Client {
            replica: 0,
            op: Subscribe { name: 0 },
        },
        Duplicate { pick: 18833 },
        Deliver { pick: 11502 },
        Client {
            replica: 0,
            op: Move {
                from: 0,
                pick: 0,
                to: 0,
            },
        },
        Deliver { pick: 0 },
        Heal,
        Client {
            replica: 1,
            op: Expunge {
                mailbox: 3,
                pick: 0,
            },
        },
        Duplicate { pick: 0 },
        Deliver { pick: 6156 },
        Client {
            replica: 205,
            op: Append {
                mailbox: 2,
                count: 0,
            },
        },
        Crash { replica: 115 },
    ];
    replay(World::new(3).unwrap(), &actions, 1);
}

/// Runs a regression scenario's actions, then quiesces it in every order (the random
/// one seeded with `seed`); any failure panics with its step.
fn replay(mut w: World, actions: &[world::Action], seed: u64) {
    for (i, a) in actions.iter().enumerate() {
        if let Err(e) = w.step(a) {
            panic!("step {i}: {e}");
        }
    }
    for order in Order::all(seed) {
        w.clone().quiesce(order).unwrap();
    }
}

/// The simulator must reach the hard cases, or its passing means little: replicas
/// that floor and leaders that re-bind, crashes, compaction dropping tombstones.
#[test]
fn simulator_reaches_the_conflict_paths() {
    let config = Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    runner.run(&scenario(), run).unwrap();
    let seen = world::coverage();
    assert!(seen.binds > 0 && seen.floors > 0, "{seen:?}");
    assert!(seen.crashes > 0 && seen.tombstones_dropped > 0, "{seen:?}");
    assert!(seen.name_conflicts > 0, "{seen:?}");
    assert!(seen.settled_groups > 0, "{seen:?}");
    assert!(seen.restarts_empty > 0, "{seen:?}");
    assert!(seen.own_history_refusals > 0, "{seen:?}");
    assert!(seen.uids_exhausted_refusals > 0, "{seen:?}");
}
