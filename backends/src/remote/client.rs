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
//! The deadline ([`RemoteStore::with_call_timeout`]) counts from the call, from the
//! latest chunk of its bodies written, or from the latest part of its answer, so an
//! APPEND of a big body (streamed after the call, [`Request::AppendStreamed`]) or a
//! FETCH of many (which comes in parts, [`Reply::Part`] and [`Reply::Piece`]) is not
//! cut while it makes progress.
//!
//! The link's reading and writing run side by side: replies are read while a big body
//! is being written, so the two ends never wait on each other's full buffers.
//!
//! Its [`MailStore`] methods are made from the list of calls in `methods.rs`, except
//! `watch` and `append`, written in [`by_hand`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsStream;

use super::methods::Arg;
use super::protocol::{Answer, Call, Reply, Request, Response, ToNode, WireError, streamed_append};
use crate::concurrency::lock;
use crate::error::{StoreError, StoreResult};
use crate::net::chunks::pieces;
use crate::net::{
    Assembly, FrameError, FrameReceiver, FrameSender, Framed, MAX_FRAME, MAX_STORED_BODY, NodeTls,
    Service,
};
use crate::store::{ChangeFeed, MailStore};
use crate::types::MessageBody;
use crate::types::*;

/// How long to wait for a link to come up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a call may wait for its answer (or the next part of it), by default.
pub(super) const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A MailStore on another node.
pub struct RemoteStore {
    node: String,
    addr: String,
    local_name: String,
    tls: NodeTls,
    call_timeout: Duration,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
}

/// What arrives for one call: progress writing its bodies, parts of its answer, then
/// the answer.
enum Incoming {
    /// A chunk of the call's streamed bodies was written.
    Written,
    Part(Vec<MessageBody>),
    Piece {
        uid: Uid,
        len: u64,
        bytes: Bytes,
    },
    Final(Response),
}

/// A call for the link to write, with the bodies that follow it in chunks.
struct Outgoing {
    call: Call,
    bodies: Vec<Bytes>,
}

impl From<Call> for Outgoing {
    fn from(call: Call) -> Self {
        Self {
            call,
            bodies: Vec::new(),
        }
    }
}

/// An answer's bodies as they arrive: whole ones, and the one being put together from
/// its pieces (bounded by the length the node announced).
#[derive(Default)]
struct AnswerBodies {
    whole: Vec<MessageBody>,
    piece: Option<(Uid, Assembly)>,
}

impl AnswerBodies {
    fn part(&mut self, bodies: Vec<MessageBody>) -> Result<(), String> {
        if self.piece.is_some() {
            return Err("whole bodies came inside a body sent in pieces".into());
        }
        self.whole.extend(bodies);
        Ok(())
    }

    fn piece(&mut self, uid: Uid, len: u64, bytes: &[u8]) -> Result<(), String> {
        let mut assembly = match self.piece.take() {
            Some((at, assembly)) if at == uid && assembly.announced() == len => assembly,
            Some((at, _)) => {
                return Err(format!(
                    "a piece of UID {uid} came inside the body of UID {at}"
                ));
            }
            None => Assembly::new(len, MAX_STORED_BODY).map_err(|e| format!("UID {uid}: {e}"))?,
        };
        if assembly
            .push(bytes)
            .map_err(|e| format!("UID {uid}: {e}"))?
        {
            let bytes = assembly.finish().map_err(|e| e.to_string())?;
            self.whole.push(MessageBody { uid, bytes });
        } else {
            self.piece = Some((uid, assembly));
        }
        Ok(())
    }

    /// Every body, with those of the final answer last.
    fn finish(mut self, last: Vec<MessageBody>) -> Result<Vec<MessageBody>, String> {
        if let Some((uid, assembly)) = &self.piece {
            return Err(format!(
                "the answer ended with {} of UID {uid}'s {} bytes",
                assembly.len(),
                assembly.announced()
            ));
        }
        if self.whole.is_empty() {
            return Ok(last);
        }
        self.whole.extend(last);
        Ok(self.whole)
    }
}

/// A call waiting for its answer. `sent` is set (under the `pending` lock) just before
/// the call is written to the link: a call whose entry is gone before that is never
/// written, so "not sent" is certain.
struct Pending {
    tx: mpsc::UnboundedSender<Incoming>,
    sent: bool,
}

