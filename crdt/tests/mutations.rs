//! The simulator against deliberate bugs: each mutant of the crate
//! (`src/mutations.rs`, feature `mutations`) must be caught within a stated number of
//! scenarios from a fixed seed, and the unmutated crate must pass as many. Run with
//! `cargo test -p pluto-crdt --features mutations --test mutations`.
//!
//! A mutant is caught when a scenario fails any check of the simulator (an invariant,
//! an oracle, settling or its cost) or panics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "sim/scenario.rs"]
mod scenario;
#[allow(dead_code)]
#[path = "sim/world.rs"]
mod world;

use std::panic::{AssertUnwindSafe, catch_unwind};

use pluto_crdt::mutations::{self, Mutation};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use scenario::Profile;

/// The seed every mutant's scenarios are drawn from.
const SEED: [u8; 32] = [13; 32];

/// Runs up to `limit` scenarios with `mutation` active on this thread; the number of
/// the first that fails (1-based) and why.
fn first_failure(
    mutation: Option<Mutation>,
    profile: Profile,
    limit: u32,
) -> Option<(u32, String)> {
    mutations::set(mutation);
    let mut runner = TestRunner::new_with_rng(
        Config {
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &SEED),
    );
    let strategy = scenario::scenario_with(profile);
    let mut found = None;
    for k in 1..=limit {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let outcome = catch_unwind(AssertUnwindSafe(|| scenario::run(case)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                found = Some((k, e.to_string()));
                break;
            }
            Err(_) => {
                found = Some((k, "panicked".to_owned()));
                break;
            }
        }
    }
    mutations::set(None);
    found
}

/// Within how many scenarios each mutant is caught (from [`SEED`]): about twice the
/// scenario it was first caught at when measured (noted), at least 100. The match is exhaustive: a new mutant needs a bound.
/// The scenario mix each mutant is hunted with.
fn profile(mutation: Mutation) -> Profile {
    match mutation {
        Mutation::ReplayRederives => Profile::CRASHES,
        Mutation::LeaderSkipsHidden => Profile::PARTITIONS,
        Mutation::OwnHistoryUnchecked => Profile::RESTARTS,
        _ => Profile::DEFAULT,
    }
}

fn bound(mutation: Mutation) -> u32 {
    match mutation {
        Mutation::NaiveRebind => 150,            // caught at 10
        Mutation::LowestBindingShown => 100,     // caught at 6
        Mutation::VolatileThreshold => 100,      // caught at 6
        Mutation::NoResidue => 100,              // caught at 6
        Mutation::NoCausalBuffer => 100,         // caught at 6
        Mutation::RemoveWinsFlags => 1200,       // caught at 584
        Mutation::EarlyTombstoneDrop => 1500,    // caught at 611
        Mutation::LeaderSkipsHidden => 1700,     // caught at 815
        Mutation::ThresholdAfterBatch => 100,    // caught at 6
        Mutation::NoConcurrentModseqBump => 100, // caught at 6
        Mutation::IncarnationPerReplica => 100,  // caught at 4
        Mutation::ReplayRederives => 100,        // caught at 7
        Mutation::OwnHistoryUnchecked => 100,    // caught at 4
        Mutation::UnacknowledgedClaim => 100,    // caught at 10
        Mutation::ClaimsIgnored => 100,          // caught at 42
    }
}

fn caught(mutation: Mutation) {
    let limit = bound(mutation);
    // `first_failure` also tells at which scenario and why, for measuring the bounds.
    assert!(
        first_failure(Some(mutation), profile(mutation), limit).is_some(),
        "{mutation:?} survived {limit} scenarios"
    );
}

#[test]
fn the_unmutated_crate_passes_as_many_scenarios() {
    for p in [
        Profile::DEFAULT,
        Profile::CRASHES,
        Profile::PARTITIONS,
        Profile::RESTARTS,
    ] {
        // As many scenarios of each mix as any mutant hunted with it is given.
        let most = Mutation::ALL
            .into_iter()
            .filter(|m| profile(*m) == p)
            .map(bound)
            .max()
            .unwrap_or(0);
        if let Some((k, why)) = first_failure(None, p, most) {
            panic!("the unmutated crate failed scenario {k} of the {p:?} mix: {why}");
        }
    }
}

#[test]
fn naive_rebind_is_caught() {
    caught(Mutation::NaiveRebind);
}

#[test]
fn lowest_binding_shown_is_caught() {
    caught(Mutation::LowestBindingShown);
}

#[test]
fn volatile_threshold_is_caught() {
    caught(Mutation::VolatileThreshold);
}

#[test]
fn no_residue_is_caught() {
    caught(Mutation::NoResidue);
}

#[test]
fn no_causal_buffer_is_caught() {
    caught(Mutation::NoCausalBuffer);
}

#[test]
fn remove_wins_flags_are_caught() {
    caught(Mutation::RemoveWinsFlags);
}

#[test]
fn early_tombstone_drop_is_caught() {
    caught(Mutation::EarlyTombstoneDrop);
}

#[test]
fn leader_that_skips_hidden_messages_is_caught() {
    caught(Mutation::LeaderSkipsHidden);
}

#[test]
fn floor_at_the_wrong_threshold_is_caught() {
    caught(Mutation::ThresholdAfterBatch);
}

#[test]
fn missing_concurrent_modseq_bump_is_caught() {
    caught(Mutation::NoConcurrentModseqBump);
}

#[test]
fn two_mailboxes_from_one_concurrent_create_are_caught() {
    caught(Mutation::IncarnationPerReplica);
}

#[test]
fn replay_that_rederives_follow_ups_is_caught() {
    caught(Mutation::ReplayRederives);
}

#[test]
fn writes_of_a_replica_restarted_empty_before_it_recovered_are_caught() {
    caught(Mutation::OwnHistoryUnchecked);
}

#[test]
fn dense_binds_under_an_unacknowledged_claim_are_caught() {
    caught(Mutation::UnacknowledgedClaim);
}

#[test]
fn residue_binds_inside_another_replicas_claim_are_caught() {
    caught(Mutation::ClaimsIgnored);
}

/// Prints where each mutant is first caught and why, for the table in
/// `crdt/README.md`: `cargo test -p pluto-crdt --features mutations --test mutations
/// -- --ignored --nocapture measure`.
#[test]
#[ignore]
#[allow(clippy::print_stdout)] // its output is the point
fn measure() {
    for m in Mutation::ALL {
        let limit = bound(m) * 3;
        match first_failure(Some(m), profile(m), limit) {
            Some((k, why)) => {
                let why: String = why.chars().take(160).collect();
                println!("{m:?}: caught at {k} (bound {}): {why}", bound(m));
            }
            None => println!("{m:?}: survived {limit}"),
        }
    }
}
