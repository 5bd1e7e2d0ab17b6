//! Helpers shared by the integration tests: service URLs from the
//! environment, unique names, and a TCP proxy that can cut and restore a
//! link (to stop and restart a "server" without touching the real one,
//! which other tests on this machine share).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The URL in `var`, or `None` after printing that the test is skipped.
pub(crate) fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {var} not set");
            None
        }
    }
}

/// A short random lower-case suffix, unique per call for practical purposes.
pub(crate) fn unique_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// A loopback port nobody listens on (bound, then released).
pub(crate) async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// Forwards a loopback port to `target` until stopped; can be restarted on
/// the same port. Stopping closes every forwarded connection, as a crashed
/// or restarted server would.
pub(crate) struct Proxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    pub(crate) async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        Proxy {
            addr,
            target,
            task: Some(tokio::spawn(serve(listener, target))),
        }
    }

    /// Stops listening and drops every forwarded connection.
    pub(crate) async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.task = Some(tokio::spawn(serve(listener, self.target)));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, target: SocketAddr) {
    // Connection tasks live in this set: aborting the accept task drops the
    // set, which aborts them and closes their sockets.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Resolves `host:port` of a `scheme://[user@]host:port/...` URL.
pub(crate) fn url_socket_addr(url: &str, default_port: u16) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split(['/', '?']).next().unwrap();
    let with_port = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    };
    let with_port = with_port.replace("localhost", "127.0.0.1");
    with_port
        .parse()
        .expect("test service URLs use a numeric loopback address")
}

/// Replaces the `host:port` of a URL with `addr`.
pub(crate) fn url_with_addr(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((u, r)) => (format!("{u}@"), r),
        None => (String::new(), rest),
    };
    let tail_at = rest.find(['/', '?']).unwrap_or(rest.len());
    format!("{scheme}://{userinfo}{addr}{}", &rest[tail_at..])
}
