//! The node side of the Store service: accepts gateway links and runs their calls
//! against the node's store, each call in its own task.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument;

#[cfg(doc)]
use super::protocol::PART_BYTES;
use super::protocol::{AdmitFn, Call, Reply, Request, Response, StatusFn, WireError, split_bodies};
use crate::net::{Framed, NodeTls, Service};
use crate::store::MailStore;

/// Serves the Store service on `listener` until `stop` turns true. `status` answers
/// the health probes of gateways. Every user is served; see [`serve_admitting`].
pub async fn serve(
    listener: TcpListener,
    tls: NodeTls,
    node: String,
    store: Arc<dyn MailStore>,
    status: StatusFn,
    stop: watch::Receiver<bool>,
) {
    let admit: AdmitFn = Arc::new(|_| Ok(()));
    serve_admitting(listener, tls, node, store, status, admit, stop).await;
}

/// [`serve`], refusing calls about a user `admit` refuses: they are answered
/// [`StoreError::Unavailable`](crate::StoreError::Unavailable) (and logged) without
/// reaching the store, so a misconfigured gateway cannot make this node create a user
/// it does not hold.
pub async fn serve_admitting(
    listener: TcpListener,
    tls: NodeTls,
    node: String,
    store: Arc<dyn MailStore>,
    status: StatusFn,
    admit: AdmitFn,
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
                if let Err(e) = link(tcp, tls, node, store, status, admit, stop).await {
                    tracing::debug!(error = %e, "store link ended");
                }
            }
            .instrument(tracing::info_span!("store_link", %peer)),
        );
    }
    links.abort_all();
}

