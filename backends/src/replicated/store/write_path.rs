//! The local write and read paths: [`ReplicatedStore::write`] (apply → claim dense UIDs
//! when needed → log → fsync → notify → replica ack), the store's own follow-up steps, reads that answer only
//! once what they saw is durable, the `ack = Replica` wait, and counting records
//! toward the next checkpoint.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use pluto_crdt::{BodyRef, Op, OpKind, ReplicaId, UserState};
use tokio::sync::watch;

use super::{ReplicatedStore, UserEntry, UserSlot};
use crate::concurrency::{blocking_err, lock};
use crate::error::StoreResult;
use crate::replicated::blobs::BlobStore;
use crate::replicated::config::AckMode;
use crate::replicated::convert::*;
use crate::replicated::oplog::{Entry, OpLog};
use crate::types::*;

/// How long opening a user waits for its new claim of dense UIDs to be acknowledged.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

impl ReplicatedStore {
    /// Logs `user`'s own follow-up ops (no bodies) that changed `entry`, which stays
    /// locked until they have an LSN; then waits until they are durable and wakes the
    /// user's watchers. A log failure stops the store from serving.
    pub(super) async fn log_own_step(
        &self,
        user: &UserId,
        slot: &UserSlot,
        mut entry: tokio::sync::MutexGuard<'_, UserEntry>,
        ops: Vec<Op>,
    ) -> StoreResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.count_renumberings(&ops);
        let (lsn, rx) = self
            .log
            .submit(&Entry::Step {
                user: user.clone(),
                ops,
                blobs: Vec::new(),
            })
            .inspect_err(|e| self.poison(e))?;
        entry.applied_lsn = lsn;
        drop(entry);
        OpLog::wait(rx).await.inspect_err(|e| self.poison(e))?;
        slot.notify();
        Ok(())
    }

    /// Runs a write: `f` changes the state and pushes the ops it made (also when it then
    /// fails: what was applied must be logged). Answers once durable (and replicated,
    /// per the ack mode).
    pub(super) async fn write<T>(
        &self,
        user: &UserId,
        blobs: Vec<BodyRef>,
        f: impl FnOnce(&mut UserState, &mut Vec<Op>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.check()?;
        self.check_writable().await?;
        let slot = self.slot(user)?;
        let mut entry = slot.state.lock().await;
        let mut ops = Vec::new();
        let result = f(&mut entry.crdt, &mut ops);
        // The replica taking this user's writes claims dense UIDs (when it holds no
        // usable claim with room left), in the same step. One that cannot issue yet
        // (it lacks its own history) claims on a later write.
        if let Ok(claim) = entry.crdt.claim_uids(pluto_crdt::DEFAULT_CLAIM_WINDOW) {
            ops.extend(claim);
        }
        if ops.is_empty() {
            let applied = entry.applied_lsn;
            drop(entry);
            self.log.wait_durable(applied).await?;
            return result;
        }
        let submitted = self.log.submit(&Entry::Step {
            user: user.clone(),
            ops,
            blobs,
        });
        let (lsn, rx) = match submitted {
            Ok(s) => s,
            Err(e) => {
                self.poison(&e);
                return Err(e);
            }
        };
        entry.applied_lsn = lsn;
        drop(entry);
        if let Err(e) = OpLog::wait(rx).await {
            self.poison(&e);
            return Err(e);
        }
        slot.notify();
        self.after_records(1);
        self.await_replica(user, lsn).await;
        result
    }

    /// The bodies (or, with [`BlobStore::get_header`], the headers) of these messages,
    /// in the order asked; UIDs not in the mailbox are left out.
    pub(super) async fn read_bodies(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
        read: fn(&BlobStore, &BodyRef) -> StoreResult<Bytes>,
    ) -> StoreResult<Vec<MessageBody>> {
        let found = self
            .read(user, |st| {
                let views = st.messages(name, uids).map_err(error_from_crdt)?;
                let by_uid: HashMap<Uid, BodyRef> = views.iter().map(|v| (v.uid, v.body)).collect();
                Ok(uids
                    .iter()
                    .filter_map(|u| by_uid.get(u).map(|b| (*u, *b)))
                    .collect::<Vec<_>>())
            })
            .await?;
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || {
            found
                .into_iter()
                .map(|(uid, body)| {
                    Ok(MessageBody {
                        uid,
                        bytes: read(&blobs, &body)?,
                    })
                })
                .collect()
        })
        .await
        .map_err(blocking_err)?
    }

    /// Runs a read; answers only once everything it may have seen is durable.
    pub(super) async fn read<T>(
        &self,
        user: &UserId,
        f: impl FnOnce(&UserState) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.check()?;
        let slot = self.slot(user)?;
        let entry = slot.state.lock().await;
        let result = f(&entry.crdt);
        let applied = entry.applied_lsn;
        drop(entry);
        self.log.wait_durable(applied).await?;
        result
    }

    /// With `ack = Replica`: waits until a peer holding the user has acknowledged the
    /// log through `lsn`, or the timeout. Only peers whose link is up are waited for: a
    /// replica known to be down would cost every write the whole timeout, so then the
    /// write is answered on the local fsync alone (and counted, see
    /// [`Self::local_only_acks`]); the record still reaches the replica once it is back.
    async fn await_replica(&self, user: &UserId, lsn: u64) {
        if self.ack == AckMode::Local {
            return;
        }
        let holders: Vec<(String, ReplicaId)> = self
            .membership()
            .holders(user)
            .into_iter()
            .map(|p| (p.name.clone(), p.replica))
            .collect();
        if holders.is_empty() {
            return;
        }
        // Before the node knows who is reachable (just started), every holder counts.
        let reachable = lock(&self.reachable).clone();
        let acks: Vec<watch::Sender<u64>> = {
            let all = lock(&self.peer_acks);
            holders
                .iter()
                .filter(|(_, id)| reachable.as_ref().is_none_or(|r| r.contains(id)))
                .filter_map(|(p, _)| all.get(p).cloned())
                .collect()
        };
        let waits: Vec<_> = acks
            .iter()
            .map(|tx| {
                let mut rx = tx.subscribe();
                Box::pin(async move {
                    if rx.wait_for(|a| *a >= lsn).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                })
            })
            .collect();
        if waits.is_empty() {
            tracing::debug!(%user, lsn, "no replica reachable; answering after the local write");
            self.local_only_acks.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let acked = tokio::time::timeout(self.ack_timeout, futures::future::select_all(waits));
        if acked.await.is_err() {
            tracing::debug!(%user, lsn, "no replica acknowledged in time; answering after the local write");
            self.local_only_acks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many writes under `ack = Replica` were answered on the local fsync alone
    /// since the node started: no replica of the user was reachable, or none
    /// acknowledged within `ack_timeout`.
    /// When a session opens a user whose claim of dense UIDs this node just made (its
    /// first session here, or the first since a failover), waits a little for every
    /// member to acknowledge it, so that the session's first APPEND is dense too. Only
    /// while every member is reachable (otherwise no acknowledgement can come), and at
    /// most [`CLAIM_WAIT`].
    pub(super) async fn await_uid_claim(&self, user: &UserId) {
        let Ok(slot) = self.slot(user) else {
            return;
        };
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            {
                let entry = slot.state.lock().await;
                if entry.crdt.holds_uid_claim() {
                    return;
                }
                let reachable = lock(&self.reachable).clone().unwrap_or_default();
                let everyone = entry
                    .crdt
                    .config()
                    .members
                    .iter()
                    .all(|m| *m == self.replica || reachable.contains(m));
                if !everyone {
                    return;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// The bodies this node stores and their bytes (blocking: reads the blob directory).
    pub fn blob_usage(&self) -> StoreResult<crate::replicated::blobs::Swept> {
        self.blobs.usage()
    }

    /// Messages this node hid or re-bound because of concurrent binds elsewhere (the
    /// only way a UID a client was given changes; `pluto_uid_renumberings_total`).
    pub fn uid_renumberings(&self) -> u64 {
        self.uid_renumberings.load(Ordering::Relaxed)
    }

    /// Counts the floors and binds among `ops` that this node issued.
    pub(super) fn count_renumberings(&self, ops: &[Op]) {
        let n: usize = ops
            .iter()
            .filter(|op| op.id.replica == self.replica)
            .map(|op| match &op.kind {
                OpKind::Bind { bindings, .. } => bindings.len(),
                OpKind::Floor { floors, .. } => floors.len(),
                _ => 0,
            })
            .sum();
        if n > 0 {
            self.uid_renumberings.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub fn local_only_acks(&self) -> u64 {
        self.local_only_acks.load(Ordering::Relaxed)
    }

    /// Counts records toward the next checkpoint and starts one when due.
    pub(super) fn after_records(&self, n: u64) {
        let since = self.since_checkpoint.fetch_add(n, Ordering::Relaxed) + n;
        if since >= self.checkpoint_every {
            self.since_checkpoint.store(0, Ordering::Relaxed);
            if let Some(me) = self.me.upgrade() {
                tokio::spawn(async move {
                    if let Err(e) = me.checkpoint().await {
                        tracing::warn!(error = %e, "checkpoint failed");
                    }
                });
            }
        }
    }
}
