//! The `Authenticator` trait: the one seam between the gateway and whatever
//! knows the users (the users file, PostgreSQL, or an adapter of your own).

use async_trait::async_trait;
use std::sync::Arc;

use pluto_model::Quota;

use crate::AuthError;

/// A successful authentication.
///
/// `user` is the *canonical* name of the account — the spelling the backend
/// stores, which may differ from what the client typed (for example in case).
/// The gateway routes and stores mail under this name, never under the typed
/// one, so one account can never end up with two mail stores.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Authenticated {
    /// The account's canonical name.
    pub user: String,
    /// The account's own quota limits (what the user database says; unset resources
    /// fall back to the configuration's `[quota]` default).
    pub quota: Quota,
}

impl Authenticated {
    /// A successful authentication of the account named `user` (canonical spelling),
    /// without limits of its own.
    pub fn new(user: impl Into<String>) -> Self {
        Authenticated {
            user: user.into(),
            quota: Quota::default(),
        }
    }

    /// The same, with the account's own quota limits.
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }
}

/// An account found by [`Authenticator::find_user`], without a password: mail
/// delivery (LMTP, `pluto deliver`) asks whether a recipient exists.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// The account's canonical name (as in [`Authenticated::user`]).
    pub user: String,
    /// Whether the account may log in (and so receive mail).
    pub enabled: bool,
    /// The account's own quota limits (as in [`Authenticated::quota`]).
    pub quota: Quota,
}

impl Account {
    /// An account named `user` (canonical spelling), without limits of its own.
    pub fn new(user: impl Into<String>, enabled: bool) -> Self {
        Account {
            user: user.into(),
            enabled,
            quota: Quota::default(),
        }
    }

    /// The same, with the account's own quota limits.
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = quota;
        self
    }
}

/// Checks a user name and password against a user database.
///
/// The gateway holds one `Arc<dyn Authenticator>` and calls
/// [`authenticate`](Authenticator::authenticate) for every `LOGIN` and
/// `AUTHENTICATE PLAIN`. It applies login throttling ([`crate::Throttle`])
/// itself, around the call, so an adapter does not need to.
///
/// # Writing your own adapter
///
/// Implement this trait with [`async_trait`] (the trait must stay object-safe)
/// and hand an `Arc` of it to the gateway. A compiled example lives in
/// `auth/examples/custom_adapter.rs`; `auth/README.md` has the walk-through.
/// Your implementation must keep these promises — the gateway and the
/// security of the whole service rely on them:
///
/// 1. **Unknown user and wrong password are the same answer.** Return
///    [`AuthError::Failed`] for both, never a distinguishing error or log line
///    at a level that reaches the client.
/// 2. **…and take the same time.** When the user does not exist, still spend
///    the cost of one password verification — with a
///    [`crate::scheme::DecoyHash`] fed the hashes you read (it then costs
///    what your own table's hashes cost), or simply
///    [`crate::scheme::verify_dummy`]; otherwise a stopwatch tells an
///    attacker which names exist.
/// 3. **`Disabled` only after the password verified.** Otherwise it leaks that
///    the name exists.
/// 4. **Backend trouble is [`AuthError::Unavailable`]**, with a short reason
///    for the log (no secrets, no password). The client sees `NO [UNAVAILABLE]`
///    and retries later; it must not look like a wrong password, or clients
///    start asking users for a new one.
/// 5. **Never block the async runtime.** Password hashes are deliberately
///    slow: verify them with [`crate::scheme::verify_password`], which runs on
///    tokio's blocking pool; do blocking I/O (a synchronous LDAP or SQL
///    client) inside `tokio::task::spawn_blocking`. Bound your own network
///    calls with a timeout and answer `Unavailable` when it expires.
/// 6. **Never log the password**, and log the user name only at debug level
///    or inside the gateway's session span.
/// 7. **Return the canonical name** in [`Authenticated`], and be
///    `Send + Sync`: one instance serves every session at once.
///
/// 8. **Quota limits are optional.** If your database keeps per-user limits, hand them
///    back with [`Authenticated::with_quota`] and [`Account::with_quota`] (the same
///    on both, or login and delivery disagree); what you leave unset falls back to the
///    configuration's `[quota]` default.
///
/// [`find_user`](Authenticator::find_user) serves mail delivery, which has no
/// password: it answers whether a name is an account (and its canonical
/// name), or [`AuthError::Unavailable`] when the backend cannot say — then
/// the MTA is told to try again later (451), never that the user is unknown
/// (550 bounces the mail). Delivery listens only to trusted networks, so no
/// decoy time is needed here; a name that could never be stored is `None`.
///
/// Stored hashes in Dovecot's `{SCHEME}hash` form can be checked with
/// [`crate::scheme::verify_password`], so a table migrated from Dovecot works
/// unchanged.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// Checks `password` for `user`.
    ///
    /// Returns the canonical account name on success; [`AuthError::Failed`]
    /// for an unknown user or a wrong password (indistinguishably);
    /// [`AuthError::Disabled`] for a right password on a disabled account;
    /// [`AuthError::Unavailable`] when the backend cannot answer.
    async fn authenticate(&self, user: &str, password: &str) -> Result<Authenticated, AuthError>;

    /// Looks `user` up without a password (for mail delivery): `Ok(None)` for
    /// no such account, [`AuthError::Unavailable`] when the backend cannot
    /// answer.
    async fn find_user(&self, user: &str) -> Result<Option<Account>, AuthError>;
}

#[async_trait]
impl<T: Authenticator + ?Sized> Authenticator for Arc<T> {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Authenticated, AuthError> {
        (**self).authenticate(user, password).await
    }

    async fn find_user(&self, user: &str) -> Result<Option<Account>, AuthError> {
        (**self).find_user(user).await
    }
}

#[async_trait]
impl<T: Authenticator + ?Sized> Authenticator for Box<T> {
    async fn authenticate(&self, user: &str, password: &str) -> Result<Authenticated, AuthError> {
        (**self).authenticate(user, password).await
    }

    async fn find_user(&self, user: &str) -> Result<Option<Account>, AuthError> {
        (**self).find_user(user).await
    }
}
