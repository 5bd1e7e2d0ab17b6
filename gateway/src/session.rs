//! One client session: the IMAP state machine (not authenticated → authenticated →
//! selected → logout), the command loop with its timeouts, and the hand-off of each
//! command to its module under `command/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Data, Response, StatusKind};
use pluto_backends::{MailStore, UserId};
use tokio::sync::watch;
use tracing::Instrument;

use crate::response::{self, CmdError, CmdResult, Done};
use crate::selected::Selected;
use crate::shared::Shared;
use crate::wire::{Connection, Incoming, ReadError};

pub enum State {
    NotAuthenticated,
    Authenticated,
    Selected(Box<Selected>),
    Logout,
}

pub struct Session {
    pub shared: Arc<Shared>,
    pub conn: Connection,
    pub peer: SocketAddr,
    pub user: Option<UserId>,
    /// The store this session's user was routed to at login.
    pub store: Option<Arc<dyn MailStore>>,
    /// Turns true when the user's home node is back and this session should move there.
    pub home_back: Option<watch::Receiver<bool>>,
    /// The serving node's health (see [`crate::route::Routed::node_up`]).
    pub node_up: Option<watch::Receiver<bool>>,
    /// The node serving this session, and the router generation it was chosen under.
    pub node: String,
    pub router_generation: Option<watch::Receiver<u64>>,
    pub state: State,
    pub shutdown: watch::Receiver<bool>,
    /// Failed logins in this session; too many end it.
    pub failed_logins: u32,
    /// Commands in a row that were BAD; too many end the session.
    pub bad_in_a_row: u32,
    /// When a client that has not logged in is dropped: `limits.preauth_timeout_secs`
    /// after it connected, whatever it does meanwhile (TLS handshakes and SASL
    /// exchanges included).
    pub preauth_deadline: tokio::time::Instant,
}

const MAX_BAD_IN_A_ROW: u32 = 20;

/// The BYE text when the health probe marks the session's node down.
pub const NODE_DOWN: &str = "Mail store not responding; please reconnect";

