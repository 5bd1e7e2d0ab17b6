//! A fault-injecting TCP proxy for tests: forwards 127.0.0.1:random → target, and on
//! command cuts every connection (and refuses new ones), delays every chunk, or
//! black-holes traffic (accepts, forwards nothing) until healed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Existing connections are reset; new ones are closed at once.
    Cut,
    /// Bytes are accepted and thrown away; nothing arrives.
    Blackhole,
    /// Every chunk waits this long.
    Delay(Duration),
}

pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl FaultProxy {
    /// Starts a proxy to `target` on a free loopback port.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, target)
    }

    /// Starts a proxy on a listener the caller bound (to know the port in advance).
    pub fn start_on(listener: TcpListener, target: SocketAddr) -> FaultProxy {
        let addr = listener.local_addr().unwrap();
        let (mode, mode_rx) = watch::channel(Mode::Pass);
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let conns2 = conns.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *mode_rx.borrow() == Mode::Cut {
                    drop(client);
                    continue;
                }
                let mode_rx = mode_rx.clone();
                let task = tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        _ = pump(cr, sw, mode_rx.clone()) => {}
                        _ = pump(sr, cw, mode_rx) => {}
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        })
        .abort_handle();
        FaultProxy {
            addr,
            mode,
            conns,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
        if mode == Mode::Cut {
            for c in self.conns.lock().unwrap().drain(..) {
                c.abort();
            }
        }
    }

    pub fn cut(&self) {
        self.set(Mode::Cut);
    }

    pub fn heal(&self) {
        self.set(Mode::Pass);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let current = *mode.borrow();
        match current {
            Mode::Pass => {}
            Mode::Cut => return,
            Mode::Blackhole => continue,
            Mode::Delay(d) => tokio::time::sleep(d).await,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_cuts_and_heals() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 16];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = FaultProxy::start(target).await;
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(b"hi").await.unwrap();
        let mut b = [0u8; 2];
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hi");
        proxy.cut();
        let mut b = [0u8; 2];
        let r = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = c.write_all(b"x").await;
            c.read(&mut b).await
        })
        .await
        .unwrap();
        assert!(
            matches!(r, Ok(0) | Err(_)),
            "a cut link still carried data: {r:?}"
        );
        proxy.heal();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(b"ok").await.unwrap();
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ok");
    }
}
