//! Getting in: STARTTLS, LOGIN, AUTHENTICATE PLAIN (with SASL-IR, RFC 4959).
//!
//! Plaintext credentials are accepted only over TLS or, when configured, from loopback.
//! Every attempt passes the login throttle (a growing delay after failures, shared by
//! all gateways); unknown user and wrong password get the same answer.

use std::borrow::Cow;

use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::core::{AString, IString, Tag};
use imap_codec::imap_types::response::Code;
use imap_codec::imap_types::secret::Secret;
use pluto_auth::AuthError;
use pluto_backends::{StoreError, UserId};

use crate::response::{CmdError, CmdResult, Done, code};
use crate::session::{Session, State};
use crate::wire::Incoming;

fn astring_text(value: &AString<'_>) -> Vec<u8> {
    match value {
        AString::Atom(a) => a.inner().as_bytes().to_vec(),
        AString::String(IString::Quoted(q)) => q.inner().as_bytes().to_vec(),
        AString::String(IString::Literal(l)) => l.data().to_vec(),
    }
}

impl Session {
    pub(crate) async fn cmd_starttls(&mut self, tag: Tag<'static>) -> CmdResult {
        if self.conn.is_tls() {
            return Err(CmdError::bad("TLS is already active"));
        }
        let Some(acceptor) = self.shared.tls.clone() else {
            return Err(CmdError::no("TLS is not configured on this server"));
        };
        // The OK goes out in the clear, then the handshake starts.
        self.finish(tag, Ok(Done::ok("Begin TLS negotiation now")))
            .await?;
        self.conn.start_tls(&acceptor).await?;
        tracing::debug!("STARTTLS done");
        Err(CmdError::Answered)
    }

    pub(crate) async fn cmd_login(
        &mut self,
        username: AString<'static>,
        password: Secret<AString<'static>>,
    ) -> CmdResult {
        if !self.plaintext_allowed() {
            return Err(CmdError::no_code(
                code("PRIVACYREQUIRED"),
                "Plaintext authentication is disallowed without TLS (use STARTTLS or port 993)",
            ));
        }
        let user = String::from_utf8_lossy(&astring_text(&username)).into_owned();
        let password = String::from_utf8_lossy(&astring_text(password.declassify())).into_owned();
        self.log_in(&user, &password).await
    }

    pub(crate) async fn cmd_authenticate(
        &mut self,
        mechanism: AuthMechanism<'static>,
        initial_response: Option<Secret<Cow<'static, [u8]>>>,
    ) -> CmdResult {
        if mechanism != AuthMechanism::Plain {
            return Err(CmdError::no(format!(
                "Unsupported authentication mechanism {mechanism}; use PLAIN"
            )));
        }
        if !self.plaintext_allowed() {
            return Err(CmdError::no_code(
                code("PRIVACYREQUIRED"),
                "Plaintext authentication is disallowed without TLS (use STARTTLS or port 993)",
            ));
        }
        let data: Vec<u8> = match initial_response {
            Some(data) => data.declassify().to_vec(),
            None => {
                self.conn.send_raw(b"+ \r\n");
                self.conn.flush().await?;
                let read = self.conn.read_authenticate_data().await;
                match read {
                    Ok(Incoming::Message(AuthenticateData::Continue(data))) => {
                        data.declassify().to_vec()
                    }
                    Ok(Incoming::Message(AuthenticateData::Cancel)) => {
                        return Err(CmdError::bad("Authentication cancelled"));
                    }
                    Ok(Incoming::Invalid { reason, .. }) => return Err(CmdError::bad(reason)),
                    Ok(Incoming::Refused) => return Err(CmdError::bad("Unexpected literal")),
                    Err(e) => return Err(CmdError::Io(std::io::Error::other(e.to_string()))),
                }
            }
        };
        // PLAIN: authzid NUL authcid NUL password (RFC 4616).
        let mut parts = data.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CmdError::bad("Malformed PLAIN authentication data"));
        };
        let (Ok(authzid), Ok(authcid), Ok(password)) = (
            std::str::from_utf8(authzid),
            std::str::from_utf8(authcid),
            std::str::from_utf8(password),
        ) else {
            return Err(CmdError::bad("PLAIN authentication data must be UTF-8"));
        };
        if !authzid.is_empty() && authzid != authcid {
            return Err(CmdError::no_code(
                code("AUTHORIZATIONFAILED"),
                "Logging in as another user is not supported",
            ));
        }
        let (authcid, password) = (authcid.to_owned(), password.to_owned());
        self.log_in(&authcid, &password).await
    }

    /// Checks credentials through the throttle and the authenticator, then opens the
    /// user's mail.
    async fn log_in(&mut self, user: &str, password: &str) -> CmdResult {
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
            self.failed_logins += 1;
            if self.failed_logins >= MAX_FAILED_LOGINS {
                self.send(&crate::response::bye("Too many failed logins"))
                    .await?;
                self.state = State::Logout;
            }
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
                self.failed_logins += 1;
                if self.failed_logins >= MAX_FAILED_LOGINS {
                    self.send(&crate::response::bye("Too many failed logins"))
                        .await?;
                    self.state = State::Logout;
                }
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
        self.store = Some(routed.store);
        self.home_back = routed.home_back;
        self.node_up = routed.node_up;
        self.node = routed.node;
        self.router_generation = Some(self.shared.router_generation.subscribe());
        tracing::Span::current().record("user", user_id.as_str());
        tracing::info!("logged in");
        self.user = Some(user_id);
        self.state = State::Authenticated;
        let idle = std::time::Duration::from_secs(self.shared.config.limits.idle_timeout_secs);
        self.conn.logged_in(idle);
        let caps: Vec<_> = self
            .capabilities()
            .into_iter()
            .filter_map(|c| imap_codec::imap_types::response::Capability::try_from(c).ok())
            .collect();
        let caps = imap_codec::imap_types::core::Vec1::unvalidated(caps);
        Ok(Done::ok_code(Code::Capability(caps), "Logged in"))
    }
}

const MAX_FAILED_LOGINS: u32 = 3;
