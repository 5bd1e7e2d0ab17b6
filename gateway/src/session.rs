//! One client session: the IMAP state machine, the command loop with its timeouts, and
//! the hand-off of each command to its module under `command/`.
//!
//! [`State`] is RFC 3501's state diagram with each state's data inside it: a logged-in
//! state holds the [`Authenticated`] login (the user, the store and node serving them,
//! the signals about that node), the selected state the login and the mailbox's
//! [`MailboxView`] ([`Selected`]). The dispatcher matches the state once per command:
//! a command the state does not allow is answered BAD there, and every other goes to
//! its handler with the data of the state, so a handler that needs a selected mailbox
//! is given one. A handler that changes the state returns a [`Transition`], applied
//! once it is done. RFC 3501's logout state is [`Client::logging_out`]: a `* BYE` went
//! out and the session ends once the command in hand is answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Data, Response, StatusKind};
use pluto_backends::{MailStore, UserId};
use tokio::sync::watch;
use tracing::Instrument;

use crate::command::extended::{ExtendedBody, OnMailbox};
use crate::command::search_syntax::SearchCommand;
use crate::response::{self, CmdError, CmdResult, Done};
use crate::selected::{Enabled, MailboxView};
use crate::shared::Shared;
use crate::wire::{Connection, Extended, Incoming, ReadError, Request};

/// Where a session is in RFC 3501's state diagram (3, 6), with what that state needs.
pub enum State {
    NotAuthenticated,
    Authenticated(Authenticated),
    Selected(Box<Selected>),
}

/// A logged-in user and where their mail is served: what every command after login
/// works with.
pub struct Authenticated {
    pub user: UserId,
    /// The user's quota limits (the user database's over the configured default).
    pub quota: pluto_model::Quota,
    /// The store this session's user was routed to at login.
    pub store: Arc<dyn MailStore>,
    /// The node serving this session.
    pub node: String,
    /// Turns true when the user's home node is back and this session should move there.
    pub home_back: Option<watch::Receiver<bool>>,
    /// The serving node's health (see [`crate::route::Routed::node_up`]).
    pub node_up: Option<watch::Receiver<bool>>,
    /// The router generation the node was chosen under.
    pub router_generation: watch::Receiver<u64>,
}

/// The selected state: the login, and the selected mailbox as this session sees it.
pub struct Selected {
    pub login: Authenticated,
    pub mailbox: MailboxView,
}

/// A change of state a command asks for; the session applies it once the command is
/// done.
pub enum Transition {
    /// LOGIN or AUTHENTICATE succeeded.
    LogIn(Authenticated),
    /// SELECT or EXAMINE opened this mailbox, in place of any selected before.
    Select(MailboxView),
    /// No mailbox is selected any more: CLOSE, UNSELECT, a DELETE of the selected
    /// mailbox, a SELECT that failed (RFC 3501 6.3.1).
    Unselect,
    /// Back to not authenticated (UNAUTHENTICATE): the login and any selected mailbox
    /// are dropped.
    LogOut,
}

/// How a command that may change the state ended: its result and the transition.
pub type Stepped = (CmdResult, Option<Transition>);

/// What a handler that changes the state when it succeeds returns.
pub type StepResult = Result<(Done, Option<Transition>), CmdError>;

/// A handler's result with the transition it asks for on success, as [`Stepped`].
pub fn stepped(result: StepResult) -> Stepped {
    match result {
        Ok((done, transition)) => (Ok(done), transition),
        Err(e) => (Err(e), None),
    }
}

impl State {
    /// The login, in either logged-in state.
    pub fn login(&self) -> Option<&Authenticated> {
        match self {
            State::NotAuthenticated => None,
            State::Authenticated(login) => Some(login),
            State::Selected(selected) => Some(&selected.login),
        }
    }

    fn login_mut(&mut self) -> Option<&mut Authenticated> {
        match self {
            State::NotAuthenticated => None,
            State::Authenticated(login) => Some(login),
            State::Selected(selected) => Some(&mut selected.login),
        }
    }

    fn selected(&mut self) -> Option<&mut Selected> {
        match self {
            State::Selected(selected) => Some(selected),
            _ => None,
        }
    }