/// Resolves once the node behind `up` is marked down; never, without a signal (a
/// local store, or a session routed while its node already looked down) or once the
/// router forgot the node.
pub async fn node_down(up: Option<watch::Receiver<bool>>) {
    match up {
        Some(mut rx) => {
            if rx.wait_for(|up| !*up).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        mut conn: Connection,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
        preauth_deadline: tokio::time::Instant,
    ) -> Self {
        conn.set_write_deadline(preauth_deadline);
        Self {
            shared,
            conn,
            peer,
            user: None,
            store: None,
            home_back: None,
            node_up: None,
            node: String::new(),
            router_generation: None,
            state: State::NotAuthenticated,
            shutdown,
            failed_logins: 0,
            bad_in_a_row: 0,
            preauth_deadline,
        }
    }

    /// Runs the session to its end. Never panics on client input; returns when the
    /// client logs out, the connection drops, a timeout strikes, or the server stops.
    pub async fn run(mut self, id: u64) {
        let span = tracing::info_span!("session", id, peer = %self.peer, user = tracing::field::Empty, node = tracing::field::Empty, tls = self.conn.is_tls());
        async move {
            let _gauge = crate::metrics::SessionGauge::new();
            tracing::debug!("connected");
            if let Err(e) = self.serve().await {
                tracing::debug!(error = %e, "session ended");
            }
            self.conn.shutdown().await;
            tracing::debug!("closed");
        }
        .instrument(span)
        .await
    }

    async fn serve(&mut self) -> std::io::Result<()> {
        let greeting = format!(
            "* OK [CAPABILITY {}] pluto ready.\r\n",
            self.capabilities().join(" ")
        );
        self.conn.send_raw(greeting.as_bytes());
        self.conn.flush().await?;
        loop {
            if matches!(self.state, State::Logout) {
                return Ok(());
            }
            // Logged in: the idle timeout starts again with each command. Not yet: the
            // deadline counts from the connection, so NOOPs cannot keep a client there.
            let deadline = if self.user.is_some() {
                tokio::time::Instant::now()
                    + Duration::from_secs(self.shared.config.limits.idle_timeout_secs)
            } else {
                self.preauth_deadline
            };
            let max_nesting = self.shared.config.limits.max_nesting;
            let mut shutdown = self.shutdown.clone();
            let node_down = node_down(self.node_up.clone());
            let incoming = tokio::select! {
                read = tokio::time::timeout_at(deadline, self.conn.read_command(max_nesting)) => read,
                _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                    self.conn.send(&response::bye("Server shutting down")).await?;
                    self.conn.flush().await?;
                    return Ok(());
                }
                _ = node_down => {
                    tracing::info!(node = %self.node, "node marked down; ending the session");
                    self.conn.send(&response::bye_unavailable(NODE_DOWN)).await?;
                    self.conn.flush().await?;
                    return Ok(());
                }
            };
            let incoming = match incoming {
                Err(_elapsed) => {
                    let text = if self.user.is_some() {
                        "Autologout; idle for too long"
                    } else {
                        "Autologout; took too long to log in"
                    };
                    self.conn.send(&response::bye(text)).await?;
                    self.conn.flush().await?;
                    return Ok(());
                }
                Ok(Err(ReadError::Closed)) => return Ok(()),
                Ok(Err(ReadError::Io(e))) => return Err(e),
                Ok(Ok(incoming)) => incoming,
            };
            match incoming {
                Incoming::Message(command) if self.user.is_none() => {
                    // Before login the whole exchange (a STARTTLS handshake, an
                    // AUTHENTICATE continuation, a throttled LOGIN) is held to the deadline.
                    let handled =
                        tokio::time::timeout_at(self.preauth_deadline, self.handle(command)).await;
                    match handled {
                        Ok(handled) => handled?,
                        Err(_elapsed) => {
                            tracing::debug!("pre-login deadline passed mid-command");
                            // Mid-handshake there is no stream to say BYE on: the socket
                            // just closes.
                            let bye = response::bye("Autologout; took too long to log in");
                            let _ = self.conn.send(&bye).await;
                            let _ = self.conn.flush().await;
                            return Ok(());
                        }
                    }
                }
                Incoming::Message(command) => self.handle(command).await?,
                Incoming::Invalid { tag, reason } => {
                    self.bad_in_a_row += 1;
                    let response = match tag {
                        Some(tag) => response::tagged(tag, StatusKind::Bad, None, reason),
                        None => response::untagged(StatusKind::Bad, None, reason),
                    };
                    self.conn.send(&response).await?;
                }
                Incoming::Refused => {}
            }
            if self.bad_in_a_row >= MAX_BAD_IN_A_ROW {
                self.conn
                    .send(&response::bye("Too many invalid commands"))
                    .await?;
                self.conn.flush().await?;
                return Ok(());
            }
            self.conn.flush().await?;
        }
    }

    async fn handle(&mut self, command: Command<'static>) -> std::io::Result<()> {
        let Command { tag, body } = command;
        let name = body.name();
        tracing::debug!(tag = tag.inner(), command = name, "command");
        metrics::counter!(crate::metrics::COMMANDS, "command" => name).increment(1);
        let result = self.dispatch(tag.clone(), body).await;
        self.finish(tag, result).await
    }

    /// Sends the tagged answer for a command, with any untagged updates first.
    pub async fn finish(&mut self, tag: Tag<'static>, result: CmdResult) -> std::io::Result<()> {
        let store_lost = matches!(&result, Err(CmdError::No { code: Some(c), .. }) if *c == response::code("UNAVAILABLE"))
            && self.user.is_some();
        let response = match result {
            Ok(Done { kind, code, text }) => {
                self.bad_in_a_row = 0;
                response::tagged(tag, kind, code, text)
            }
            Err(CmdError::No { code, text }) => {
                self.bad_in_a_row = 0;
                response::tagged(tag, StatusKind::No, code, text)
            }
            Err(CmdError::Bad { code, text }) => {
                self.bad_in_a_row += 1;
                response::tagged(tag, StatusKind::Bad, code, text)
            }
            Err(CmdError::Answered) => return Ok(()),
            Err(CmdError::Lost(text)) => {
                self.conn.send(&response::bye_unavailable(text)).await?;
                self.state = State::Logout;
                return Ok(());
            }
            Err(CmdError::Io(e)) => return Err(e),
        };
        self.conn.send(&response).await?;
        if store_lost {
            // The node behind this session is gone: the client should reconnect, and the
            // gateway will send it to a live replica.
            self.conn
                .send(&response::bye("Mail store lost; please reconnect"))
                .await?;
            self.state = State::Logout;
        } else if self.should_move_home() {
            self.conn
                .send(&response::bye("Your home server is back; please reconnect"))
                .await?;
            self.state = State::Logout;
        }
        Ok(())
    }

    async fn dispatch(&mut self, tag: Tag<'static>, body: CommandBody<'static>) -> CmdResult {
        use CommandBody as C;
        // Commands valid in any state.
        match body {
            C::Capability => return self.cmd_capability().await,
            C::Noop => return self.cmd_noop().await,
            C::Logout => return self.cmd_logout().await,
            C::Id { parameters } => return self.cmd_id(parameters).await,
            _ => {}
        }
        if self.user.is_none() {
            return match body {
                C::StartTLS => self.cmd_starttls(tag).await,
                C::Login { username, password } => self.cmd_login(username, password).await,
                C::Authenticate {
                    mechanism,
                    initial_response,
                } => self.cmd_authenticate(mechanism, initial_response).await,
                _ => Err(CmdError::bad(format!(
                    "{} is not allowed before logging in",
                    command_name(&body)
                ))),
            };
        }
        let selected_only = matches!(
            body,
            C::Check
                | C::Close
                | C::Unselect
                | C::Expunge
                | C::ExpungeUid { .. }
                | C::Search { .. }
                | C::Fetch { .. }
                | C::Store { .. }
                | C::Copy { .. }
                | C::Move { .. }
        );
        if selected_only && !matches!(self.state, State::Selected(_)) {
            return Err(CmdError::bad(format!(
                "{} needs a selected mailbox (SELECT first)",
                command_name(&body)
            )));
        }
        // RFC 3501 7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH by number.
        let (allow_expunge, with_uid) = match &body {
            C::Fetch { uid, .. } | C::Store { uid, .. } | C::Search { uid, .. } => (*uid, *uid),
            C::Copy { uid, .. } | C::Move { uid, .. } => (true, *uid),
            _ => (true, false),
        };
        let result = match body {
            C::StartTLS | C::Login { .. } | C::Authenticate { .. } => {
                Err(CmdError::bad("Already logged in"))
            }
            C::Enable { capabilities } => self.cmd_enable(capabilities).await,
            C::Namespace => self.cmd_namespace().await,
            C::Select { mailbox, .. } => self.cmd_select(mailbox, false).await,
            C::Examine { mailbox, .. } => self.cmd_select(mailbox, true).await,
            C::Create { mailbox } => self.cmd_create(mailbox).await,
            C::Delete { mailbox } => self.cmd_delete(mailbox).await,
            C::Rename { from, to } => self.cmd_rename(from, to).await,
            C::Subscribe { mailbox } => self.cmd_subscribe(mailbox, true).await,
            C::Unsubscribe { mailbox } => self.cmd_subscribe(mailbox, false).await,
            C::List {
                reference,
                mailbox_wildcard,
            } => self.cmd_list(reference, mailbox_wildcard, false).await,
            C::Lsub {
                reference,
                mailbox_wildcard,
            } => self.cmd_list(reference, mailbox_wildcard, true).await,
            C::Status {
                mailbox,
                item_names,
            } => self.cmd_status(mailbox, item_names.into_owned()).await,
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.cmd_append(mailbox, flags, date, message).await,
            C::Idle => self.cmd_idle(tag).await,
            C::Check => self.cmd_noop_named("CHECK").await,
            C::Close => self.cmd_close().await,
            C::Unselect => self.cmd_unselect().await,
            C::Expunge => self.cmd_expunge(None).await,
            C::ExpungeUid { sequence_set } => self.cmd_expunge(Some(sequence_set)).await,
            C::Search {
                charset,
                criteria,
                uid,
            } => self.cmd_search(charset, criteria, uid).await,
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                ..
            } => self.cmd_fetch(sequence_set, macro_or_item_names, uid).await,
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                ..
            } => {
                self.cmd_store(sequence_set, kind, response, flags, uid)
                    .await
            }
            C::Copy {
                sequence_set,
                mailbox,
                uid,
            } => self.cmd_copy(sequence_set, mailbox, uid, false).await,
            C::Move {
                sequence_set,
                mailbox,
                uid,
            } => self.cmd_copy(sequence_set, mailbox, uid, true).await,
            other => Err(CmdError::bad(format!(
                "{} is not supported",
                command_name(&other)
            ))),
        };
        // After every command in the selected state, tell the client what changed
        // elsewhere (EXPUNGE only where RFC 3501 allows it).
        if let Err(CmdError::Io(_) | CmdError::Lost(_)) = result {
            return result;
        }
        self.after_command(allow_expunge, with_uid).await?;
        result
    }

    /// Brings in changes the feed told of, after a command.
    async fn after_command(&mut self, allow_expunge: bool, with_uid: bool) -> Result<(), CmdError> {
        let State::Selected(selected) = &mut self.state else {
            return Ok(());
        };
        selected.drain_feed();
        if selected.feed_dirty {
            self.refresh(allow_expunge, with_uid).await?;
        } else if let State::Selected(selected) = &mut self.state {
            if allow_expunge && !selected.pending_expunge.is_empty() {
                for response in selected.take_expunges() {
                    self.conn.send(&response).await?;
                }
            }
        }
        Ok(())
    }

    /// Asks the store what changed in the selected mailbox and sends it to the client.
    pub async fn refresh(&mut self, allow_expunge: bool, with_uid: bool) -> Result<(), CmdError> {
        let user = self.user()?.clone();
        let store = self.store()?;
        let State::Selected(selected) = &mut self.state else {
            return Ok(());
        };
        selected.feed_dirty = false;
        let changes = match store
            .changes_since(&user, &selected.name, selected.highest_modseq)
            .await
        {
            Ok(changes) => changes,
            Err(pluto_backends::StoreError::NoSuchMailbox(_)) => {
                self.conn
                    .send(&response::bye("Selected mailbox was deleted"))
                    .await?;
                self.conn.flush().await?;
                self.state = State::Logout;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut responses = selected.apply(changes, allow_expunge, with_uid);
        if std::mem::take(&mut selected.added_since_claim) {
            // New mail: this session may be the first to be told of it (RFC 3501 2.3.2).
            let claim = !selected.read_only;
            match store.recent(&user, &selected.name, claim).await {
                Ok(range) => selected.add_recent(range),
                // \Recent is advisory: a failed claim shows the mail as not recent.
                Err(e) => tracing::debug!(error = %e, "recent claim failed"),
            }
            // Like Dovecot, RECENT only when the number changed (RFC 3501 7.3.2).
            let count = selected.recent_count();
            if count != selected.announced_recent {
                selected.announced_recent = count;
                responses.push(Response::Data(Data::Recent(count)));
            }
        }
        for response in responses {
            self.conn.send(&response).await?;
        }
        Ok(())
    }

    /// The store of the logged-in user.
    pub fn store(&self) -> Result<Arc<dyn MailStore>, CmdError> {
        self.store
            .clone()
            .ok_or_else(|| CmdError::bad("Not logged in"))
    }

    /// True once the user's home node is back: the session should end so that the client
    /// reconnects there.
    pub fn should_move_home(&mut self) -> bool {
        self.notice_reload();
        self.home_back.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// After a configuration reload: if this session's node no longer holds the user,
    /// it moves once the new home is ready.
    pub fn notice_reload(&mut self) {
        let changed = self
            .router_generation
            .as_mut()
            .is_some_and(|rx| rx.has_changed().unwrap_or(false));
        if !changed {
            return;
        }
        if let Some(rx) = self.router_generation.as_mut() {
            rx.mark_unchanged();
        }
        if let Some(user) = &self.user {
            if let Some(moved) = self.shared.router().relocation(user, &self.node) {
                tracing::info!(node = %self.node, "this node no longer holds the user; moving when the new home is ready");
                self.home_back = Some(moved);
            }
        }
    }

    pub fn user(&self) -> Result<&UserId, CmdError> {
        self.user
            .as_ref()
            .ok_or_else(|| CmdError::bad("Not logged in"))
    }

    pub fn selected(&mut self) -> Result<&mut Selected, CmdError> {
        match &mut self.state {
            State::Selected(s) => Ok(s),
            _ => Err(CmdError::bad("No mailbox selected")),
        }
    }

    pub async fn send(&mut self, response: &Response<'_>) -> Result<(), CmdError> {
        self.conn.send(response).await.map_err(CmdError::Io)
    }

    /// Whether plaintext LOGIN / AUTHENTICATE PLAIN is allowed on this connection.
    pub fn plaintext_allowed(&self) -> bool {
        self.conn.is_tls()
            || (self.shared.config.auth.allow_insecure_loopback && self.peer.ip().is_loopback())
    }

    /// The capability list for this connection's state.
    pub fn capabilities(&self) -> Vec<String> {
        let mut caps = vec!["IMAP4rev1".to_owned()];
        if self.user.is_none() {
            if !self.conn.is_tls() && self.shared.tls.is_some() {
                caps.push("STARTTLS".to_owned());
            }
            if self.plaintext_allowed() {
                caps.push("AUTH=PLAIN".to_owned());
            } else {
                caps.push("LOGINDISABLED".to_owned());
            }
            caps.push("SASL-IR".to_owned());
        }
        caps.extend(
            [
                "LITERAL+",
                "ID",
                "ENABLE",
                "IDLE",
                "NAMESPACE",
                "UNSELECT",
                "UIDPLUS",
                "MOVE",
                "SPECIAL-USE",
                "CHILDREN",
            ]
            .map(str::to_owned),
        );
        caps.push(format!(
            "APPENDLIMIT={}",
            self.shared.config.limits.append_limit
        ));
        caps
    }
}

pub fn command_name(body: &CommandBody<'_>) -> &'static str {
    body.name()
}
