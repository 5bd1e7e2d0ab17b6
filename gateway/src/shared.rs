//! [`Shared`]: what every session of a process shares — the configuration, the router
//! (swapped whole on a cluster reload, with a generation counter sessions watch), the
//! authenticator and login throttle, the client TLS acceptor, the header cache, the
//! budget for literals before login, and the per-user locks that keep the mailbox
//! limits and the quotas exact within the process.

use std::sync::Arc;

use pluto_auth::Authenticator;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// What every session shares.
pub struct Shared {
    pub config: Config,
    /// Replaced as a whole when the cluster configuration is reloaded (SIGHUP).
    pub router: std::sync::RwLock<Arc<crate::route::Router>>,
    /// Counts router replacements, so that sessions notice a reload.
    pub router_generation: watch::Sender<u64>,
    pub auth: Arc<dyn Authenticator>,
    pub throttle: pluto_auth::Throttle,
    pub tls: Option<TlsAcceptor>,
    /// Message headers and ENVELOPEs already read, for every session of the process.
    pub headers: crate::cache::HeaderCache,
    /// Literal bytes held by connections that have not logged in, all together.
    pub preauth_literals: Arc<crate::wire::PreauthBudget>,
    /// Held by a CREATE or RENAME from its count of the user's mailboxes to its write,
    /// so that parallel sessions of one user cannot each pass the limit check.
    pub mailbox_writes: UserLocks,
    /// Held by a write of a user with a quota from its count of the usage to the end of
    /// the write (`admit` in `quota.rs`).
    pub quota_writes: UserLocks,
}

/// A fixed set of locks, a user hashed to one: bounded memory whatever the number of
/// users, at the price of two users sometimes waiting for each other's CREATE.
pub struct UserLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl UserLocks {
    const STRIPES: usize = 64;

    pub fn lock(
        &self,
        user: &pluto_backends::UserId,
    ) -> impl Future<Output = tokio::sync::MutexGuard<'_, ()>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(user.as_str());
        // The modulo keeps the index below STRIPES, which fits in usize.
        let index = (hash % Self::STRIPES as u64) as usize;
        self.stripes[index].lock()
    }
}

impl Default for UserLocks {
    fn default() -> Self {
        Self {
            stripes: (0..Self::STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }
}

impl Shared {
    pub fn new(
        config: Config,
        router: crate::route::Router,
        auth: Arc<dyn Authenticator>,
        throttle: pluto_auth::Throttle,
        tls: Option<TlsAcceptor>,
    ) -> Self {
        let headers = crate::cache::HeaderCache::new(config.cache.header_bytes());
        Self {
            config,
            router: std::sync::RwLock::new(Arc::new(router)),
            router_generation: watch::channel(0).0,
            auth,
            throttle,
            tls,
            headers,
            preauth_literals: Arc::default(),
            mailbox_writes: UserLocks::default(),
            quota_writes: UserLocks::default(),
        }
    }

    /// The router as of now.
    pub fn router(&self) -> Arc<crate::route::Router> {
        self.router
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_router(&self, router: crate::route::Router) {
        *self.router.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(router);
        self.router_generation.send_modify(|g| *g += 1);
    }
}
