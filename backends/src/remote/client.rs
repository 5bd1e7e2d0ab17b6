//! The gateway side of the Store service: a [`MailStore`] whose calls run on a node.
//!
//! The link is dialled on first use and again after it drops. A call that fails falls
//! in one of two kinds, and the difference matters for writes:
//!
//! - never sent (no link, or the link broke before the call went out):
//!   [`StoreError::Unavailable`] — nothing was done, and the gateway answers
//!   `NO [UNAVAILABLE]` (or, at login, routes to the next replica);
//! - sent, but no answer (the link broke after, or the call's deadline passed):
//!   [`StoreError::Unanswered`] — the write may have been done, so the gateway never
//!   answers NO but ends the session with `* BYE [UNAVAILABLE]`.
//!
//! The deadline ([`RemoteStore::with_call_timeout`]) counts from the call or from the
//! latest part of its answer, so a FETCH of many big bodies, which comes in parts
//! ([`Reply::Part`]), is not cut while it makes progress.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::protocol::{Call, Reply, Request, Response, WireError};
use crate::error::{StoreError, StoreResult};
use crate::net::{FrameError, Framed, MAX_FRAME, NodeTls, Service};
use crate::store::{ChangeFeed, MailStore};
use crate::types::MessageBody;
use crate::types::*;

macro_rules! expect {
    ($response:expr, $variant:ident) => {
        match $response {
            Response::$variant(value) => Ok(value),
            other => Err(unexpected(other)),
        }
    };
}

/// How long to wait for a link to come up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a call may wait for its answer (or the next part of it), by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A MailStore on another node.
pub struct RemoteStore {
    node: String,
    addr: String,
    local_name: String,
    tls: NodeTls,
    call_timeout: Duration,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
}

/// What arrives for one call: parts of its answer, then the answer.
enum Answer {
    Part(Vec<MessageBody>),
    Final(Response),
}

/// A call waiting for its answer. `sent` is set (under the `pending` lock) just before
/// the call is written to the link: a call whose entry is gone before that is never
/// written, so "not sent" is certain.
struct Pending {
    tx: mpsc::UnboundedSender<Answer>,
    sent: bool,
}

struct Link {
    calls: mpsc::Sender<Call>,
    pending: Mutex<HashMap<u64, Pending>>,
    feeds: Mutex<HashMap<u64, mpsc::Sender<ModSeq>>>,
    next_id: AtomicU64,
    alive: AtomicBool,
}

impl Link {
    /// Ends every call on the link: one never written fails as unavailable (nothing
    /// was done); one written is dropped, and its caller reports it unanswered.
    fn close(&self, node: &str) {
        self.alive.store(false, Ordering::SeqCst);
        for (_, p) in lock(&self.pending).drain() {
            if !p.sent {
                let e = WireError::Unavailable(format!(
                    "node {node}: link lost before the call was sent"
                ));
                let _ = p.tx.send(Answer::Final(Response::Error(e)));
            }
        }
        lock(&self.feeds).clear();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(node: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("node {node}: {why}"))
}

fn unanswered(node: &str, why: impl std::fmt::Display) -> StoreError {
    StoreError::Unanswered(format!("node {node}: {why}"))
}

impl RemoteStore {
    /// A store on node `node` (its certificate name) at `addr`; `local_name` is this
    /// process's node name for the handshake.
    pub fn new(
        node: impl Into<String>,
        addr: impl Into<String>,
        local_name: impl Into<String>,
        tls: NodeTls,
    ) -> Self {
        Self {
            node: node.into(),
            addr: addr.into(),
            local_name: local_name.into(),
            tls,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            link: tokio::sync::Mutex::new(None),
        }
    }

    /// How long a call may wait for its answer, or for the next part of a long answer
    /// (`cluster.rpc_timeout_ms`); past it, the call fails as unanswered.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The address this client dials.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the link is up now (without dialling).
    pub async fn is_linked(&self) -> bool {
        self.link
            .lock()
            .await
            .as_ref()
            .is_some_and(|l| l.alive.load(Ordering::SeqCst))
    }

