//! Listeners and the accept loop: bounded connections (in all and per address), one
//! task per session, and a graceful stop that sends every session `* BYE`. The LMTP
//! listeners (`crate::lmtp::listener`) start and stop with them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::error::GatewayError;
use crate::session::Session;
use crate::shared::Shared;
use crate::wire::{Connection, Stream};

/// Which kind of listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain, with STARTTLS.
    Imap,
    /// Implicit TLS.
    Imaps,
}

/// A running server: its bound addresses and the handle that stops it.
pub struct Server {
    pub imap_addr: Option<SocketAddr>,
    pub imaps_addr: Option<SocketAddr>,
    /// The LMTP listeners (`listen.lmtp`, `listen.lmtp_socket`).
    pub lmtp: crate::lmtp::listener::Bound,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Server {
    /// Binds the configured listeners and starts accepting.
    pub async fn start(shared: Arc<Shared>) -> Result<Server, GatewayError> {
        let (stop, stop_rx) = watch::channel(false);
        let limits = Arc::new(Limits::new(&shared.config));
        let mut tasks = JoinSet::new();
        let mut imap_addr = None;
        let mut imaps_addr = None;
        let listeners = [
            (shared.config.listen.imap_addr()?, ListenerKind::Imap),
            (shared.config.listen.imaps_addr()?, ListenerKind::Imaps),
        ];
        for (addr, kind) in listeners {
            let Some(addr) = addr else { continue };
            if kind == ListenerKind::Imaps && shared.tls.is_none() {
                return Err(GatewayError::Config(
                    "listen.imaps needs a TLS certificate".into(),
                ));
            }
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| GatewayError::io(format!("binding {addr}"), e))?;
            let local = listener
                .local_addr()
                .map_err(|e| GatewayError::io("local address", e))?;
            tracing::info!(%local, ?kind, "listening");
            match kind {
                ListenerKind::Imap => imap_addr = Some(local),
                ListenerKind::Imaps => imaps_addr = Some(local),
            }
            tasks.spawn(accept_loop(
                listener,
                kind,
                shared.clone(),
                limits.clone(),
                stop_rx.clone(),
            ));
        }
        let lmtp = crate::lmtp::listener::start(&shared, &stop_rx, &mut tasks).await?;
        Ok(Server {
            imap_addr,
            imaps_addr,
            lmtp,
            shared,
            stop,
            tasks,
        })
    }

    /// What the sessions share (for reloading the configuration).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Stops accepting, sends `* BYE` to every session and waits (up to `grace`) for
    /// them to end.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
    }
}

/// Connection bounds: a semaphore for the total, a counter per address.
struct Limits {
    total: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
}

impl Limits {
    fn new(config: &Config) -> Self {
        Self {
            total: Arc::new(Semaphore::new(config.limits.max_connections)),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip: config.limits.max_connections_per_ip,
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpGuard> {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(IpGuard {
            limits: self.clone(),
            ip,
        })
    }
}

struct IpGuard {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut map = self.limits.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

async fn accept_loop(
    listener: TcpListener,
    kind: ListenerKind,
    shared: Arc<Shared>,
    limits: Arc<Limits>,
    stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    let mut stop_wait = stop.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = async { let _ = stop_wait.wait_for(|s| *s).await; } => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Ok(permit) = limits.total.clone().try_acquire_owned() else {
            refuse(tcp, kind, "Too many connections to this server").await;
            continue;
        };
        let Some(ip_guard) = limits.admit(peer.ip()) else {
            refuse(tcp, kind, "Too many connections from your address").await;
            continue;
        };
        // The time to log in counts from here, TLS handshake included.
        let preauth_deadline = tokio::time::Instant::now()
            + Duration::from_secs(shared.config.limits.preauth_timeout_secs);
        let shared = shared.clone();
        let stop = stop.clone();
        sessions.spawn(async move {
            let _permit = permit;
            let _ip_guard = ip_guard;
            let id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
            let stream = match kind {
                ListenerKind::Imap => Stream::Plain(tcp),
                ListenerKind::Imaps => {
                    let Some(acceptor) = shared.tls.clone() else {
                        return;
                    };
                    let handshake = tokio::time::timeout_at(preauth_deadline, acceptor.accept(tcp));
                    match handshake.await {
                        Ok(Ok(tls)) => Stream::Tls(Box::new(tls)),
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake not done before the deadline");
                            return;
                        }
                    }
                }
            };
            let limits = &shared.config.limits;
            let conn = Connection::new(
                stream,
                limits.max_line,
                limits.append_limit,
                shared.preauth_literals.clone(),
            );
            Session::new(shared.clone(), conn, peer, stop, preauth_deadline)
                .run(id)
                .await;
        });
    }
    // Stopping: the sessions see the same signal and say BYE; wait for them.
    while sessions.join_next().await.is_some() {}
}

/// Turns a connection away. On the IMAPS port a plaintext BYE would only be a TLS error
/// to the client (and a handshake costs more than the refusal is worth): just close.
async fn refuse(mut tcp: TcpStream, kind: ListenerKind, why: &str) {
    use tokio::io::AsyncWriteExt;
    if kind == ListenerKind::Imaps {
        tracing::debug!(why, "refused an IMAPS connection");
        return;
    }
    let line = format!("* BYE {why}\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(line.as_bytes())).await;
}
