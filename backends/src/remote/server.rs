//! The node side of the Store service: accepts gateway links and runs their calls
//! against the node's store, each call in its own task. An append whose bodies are
//! streamed ([`Request::AppendStreamed`]) waits on its link until they are whole,
//! within the node's body limit; what is half-received when the link ends is dropped.
//! [`dispatch`], which runs a call on the store, is made from the list of calls in
//! `methods.rs`; the calls that are not a store's (`Watch`'s feed, `Unwatch`,
//! `NodeStatus`, `AppendStreamed`) are answered by hand in [`LinkState::call`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument;

use super::methods::Arg;
use super::protocol::{
    AdmitFn, Answer, BodyFrame, Call, Reply, Request, Response, StatusFn, ToNode, WireError,
    answer_frames,
};
use crate::error::StoreError;
use crate::net::{Assembly, ChunkError, Framed, MAX_STORED_BODY, NodeTls, Service};
use crate::store::MailStore;
use crate::types::*;

/// Appends receiving their bodies at once on one link. A gateway sends one at a time
/// (each call's chunks right after it); the bound is for one that does not.
const MAX_UPLOADS: usize = 4;

/// Serves the Store service on `listener` until `stop` turns true. `status` answers
/// the health probes of gateways. Every user is served, and streamed bodies are taken
/// up to the largest a store holds; see [`serve_admitting`].
pub async fn serve(
    listener: TcpListener,
    tls: NodeTls,
    node: String,
    store: Arc<dyn MailStore>,
    status: StatusFn,
    stop: watch::Receiver<bool>,
) {
    let admit: AdmitFn = Arc::new(|_| Ok(()));
    serve_admitting(
        listener,
        tls,
        node,
        store,
        status,
        admit,
        MAX_STORED_BODY,
        stop,
    )
    .await;
}

/// [`serve`], refusing calls about a user `admit` refuses: they are answered
/// [`StoreError::Unavailable`](crate::StoreError::Unavailable) (and logged) without
/// reaching the store, so a misconfigured gateway cannot make this node create a user
/// it does not hold. An append's streamed bodies may come to `max_body` bytes together
/// (the node's `limits.append_limit`); above that the call is refused
/// [`StoreError::TooBig`](crate::StoreError::TooBig) before a byte of them is kept.
#[allow(clippy::too_many_arguments)]
pub async fn serve_admitting(
    listener: TcpListener,
    tls: NodeTls,
    node: String,
    store: Arc<dyn MailStore>,
    status: StatusFn,
    admit: AdmitFn,
    max_body: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut links = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            Some(_) = links.join_next(), if !links.is_empty() => continue,
        };
        let Ok((tcp, peer)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        let (tls, node, store, status, admit, stop) = (
            tls.clone(),
            node.clone(),
            store.clone(),
            status.clone(),
            admit.clone(),
            stop.clone(),
        );
        links.spawn(
            async move {
                if let Err(e) = link(tcp, tls, node, store, status, admit, max_body, stop).await {
                    tracing::debug!(error = %e, "store link ended");
                }
            }
            .instrument(tracing::info_span!("store_link", %peer)),
        );
    }
    links.abort_all();
}

/// Calls whose bodies are still coming ([`Request::AppendStreamed`]) on one link.
struct Uploads {
    max_body: u64,
    open: HashMap<u64, Upload>,
}

/// One [`Request::AppendStreamed`] waiting for its bodies.
struct Upload {
    user: UserId,
    name: MailboxName,
    messages: Vec<NewMessage>,
    /// (message index, announced length) of the bodies still to come, next first.
    waiting: VecDeque<(usize, u64)>,
    /// The body being received now.
    current: Option<(usize, Assembly)>,
}

impl Uploads {
    fn new(max_body: u64) -> Self {
        Self {
            max_body,
            open: HashMap::new(),
        }
    }

    /// Opens call `id`'s upload; an error refuses the call (nothing is kept).
    fn open(
        &mut self,
        id: u64,
        user: UserId,
        name: MailboxName,
        messages: Vec<NewMessage>,
        streamed: Vec<u64>,
    ) -> Result<(), WireError> {
        if streamed.len() != messages.len() {
            return Err(WireError::NotAllowed(format!(
                "an append announced {} streamed lengths for {} messages",
                streamed.len(),
                messages.len()
            )));
        }
        let total = streamed
            .iter()
            .fold(0u64, |sum, &len| sum.saturating_add(len));
        if total > self.max_body {
            return Err(WireError::TooBig {
                limit: self.max_body,
            });
        }
        if self.open.len() >= MAX_UPLOADS || self.open.contains_key(&id) {
            return Err(WireError::NotAllowed(format!(
                "more than {MAX_UPLOADS} appends receiving bodies on one link"
            )));
        }
        let waiting = streamed
            .into_iter()
            .enumerate()
            .filter(|&(_, len)| len > 0)
            .collect();
        self.open.insert(
            id,
            Upload {
                user,
                name,
                messages,
                waiting,
                current: None,
            },
        );
        Ok(())
    }

