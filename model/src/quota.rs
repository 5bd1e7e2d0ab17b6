//! Quotas (RFC 9208): a user's limits ([`Quota`]), what their mail uses ([`Usage`]),
//! and the one rule of whether a write fits ([`Quota::admits`]). Pure values; where the
//! limits come from (configuration, users file, PostgreSQL) and where usage is counted
//! (every store, from its own state) live elsewhere.

use serde::{Deserialize, Serialize};

/// What a user's mail uses: the two resources pluto limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// The sum of the RFC822.SIZEs of every message in every mailbox, in bytes
    /// (RFC 9208's STORAGE counts the same in units of 1024).
    pub bytes: u64,
    /// The number of messages in every mailbox (RFC 9208's MESSAGE).
    pub messages: u64,
}

impl Usage {
    pub const fn new(bytes: u64, messages: u64) -> Usage {
        Usage { bytes, messages }
    }

    /// Both counts added (saturating: a usage never wraps round to a small number).
    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            bytes: self.bytes.saturating_add(other.bytes),
            messages: self.messages.saturating_add(other.messages),
        }
    }

    /// Both counts less `other`'s (saturating at 0).
    pub fn minus(self, other: Usage) -> Usage {
        Usage {
            bytes: self.bytes.saturating_sub(other.bytes),
            messages: self.messages.saturating_sub(other.messages),
        }
    }

    /// STORAGE in RFC 9208's units of 1024 octets, rounded up (a 1-byte message uses
    /// 1), so that a user whose usage shows below the limit has room.
    pub fn storage_kib(&self) -> u64 {
        self.bytes.div_ceil(1024)
    }
}

/// A user's limits, as one source states them. Each resource is `None` when this source
/// does not say (the next source, in the end the configuration's default, decides:
/// [`Quota::or`]), `Some(0)` for no limit, `Some(n)` for a limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Quota {
    /// The most bytes the user's messages may take together.
    pub storage_bytes: Option<u64>,
    /// The most messages the user may have.
    pub messages: Option<u64>,
}

/// One of the resources a [`Quota`] limits, named as RFC 9208 names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resource {
    /// `STORAGE` (RFC 9208 5.1).
    Storage,
    /// `MESSAGE` (RFC 9208 5.2).
    Message,
}

impl Resource {
    /// The resource's name in IMAP.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Storage => "STORAGE",
            Resource::Message => "MESSAGE",
        }
    }
}

/// Why a write does not fit: the resource, its limit and the usage it would reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverQuota {
    pub resource: Resource,
    /// The limit (bytes for storage, a count for messages).
    pub limit: u64,
    /// The usage with the write.
    pub would_be: u64,
}

impl std::fmt::Display for OverQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.resource {
            Resource::Storage => write!(
                f,
                "the storage quota of {} bytes would be exceeded ({} bytes)",
                self.limit, self.would_be
            ),
            Resource::Message => write!(
                f,
                "the quota of {} messages would be exceeded ({} messages)",
                self.limit, self.would_be
            ),
        }
    }
}

impl Quota {
    /// No limit on anything, stated (not "unset").
    pub const UNLIMITED: Quota = Quota {
        storage_bytes: Some(0),
        messages: Some(0),
    };

    /// This source's limits where it states them, `fallback`'s elsewhere.
    pub fn or(self, fallback: Quota) -> Quota {
        Quota {
            storage_bytes: self.storage_bytes.or(fallback.storage_bytes),
            messages: self.messages.or(fallback.messages),
        }
    }

    /// The storage limit in bytes, if there is one (unset and 0 are none).
    pub fn storage_limit(&self) -> Option<u64> {
        self.storage_bytes.filter(|&n| n > 0)
    }

    /// The message limit, if there is one (unset and 0 are none).
    pub fn message_limit(&self) -> Option<u64> {
        self.messages.filter(|&n| n > 0)
    }

    /// True when some resource is limited (only then is usage worth counting).
    pub fn is_limited(&self) -> bool {
        self.storage_limit().is_some() || self.message_limit().is_some()
    }

    /// The limits there are, with their resources, in RFC 9208's order.
    pub fn limits(&self) -> impl Iterator<Item = (Resource, u64)> {
        [
            self.storage_limit().map(|n| (Resource::Storage, n)),
            self.message_limit().map(|n| (Resource::Message, n)),
        ]
        .into_iter()
        .flatten()
    }

    /// Whether `adding` fits on top of `usage`: every limited resource must stay at or
    /// below its limit with it. A write that adds nothing always fits, even over quota
    /// (a limit lowered below the usage must not block what frees room); one that adds
    /// something to a resource already at its limit does not.
    pub fn admits(&self, usage: Usage, adding: Usage) -> Result<(), OverQuota> {
        let check = |resource, limit: Option<u64>, now: u64, add: u64| match limit {
            Some(limit) if add > 0 && now.saturating_add(add) > limit => Err(OverQuota {
                resource,
                limit,
                would_be: now.saturating_add(add),
            }),
            _ => Ok(()),
        };
        check(
            Resource::Storage,
            self.storage_limit(),
            usage.bytes,
            adding.bytes,
        )?;
        check(
            Resource::Message,
            self.message_limit(),
            usage.messages,
            adding.messages,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_source_overrides_per_resource_and_zero_means_no_limit() {
        let default = Quota {
            storage_bytes: Some(1000),
            messages: Some(10),
        };
        let user = Quota {
            storage_bytes: Some(0),
            messages: None,
        };
        let q = user.or(default);
        assert_eq!(q.storage_limit(), None);
        assert_eq!(q.message_limit(), Some(10));
        assert!(q.is_limited());
        assert!(!Quota::default().is_limited());
        assert!(!Quota::UNLIMITED.or(default).is_limited());
    }

    #[test]
    fn a_write_fits_up_to_the_limit_and_not_beyond() {
        let q = Quota {
            storage_bytes: Some(100),
            messages: Some(3),
        };
        assert_eq!(q.admits(Usage::new(60, 1), Usage::new(40, 1)), Ok(()));
        let over = q.admits(Usage::new(60, 1), Usage::new(41, 1)).unwrap_err();
        assert_eq!(
            (over.resource, over.limit, over.would_be),
            (Resource::Storage, 100, 101)
        );
        let over = q.admits(Usage::new(0, 3), Usage::new(1, 1)).unwrap_err();
        assert_eq!(over.resource, Resource::Message);
        // Nothing added: fits even when the usage is past a lowered limit.
        assert_eq!(q.admits(Usage::new(500, 9), Usage::default()), Ok(()));
        // Saturation, not wrap-around.
        assert!(q.admits(Usage::new(u64::MAX, 0), Usage::new(1, 0)).is_err());
    }

    #[test]
    fn storage_is_reported_in_kib_rounded_up() {
        assert_eq!(Usage::new(0, 0).storage_kib(), 0);
        assert_eq!(Usage::new(1, 1).storage_kib(), 1);
        assert_eq!(Usage::new(2048, 1).storage_kib(), 2);
        assert_eq!(Usage::new(2049, 1).storage_kib(), 3);
    }
}
