//! Writes the committed seeds of the binary targets: `fuzz/seeds/store_frames/` (a
//! Hello and real messages for each link end) and `fuzz/seeds/crdt_snapshot/` (snapshots
//! of states with mailboxes, messages, flags, expunges, renames and waiting ops).
//! Run from `fuzz/`: `cargo run --example make_seeds`.

use std::fs;
use std::path::Path;

use pluto_crdt::{
    BodyRef, Config, Flag, FlagChange, FlagSet, InternalDate, Keyword, MailboxName, MessageData, ReplicaId, Uid,
    UserState,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames = Path::new("seeds/store_frames");
    fs::create_dir_all(frames)?;
    for (i, seed) in pluto_backends::fuzzing::seed_links()?.iter().enumerate() {
        fs::write(frames.join(format!("link-{i}")), seed)?;
    }
    let snapshots = Path::new("seeds/crdt_snapshot");
    fs::create_dir_all(snapshots)?;
    for (name, state) in states()? {
        fs::write(snapshots.join(name), state.encode_snapshot()?)?;
    }
    Ok(())
}

fn mb(name: &str) -> Result<MailboxName, Box<dyn std::error::Error>> {
    Ok(MailboxName::new(name)?)
}

fn message(n: u8) -> Result<MessageData, Box<dyn std::error::Error>> {
    Ok(MessageData {
        body: BodyRef([n; 32]),
        size: u32::from(n) * 100,
        internal_date: InternalDate {
            seconds: 1_700_000_000 + i64::from(n),
            offset_minutes: 60,
        },
        flags: [Flag::Keyword(Keyword::new("$Forwarded")?)].into_iter().collect(),
    })
}

fn states() -> Result<Vec<(&'static str, UserState)>, Box<dyn std::error::Error>> {
    let config = Config {
        uid_stride: 4,
        members: vec![ReplicaId(1), ReplicaId(2)],
    };
    let empty = UserState::new(ReplicaId(1), config.clone())?;

    let mut busy = UserState::new(ReplicaId(1), config.clone())?;
    busy.create_mailbox(&mb("INBOX")?, None)?;
    busy.create_mailbox(&mb("Archive")?, Some(pluto_crdt::SpecialUse::Archive))?;
    busy.subscribe(&mb("Archive")?)?;
    // A claim of dense UIDs, not yet acknowledged: the appends bind in the residue.
    busy.claim_uids(16)?;
    busy.append(&mb("INBOX")?, (1..=5).map(message).collect::<Result<_, _>>()?)?;
    let seen: FlagSet = [Flag::Seen, Flag::Flagged].into_iter().collect();
    busy.store_flags(&mb("INBOX")?, &[Uid::new(1).ok_or("uid 0")?, Uid::new(5).ok_or("uid 0")?], &FlagChange::add(seen), None)?;
    busy.copy(&mb("INBOX")?, &[Uid::new(1).ok_or("uid 0")?], &mb("Archive")?)?;
    busy.move_messages(&mb("INBOX")?, &[Uid::new(5).ok_or("uid 0")?], &mb("Archive")?)?;
    busy.expunge(&mb("INBOX")?, &[Uid::new(9).ok_or("uid 0")?])?;
    busy.rename_mailbox(&mb("Archive")?, &mb("Old")?)?;

    // A replica holding a peer's ops, some of them waiting for their history.
    let mut peer = UserState::new(ReplicaId(2), config.clone())?;
    let mut ops = peer.create_mailbox(&mb("INBOX")?, None)?;
    let first = peer.append(&mb("INBOX")?, vec![message(7)?])?.ops;
    let later = peer.append(&mb("INBOX")?, vec![message(8)?])?.ops;
    ops.extend(first);
    let mut waiting = UserState::new(ReplicaId(1), config.clone())?;
    waiting.apply_remote(later.clone())?;
    let mut mixed = UserState::new(ReplicaId(1), config)?;
    mixed.apply_remote(ops)?;
    mixed.apply_remote(later)?;
    mixed.set_reachable([ReplicaId(2)]);
    mixed.bind_hidden();
    mixed.compact();
    Ok(vec![
        ("empty", empty),
        ("busy", busy),
        ("waiting", waiting),
        ("mixed", mixed),
    ])
}
