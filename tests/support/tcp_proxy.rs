//! A TCP proxy a test controls, to put between the server and PostgreSQL and inject the faults a
//! network gives: connections cut (FIN) and refused, connections reset (RST), and a silent
//! partition (sockets open, nothing forwarded). Shared by `tests/soak` (and any test that
//! includes it with `#[path]`).

use std::{net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// What the proxy does with the connections it has and the ones that arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards everything.
    Pass,
    /// Closes every connection and closes new ones at once.
    Cut,
    /// Resets every connection (RST) and new ones at once.
    Reset,
    /// Keeps every connection open and forwards nothing, either way, until the mode changes.
    Silent,
}

/// A running proxy; it stops when dropped.
pub struct TcpProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

#[allow(dead_code)] // Each including crate uses some of the controls.
impl TcpProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, watched) = watch::channel(Mode::Pass);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = watched.clone();
                tokio::spawn(forward(client, upstream, mode));
            }
        });
        Self { addr, mode, task }
    }

    /// The address to connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every connection (FIN) and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Resets every connection (RST) and new ones until [`TcpProxy::restore`].
    pub fn reset(&self) {
        self.mode.send_replace(Mode::Reset);
    }

    /// Forwards nothing, holding every connection open, until [`TcpProxy::restore`].
    pub fn silence(&self) {
        self.mode.send_replace(Mode::Silent);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Pass);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.mode.send_replace(Mode::Cut);
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    // A new connection during a partition waits, as a SYN into a black hole would.
    while *mode.borrow_and_update() == Mode::Silent {
        if mode.changed().await.is_err() {
            return;
        }
    }
    if apply(*mode.borrow(), &client, None) {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        let now = *mode.borrow_and_update();
        if now == Mode::Silent {
            if mode.changed().await.is_err() {
                return;
            }
            continue;
        }
        if apply(now, &client, Some(&server)) {
            return;
        }
        tokio::select! {
            read = client.read(&mut up) => match read {
                Ok(n) if n > 0 => {
                    if server.write_all(&up[..n]).await.is_err() {
                        return;
                    }
                }
                _ => return,
            },
            read = server.read(&mut down) => match read {
                Ok(n) if n > 0 => {
                    if client.write_all(&down[..n]).await.is_err() {
                        return;
                    }
                }
                _ => return,
            },
            changed = mode.changed() => if changed.is_err() {
                return;
            },
        }
    }
}

/// Applies a closing mode to a connection's sockets; answers whether the connection must end.
fn apply(mode: Mode, client: &TcpStream, server: Option<&TcpStream>) -> bool {
    match mode {
        Mode::Pass | Mode::Silent => false,
        Mode::Cut => true,
        Mode::Reset => {
            // With a zero linger, closing the socket sends RST instead of FIN. (tokio deprecates
            // `set_linger` because a non-zero linger blocks the thread on drop; zero does not.)
            for socket in std::iter::once(client).chain(server) {
                #[allow(deprecated)]
                let _ = socket.set_linger(Some(Duration::ZERO));
            }
            true
        }
    }
}
