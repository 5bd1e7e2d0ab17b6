//! Criterion benchmarks for the CRDT's hot paths: applying remote flag changes and
//! appends, and snapshot encode + decode of a 100k-message mailbox. Also prints the
//! snapshot bytes per message at 100k messages (the persistent metadata size).
//!
//! `cargo bench -p pluto-crdt`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pluto_crdt::{
    BodyRef, Config, Flag, FlagChange, FlagSet, InternalDate, MailboxName, MessageData, Op,
    ReplicaId, Uid, UserState,
};

fn config() -> Config {
    Config {
        uid_stride: 8,
        members: vec![ReplicaId(0), ReplicaId(1)],
    }
}

fn data(n: u64) -> MessageData {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&n.to_le_bytes());
    hash[8..16].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    MessageData {
        body: BodyRef(hash),
        size: 2_000 + (n % 50_000) as u32,
        internal_date: InternalDate {
            seconds: 1_700_000_000 + n as i64 * 37,
            offset_minutes: 60,
        },
        flags: if n % 3 == 0 {
            [Flag::Seen].into_iter().collect()
        } else {
            FlagSet::new()
        },
    }
}

/// Replica 0 with an INBOX of `messages` messages (one APPEND each), and its ops.
fn origin(messages: u64) -> (UserState, Vec<Op>) {
    let mut state = UserState::new(ReplicaId(0), config()).unwrap();
    let mut ops = state.create_mailbox(&MailboxName::inbox(), None).unwrap();
    for n in 0..messages {
        ops.extend(
            state
                .append(&MailboxName::inbox(), vec![data(n)])
                .unwrap()
                .ops,
        );
    }
    (state, ops)
}

/// Replica 1, having applied `ops`, and told it is not the leader.
fn follower(ops: &[Op]) -> UserState {
    let mut state = UserState::new(ReplicaId(1), config()).unwrap();
    state.set_reachable([ReplicaId(0)]);
    state.apply_remote(ops.iter().cloned()).unwrap();
    state
}

/// Both replicas have seen everything: compaction leaves only live metadata.
fn compacted(mut state: UserState) -> UserState {
    let version = state.version().clone();
    let _ = state.report_progress(ReplicaId(0), &version);
    let _ = state.report_progress(ReplicaId(1), &version);
    state.compact();
    state
}

fn apply_flags(c: &mut Criterion) {
    const MESSAGES: u64 = 10_000;
    const STORES: u64 = 100_000;
    let (mut a, appends) = origin(MESSAGES);
    let uids: Vec<Uid> = a
        .snapshot(&MailboxName::inbox())
        .unwrap()
        .messages
        .iter()
        .map(|m| m.uid)
        .collect();
    let mut stores = Vec::new();
    for n in 0..STORES {
        let uid = uids[(n * 7919 % MESSAGES) as usize];
        let flag: FlagSet = [if n % 2 == 0 {
            Flag::Flagged
        } else {
            Flag::Seen
        }]
        .into_iter()
        .collect();
        let change = if n % 4 < 2 {
            FlagChange::add(flag)
        } else {
            FlagChange::remove(flag)
        };
        stores.extend(
            a.store_flags(&MailboxName::inbox(), &[uid], &change, None)
                .unwrap()
                .ops,
        );
    }
    let base = compacted(follower(&appends));

    let mut group = c.benchmark_group("apply_remote");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(STORES));
    group.bench_function("flag_ops_one_message_each_100k", |b| {
        b.iter_batched(
            || (base.clone(), stores.clone()),
            |(mut state, ops)| black_box(state.apply_remote(ops).unwrap()),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn apply_appends(c: &mut Criterion) {
    const APPENDS: u64 = 100_000;
    let (_, ops) = origin(APPENDS);
    let mut group = c.benchmark_group("apply_remote");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(APPENDS));
    group.bench_function("appends_one_message_each_100k", |b| {
        b.iter_batched(
            || ops.clone(),
            |ops| {
                let mut state = UserState::new(ReplicaId(1), config()).unwrap();
                state.set_reachable([ReplicaId(0)]);
                black_box(state.apply_remote(ops).unwrap())
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("local_append_100k", |b| {
        b.iter(|| black_box(origin(APPENDS)))
    });
    group.finish();
}

fn snapshot(c: &mut Criterion) {
    const MESSAGES: u64 = 100_000;
    let (_, ops) = origin(MESSAGES);
    let state = compacted(follower(&ops));
    let bytes = state.encode_snapshot().unwrap();
    // The persistent metadata: everything but the bodies, per message.
    eprintln!(
        "snapshot of {MESSAGES} messages: {} bytes, {:.1} bytes per message (32 of them the body hash)",
        bytes.len(),
        bytes.len() as f64 / MESSAGES as f64
    );
    let mut group = c.benchmark_group("snapshot");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("encode_decode_100k_messages", |b| {
        b.iter(|| {
            let bytes = state.encode_snapshot().unwrap();
            black_box(UserState::decode_snapshot(&bytes).unwrap())
        })
    });
    group.bench_function("encode_100k_messages", |b| {
        b.iter(|| black_box(state.encode_snapshot().unwrap()))
    });
    group.bench_function("decode_100k_messages", |b| {
        b.iter(|| black_box(UserState::decode_snapshot(&bytes).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, apply_flags, apply_appends, snapshot);
criterion_main!(benches);