    async fn link(&self) -> StoreResult<Arc<Link>> {
        let mut guard = self.link.lock().await;
        if let Some(link) = guard.as_ref() {
            if link.alive.load(Ordering::SeqCst) {
                return Ok(link.clone());
            }
        }
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| unavailable(&self.node, "connect timed out"))?
            .map_err(|e| unavailable(&self.node, e))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, self.tls.connect(&self.node, tcp))
            .await
            .map_err(|_| unavailable(&self.node, "TLS handshake timed out"))?
            .map_err(|e| unavailable(&self.node, e))?;
        let mut framed = Framed::new(tls);
        framed
            .handshake(&self.local_name, Service::Store)
            .await
            .map_err(|e| unavailable(&self.node, e))?;
        let (tx, rx) = mpsc::channel(1024);
        let link = Arc::new(Link {
            calls: tx,
            pending: Mutex::new(HashMap::new()),
            feeds: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            alive: AtomicBool::new(true),
        });
        tokio::spawn(drive(framed, rx, link.clone(), self.node.clone()));
        *guard = Some(link.clone());
        Ok(link)
    }

    /// The node's health. Fails fast (Unavailable) when the node cannot be reached.
    pub async fn node_status(&self) -> StoreResult<super::NodeStatus> {
        expect!(self.call(Request::NodeStatus).await?, NodeStatus)
    }

    async fn call(&self, request: Request) -> StoreResult<Response> {
        let link = self.link().await?;
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        self.call_on(&link, id, request).await
    }

    async fn call_on(&self, link: &Arc<Link>, id: u64, request: Request) -> StoreResult<Response> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&link.pending).insert(id, Pending { tx, sent: false });
        // A caller that gives up (a probe's own timeout) leaves nothing behind.
        let _forget = Forget { link, id };
        // Takes the call back; says whether it may have reached the node.
        let withdraw = || lock(&link.pending).remove(&id).is_none_or(|p| p.sent);
        let queued = tokio::time::timeout(self.call_timeout, link.calls.send(Call { id, request }));
        if !matches!(queued.await, Ok(Ok(()))) {
            lock(&link.pending).remove(&id);
            return Err(unavailable(&self.node, "link closed"));
        }
        // Queued just as the link ended: nobody will write it.
        if !link.alive.load(Ordering::SeqCst) && !withdraw() {
            return Err(unavailable(&self.node, "link closed"));
        }
        let mut parts: Vec<MessageBody> = Vec::new();
        loop {
            match tokio::time::timeout(self.call_timeout, rx.recv()).await {
                Ok(Some(Answer::Part(bodies))) => parts.extend(bodies),
                Ok(Some(Answer::Final(Response::Error(e)))) => return Err(e.into()),
                Ok(Some(Answer::Final(Response::Bodies(last)))) if !parts.is_empty() => {
                    parts.extend(last);
                    return Ok(Response::Bodies(parts));
                }
                Ok(Some(Answer::Final(response))) => return Ok(response),
                // The link ended after the call was written (`Link::close`).
                Ok(None) => return Err(unanswered(&self.node, "link lost during the call")),
                Err(_) => {
                    return Err(if withdraw() {
                        unanswered(
                            &self.node,
                            format!("no answer within {:?}", self.call_timeout),
                        )
                    } else {
                        unavailable(&self.node, "the call could not be sent in time")
                    });
                }
            }
        }
    }
}

/// Drops a call's pending entry when the call ends, however it ends.
struct Forget<'a> {
    link: &'a Link,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(&self.link.pending).remove(&self.id);
    }
}