async fn link(
    tcp: tokio::net::TcpStream,
    tls: NodeTls,
    node: String,
    store: Arc<dyn MailStore>,
    status: StatusFn,
    admit: AdmitFn,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stream = tls.accept(tcp).await?;
    let mut framed = Framed::new(stream);
    let peer = framed.handshake(&node, Service::Store).await?;
    crate::net::tls::verify_peer_name(framed.get_ref(), &peer)?;
    tracing::debug!(%peer, "gateway linked");
    let (tx, mut rx) = mpsc::channel::<Reply>(1024);
    let mut watches: HashMap<u64, AbortHandle> = HashMap::new();
    let mut calls = JoinSet::new();
    let result = loop {
        tokio::select! {
            call = framed.recv::<Call>() => {
                let call = match call {
                    Ok(call) => call,
                    Err(crate::net::FrameError::Closed) => break Ok(()),
                    Err(e) => break Err(e.into()),
                };
                if let Some(Err(reason)) = call.request.user().map(|u| admit(u)) {
                    tracing::warn!(%peer, user = ?call.request.user(), %reason, "refused a call about a user this node does not hold");
                    let response = Response::Error(WireError::Unavailable(reason));
                    let _ = tx.send(Reply::Result { id: call.id, response }).await;
                    continue;
                }
                match call.request {
                    Request::Watch { user, name } => {
                        let reply = match store.watch(&user, &name).await {
                            Ok(mut feed) => {
                                let (tx, id) = (tx.clone(), call.id);
                                let forward = tokio::spawn(async move {
                                    while let Some(modseq) = feed.next().await {
                                        if tx.send(Reply::Notify { id, modseq }).await.is_err() {
                                            break;
                                        }
                                    }
                                });
                                watches.insert(call.id, forward.abort_handle());
                                Response::Watching
                            }
                            Err(e) => Response::Error(WireError::from(e)),
                        };
                        let _ = tx.send(Reply::Result { id: call.id, response: reply }).await;
                    }
                    Request::Unwatch { id } => {
                        if let Some(handle) = watches.remove(&id) {
                            handle.abort();
                        }
                        let _ = tx.send(Reply::Result { id: call.id, response: Response::Done }).await;
                    }
                    Request::NodeStatus => {
                        let response = Response::NodeStatus(status());
                        let _ = tx.send(Reply::Result { id: call.id, response }).await;
                    }
                    request => {
                        let (store, tx, id) = (store.clone(), tx.clone(), call.id);
                        calls.spawn(async move {
                            let response = dispatch(store.as_ref(), request).await;
                            answer(&tx, id, response).await;
                        });
                    }
                }
            }
            Some(reply) = rx.recv() => {
                match framed.send(&reply).await {
                    Ok(()) => {}
                    // Nothing was written: that call gets an error, the link goes on.
                    Err(crate::net::FrameError::TooLarge { len }) => {
                        if let Reply::Result { id, .. } | Reply::Part { id, .. } = reply {
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
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break Ok(()),
        }
    };
    for handle in watches.values() {
        handle.abort();
    }
    calls.abort_all();
    result
}

/// Sends the answer to call `id`; bodies go in parts of about [`PART_BYTES`], so that a
/// batch of big messages never needs a frame larger than one of them.
async fn answer(tx: &mpsc::Sender<Reply>, id: u64, response: Response) {
    let Response::Bodies(bodies) = response else {
        let _ = tx.send(Reply::Result { id, response }).await;
        return;
    };
    let mut parts = split_bodies(bodies);
    let last = parts.pop().unwrap_or_default();
    for bodies in parts {
        if tx.send(Reply::Part { id, bodies }).await.is_err() {
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

async fn dispatch(store: &dyn MailStore, request: Request) -> Response {
    use Request as R;
    let result = match request {
        R::OpenUser { user } => store.open_user(&user).await.map(|()| Response::Done),
        R::List { user } => store.list(&user).await.map(Response::List),
        R::CreateMailbox {
            user,
            name,
            special_use,
        } => store
            .create_mailbox(&user, &name, special_use)
            .await
            .map(|()| Response::Done),
        R::DeleteMailbox { user, name } => store
            .delete_mailbox(&user, &name)
            .await
            .map(|()| Response::Done),
        R::RenameMailbox { user, from, to } => store
            .rename_mailbox(&user, &from, &to)
            .await
            .map(|()| Response::Done),
        R::SetSubscribed {
            user,
            name,
            subscribed,
        } => store
            .set_subscribed(&user, &name, subscribed)
            .await
            .map(|()| Response::Done),
        R::Status { user, name } => store.status(&user, &name).await.map(Response::Status),
        R::Select { user, name } => store.select(&user, &name).await.map(Response::Snapshot),
        R::ChangesSince { user, name, since } => store
            .changes_since(&user, &name, since)
            .await
            .map(Response::Changes),
        R::Fetch { user, name, uids } => {
            store.fetch(&user, &name, &uids).await.map(Response::Bodies)
        }
        R::Append {
            user,
            name,
            messages,
        } => store
            .append(&user, &name, messages)
            .await
            .map(Response::Appended),
        R::StoreFlags {
            user,
            name,
            uids,
            change,
            unchanged_since,
        } => store
            .store_flags(&user, &name, &uids, &change, unchanged_since)
            .await
            .map(Response::Stored),
        R::Copy {
            user,
            from,
            uids,
            to,
        } => store
            .copy(&user, &from, &uids, &to)
            .await
            .map(Response::Copied),
        R::Move {
            user,
            from,
            uids,
            to,
        } => store
            .move_messages(&user, &from, &uids, &to)
            .await
            .map(Response::Copied),
        R::Expunge { user, name, uids } => store
            .expunge(&user, &name, uids.as_deref())
            .await
            .map(Response::Expunged),
        R::FetchHeaders { user, name, uids } => store
            .fetch_headers(&user, &name, &uids)
            .await
            .map(Response::Bodies),
        R::Recent { user, name, claim } => store
            .recent(&user, &name, claim)
            .await
            .map(Response::Recent),
        R::Watch { .. } | R::Unwatch { .. } | R::NodeStatus => Ok(Response::Done),
    };
    result.unwrap_or_else(|e| Response::Error(WireError::from(e)))
}