    /// Adds a chunk to call `id`'s upload: `Ok(Some(append))` once every body is whole,
    /// `Ok(None)` while more are to come or when no such upload is open (a refused
    /// call's chunks are dropped). An error drops the upload.
    fn push(&mut self, id: u64, bytes: &[u8]) -> Result<Option<Request>, ChunkError> {
        let Some(upload) = self.open.get_mut(&id) else {
            return Ok(None);
        };
        match upload.push(bytes) {
            Ok(false) => Ok(None),
            Ok(true) => Ok(self.open.remove(&id).map(Upload::into_append)),
            Err(e) => {
                self.open.remove(&id);
                Err(e)
            }
        }
    }
}

impl Upload {
    /// `Ok(true)` once every body is whole.
    fn push(&mut self, bytes: &[u8]) -> Result<bool, ChunkError> {
        let (index, assembly) = match &mut self.current {
            Some(current) => current,
            None => {
                let Some((index, len)) = self.waiting.pop_front() else {
                    return Err(ChunkError::Overrun {
                        announced: 0,
                        got: bytes.len() as u64,
                    });
                };
                self.current.insert((index, Assembly::new(len, len)?))
            }
        };
        if !assembly.push(bytes)? {
            return Ok(false);
        }
        let index = *index;
        if let Some((_, assembly)) = self.current.take() {
            if let Some(m) = self.messages.get_mut(index) {
                m.body = assembly.finish()?;
            }
        }
        Ok(self.waiting.is_empty())
    }

    fn into_append(self) -> Request {
        Request::Append {
            user: self.user,
            name: self.name,
            messages: self.messages,
        }
    }
}

/// What one link runs: its calls, its feeds and its uploads.
struct LinkState {
    store: Arc<dyn MailStore>,
    status: StatusFn,
    tx: mpsc::Sender<Reply>,
    watches: HashMap<u64, AbortHandle>,
    calls: JoinSet<()>,
    uploads: Uploads,
}

impl LinkState {
    async fn reply(&self, id: u64, response: Response) {
        let _ = self.tx.send(Reply::Result { id, response }).await;
    }

    /// Runs `request` in its own task and sends its answer.
    fn spawn(&mut self, id: u64, request: Request) {
        let (store, tx) = (self.store.clone(), self.tx.clone());
        self.calls.spawn(async move {
            let response = dispatch(store.as_ref(), request).await;
            answer(&tx, id, response).await;
        });
    }

    async fn call(&mut self, call: Call) {
        let id = call.id;
        match call.request {
            Request::Watch { user, name } => {
                let reply = match self.store.watch(&user, &name).await {
                    Ok(mut feed) => {
                        let tx = self.tx.clone();
                        let forward = tokio::spawn(async move {
                            while let Some(modseq) = feed.next().await {
                                if tx.send(Reply::Notify { id, modseq }).await.is_err() {
                                    break;
                                }
                            }
                        });
                        self.watches.insert(id, forward.abort_handle());
                        Response::Watching
                    }
                    Err(e) => Response::Error(WireError::from(e)),
                };
                self.reply(id, reply).await;
            }
            Request::Unwatch { id: watched } => {
                if let Some(handle) = self.watches.remove(&watched) {
                    handle.abort();
                }
                self.reply(id, Response::Done).await;
            }
            Request::NodeStatus => {
                let response = Response::NodeStatus((self.status)());
                self.reply(id, response).await;
            }
            Request::AppendStreamed {
                user,
                name,
                messages,
                streamed,
            } => {
                if let Err(e) = self.uploads.open(id, user, name, messages, streamed) {
                    tracing::warn!(id, error = ?e, "refused an append's streamed bodies");
                    self.reply(id, Response::Error(e)).await;
                }
            }
            request => self.spawn(id, request),
        }
    }

    async fn chunk(&mut self, id: u64, bytes: &[u8]) {
        match self.uploads.push(id, bytes) {
            Ok(Some(append)) => self.spawn(id, append),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(id, error = %e, "refused an append's body");
                let error = match e {
                    ChunkError::TooLarge { limit, .. } => WireError::TooBig { limit },
                    e => WireError::NotAllowed(format!("an appended body: {e}")),
                };
                self.reply(id, Response::Error(error)).await;
            }
        }
    }

    fn end(&mut self) {
        for handle in self.watches.values() {
            handle.abort();
        }
        self.calls.abort_all();
    }
}

