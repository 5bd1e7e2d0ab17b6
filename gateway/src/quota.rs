//! Quota enforcement (RFC 9208): the one check every write that adds mail passes —
//! APPEND, COPY, LMTP and `pluto deliver` — before it reaches the store.
//!
//! A user's limits are the user database's ([`pluto_auth::Account::quota`]) over the
//! configuration's `[quota]` default. Usage is the store's ([`MailStore::usage`]),
//! counted from its own state, so every replica that applied the same writes gives the
//! same answer. For a user with limits, a check holds a per-user lock of this process
//! from the count to the end of the write ([`Admitted`]), so sessions and deliveries of
//! one gateway (or `pluto serve`) never pass a limit together. Writes through
//! different gateways, or to different replicas, each see only what the store had
//! applied when they counted: together they can pass a limit by what was in flight at
//! once — with every write acknowledged by the user's other replica, at most one write
//! (a message, or a COPY's whole set, each no larger than `limits.append_limit`) per
//! further gateway; with writes answered on one replica alone (a partition), what each
//! side lacked of the limit — and once the replicas converge the next write is refused
//! (README, "Quotas"; `cluster-tests/tests/quota_replicas.rs`).
//! A user without limits costs nothing here: no count, no lock.

use pluto_backends::{MailStore, StoreError, UserId};
use pluto_model::{OverQuota, Quota, Usage};
use tokio::sync::MutexGuard;

use crate::shared::Shared;

/// Why a write was not admitted.
#[derive(Debug)]
pub enum QuotaError {
    /// It would take the user past a limit.
    Over(OverQuota),
    /// The usage could not be counted.
    Store(StoreError),
}

impl From<QuotaError> for crate::response::CmdError {
    /// As `response.rs` maps each: over quota, or the store's error.
    fn from(e: QuotaError) -> Self {
        match e {
            QuotaError::Over(over) => over.into(),
            QuotaError::Store(e) => e.into(),
        }
    }
}

/// A write admitted under the user's quota: hold it until the write is done, so that
/// no other write of this process counts the usage before this one is in it.
pub struct Admitted<'a> {
    _lock: Option<MutexGuard<'a, ()>>,
}

/// The limits that apply to a user: what the user database states, the configured
/// default for the rest.
pub fn effective(shared: &Shared, own: Quota) -> Quota {
    own.or(shared.config.quota.quota())
}

/// Admits a write that adds `adding` to `user`'s mail, or says why not.
pub async fn admit<'a>(
    shared: &'a Shared,
    store: &dyn MailStore,
    user: &UserId,
    quota: &Quota,
    adding: Usage,
) -> Result<Admitted<'a>, QuotaError> {
    if !quota.is_limited() {
        return Ok(Admitted { _lock: None });
    }
    let lock = shared.quota_writes.lock(user).await;
    let usage = store.usage(user).await.map_err(QuotaError::Store)?;
    quota.admits(usage, adding).map_err(QuotaError::Over)?;
    Ok(Admitted { _lock: Some(lock) })
}
