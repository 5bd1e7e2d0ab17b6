//! Login throttling: a growing delay after failed logins, counted per remote
//! address and per user name, shared by every gateway through Redis.
//!
//! The delay follows Dovecot's auth penalty: none before the first failure,
//! then 2 s, doubling with each further failure, capped at 15 s (all three
//! configurable — tests scale them down). The count that matters is the
//! larger of the address's and the user name's, so both a password spray
//! from one address and a guessing attack on one account from many
//! addresses slow down. Counters expire a window (15 min) after their last
//! failure.
//!
//! A successful login clears the user name's counter and takes back, from
//! the address's counter, the failures that this same user made from it (a
//! mistyped password is forgiven once the right one is given, but an
//! attacker cannot wipe the address's record of guesses at *other* users by
//! logging into an account of their own). Successes never add to any
//! counter, so a client repeating a correct password never slows down.
//!
//! IPv6 addresses are counted per /64, the block a single host usually
//! controls; IPv4-mapped IPv6 addresses count as the IPv4 address.
//!
//! Backends: Redis ([`redis`] module) when a URL is configured, always
//! mirrored by an in-memory limiter ([`memory`] module). When Redis cannot be
//! reached, the throttle answers from the local limiter, logs one warning for
//! the outage (not one per login) and tries Redis again after a pause. A
//! login is never refused or held up for long because of Redis.

mod memory;
mod redis;

use std::net::IpAddr;
use std::time::Duration;

use crate::AuthError;

use self::memory::MemoryCounters;
use self::redis::RedisCounters;

/// Settings of the login throttle. Start from [`ThrottleConfig::default`].
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// `redis://host:port[/db]`; `None` keeps the counters in this process
    /// only. Default `None`.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so that several deployments (or tests) can
    /// share one Redis. Default `pluto:throttle:`.
    pub key_prefix: String,
    /// Delay after the first failure. Default 2 s.
    pub base_delay: Duration,
    /// Largest delay. Default 15 s.
    pub max_delay: Duration,
    /// A counter is forgotten this long after its last failure. Default 15 min.
    pub window: Duration,
    /// Longest wait for one Redis operation (and for connecting) before the
    /// local limiter answers instead. Default 500 ms.
    pub redis_timeout: Duration,
    /// After a Redis failure, how long to use only the local limiter before
    /// trying Redis again. Default 10 s.
    pub redis_retry: Duration,
    /// Most counters the local limiter keeps; beyond it, expired and then
    /// the oldest counters are dropped so memory stays bounded. Default 100 000.
    pub local_capacity: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            redis_url: None,
            key_prefix: "pluto:throttle:".to_owned(),
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(15),
            window: Duration::from_secs(15 * 60),
            redis_timeout: Duration::from_millis(500),
            redis_retry: Duration::from_secs(10),
            local_capacity: 100_000,
        }
    }
}

/// Where a throttle's answers currently come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThrottleBackend {
    /// No Redis configured: this process only.
    Local,
    /// Redis answered the last operation: shared by all gateways.
    Redis,
    /// Redis is configured but unreachable: this process only, for now.
    LocalFallback,
}

/// What a throttle counts: an address (IPv6 per /64) and a user name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Subject {
    pub(crate) ip: IpAddr,
    pub(crate) user: String,
}

impl Subject {
    fn new(ip: IpAddr, user: &str) -> Subject {
        Subject {
            ip: normalize_ip(ip),
            user: normalize_user(user),
        }
    }
}

fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// User names are counted case-insensitively (as the adapters look them up)
/// and cut at 256 bytes so that a huge name cannot make a huge key.
fn normalize_user(user: &str) -> String {
    let mut lower = user.to_lowercase();
    if lower.len() > 256 {
        let mut end = 256;
        while !lower.is_char_boundary(end) {
            end -= 1;
        }
        lower.truncate(end);
    }
    lower
}

/// The delay after `failures` failures: 0, then base, doubling, capped.
pub fn penalty(failures: u64, base: Duration, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(31);
    base.saturating_mul(1u32 << doublings).min(max)
}