    /// Moves to the state `transition` names. The dispatcher asks for a transition only
    /// where it applies (LOGIN before login, SELECT and the others after it); one that
    /// does not apply (leaving a mailbox when none is selected) leaves the state as it is.
    fn apply(&mut self, transition: Transition) {
        let now = std::mem::replace(self, State::NotAuthenticated);
        *self = match (now, transition) {
            (_, Transition::LogIn(login)) => State::Authenticated(login),
            (_, Transition::LogOut) => State::NotAuthenticated,
            (State::Authenticated(login), Transition::Select(mailbox)) => {
                State::Selected(Box::new(Selected { login, mailbox }))
            }
            (State::Selected(mut selected), Transition::Select(mailbox)) => {
                selected.mailbox = mailbox;
                State::Selected(selected)
            }
            (State::Selected(selected), Transition::Unselect) => {
                State::Authenticated(selected.login)
            }
            (unchanged, _) => unchanged,
        };
    }
}

pub struct Session {
    client: Client,
    state: State,
}

/// One client's connection and what a session keeps in every state; the command
/// handlers (`command/`) are its methods, given the data of the session's state.
pub struct Client {
    pub shared: Arc<Shared>,
    pub conn: Connection,
    pub peer: SocketAddr,
    pub shutdown: watch::Receiver<bool>,
    /// Failed logins in this session; too many end it.
    pub failed_logins: u32,
    /// Commands in a row that were BAD; too many end the session.
    pub bad_in_a_row: u32,
    /// When a client that has not logged in is dropped: `limits.preauth_timeout_secs`
    /// after it connected, whatever it does meanwhile (TLS handshakes and SASL
    /// exchanges included).
    pub preauth_deadline: tokio::time::Instant,
    /// A `* BYE` went out (LOGOUT, or the server ends the session): RFC 3501's logout
    /// state. The session ends once the command in hand is answered, and nothing more
    /// is said about the selected mailbox.
    pub logging_out: bool,
    /// CONDSTORE and QRESYNC, once enabled (RFC 7162 3.1, 3.2.3): for the rest of the
    /// session.
    pub enabled: Enabled,
    /// The extension items (EMAILID, PREVIEW, MAILBOXID, …) of the FETCH or STATUS being
    /// dispatched, which imap-codec's command does not carry: set by
    /// [`Session::dispatch_extended`] just before it dispatches that command, taken by
    /// `cmd_fetch`/`cmd_status`, so it never outlives the command.
    pub(crate) extras: crate::command::extra_items::Extras,
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
        let client = Client {
            shared,
            conn,
            peer,
            shutdown,
            failed_logins: 0,
            bad_in_a_row: 0,
            preauth_deadline,
            logging_out: false,
            enabled: Enabled::default(),
            extras: Default::default(),
        };
        Self {
            client,
            state: State::NotAuthenticated,
        }
    }

    /// Runs the session to its end. Never panics on client input; returns when the
    /// client logs out, the connection drops, a timeout strikes, or the server stops.
    pub async fn run(mut self, id: u64) {
        let span = tracing::info_span!("session", id, peer = %self.client.peer, user = tracing::field::Empty, node = tracing::field::Empty, tls = self.client.conn.is_tls());
        async move {
            let _gauge = crate::metrics::SessionGauge::new();
            tracing::debug!("connected");
            if let Err(e) = self.serve().await {
                tracing::debug!(error = %e, "session ended");
            }
            self.client.conn.shutdown().await;
            tracing::debug!("closed");
        }
        .instrument(span)
        .await
    }

    async fn serve(&mut self) -> std::io::Result<()> {
        let greeting = format!(
            "* OK [CAPABILITY {}] pluto ready.\r\n",
            self.client.capabilities(false).join(" ")
        );
        self.client.conn.send_raw(greeting.as_bytes());
        self.client.conn.flush().await?;
        loop {
            if self.client.logging_out {
                return Ok(());
            }
            let logged_in = self.state.login().is_some();
            // Logged in: the idle timeout starts again with each command. Not yet: the
            // deadline counts from the connection, so NOOPs cannot keep a client there.
            let deadline = if logged_in {
                tokio::time::Instant::now()
                    + Duration::from_secs(self.client.shared.config.limits.idle_timeout_secs)
            } else {
                self.client.preauth_deadline
            };
            let max_nesting = self.client.shared.config.limits.max_nesting;
            let mut shutdown = self.client.shutdown.clone();
            let node_down = node_down(self.state.login().and_then(|l| l.node_up.clone()));
            let conn = &mut self.client.conn;
            let incoming = tokio::select! {
                read = tokio::time::timeout_at(deadline, conn.read_command(max_nesting)) => read,
                _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                    conn.send(&response::bye("Server shutting down")).await?;
                    conn.flush().await?;
                    return Ok(());
                }
                _ = node_down => {
                    let node = self.state.login().map(|l| l.node.as_str()).unwrap_or_default();
                    tracing::info!(node = %node, "node marked down; ending the session");
                    conn.send(&response::bye_unavailable(NODE_DOWN)).await?;
                    conn.flush().await?;
                    return Ok(());
                }
            };
            let incoming = match incoming {
                Err(_elapsed) => {
                    let text = if logged_in {
                        "Autologout; idle for too long"
                    } else {
                        "Autologout; took too long to log in"
                    };
                    self.client.conn.send(&response::bye(text)).await?;
                    self.client.conn.flush().await?;
                    return Ok(());
                }
                Ok(Err(ReadError::Closed)) => return Ok(()),
                Ok(Err(ReadError::Io(e))) => return Err(e),
                Ok(Ok(incoming)) => incoming,
            };
            match incoming {
                Incoming::Message(command) if !logged_in => {
                    // Before login the whole exchange (a STARTTLS handshake, an
                    // AUTHENTICATE continuation, a throttled LOGIN) is held to the deadline.
                    let deadline = self.client.preauth_deadline;
                    let handled = tokio::time::timeout_at(deadline, self.handle(command)).await;
                    match handled {
                        Ok(handled) => handled?,
                        Err(_elapsed) => {
                            tracing::debug!("pre-login deadline passed mid-command");
                            // Mid-handshake there is no stream to say BYE on: the socket
                            // just closes.
                            let bye = response::bye("Autologout; took too long to log in");
                            let _ = self.client.conn.send(&bye).await;
                            let _ = self.client.conn.flush().await;
                            return Ok(());
                        }
                    }
                }
                Incoming::Message(command) => self.handle(command).await?,
                Incoming::Invalid { tag, reason } => {
                    self.client.bad_in_a_row += 1;
                    let response = match tag {
                        Some(tag) => response::tagged(tag, StatusKind::Bad, None, reason),
                        None => response::untagged(StatusKind::Bad, None, reason),
                    };
                    self.client.conn.send(&response).await?;
                }
                Incoming::Refused => {}
            }
            if self.client.bad_in_a_row >= MAX_BAD_IN_A_ROW {
                self.client
                    .conn
                    .send(&response::bye("Too many invalid commands"))
                    .await?;
                self.client.conn.flush().await?;
                return Ok(());
            }
            self.client.conn.flush().await?;
        }
    }

    async fn handle(&mut self, request: Request) -> std::io::Result<()> {
        let (tag, name) = match &request {
            Request::Codec(Command { tag, body }) => (tag.clone(), body.name()),
            Request::Extended(extended) => (extended.tag.clone(), extended.name()),
        };
        tracing::debug!(tag = tag.inner(), command = name, "command");
        metrics::counter!(crate::metrics::COMMANDS, "command" => name).increment(1);
        let result = match request {
            Request::Codec(Command { body, .. }) => self.dispatch(tag.clone(), body).await,
            Request::Extended(Extended { body, .. }) => {
                self.dispatch_extended(tag.clone(), body).await
            }
        };
        self.finish(tag, result).await
    }

    /// Sends the tagged answer for a command, then the BYE that moves a logged-in
    /// session off a node that is lost, or back to its home node.
    async fn finish(&mut self, tag: Tag<'static>, result: CmdResult) -> std::io::Result<()> {
        let store_lost = matches!(&result, Err(CmdError::No { code: Some(c), .. }) if *c == response::code("UNAVAILABLE"))
            && self.state.login().is_some();
        if !self.client.answer(tag, result).await? {
            return Ok(());
        }
        let shared = &self.client.shared;
        if store_lost {
            // The node behind this session is gone: the client should reconnect, and the
            // gateway will send it to a live replica.
            self.client
                .conn
                .send(&response::bye("Mail store lost; please reconnect"))
                .await?;
            self.client.logging_out = true;
        } else if self
            .state
            .login_mut()
            .is_some_and(|login| login.should_move_home(shared))
        {
            self.client
                .conn
                .send(&response::bye("Your home server is back; please reconnect"))
                .await?;
            self.client.logging_out = true;
        }
        Ok(())
    }

    /// Matches the state once and hands the command to its handler with the state's
    /// data; applies the transition the handler asks for; then tells the client what
    /// changed in the selected mailbox meanwhile.
    async fn dispatch(&mut self, tag: Tag<'static>, body: CommandBody<'static>) -> CmdResult {
        use CommandBody as C;
        let client = &mut self.client;
        // Commands valid in any state.
        match body {
            C::Capability => return client.cmd_capability(self.state.login().is_some()).await,
            C::Noop => return client.cmd_noop(self.state.selected()).await,
            C::Logout => return client.cmd_logout().await,
            C::Id { parameters } => return client.cmd_id(parameters).await,
            _ => {}
        }
        let (allow_expunge, with_uid) = expunge_rules(&body);
        let (result, transition) = match &mut self.state {
            State::NotAuthenticated => client.before_login(tag, body).await,
            State::Authenticated(login) => {
                if needs_selected(&body) {
                    return Err(CmdError::bad(format!(
                        "{} needs a selected mailbox (SELECT first)",
                        command_name(&body)
                    )));
                }
                client.logged_in(login, None, tag, body).await
            }
            State::Selected(selected) => client.in_selected(selected, tag, body).await,
        };
        if let Some(transition) = transition {
            self.state.apply(transition);
        }
        // After every command in the selected state, tell the client what changed
        // elsewhere (EXPUNGE only where RFC 3501 allows it).
        if let Err(CmdError::Io(_) | CmdError::Lost(_)) = result {
            return result;
        }
        self.after_command(allow_expunge, with_uid).await?;
        result
    }

    /// A command in extension syntax (see [`ExtendedBody`]): UNAUTHENTICATE and CREATE
    /// with a special use after login, the others on the selected mailbox; then, as
    /// [`Session::dispatch`] does, the selected mailbox's changes.
    async fn dispatch_extended(&mut self, tag: Tag<'static>, body: ExtendedBody) -> CmdResult {
        let body = match body {
            ExtendedBody::OnMailbox(body) => body,
            ExtendedBody::WithExtras(body, extras) => {
                self.client.extras = extras;
                let result = self.dispatch(tag, body).await;
                self.client.extras = Default::default();
                return result;
            }
            ExtendedBody::Unauthenticate => {
                if self.state.login().is_none() {
                    return Err(CmdError::bad("UNAUTHENTICATE needs a login first"));
                }
                let (result, transition) = stepped(self.client.cmd_unauthenticate().await);
                if let Some(transition) = transition {
                    self.state.apply(transition);
                }
                return result;
            }
            ExtendedBody::CreateSpecialUse { mailbox, uses } => {
                let Some(login) = self.state.login() else {
                    return Err(CmdError::bad("CREATE is not allowed before logging in"));
                };
                let result = self.client.cmd_create(login, mailbox, &uses).await;
                if let Err(CmdError::Io(_) | CmdError::Lost(_)) = result {
                    return result;
                }
                self.after_command(true, false).await?;
                return result;
            }
            ExtendedBody::List(list) => {
                let Some(login) = self.state.login() else {
                    return Err(CmdError::bad("LIST is not allowed before logging in"));
                };
                let result = self.client.cmd_list_extended(login, list).await;
                if let Err(CmdError::Io(_) | CmdError::Lost(_)) = result {
                    return result;
                }
                self.after_command(true, false).await?;
                return result;
            }
        };
        let State::Selected(selected) = &mut self.state else {
            let why = if self.state.login().is_some() {
                "needs a selected mailbox (SELECT first)"
            } else {
                "is not allowed before logging in"
            };
            let name = ExtendedBody::OnMailbox(body).name();
            return Err(CmdError::bad(format!("{name} {why}")));
        };
        let (result, allow_expunge, with_uid) = match body {
            OnMailbox::Search(search) => {
                use crate::command::search_syntax::Answer;
                let uid = search.uid;
                let result = match search.answer.clone() {
                    Answer::Search => self.client.cmd_search(selected, &tag, search).await,
                    Answer::Sort(criteria) => {
                        self.client.cmd_sort(selected, criteria, search).await
                    }
                    Answer::Thread(algorithm) => {
                        self.client.cmd_thread(selected, algorithm, search).await
                    }
                };
                (result, uid, uid)
            }
            OnMailbox::OnSaved(mut body) => {
                let uid = crate::command::saved_result::is_uid(&body);
                match crate::command::saved_result::saved_sequence_set(&selected.mailbox, uid) {
                    Some(set) => {
                        crate::command::saved_result::replace_set(&mut body, set);
                        return self.dispatch(tag, body).await;
                    }
                    // RFC 5182 2.1: an empty `$` is valid and matches nothing.
                    None => {
                        let (allow_expunge, with_uid) = expunge_rules(&body);
                        let done = Done::ok("No messages: the saved search result is empty");
                        (Ok(done), allow_expunge, with_uid)
                    }
                }
            }
        };
        if let Err(CmdError::Io(_) | CmdError::Lost(_)) = result {
            return result;
        }
        self.after_command(allow_expunge, with_uid).await?;
        result
    }

    /// Brings in changes the feed told of, after a command.
    async fn after_command(&mut self, allow_expunge: bool, with_uid: bool) -> Result<(), CmdError> {
        if self.client.logging_out {
            return Ok(());
        }
        let State::Selected(selected) = &mut self.state else {
            return Ok(());
        };
        let Selected { login, mailbox } = &mut **selected;
        mailbox.drain_feed();
        if mailbox.feed_dirty {
            self.client
                .refresh(login, mailbox, allow_expunge, with_uid)
                .await?;
        } else if allow_expunge && !mailbox.pending_expunge.is_empty() {
            for response in mailbox.take_expunges(self.client.enabled) {
                self.client.conn.send(&response).await?;
            }
        }
        Ok(())
    }
}

