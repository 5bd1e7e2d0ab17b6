//! IDLE (RFC 2177 3): changes reach the client as they happen, until it sends DONE.
//! Besides the store's change feed, the mailbox is looked at every 30 s, which finds
//! mail another program dropped into the store behind pluto's back.

use std::time::Duration;

use futures::StreamExt;
use imap_codec::imap_types::core::Tag;

use crate::response::{self, CmdError, CmdResult, Done};
use crate::selected::MailboxView;
use crate::session::{Authenticated, Client};
use crate::wire::{Incoming, ReadError};

const POLL: Duration = Duration::from_secs(30);

impl Client {
    /// `view` is the selected mailbox, if one is.
    pub(crate) async fn cmd_idle(
        &mut self,
        login: &mut Authenticated,
        mut view: Option<&mut MailboxView>,
        _tag: Tag<'static>,
    ) -> CmdResult {
        self.conn.send_raw(b"+ idling\r\n");
        if let Some(mailbox) = view.as_deref_mut() {
            self.refresh(login, mailbox, true, false).await?;
        }
        if self.logging_out {
            // The mailbox was deleted and the client told BYE: nothing more about it.
            view = None;
        }
        self.conn.flush().await?;
        let timeout = tokio::time::sleep(Duration::from_secs(
            self.shared.config.limits.idle_timeout_secs,
        ));
        tokio::pin!(timeout);
        let mut shutdown = self.shutdown.clone();
        loop {
            login.notice_reload(&self.shared);
            // Each turn waits for one of: DONE, a change, the poll tick, a timeout, a stop.
            let feed_event = async {
                match view.as_deref_mut() {
                    Some(mailbox) if !mailbox.feed_closed => mailbox.feed.next().await,
                    _ => std::future::pending().await,
                }
            };
            enum Event {
                Done(Result<Incoming<()>, ReadError>),
                Change(Option<pluto_backends::ModSeq>),
                Poll,
                Timeout,
                Stop,
                MoveHome,
                NodeDown,
            }
            let node_down = crate::session::node_down(login.node_up.clone());
            let mut home_back = login.home_back.clone();
            let mut generation = login.router_generation.clone();
            let reload = async move {
                if generation.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let move_home = async move {
                match home_back.as_mut() {
                    Some(rx) => {
                        // A closed channel (the router was reloaded without this node)
                        // is no reason to move.
                        if rx.wait_for(|back| *back).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let event = tokio::select! {
                read = self.conn.read_idle_done() => Event::Done(read),
                change = feed_event => Event::Change(change),
                _ = tokio::time::sleep(POLL) => Event::Poll,
                _ = &mut timeout => Event::Timeout,
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => Event::Stop,
                _ = move_home => Event::MoveHome,
                _ = node_down => Event::NodeDown,
                _ = reload => Event::Poll,
            };
            match event {
                Event::Done(Ok(Incoming::Message(()))) => return Ok(Done::ok("IDLE terminated")),
                Event::Done(Ok(Incoming::Invalid { reason, .. })) => {
                    return Err(CmdError::bad(reason));
                }
                Event::Done(Ok(Incoming::Refused)) => return Err(CmdError::bad("Expected DONE")),
                Event::Done(Err(ReadError::Closed)) => {
                    return Err(CmdError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
                Event::Done(Err(ReadError::Io(e))) => return Err(CmdError::Io(e)),
                Event::Change(Some(_)) | Event::Poll => {
                    if let Some(mailbox) = view.as_deref_mut() {
                        mailbox.drain_feed();
                        self.refresh(login, mailbox, true, false).await?;
                    }
                    self.conn.flush().await?;
                    if self.logging_out {
                        return Err(CmdError::Answered);
                    }
                }
                Event::Change(None) => {
                    // The store behind the feed is gone (a node was lost): the client
                    // should reconnect and be routed to a live replica.
                    self.send(&response::bye(
                        "Mail store connection lost; please reconnect",
                    ))
                    .await?;
                    self.logging_out = true;
                    return Err(CmdError::Answered);
                }
                Event::Timeout => {
                    self.send(&response::bye("Autologout; idle for too long"))
                        .await?;
                    self.logging_out = true;
                    return Err(CmdError::Answered);
                }
                Event::MoveHome => {
                    self.send(&response::bye("Your home server is back; please reconnect"))
                        .await?;
                    self.logging_out = true;
                    return Err(CmdError::Answered);
                }
                Event::NodeDown => {
                    tracing::info!(node = %login.node, "node marked down; ending the session");
                    self.send(&response::bye_unavailable(crate::session::NODE_DOWN))
                        .await?;
                    self.logging_out = true;
                    return Err(CmdError::Answered);
                }
                Event::Stop => {
                    self.send(&response::bye("Server shutting down")).await?;
                    self.logging_out = true;
                    return Err(CmdError::Answered);
                }
            }
        }
    }
}