/// The login throttle. Cheap to share: put it in an `Arc`.
///
/// ```text
/// let delay = throttle.delay_for(peer_ip, &user).await;
/// tokio::time::sleep(delay).await;
/// match authenticator.authenticate(&user, &password).await {
///     Ok(_) => throttle.record_success(peer_ip, &user).await,
///     Err(AuthError::Failed | AuthError::Disabled) => throttle.record_failure(peer_ip, &user).await,
///     Err(_) => {} // backend trouble is not the client's fault
/// }
/// ```
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    local: MemoryCounters,
    redis: Option<RedisCounters>,
}

impl Throttle {
    /// Builds a throttle. Does not connect to Redis yet (that happens on
    /// first use, so a gateway starts while Redis is down). Fails with
    /// [`AuthError::Config`] for an unparsable Redis URL.
    pub fn new(config: ThrottleConfig) -> Result<Throttle, AuthError> {
        let redis = match &config.redis_url {
            Some(url) => Some(RedisCounters::new(url, &config)?),
            None => None,
        };
        Ok(Throttle {
            local: MemoryCounters::new(config.window, config.local_capacity),
            redis,
            config,
        })
    }

    /// A throttle with the default delays that counts in this process only.
    pub fn local() -> Throttle {
        Throttle {
            local: MemoryCounters::new(
                ThrottleConfig::default().window,
                ThrottleConfig::default().local_capacity,
            ),
            redis: None,
            config: ThrottleConfig::default(),
        }
    }

    /// How long to wait before answering a login from `ip` as `user`: the
    /// penalty for the larger of the two failure counts.
    pub async fn delay_for(&self, ip: IpAddr, user: &str) -> Duration {
        let subject = Subject::new(ip, user);
        let failures = match &self.redis {
            Some(redis) => match redis.failures(&subject).await {
                Some(n) => n,
                None => self.local.failures(&subject),
            },
            None => self.local.failures(&subject),
        };
        penalty(failures, self.config.base_delay, self.config.max_delay)
    }

    /// Counts a failed login (wrong password, unknown user, disabled account).
    pub async fn record_failure(&self, ip: IpAddr, user: &str) {
        let subject = Subject::new(ip, user);
        // The local limiter always counts too, so that it holds this
        // gateway's recent history should Redis go away.
        self.local.record_failure(&subject);
        if let Some(redis) = &self.redis {
            redis.record_failure(&subject).await;
        }
    }

    /// A successful login: clears the user's counter and this user's own
    /// failures from the address's counter.
    pub async fn record_success(&self, ip: IpAddr, user: &str) {
        let subject = Subject::new(ip, user);
        self.local.record_success(&subject);
        if let Some(redis) = &self.redis {
            redis.record_success(&subject).await;
        }
    }

    /// Where the answers currently come from (for `pluto cluster status`).
    pub fn backend(&self) -> ThrottleBackend {
        match &self.redis {
            None => ThrottleBackend::Local,
            Some(r) if r.is_healthy() => ThrottleBackend::Redis,
            Some(_) => ThrottleBackend::LocalFallback,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn penalty_doubles_from_two_seconds_up_to_fifteen() {
        let (b, m) = (Duration::from_secs(2), Duration::from_secs(15));
        let secs: Vec<u64> = (0..8).map(|n| penalty(n, b, m).as_secs()).collect();
        assert_eq!(secs, [0, 2, 4, 8, 15, 15, 15, 15]);
        assert_eq!(penalty(u64::MAX, b, m), m);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST));
        let b: IpAddr = "2001:db8:1:2:bbbb::2"
            .parse()
            .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(normalize_ip(a), normalize_ip(b));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(
            normalize_ip(mapped),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
    }

    #[test]
    fn user_names_are_folded_and_bounded() {
        assert_eq!(normalize_user("Alice"), "alice");
        assert_eq!(normalize_user(&"é".repeat(300)).len(), 256);
    }
}
