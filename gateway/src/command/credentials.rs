//! What LOGIN and AUTHENTICATE share (RFC 3501 6.2.2, 6.2.3): plaintext credentials
//! only over TLS or, when configured, from loopback; every attempt through the login
//! throttle (a growing delay after failures, shared by all gateways); the same answer
//! for an unknown user and a wrong password; too many failures end the session; then
//! the user is routed to the first replica that opens their mail.

use imap_codec::imap_types::response::Code;
use pluto_auth::AuthError;
use pluto_backends::{StoreError, UserId};

use crate::response::{CmdError, Done, code};
use crate::session::{Authenticated, Client, StepResult, Transition};

/// Failed logins (throttle refusals included) after which the session ends with BYE.
const MAX_FAILED_LOGINS: u32 = 3;

impl Client {
    /// Refuses plaintext credentials where they would travel in the clear.
    pub(super) fn require_plaintext_allowed(&self) -> Result<(), CmdError> {
        if !self.plaintext_allowed() {
            return Err(CmdError::no_code(
                code("PRIVACYREQUIRED"),
                "Plaintext authentication is disallowed without TLS (use STARTTLS or port 993)",
            ));
        }
        Ok(())
    }

    /// Checks credentials through the throttle and the authenticator, then opens the
    /// user's mail.
    pub(super) async fn log_in(&mut self, user: &str, password: &str) -> StepResult {
        let ip = self.peer.ip();
        // The slot is reserved before the password is checked, so parallel guesses
        // queue behind each other instead of sharing one delay.
        let delay = self.shared.throttle.reserve(ip, user).await;
        // A wait that would outlast the time to log in holds the connection for
        // nothing: refuse at once, without checking the password, and take the attempt
        // back (queued guesses cannot park sessions for minutes).
        let limit = std::time::Duration::from_secs(self.shared.config.limits.preauth_timeout_secs);
        if delay >= limit {
            self.shared.throttle.release(ip, user).await;
            metrics::counter!(crate::metrics::LOGINS, "result" => "throttled").increment(1);
            tracing::info!(user, wait = ?delay, "login refused: throttled");
            // Counted like a failure, so one connection cannot spin on refusals.
            self.count_failed_login().await?;
            return Err(CmdError::no_code(
                code("UNAVAILABLE"),
                "Too many failed logins from your address; try again later",
            ));
        }
        if !delay.is_zero() {
            // A success of the same user from this address meanwhile shortens it.
            self.shared.throttle.wait(ip, user, delay).await;
        }
        let authenticated = match self.shared.auth.authenticate(user, password).await {
            Ok(a) => a,
            Err(AuthError::Unavailable(reason)) => {
                self.shared.throttle.release(ip, user).await;
                metrics::counter!(crate::metrics::LOGINS, "result" => "unavailable").increment(1);
                tracing::warn!(%reason, "authentication backend unavailable");
                return Err(CmdError::no_code(
                    code("UNAVAILABLE"),
                    "Authentication is temporarily unavailable, try again later",
                ));
            }
            Err(error) => {
                metrics::counter!(crate::metrics::LOGINS, "result" => "failed").increment(1);
                tracing::info!(user, %error, "login failed");
                self.count_failed_login().await?;
                return Err(CmdError::no_code(
                    code("AUTHENTICATIONFAILED"),
                    "Authentication failed",
                ));
            }
        };
        self.shared.throttle.record_success(ip, user).await;
        metrics::counter!(crate::metrics::LOGINS, "result" => "ok").increment(1);
        let user_id = UserId::new(authenticated.user.clone()).map_err(|e| {
            tracing::error!(error = %e, "authenticator returned an unusable user name");
            CmdError::no_code(code("AUTHENTICATIONFAILED"), "Authentication failed")
        })?;
        // The first replica that opens the user's mail serves the session.
        let mut routed = None;
        let mut last_error = None;
        for candidate in self.shared.router().candidates(&user_id) {
            match candidate.store.open_user(&user_id).await {
                Ok(()) => {
                    routed = Some(candidate);
                    break;
                }
                // Opening is harmless to repeat: a node that did not answer is skipped
                // like one that cannot be reached.
                Err(e @ (StoreError::Unavailable(_) | StoreError::Unanswered(_))) => {
                    tracing::info!(node = %candidate.node, error = %e, "replica unavailable, trying the next");
                    last_error = Some(StoreError::Unavailable(e.to_string()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let Some(routed) = routed else {
            return Err(last_error
                .unwrap_or_else(|| StoreError::Unavailable("no replica configured".into()))
                .into());
        };
        tracing::Span::current().record("node", routed.node.as_str());
        tracing::Span::current().record("user", user_id.as_str());
        tracing::info!("logged in");
        let login = Authenticated {
            user: user_id,
            quota: crate::quota::effective(&self.shared, authenticated.quota),
            store: routed.store,
            node: routed.node,
            home_back: routed.home_back,
            node_up: routed.node_up,
            router_generation: self.shared.router_generation.subscribe(),
        };
        let idle = std::time::Duration::from_secs(self.shared.config.limits.idle_timeout_secs);
        self.conn.logged_in(idle);
        let caps: Vec<_> = self
            .capabilities(true)
            .into_iter()
            .filter_map(|c| imap_codec::imap_types::response::Capability::try_from(c).ok())
            .collect();
        let caps = imap_codec::imap_types::core::Vec1::unvalidated(caps);
        Ok((
            Done::ok_code(Code::Capability(caps), "Logged in"),
            Some(Transition::LogIn(login)),
        ))
    }
    /// One more failed login in this session (a throttle refusal counts too); the
    /// `MAX_FAILED_LOGINS`th ends the session with BYE.
    async fn count_failed_login(&mut self) -> Result<(), CmdError> {
        self.failed_logins += 1;
        if self.failed_logins >= MAX_FAILED_LOGINS {
            self.send(&crate::response::bye("Too many failed logins"))
                .await?;
            self.logging_out = true;
        }
        Ok(())
    }
}