struct Link {
    calls: mpsc::Sender<Outgoing>,
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
                let _ = p.tx.send(Incoming::Final(Response::Error(e)));
            }
        }
        lock(&self.feeds).clear();
    }
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
        answer(self.call(Request::NodeStatus).await?)
    }

    async fn call(&self, request: Request) -> StoreResult<Response> {
        self.call_with_bodies(request, Vec::new()).await
    }

    /// A call whose `bodies` follow it in chunks (see [`Request::AppendStreamed`]).
    async fn call_with_bodies(
        &self,
        request: Request,
        bodies: Vec<Bytes>,
    ) -> StoreResult<Response> {
        let link = self.link().await?;
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        self.call_on(&link, id, request, bodies).await
    }

    async fn call_on(
        &self,
        link: &Arc<Link>,
        id: u64,
        request: Request,
        bodies: Vec<Bytes>,
    ) -> StoreResult<Response> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        lock(&link.pending).insert(id, Pending { tx, sent: false });
        // A caller that gives up (a probe's own timeout) leaves nothing behind.
        let _forget = Forget { link, id };
        // Takes the call back; says whether it may have reached the node.
        let withdraw = || lock(&link.pending).remove(&id).is_none_or(|p| p.sent);
        let outgoing = Outgoing {
            call: Call { id, request },
            bodies,
        };
        let queued = tokio::time::timeout(self.call_timeout, link.calls.send(outgoing));
        if !matches!(queued.await, Ok(Ok(()))) {
            lock(&link.pending).remove(&id);
            return Err(unavailable(&self.node, "link closed"));
        }
        // Queued just as the link ended: nobody will write it.
        if !link.alive.load(Ordering::SeqCst) && !withdraw() {
            return Err(unavailable(&self.node, "link closed"));
        }
        let mut bodies = AnswerBodies::default();
        let corrupt = |why: String| StoreError::Corrupt(format!("node {}: {why}", self.node));
        loop {
            match tokio::time::timeout(self.call_timeout, rx.recv()).await {
                Ok(Some(Incoming::Written)) => {}
                Ok(Some(Incoming::Part(part))) => bodies.part(part).map_err(corrupt)?,
                Ok(Some(Incoming::Piece { uid, len, bytes })) => {
                    bodies.piece(uid, len, &bytes).map_err(corrupt)?;
                }
                Ok(Some(Incoming::Final(Response::Error(e)))) => return Err(e.into()),
                Ok(Some(Incoming::Final(Response::Bodies(last)))) => {
                    return Ok(Response::Bodies(bodies.finish(last).map_err(corrupt)?));
                }
                Ok(Some(Incoming::Final(response))) => return Ok(response),
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

type LinkStream = TlsStream<TcpStream>;

/// Runs one link: writes calls (and their bodies), routes replies and notifications,
/// and closes everything waiting on it when either direction ends.
async fn drive(
    framed: Framed<LinkStream>,
    mut calls: mpsc::Receiver<Outgoing>,
    link: Arc<Link>,
    node: String,
) {
    let (mut sender, mut receiver) = framed.split();
    tokio::select! {
        () = read_replies(&mut receiver, &link, &node) => {}
        () = write_calls(&mut sender, &mut calls, &link, &node) => {}
    }
    link.close(&node);
}

/// Routes each reply to its call, each notification to its feed, until the link ends.
async fn read_replies(receiver: &mut FrameReceiver<LinkStream>, link: &Link, node: &str) {
    loop {
        let reply = match receiver.recv::<Reply>().await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(%node, error = %e, "store link lost");
                return;
            }
        };
        match reply {
            Reply::Result { id, response } => {
                if let Some(p) = lock(&link.pending).remove(&id) {
                    let _ = p.tx.send(Incoming::Final(response));
                }
            }
            Reply::Part { id, bodies } => to_call(link, id, Incoming::Part(bodies)),
            Reply::Piece {
                id,
                uid,
                len,
                bytes,
            } => to_call(link, id, Incoming::Piece { uid, len, bytes }),
            Reply::Notify { id, modseq } => {
                if let Some(tx) = lock(&link.feeds).get(&id) {
                    // A full queue already holds a notification: the session will
                    // fetch every change when it gets to it.
                    let _ = tx.try_send(modseq);
                }
            }
        }
    }
}

/// Hands `answer` to call `id` if it still waits (one given up leaves nothing behind).
fn to_call(link: &Link, id: u64, answer: Incoming) {
    if let Some(p) = lock(&link.pending).get(&id) {
        let _ = p.tx.send(answer);
    }
}

