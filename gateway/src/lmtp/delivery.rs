//! Delivering a message, for LMTP and `pluto deliver` alike: [`accept_recipient`] is the
//! one place a recipient is taken or refused (address, domain, account) and learns the
//! account's quota, and [`deliver`] stores one recipient's copy — `Return-Path` and
//! `Delivered-To` prepended — on the first replica of the user's replica set that takes
//! it, routed as an IMAP login is ([`crate::route`]), once the copy is admitted under the
//! quota ([`crate::quota::admit`]: its size is known only after the data, so the check
//! is there, per recipient). The copy is answered for only once the store has made it
//! durable (under `cluster.ack` in a cluster).

use std::time::Instant;

use bytes::Bytes;
use pluto_auth::AuthError;
use pluto_backends::{MailStore, MailboxName, NewMessage, StoreError, Usage, UserId};
use pluto_model::Quota;

use crate::quota::QuotaError;
use crate::shared::Shared;

/// Why a recipient was refused or its copy not stored. [`super::reply::for_error`]
/// turns it into an LMTP reply, `pluto deliver` into an exit code.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("bad recipient address: {0}")]
    BadAddress(String),
    #[error("recipient domain not accepted (lmtp.domains)")]
    UnknownDomain,
    #[error("no such user")]
    UnknownUser,
    #[error("the account is disabled")]
    Disabled,
    #[error("message is larger than the limit of {limit} bytes")]
    TooBig { limit: u64 },
    #[error("mailbox {0} does not exist")]
    NoSuchMailbox(MailboxName),
    #[error("an empty message cannot be delivered")]
    Empty,
    /// The copy would take the user past their quota (the text names the limit).
    #[error("over quota: {0}")]
    OverQuota(String),
    #[error("the server's storage is full")]
    DiskFull,
    /// Nothing was stored: no replica could take the copy, or the user database could
    /// not be asked. The MTA tries again later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store was asked and did not answer: the copy may or may not be stored.
    /// The MTA tries again later (a copy may then arrive twice; none is lost).
    #[error("no answer from the store: {0}")]
    Unanswered(String),
}

impl DeliveryError {
    /// The `result` label of [`crate::metrics::DELIVERIES`].
    pub fn label(&self) -> &'static str {
        match self {
            DeliveryError::BadAddress(_) | DeliveryError::UnknownDomain => "bad_recipient",
            DeliveryError::UnknownUser | DeliveryError::Disabled => "unknown_user",
            DeliveryError::TooBig { .. } => "too_big",
            DeliveryError::NoSuchMailbox(_) => "no_mailbox",
            DeliveryError::Empty => "empty",
            DeliveryError::OverQuota(_) => "over_quota",
            DeliveryError::DiskFull => "disk_full",
            DeliveryError::Unavailable(_) | DeliveryError::Unanswered(_) => "unavailable",
        }
    }

    fn from_store(error: StoreError) -> DeliveryError {
        match error {
            StoreError::NoSuchMailbox(name) => DeliveryError::NoSuchMailbox(name),
            StoreError::TooBig { limit } => DeliveryError::TooBig { limit },
            StoreError::OverQuota | StoreError::DiskFull(_) => DeliveryError::DiskFull,
            StoreError::Unanswered(e) => DeliveryError::Unanswered(e),
            // A refusal or a local error of the store: nothing was stored (the stores
            // write whole or not at all), so the MTA may well try again.
            other => DeliveryError::Unavailable(other.to_string()),
        }
    }
}

/// A recipient taken: the account and, for `user+detail`, the detail.
#[derive(Clone, Debug)]
pub struct Recipient {
    /// The address as the client named it (for `Delivered-To`).
    pub address: String,
    pub user: UserId,
    pub detail: Option<String>,
    /// The account's quota (the user database's over the configured default).
    pub quota: Quota,
}

/// Where a copy goes.
#[derive(Clone, Debug)]
pub enum Target {
    /// INBOX, or with `lmtp.detail_to_mailbox` the mailbox named by the recipient's
    /// detail when it exists.
    Inbox,
    /// Exactly this mailbox (`pluto deliver --mailbox`); missing is an error.
    Mailbox(MailboxName),
}

/// Takes or refuses a recipient (`RCPT TO`, or `pluto deliver --user`): the address's
/// domain must be one of `lmtp.domains` (any when that is empty), `user+detail` names
/// `user`, and the user must be an enabled account. This is the one place a recipient
/// is accepted; it carries the account's quota to [`deliver`], which checks it once the
/// message's size is known.
pub async fn accept_recipient(shared: &Shared, address: &str) -> Result<Recipient, DeliveryError> {
    let (local, domain) = match address.rsplit_once('@') {
        Some((local, domain)) => (local, Some(domain)),
        None => (address, None),
    };
    if local.is_empty() {
        return Err(DeliveryError::BadAddress("empty local part".into()));
    }
    let domains = &shared.config.lmtp.domains;
    if let Some(domain) = domain {
        if !domains.is_empty() && !domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            return Err(DeliveryError::UnknownDomain);
        }
    }
    let (name, detail) = match local.split_once('+') {
        Some((name, detail)) if !name.is_empty() => {
            (name, (!detail.is_empty()).then(|| detail.to_owned()))
        }
        _ => (local, None),
    };
    let account = match shared.auth.find_user(name).await {
        Ok(Some(account)) => account,
        Ok(None) => return Err(DeliveryError::UnknownUser),
        Err(AuthError::Unavailable(reason)) => {
            tracing::warn!(%reason, "user database unavailable for a delivery");
            return Err(DeliveryError::Unavailable(reason));
        }
        Err(other) => return Err(DeliveryError::Unavailable(other.to_string())),
    };
    if !account.enabled {
        return Err(DeliveryError::Disabled);
    }
    let user = UserId::new(account.user).map_err(|e| {
        tracing::error!(error = %e, "the user database returned an unusable user name");
        DeliveryError::UnknownUser
    })?;
    Ok(Recipient {
        address: address.to_owned(),
        user,
        detail,
        quota: crate::quota::effective(shared, account.quota),
    })
}