/// Runs one link: sends calls, routes replies and notifications, and closes everything
/// waiting on it when it ends.
async fn drive(
    mut framed: Framed<tokio_rustls::TlsStream<TcpStream>>,
    mut calls: mpsc::Receiver<Call>,
    link: Arc<Link>,
    node: String,
) {
    loop {
        tokio::select! {
            reply = framed.recv::<Reply>() => match reply {
                Ok(Reply::Result { id, response }) => {
                    if let Some(p) = lock(&link.pending).remove(&id) {
                        let _ = p.tx.send(Answer::Final(response));
                    }
                }
                Ok(Reply::Part { id, bodies }) => {
                    if let Some(p) = lock(&link.pending).get(&id) {
                        let _ = p.tx.send(Answer::Part(bodies));
                    }
                }
                Ok(Reply::Notify { id, modseq }) => {
                    if let Some(tx) = lock(&link.feeds).get(&id) {
                        // A full queue already holds a notification: the session will
                        // fetch every change when it gets to it.
                        let _ = tx.try_send(modseq);
                    }
                }
                Err(e) => {
                    tracing::warn!(%node, error = %e, "store link lost");
                    break;
                }
            },
            call = calls.recv() => match call {
                Some(call) => {
                    // A call given up before it was sent (its deadline passed) stays
                    // unsent; the others are marked sent from here on, even if the
                    // write fails half-way.
                    let withdrawn = match lock(&link.pending).get_mut(&call.id) {
                        Some(p) => {
                            p.sent = true;
                            false
                        }
                        None => !matches!(call.request, Request::Unwatch { .. }),
                    };
                    if withdrawn {
                        continue;
                    }
                    match framed.send(&call).await {
                        Ok(()) => {}
                        // Nothing was written: this call fails, the link goes on.
                        Err(FrameError::TooLarge { len }) => {
                            if let Some(p) = lock(&link.pending).remove(&call.id) {
                                let error = WireError::TooBig { limit: MAX_FRAME as u64 };
                                tracing::warn!(%node, len, "a call too large for a frame");
                                let _ = p.tx.send(Answer::Final(Response::Error(error)));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%node, error = %e, "store link lost");
                            break;
                        }
                    }
                }
                None => break,
            },
        }
    }
    link.close(&node);
}

/// A change feed on a remote mailbox; dropping it tells the node to stop.
struct RemoteFeed {
    rx: mpsc::Receiver<ModSeq>,
    id: u64,
    link: Arc<Link>,
}

impl Stream for RemoteFeed {
    type Item = ModSeq;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ModSeq>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for RemoteFeed {
    fn drop(&mut self) {
        lock(&self.link.feeds).remove(&self.id);
        if self.link.alive.load(Ordering::SeqCst) {
            let id = self.link.next_id.fetch_add(1, Ordering::Relaxed);
            let _ = self.link.calls.try_send(Call {
                id,
                request: Request::Unwatch { id: self.id },
            });
        }
    }
}

fn unexpected(response: Response) -> StoreError {
    StoreError::Corrupt(format!("unexpected reply from node: {response:?}"))
}

fn done(response: Response) -> StoreResult<()> {
    match response {
        Response::Done => Ok(()),
        other => Err(unexpected(other)),
    }
}

#[async_trait]
impl MailStore for RemoteStore {
    async fn open_user(&self, user: &UserId) -> StoreResult<()> {
        done(self.call(Request::OpenUser { user: user.clone() }).await?)
    }

    async fn list(&self, user: &UserId) -> StoreResult<MailboxList> {
        expect!(self.call(Request::List { user: user.clone() }).await?, List)
    }

    async fn create_mailbox(
        &self,
        user: &UserId,
        name: &MailboxName,
        special_use: Option<SpecialUse>,
    ) -> StoreResult<()> {
        done(
            self.call(Request::CreateMailbox {
                user: user.clone(),
                name: name.clone(),
                special_use,
            })
            .await?,
        )
    }

    async fn delete_mailbox(&self, user: &UserId, name: &MailboxName) -> StoreResult<()> {
        done(
            self.call(Request::DeleteMailbox {
                user: user.clone(),
                name: name.clone(),
            })
            .await?,
        )
    }

    async fn rename_mailbox(
        &self,
        user: &UserId,
        from: &MailboxName,
        to: &MailboxName,
    ) -> StoreResult<()> {
        done(
            self.call(Request::RenameMailbox {
                user: user.clone(),
                from: from.clone(),
                to: to.clone(),
            })
            .await?,
        )
    }