/// Writes each call, then its bodies in chunks, until a write fails (the link ended).
async fn write_calls(
    sender: &mut FrameSender<LinkStream>,
    calls: &mut mpsc::Receiver<Outgoing>,
    link: &Link,
    node: &str,
) {
    while let Some(Outgoing { call, bodies }) = calls.recv().await {
        let id = call.id;
        // A call given up before it was sent (its deadline passed) stays unsent; the
        // others are marked sent from here on, even if the write fails half-way.
        let withdrawn = match lock(&link.pending).get_mut(&id) {
            Some(p) => {
                p.sent = true;
                false
            }
            None => !matches!(call.request, Request::Unwatch { .. }),
        };
        if withdrawn {
            continue;
        }
        match sender.send(&ToNode::Call(call)).await {
            Ok(()) => {}
            // Nothing was written: this call fails, the link goes on.
            Err(FrameError::TooLarge { len }) => {
                if let Some(p) = lock(&link.pending).remove(&id) {
                    let error = WireError::TooBig {
                        limit: MAX_FRAME as u64,
                    };
                    tracing::warn!(%node, len, "a call too large for a frame");
                    let _ = p.tx.send(Incoming::Final(Response::Error(error)));
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(%node, error = %e, "store link lost");
                return;
            }
        }
        // The chunks go right after their call, whether or not the caller still waits:
        // the node expects them, and runs the append once they are all there.
        for body in &bodies {
            for bytes in pieces(body) {
                if let Err(e) = sender.send(&ToNode::Chunk { id, bytes }).await {
                    tracing::warn!(%node, error = %e, "store link lost while writing a body");
                    return;
                }
                to_call(link, id, Incoming::Written);
            }
        }
    }
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
            let _ = self.link.calls.try_send(Outgoing::from(Call {
                id,
                request: Request::Unwatch { id: self.id },
            }));
        }
    }
}

fn unexpected(response: Response) -> StoreError {
    StoreError::Corrupt(format!("unexpected reply from node: {response:?}"))
}

/// The answer a method expects, from the node's response.
fn answer<T: Answer>(response: Response) -> StoreResult<T> {
    T::from_response(response).map_err(unexpected)
}

/// Makes `impl MailStore for RemoteStore` from the list (`methods.rs`): each method
/// sends its call and reads its answer, or is the [`by_hand`] function of its name.
macro_rules! client {
    (variants [$($_variants:tt)*] about_user [$($_user:tt)*] not_about_user [$($_no_user:tt)*]
        client [$($variant:ident $method:ident ($($arg:ident: $type:ty),*) -> $answer:ty;)*]
        client_by_hand [$($hand:ident ($($hand_arg:ident: $hand_type:ty),*) -> $hand_answer:ty;)*]
        node [$($_node:tt)*] node_by_hand [$($_node_hand:tt)*] methods [$($_methods:tt)*]
    ) => {
        #[async_trait]
        impl MailStore for RemoteStore {
            $(
                async fn $method(&self, user: &UserId, $($arg: $type),*) -> StoreResult<$answer> {
                    let request = Request::$variant {
                        user: user.clone(),
                        $($arg: <fn($type) as Arg>::to_wire($arg)),*
                    };
                    answer(self.call(request).await?)
                }
            )*
            $(
                async fn $hand(
                    &self,
                    user: &UserId,
                    $($hand_arg: $hand_type),*
                ) -> StoreResult<$hand_answer> {
                    by_hand::$hand(self, user, $($hand_arg),*).await
                }
            )*
        }
    };
}
super::methods::store_rpc!(client);

/// The client's methods that are not one call and its answer (the list in `methods.rs`
/// says why).
mod by_hand {
    use super::*;

    /// Registers the feed under the call's id before the call goes out, so that no
    /// notification is lost; dropping the feed sends `Unwatch`.
    pub(super) async fn watch(
        store: &RemoteStore,
        user: &UserId,
        name: &MailboxName,
    ) -> StoreResult<ChangeFeed> {
        let link = store.link().await?;
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(4);
        lock(&link.feeds).insert(id, tx);
        let feed = RemoteFeed {
            rx,
            id,
            link: link.clone(),
        };
        let request = Request::Watch {
            user: user.clone(),
            name: name.clone(),
        };
        match store.call_on(&link, id, request, Vec::new()).await? {
            Response::Watching => Ok(Box::pin(feed)),
            other => Err(unexpected(other)),
        }
    }

    /// Bodies that fit in the call ride in it (`Append`); larger ones follow it in
    /// chunks (`AppendStreamed`).
    pub(super) async fn append(
        store: &RemoteStore,
        user: &UserId,
        name: &MailboxName,
        mut messages: Vec<NewMessage>,
    ) -> StoreResult<AppendOutcome> {
        let (user, name) = (user.clone(), name.clone());
        let response = match streamed_append(&mut messages) {
            None => {
                store
                    .call(Request::Append {
                        user,
                        name,
                        messages,
                    })
                    .await?
            }
            Some((streamed, bodies)) => {
                let request = Request::AppendStreamed {
                    user,
                    name,
                    messages,
                    streamed,
                };
                store.call_with_bodies(request, bodies).await?
            }
        };
        answer(response)
    }
}