/// Whether the changes brought in after a command may include EXPUNGE (RFC 3501 7.4.1:
/// not while answering FETCH, STORE or SEARCH by number), and whether FETCH responses
/// then carry UIDs.
fn expunge_rules(body: &CommandBody<'_>) -> (bool, bool) {
    use CommandBody as C;
    match body {
        C::Fetch { uid, .. }
        | C::Store { uid, .. }
        | C::Search { uid, .. }
        | C::Sort { uid, .. }
        | C::Thread { uid, .. } => (*uid, *uid),
        C::Copy { uid, .. } | C::Move { uid, .. } => (true, *uid),
        _ => (true, false),
    }
}

/// The commands that need a selected mailbox (RFC 3501 6.4, RFC 3691, RFC 4315, RFC 6851).
fn needs_selected(body: &CommandBody<'_>) -> bool {
    use CommandBody as C;
    matches!(
        body,
        C::Check
            | C::Close
            | C::Unselect
            | C::Expunge
            | C::ExpungeUid { .. }
            | C::Search { .. }
            | C::Sort { .. }
            | C::Thread { .. }
            | C::Fetch { .. }
            | C::Store { .. }
            | C::Copy { .. }
            | C::Move { .. }
    )
}

impl Client {
    /// The not authenticated state: STARTTLS, LOGIN, AUTHENTICATE.
    async fn before_login(&mut self, tag: Tag<'static>, body: CommandBody<'static>) -> Stepped {
        use CommandBody as C;
        match body {
            C::StartTLS => (self.cmd_starttls(tag).await, None),
            C::Login { username, password } => stepped(self.cmd_login(username, password).await),
            C::Authenticate {
                mechanism,
                initial_response,
            } => stepped(self.cmd_authenticate(mechanism, initial_response).await),
            _ => (
                Err(CmdError::bad(format!(
                    "{} is not allowed before logging in",
                    command_name(&body)
                ))),
                None,
            ),
        }
    }