/// The copy stored for one recipient: the trace headers, then the message as received.
fn with_trace_headers(from: &str, rcpt: &Recipient, message: &[u8]) -> Bytes {
    // The envelope addresses come from parsed commands; a control character there
    // would break the header, so none passes.
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).collect() };
    let head = format!(
        "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
        clean(from),
        clean(&rcpt.address)
    );
    let mut body = Vec::with_capacity(head.len() + message.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(message);
    Bytes::from(body)
}

/// Stores one recipient's copy of `message` (as received, without trace headers) and
/// counts it in the delivery metrics.
pub async fn deliver(
    shared: &Shared,
    from: &str,
    rcpt: &Recipient,
    message: &[u8],
    target: &Target,
) -> Result<(), DeliveryError> {
    let started = Instant::now();
    let result = store_copy(shared, from, rcpt, message, target).await;
    let label = match &result {
        Ok(()) => "delivered",
        Err(e) => e.label(),
    };
    metrics::counter!(crate::metrics::DELIVERIES, "result" => label).increment(1);
    metrics::histogram!(crate::metrics::DELIVERY_SECONDS).record(started.elapsed().as_secs_f64());
    if result.is_ok() {
        metrics::counter!(crate::metrics::DELIVERED_BYTES).increment(message.len() as u64);
    }
    match &result {
        Ok(()) => tracing::info!(user = %rcpt.user, bytes = message.len(), "delivered"),
        Err(e) => tracing::info!(user = %rcpt.user, error = %e, "not delivered"),
    }
    result
}

async fn store_copy(
    shared: &Shared,
    from: &str,
    rcpt: &Recipient,
    message: &[u8],
    target: &Target,
) -> Result<(), DeliveryError> {
    if message.is_empty() {
        return Err(DeliveryError::Empty);
    }
    let body = with_trace_headers(from, rcpt, message);
    let limit = u64::from(shared.config.limits.append_limit);
    if body.len() as u64 > limit {
        return Err(DeliveryError::TooBig { limit });
    }
    let user = &rcpt.user;
    let detail = match target {
        Target::Inbox if shared.config.lmtp.detail_to_mailbox => rcpt
            .detail
            .as_deref()
            .and_then(|d| MailboxName::new(d).ok()),
        _ => None,
    };
    // The first replica that takes it stores it, as a login picks its replica. A call
    // that could not be sent is tried on the next replica; one that got no answer is
    // not (it may have been stored: trying elsewhere could store it twice).
    let mut last_error = None;
    for candidate in shared.router().candidates(user) {
        match candidate.store.open_user(user).await {
            Ok(()) => {}
            Err(StoreError::Unavailable(e) | StoreError::Unanswered(e)) => {
                tracing::info!(node = %candidate.node, error = %e, "replica unavailable for a delivery, trying the next");
                last_error = Some(e);
                continue;
            }
            Err(e) => return Err(DeliveryError::from_store(e)),
        }
        let adding = Usage::new(body.len() as u64, 1);
        let _admitted = match crate::quota::admit(
            shared,
            &*candidate.store,
            user,
            &rcpt.quota,
            adding,
        )
        .await
        {
            Ok(admitted) => admitted,
            Err(QuotaError::Over(over)) => {
                return Err(DeliveryError::OverQuota(over.to_string()));
            }
            // Counting is a read: harmless to ask the next replica.
            Err(QuotaError::Store(StoreError::Unavailable(e) | StoreError::Unanswered(e))) => {
                tracing::info!(node = %candidate.node, error = %e, "replica unavailable for a quota count, trying the next");
                last_error = Some(e);
                continue;
            }
            Err(QuotaError::Store(e)) => return Err(DeliveryError::from_store(e)),
        };
        match append(
            &*candidate.store,
            user,
            target,
            detail.as_ref(),
            body.clone(),
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(StoreError::Unavailable(e)) => {
                tracing::info!(node = %candidate.node, error = %e, "replica unavailable for a delivery, trying the next");
                last_error = Some(e);
            }
            Err(e) => return Err(DeliveryError::from_store(e)),
        }
    }
    Err(DeliveryError::Unavailable(
        last_error.unwrap_or_else(|| "no replica configured".into()),
    ))
}

/// One append: to the detail's mailbox when it exists (else INBOX), or to the target.
async fn append(
    store: &dyn MailStore,
    user: &UserId,
    target: &Target,
    detail: Option<&MailboxName>,
    body: Bytes,
) -> Result<(), StoreError> {
    let message = || NewMessage {
        body: body.clone(),
        flags: Default::default(),
        internal_date: None,
    };
    let name = match (target, detail) {
        (Target::Mailbox(name), _) => name.clone(),
        (Target::Inbox, Some(detail)) => match store.append(user, detail, vec![message()]).await {
            Err(StoreError::NoSuchMailbox(_)) => MailboxName::inbox(),
            other => return other.map(|_| ()),
        },
        (Target::Inbox, None) => MailboxName::inbox(),
    };
    store.append(user, &name, vec![message()]).await.map(|_| ())
}