#[allow(clippy::too_many_arguments)]
async fn link(
    tcp: tokio::net::TcpStream,
    tls: NodeTls,
    node: String,
    store: Arc<dyn MailStore>,
    status: StatusFn,
    admit: AdmitFn,
    max_body: u64,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tls.accept(tcp).await?;
    let mut framed = Framed::new(stream);
    let peer = framed.handshake(&node, Service::Store).await?;
    crate::net::tls::verify_peer_name(framed.get_ref(), &peer)?;
    tracing::debug!(%peer, "gateway linked");
    let (tx, mut rx) = mpsc::channel::<Reply>(1024);
    let mut state = LinkState {
        store,
        status,
        tx: tx.clone(),
        watches: HashMap::new(),
        calls: JoinSet::new(),
        uploads: Uploads::new(max_body),
    };
    let result = loop {
        tokio::select! {
            frame = framed.recv::<ToNode>() => {
                let call = match frame {
                    Ok(ToNode::Call(call)) => call,
                    Ok(ToNode::Chunk { id, bytes }) => {
                        state.chunk(id, &bytes).await;
                        continue;
                    }
                    Err(crate::net::FrameError::Closed) => break Ok(()),
                    Err(e) => break Err(e.into()),
                };
                if let Some(Err(reason)) = call.request.user().map(|u| admit(u)) {
                    tracing::warn!(%peer, user = ?call.request.user(), %reason, "refused a call about a user this node does not hold");
                    state.reply(call.id, Response::Error(WireError::Unavailable(reason))).await;
                    continue;
                }
                state.call(call).await;
            }
            Some(reply) = rx.recv() => {
                match framed.send(&reply).await {
                    Ok(()) => {}
                    // Nothing was written: that call gets an error, the link goes on.
                    Err(crate::net::FrameError::TooLarge { len }) => {
                        if let Reply::Result { id, .. } | Reply::Part { id, .. } | Reply::Piece { id, .. } = reply {
                            tracing::warn!(len, "an answer too large for a frame");
                            let response = Response::Error(WireError::Corrupt(format!(
                                "an answer of {len} bytes does not fit in an internal frame"
                            )));
                            // Not awaited: this loop is what drains the queue.
                            let _ = tx.try_send(Reply::Result { id, response });
                        }
                    }
                    Err(e) => break Err(e.into()),
                }
            }
            Some(_) = state.calls.join_next(), if !state.calls.is_empty() => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break Ok(()),
        }
    };
    // Half-received bodies go with the link.
    state.end();
    result
}

/// Sends the answer to call `id`; bodies go in frames of at most
/// [`MAX_CHUNK`](crate::net::MAX_CHUNK) bytes of
/// them (whole bodies, or pieces of a larger one), so that no answer needs a frame
/// larger than that.
async fn answer(tx: &mpsc::Sender<Reply>, id: u64, response: Response) {
    let Response::Bodies(bodies) = response else {
        let _ = tx.send(Reply::Result { id, response }).await;
        return;
    };
    let mut frames = answer_frames(bodies);
    let last = match frames.pop() {
        Some(BodyFrame::Whole(last)) => last,
        _ => Vec::new(),
    };
    for frame in frames {
        let reply = match frame {
            BodyFrame::Whole(bodies) => Reply::Part { id, bodies },
            BodyFrame::Piece { uid, len, bytes } => Reply::Piece {
                id,
                uid,
                len,
                bytes,
            },
        };
        if tx.send(reply).await.is_err() {
            return;
        }
    }
    let _ = tx
        .send(Reply::Result {
            id,
            response: Response::Bodies(last),
        })
        .await;
}

/// Makes [`dispatch`] from the list (`methods.rs`).
macro_rules! dispatch {
    (variants [$($_variants:tt)*] about_user [$($_user:tt)*] not_about_user [$($_no_user:tt)*]
        client [$($_client:tt)*] client_by_hand [$($_client_hand:tt)*]
        node [$($variant:ident $method:ident ($($arg:ident: $type:ty),*) -> $answer:ty;)*]
        node_by_hand [$($link:ident)*] methods [$($_methods:tt)*]
    ) => {
        /// Runs a call on the node's store. The calls [`LinkState::call`] answers
        /// itself never come here.
        async fn dispatch(store: &dyn MailStore, request: Request) -> Response {
            let result = match request {
                $(
                    Request::$variant { user, $(mut $arg),* } => store
                        .$method(&user, $(<fn($type) as Arg>::from_wire(&mut $arg)),*)
                        .await
                        .map(Answer::into_response),
                )*
                $(
                    Request::$link { .. } => Err(StoreError::NotAllowed(format!(
                        "a {} call reached the store: the link answers it",
                        stringify!($link)
                    ))),
                )*
            };
            result.unwrap_or_else(|e| Response::Error(WireError::from(e)))
        }
    };
}
super::methods::store_rpc!(dispatch);