    /// The selected state: the commands on the selected mailbox, then those of the
    /// authenticated state.
    async fn in_selected(
        &mut self,
        selected: &mut Selected,
        tag: Tag<'static>,
        body: CommandBody<'static>,
    ) -> Stepped {
        use CommandBody as C;
        let result = match body {
            C::Check => self.cmd_noop_named("CHECK", Some(selected)).await,
            C::Close => return stepped(self.cmd_close(selected).await),
            C::Unselect => return stepped(self.cmd_unselect().await),
            C::Expunge => self.cmd_expunge(selected, None).await,
            C::ExpungeUid { sequence_set } => self.cmd_expunge(selected, Some(sequence_set)).await,
            C::Search {
                charset,
                criteria,
                uid,
            } => {
                let search = SearchCommand::from_codec(charset, criteria, uid);
                self.cmd_search(selected, &tag, search).await
            }
            C::Sort {
                sort_criteria,
                charset,
                search_criteria,
                uid,
            } => {
                let search = SearchCommand::from_codec(Some(charset), search_criteria, uid);
                self.cmd_sort(selected, sort_criteria, search).await
            }
            C::Thread {
                algorithm,
                charset,
                search_criteria,
                uid,
            } => {
                let search = SearchCommand::from_codec(Some(charset), search_criteria, uid);
                self.cmd_thread(selected, algorithm, search).await
            }
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                let items = macro_or_item_names;
                self.cmd_fetch(selected, sequence_set, items, uid, modifiers)
                    .await
            }
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let how = (kind, response);
                self.cmd_store(selected, sequence_set, how, flags, uid, modifiers)
                    .await
            }
            C::Copy {
                sequence_set,
                mailbox,
                uid,
            } => {
                self.cmd_copy(selected, sequence_set, mailbox, uid, false)
                    .await
            }
            C::Move {
                sequence_set,
                mailbox,
                uid,
            } => {
                self.cmd_copy(selected, sequence_set, mailbox, uid, true)
                    .await
            }
            other => {
                let Selected { login, mailbox } = selected;
                return self.logged_in(login, Some(mailbox), tag, other).await;
            }
        };
        (result, None)
    }

    /// The authenticated state (and the selected one, which allows the same commands):
    /// `view` is the selected mailbox, if any.
    async fn logged_in(
        &mut self,
        login: &mut Authenticated,
        view: Option<&mut MailboxView>,
        tag: Tag<'static>,
        body: CommandBody<'static>,
    ) -> Stepped {
        use CommandBody as C;
        let result = match body {
            C::StartTLS | C::Login { .. } | C::Authenticate { .. } => {
                Err(CmdError::bad("Already logged in"))
            }
            C::Enable { capabilities } => self.cmd_enable(capabilities, view).await,
            C::Namespace => self.cmd_namespace().await,
            C::Select {
                mailbox,
                parameters,
            } => {
                let was_selected = view.is_some();
                return (self.cmd_select(login, was_selected, mailbox, parameters, false)).await;
            }
            C::Examine {
                mailbox,
                parameters,
            } => {
                let was_selected = view.is_some();
                return (self.cmd_select(login, was_selected, mailbox, parameters, true)).await;
            }
            C::Create { mailbox } => self.cmd_create(login, mailbox, &[]).await,
            C::Delete { mailbox } => {
                let selected = view.map(|v| &v.name);
                return stepped(self.cmd_delete(login, selected, mailbox).await);
            }
            C::Rename { from, to } => self.cmd_rename(login, from, to).await,
            C::Subscribe { mailbox } => self.cmd_subscribe(login, mailbox, true).await,
            C::Unsubscribe { mailbox } => self.cmd_subscribe(login, mailbox, false).await,
            C::List {
                reference,
                mailbox_wildcard,
            } => {
                self.cmd_list(login, reference, mailbox_wildcard, false)
                    .await
            }
            C::Lsub {
                reference,
                mailbox_wildcard,
            } => {
                self.cmd_list(login, reference, mailbox_wildcard, true)
                    .await
            }
            C::Status {
                mailbox,
                item_names,
            } => {
                self.cmd_status(login, mailbox, item_names.into_owned())
                    .await
            }
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                self.cmd_append(login, view, mailbox, flags, date, message)
                    .await
            }
            C::Idle => self.cmd_idle(login, view, tag).await,
            C::GetQuota { root } => self.cmd_getquota(login, root).await,
            C::GetQuotaRoot { mailbox } => self.cmd_getquotaroot(login, mailbox).await,
            C::SetQuota { .. } => self.cmd_setquota().await,
            other => Err(CmdError::bad(format!(
                "{} is not supported",
                command_name(&other)
            ))),
        };
        (result, None)
    }

    /// Sends the tagged line for a command's result, or for an outcome that was lost the
    /// BYE that ends the session; true when a tagged line went out.
    pub async fn answer(&mut self, tag: Tag<'static>, result: CmdResult) -> std::io::Result<bool> {
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
            Err(CmdError::Answered) => return Ok(false),
            Err(CmdError::Lost(text)) => {
                self.conn.send(&response::bye_unavailable(text)).await?;
                self.logging_out = true;
                return Ok(false);
            }
            Err(CmdError::Io(e)) => return Err(e),
        };
        self.conn.send(&response).await?;
        Ok(true)
    }

    /// Asks the store what changed in the selected mailbox and sends it to the client.
    /// When the mailbox is gone, says BYE (see [`Client::logging_out`]).
    pub async fn refresh(
        &mut self,
        login: &Authenticated,
        mailbox: &mut MailboxView,
        allow_expunge: bool,
        with_uid: bool,
    ) -> Result<(), CmdError> {
        let Authenticated { user, store, .. } = login;
        mailbox.feed_dirty = false;
        let changes = match store
            .changes_since(user, &mailbox.name, mailbox.highest_modseq)
            .await
        {
            Ok(changes) => changes,
            Err(pluto_backends::StoreError::NoSuchMailbox(_)) => {
                self.conn
                    .send(&response::bye("Selected mailbox was deleted"))
                    .await?;
                self.conn.flush().await?;
                self.logging_out = true;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut responses = mailbox.apply(changes, allow_expunge, with_uid, self.enabled);
        if std::mem::take(&mut mailbox.added_since_claim) {
            // New mail: this session may be the first to be told of it (RFC 3501 2.3.2).
            let claim = !mailbox.read_only;
            match store.recent(user, &mailbox.name, claim).await {
                Ok(range) => mailbox.add_recent(range),
                // \Recent is advisory: a failed claim shows the mail as not recent.
                Err(e) => tracing::debug!(error = %e, "recent claim failed"),
            }
            // Like Dovecot, RECENT only when the number changed (RFC 3501 7.3.2).
            let count = mailbox.recent_count();
            if count != mailbox.announced_recent {
                mailbox.announced_recent = count;
                responses.push(Response::Data(Data::Recent(count)));
            }
        }
        for response in responses {
            self.conn.send(&response).await?;
        }
        Ok(())
    }

    pub async fn send(&mut self, response: &Response<'_>) -> Result<(), CmdError> {
        self.conn.send(response).await.map_err(CmdError::Io)
    }

    /// Whether plaintext LOGIN / AUTHENTICATE PLAIN is allowed on this connection.
    pub fn plaintext_allowed(&self) -> bool {
        self.conn.is_tls()
            || (self.shared.config.auth.allow_insecure_loopback && self.peer.ip().is_loopback())
    }

    /// The capability list for this connection, before or after login.
    pub fn capabilities(&self, logged_in: bool) -> Vec<String> {
        let mut caps = vec!["IMAP4rev1".to_owned()];
        if !logged_in {
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
                "QUOTA",
                "QUOTA=RES-STORAGE",
                "QUOTA=RES-MESSAGE",
                "ESEARCH",
                "SEARCHRES",
                "SORT",
                "SORT=DISPLAY",
                "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES",
                "WITHIN",
                "STATUS=SIZE",
                "UNAUTHENTICATE",
                "CREATE-SPECIAL-USE",
                "LIST-EXTENDED",
                "LIST-STATUS",
                "CONDSTORE",
                "QRESYNC",
                "OBJECTID",
                "PREVIEW",
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

impl Authenticated {
    /// True once the user's home node is back: the session should end so that the client
    /// reconnects there.
    pub fn should_move_home(&mut self, shared: &Shared) -> bool {
        self.notice_reload(shared);
        self.home_back.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// After a configuration reload: if this session's node no longer holds the user,
    /// it moves once the new home is ready.
    pub fn notice_reload(&mut self, shared: &Shared) {
        if !self.router_generation.has_changed().unwrap_or(false) {
            return;
        }
        self.router_generation.mark_unchanged();
        if let Some(moved) = shared.router().relocation(&self.user, &self.node) {
            tracing::info!(node = %self.node, "this node no longer holds the user; moving when the new home is ready");
            self.home_back = Some(moved);
        }
    }
}

pub fn command_name(body: &CommandBody<'_>) -> &'static str {
    body.name()
}
