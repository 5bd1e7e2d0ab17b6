//! The Redis failure counters, shared by every gateway, with the bookkeeping
//! that falls back to the local limiter while Redis is unreachable.
//!
//! Keys (all under the configured prefix, all expiring a window after their
//! last failure): `ip:<addr>`, `user:<name>`, and `pair:<addr>|<name>` —
//! the failures of one user from one address, which a success takes back
//! from the address's counter. A failure updates all three in one MULTI;
//! a success is one Lua script, so concurrent gateways never see half of it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Subject, ThrottleConfig};
use crate::AuthError;

/// Clears the user's counter and subtracts the pair's failures from the
/// address's counter. KEYS: ip, user, pair.
const SUCCESS_SCRIPT: &str = r"
local own = tonumber(redis.call('GET', KEYS[3]) or '0')
if own > 0 then
  local left = redis.call('DECRBY', KEYS[1], own)
  if left <= 0 then redis.call('DEL', KEYS[1]) end
end
redis.call('DEL', KEYS[2], KEYS[3])
return 0
";

pub(crate) struct RedisCounters {
    client: redis::Client,
    prefix: String,
    window_ms: u64,
    timeout: std::time::Duration,
    retry: std::time::Duration,
    success: redis::Script,
    /// The live connection manager, made on first use and dropped after a
    /// failure (the next attempt makes a fresh one).
    manager: Mutex<Option<ConnectionManager>>,
    /// Until when to skip Redis after a failure.
    down_until: Mutex<Option<Instant>>,
    /// False during an outage: the warning is logged on the way down only.
    healthy: AtomicBool,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("prefix", &self.prefix)
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

impl RedisCounters {
    pub(crate) fn new(url: &str, config: &ThrottleConfig) -> Result<RedisCounters, AuthError> {
        // redis' URL errors do not echo the URL (which may hold a password).
        let client =
            redis::Client::open(url).map_err(|e| AuthError::Config(format!("redis url: {e}")))?;
        Ok(RedisCounters {
            client,
            prefix: config.key_prefix.clone(),
            window_ms: u64::try_from(config.window.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            timeout: config.redis_timeout,
            retry: config.redis_retry,
            success: redis::Script::new(SUCCESS_SCRIPT),
            manager: Mutex::new(None),
            down_until: Mutex::new(None),
            healthy: AtomicBool::new(true),
        })
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn keys(&self, s: &Subject) -> [String; 3] {
        [
            format!("{}ip:{}", self.prefix, s.ip),
            format!("{}user:{}", self.prefix, s.user),
            format!("{}pair:{}|{}", self.prefix, s.ip, s.user),
        ]
    }

    /// A connection manager, unless Redis failed less than `retry` ago.
    fn connection(&self) -> Option<ConnectionManager> {
        {
            let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
            if down.is_some_and(|until| Instant::now() < until) {
                return None;
            }
        }
        let mut slot = self.manager.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = slot.as_ref() {
            return Some(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        // Lazy: connects on the first command, inside our timeout.
        match ConnectionManager::new_lazy_with_config(self.client.clone(), config) {
            Ok(m) => {
                *slot = Some(m.clone());
                Some(m)
            }
            Err(e) => {
                drop(slot);
                self.failed(&e);
                None
            }
        }
    }

    /// Runs one Redis operation bounded by the timeout; `None` (and the
    /// fallback) on any failure.
    async fn run<T, F>(&self, op: F) -> Option<T>
    where
        F: AsyncFnOnce(ConnectionManager) -> redis::RedisResult<T>,
    {
        let conn = self.connection()?;
        match tokio::time::timeout(self.timeout, op(conn)).await {
            Ok(Ok(value)) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!("Redis reachable again; login throttling is shared again");
                }
                Some(value)
            }
            Ok(Err(e)) => {
                self.failed(&e);
                None
            }
            Err(_) => {
                self.failed(&format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }

    fn failed(&self, reason: &dyn std::fmt::Display) {
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + self.retry);
        *self.manager.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                %reason,
                retry_after = ?self.retry,
                "Redis unreachable; login throttling falls back to this process's in-memory counters"
            );
        }
    }

    pub(crate) async fn failures(&self, s: &Subject) -> Option<u64> {
        let [ip, user, _] = self.keys(s);
        self.run(async |mut c| {
            let (a, b): (Option<u64>, Option<u64>) = redis::cmd("MGET")
                .arg(&ip)
                .arg(&user)
                .query_async(&mut c)
                .await?;
            Ok(a.unwrap_or(0).max(b.unwrap_or(0)))
        })
        .await
    }

    pub(crate) async fn record_failure(&self, s: &Subject) {
        let keys = self.keys(s);
        let window = self.window_ms;
        self.run(async |mut c| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for key in &keys {
                pipe.incr(key, 1).ignore();
                pipe.pexpire(key, i64::try_from(window).unwrap_or(i64::MAX))
                    .ignore();
            }
            pipe.query_async::<()>(&mut c).await
        })
        .await;
    }

    pub(crate) async fn record_success(&self, s: &Subject) {
        let [ip, user, pair] = self.keys(s);
        self.run(async |mut c| {
            self.success
                .key(&ip)
                .key(&user)
                .key(&pair)
                .invoke_async::<()>(&mut c)
                .await
        })
        .await;
    }
}
