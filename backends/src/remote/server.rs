//! The node side of the Store service: accepts gateway links and runs their calls
//! against the node's store, each call in its own task.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument;

use super::protocol::{Call, Reply, Request, Response, StatusFn, WireError};
use crate::net::{Framed, NodeTls, Service};
use crate::store::MailStore;

/// Serves the Store service on `listener` until `stop` turns true. `status` answers
/// the health probes of gateways.
pub async fn serve(
    listener: TcpListener,
    tls: NodeTls,
    node: String,
    store: Arc<dyn MailStore>,
    status: StatusFn,
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
        let (tls, node, store, status, stop) = (
            tls.clone(),
            node.clone(),
            store.clone(),
            status.clone(),
            stop.clone(),
        );
        links.spawn(
            async move {
                if let Err(e) = link(tcp, tls, node, store, status, stop).await {
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
                            let _ = tx.send(Reply::Result { id, response }).await;
                        });
                    }
                }
            }
            Some(reply) = rx.recv() => {
                if let Err(e) = framed.send(&reply).await {
                    break Err(e.into());
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
