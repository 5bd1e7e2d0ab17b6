//! The LMTP listeners: TCP (`listen.lmtp`) and a Unix socket (`listen.lmtp_socket`).
//! LMTP has no authentication, so a TCP peer must be loopback or in
//! `lmtp.allow_networks` (others get 554 and are closed); the socket is open to every
//! local user, as loopback TCP is (mode 0666; the directory it is in decides more).
//! Both share one bound on open connections (`lmtp.max_connections`): each may hold a
//! message of up to `limits.append_limit` bytes, so this bounds the memory deliveries
//! can take.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::reply::{self, Reply};
use super::session::LmtpSession;
use crate::error::GatewayError;
use crate::shared::Shared;

/// Where the LMTP listeners are bound.
#[derive(Debug, Default)]
pub struct Bound {
    pub tcp: Option<SocketAddr>,
    pub socket: Option<PathBuf>,
}

/// Binds the configured LMTP listeners and spawns their accept loops into `tasks`;
/// they end when `stop` turns true (the socket file is then removed).
pub async fn start(
    shared: &Arc<Shared>,
    stop: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Result<Bound, GatewayError> {
    let config = &shared.config;
    config.lmtp.validate()?;
    let networks = Arc::new(config.lmtp.networks()?);
    let slots = Arc::new(Semaphore::new(config.lmtp.max_connections));
    let mut bound = Bound::default();
    if let Some(addr) = config.listen.lmtp_addr()? {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| GatewayError::io(format!("binding the LMTP listener {addr}"), e))?;
        let local = listener
            .local_addr()
            .map_err(|e| GatewayError::io("local address", e))?;
        tracing::info!(%local, "listening for LMTP");
        bound.tcp = Some(local);
        tasks.spawn(accept_tcp(
            listener,
            shared.clone(),
            networks,
            slots.clone(),
            stop.clone(),
        ));
    }
    if let Some(path) = config.listen.lmtp_socket_path() {
        let listener = bind_socket(&path).await?;
        tracing::info!(path = %path.display(), "listening for LMTP");
        bound.socket = Some(path.clone());
        tasks.spawn(accept_unix(
            listener,
            path,
            shared.clone(),
            slots,
            stop.clone(),
        ));
    }
    Ok(bound)
}

/// Binds the socket at `path`: a stale socket file left by a process that is gone is
/// replaced; a live one (another server answers there) or a file that is not a socket
/// is an error.
async fn bind_socket(path: &Path) -> Result<UnixListener, GatewayError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let shown = path.display().to_string();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(GatewayError::Config(format!(
                "listen.lmtp_socket = {shown:?} exists and is not a socket"
            )));
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(GatewayError::Config(format!(
                "listen.lmtp_socket = {shown:?}: another process listens there"
            )));
        }
        std::fs::remove_file(path)
            .map_err(|e| GatewayError::io(format!("removing the stale socket {shown}"), e))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| GatewayError::io(format!("binding the LMTP socket {shown}"), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| GatewayError::io(format!("setting the mode of {shown}"), e))?;
    Ok(listener)
}

/// Loopback, or one of `lmtp.allow_networks` (an IPv4 peer seen on an IPv6 socket
/// counts as its IPv4 address).
fn allowed(ip: IpAddr, networks: &[ipnet::IpNet]) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || networks.iter().any(|n| n.contains(&ip))
}

async fn accept_tcp(
    listener: TcpListener,
    shared: Arc<Shared>,
    networks: Arc<Vec<ipnet::IpNet>>,
    slots: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
) {
    let listener = &listener;
    let accept = move || async move {
        let (tcp, peer) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        Ok((tcp, peer.to_string(), Some(peer.ip())))
    };
    serve(accept, Some(&networks), shared, slots, stop).await;
}

async fn accept_unix(
    listener: UnixListener,
    path: PathBuf,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
) {
    let accept = || async {
        let (stream, _) = listener.accept().await?;
        Ok((stream, "unix".to_owned(), None))
    };
    serve(accept, None, shared, slots, stop).await;
    drop(listener);
    let _ = std::fs::remove_file(&path);
}

/// The accept loop both listeners share: who may connect (a TCP peer: loopback or
/// `networks`), the bound on connections, a task per session; on `stop`, it waits for
/// the sessions (which see the same signal) to end.
async fn serve<S, A, F>(
    mut accept: A,
    networks: Option<&[ipnet::IpNet]>,
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: FnMut() -> F,
    F: Future<Output = std::io::Result<(S, String, Option<IpAddr>)>>,
{
    let mut sessions = JoinSet::new();
    let mut stop_wait = stop.clone();
    loop {
        let accepted = tokio::select! {
            accepted = accept() => accepted,
            _ = async { let _ = stop_wait.wait_for(|s| *s).await; } => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        let (mut stream, peer, ip) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                tracing::warn!(%error, "LMTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let (Some(ip), Some(networks)) = (ip, networks) {
            if !allowed(ip, networks) {
                tracing::warn!(%peer, "LMTP connection from an address not in lmtp.allow_networks");
                turn_away(&mut stream, &reply::NOT_ALLOWED).await;
                continue;
            }
        }
        let Some(permit) = admit(&slots) else {
            turn_away(&mut stream, &reply::TOO_MANY_CONNECTIONS).await;
            continue;
        };
        let session = LmtpSession::new(shared.clone(), stream, stop.clone());
        let span = tracing::info_span!("lmtp", %peer);
        sessions.spawn(tracing::Instrument::instrument(
            async move {
                let _permit = permit;
                session.run().await;
            },
            span,
        ));
    }
    while sessions.join_next().await.is_some() {}
}

fn admit(slots: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    slots.clone().try_acquire_owned().ok()
}

/// One reply, then the connection closes.
async fn turn_away<W: AsyncWriteExt + Unpin>(stream: &mut W, why: &Reply) {
    let mut line = Vec::new();
    why.write_to(&mut line);
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&line)).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loopback_and_the_configured_networks_may_connect() {
        let networks: Vec<ipnet::IpNet> = vec!["10.1.0.0/16".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(allowed(ip("127.0.0.1"), &[]));
        assert!(allowed(ip("127.8.9.10"), &[]));
        assert!(allowed(ip("::1"), &[]));
        assert!(allowed(ip("10.1.2.3"), &networks));
        // An IPv4 peer on an IPv6 socket is its IPv4 address.
        assert!(allowed(ip("::ffff:10.1.2.3"), &networks));
        assert!(allowed(ip("::ffff:127.0.0.1"), &[]));
        assert!(!allowed(ip("10.2.0.1"), &networks));
        assert!(!allowed(ip("192.0.2.1"), &[]));
        assert!(!allowed(ip("2001:db8::1"), &networks));
    }
}