    async fn set_subscribed(
        &self,
        user: &UserId,
        name: &MailboxName,
        subscribed: bool,
    ) -> StoreResult<()> {
        done(
            self.call(Request::SetSubscribed {
                user: user.clone(),
                name: name.clone(),
                subscribed,
            })
            .await?,
        )
    }

    async fn status(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxStatus> {
        expect!(
            self.call(Request::Status {
                user: user.clone(),
                name: name.clone()
            })
            .await?,
            Status
        )
    }

    async fn recent(
        &self,
        user: &UserId,
        name: &MailboxName,
        claim: bool,
    ) -> StoreResult<RecentRange> {
        expect!(
            self.call(Request::Recent {
                user: user.clone(),
                name: name.clone(),
                claim,
            })
            .await?,
            Recent
        )
    }

    async fn select(&self, user: &UserId, name: &MailboxName) -> StoreResult<MailboxSnapshot> {
        expect!(
            self.call(Request::Select {
                user: user.clone(),
                name: name.clone()
            })
            .await?,
            Snapshot
        )
    }

    async fn changes_since(
        &self,
        user: &UserId,
        name: &MailboxName,
        since: ModSeq,
    ) -> StoreResult<Changes> {
        expect!(
            self.call(Request::ChangesSince {
                user: user.clone(),
                name: name.clone(),
                since,
            })
            .await?,
            Changes
        )
    }

    async fn watch(&self, user: &UserId, name: &MailboxName) -> StoreResult<ChangeFeed> {
        let link = self.link().await?;
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(4);
        lock(&link.feeds).insert(id, tx);
        let feed = RemoteFeed {
            rx,
            id,
            link: link.clone(),
        };
        match self
            .call_on(
                &link,
                id,
                Request::Watch {
                    user: user.clone(),
                    name: name.clone(),
                },
            )
            .await?
        {
            Response::Watching => Ok(Box::pin(feed)),
            other => Err(unexpected(other)),
        }
    }

    async fn fetch(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        expect!(
            self.call(Request::Fetch {
                user: user.clone(),
                name: name.clone(),
                uids: uids.to_vec(),
            })
            .await?,
            Bodies
        )
    }

    async fn fetch_headers(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
    ) -> StoreResult<Vec<MessageBody>> {
        expect!(
            self.call(Request::FetchHeaders {
                user: user.clone(),
                name: name.clone(),
                uids: uids.to_vec(),
            })
            .await?,
            Bodies
        )
    }

    async fn append(
        &self,
        user: &UserId,
        name: &MailboxName,
        messages: Vec<NewMessage>,
    ) -> StoreResult<AppendOutcome> {
        expect!(
            self.call(Request::Append {
                user: user.clone(),
                name: name.clone(),
                messages,
            })
            .await?,
            Appended
        )
    }

    async fn store_flags(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<ModSeq>,
    ) -> StoreResult<StoreOutcome> {
        expect!(
            self.call(Request::StoreFlags {
                user: user.clone(),
                name: name.clone(),
                uids: uids.to_vec(),
                change: change.clone(),
                unchanged_since,
            })
            .await?,
            Stored
        )
    }

    async fn copy(
        &self,
        user: &UserId,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> StoreResult<CopyOutcome> {
        expect!(
            self.call(Request::Copy {
                user: user.clone(),
                from: from.clone(),
                uids: uids.to_vec(),
                to: to.clone(),
            })
            .await?,
            Copied
        )
    }

    async fn move_messages(
        &self,
        user: &UserId,
        from: &MailboxName,
        uids: &[Uid],
        to: &MailboxName,
    ) -> StoreResult<CopyOutcome> {
        expect!(
            self.call(Request::Move {
                user: user.clone(),
                from: from.clone(),
                uids: uids.to_vec(),
                to: to.clone(),
            })
            .await?,
            Copied
        )
    }

    async fn expunge(
        &self,
        user: &UserId,
        name: &MailboxName,
        uids: Option<&[Uid]>,
    ) -> StoreResult<Vec<Uid>> {
        expect!(
            self.call(Request::Expunge {
                user: user.clone(),
                name: name.clone(),
                uids: uids.map(<[Uid]>::to_vec),
            })
            .await?,
            Expunged
        )
    }
}
