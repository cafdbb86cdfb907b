//! A TCP proxy the test controls, between the server and PostgreSQL, to inject network faults:
//! pass everything, kill (close every socket and refuse new ones), reset (close every socket with
//! an RST), go silent (keep every socket open and forward nothing), restore.

use std::net::SocketAddr;

use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::watch,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Killed,
    Silent,
}

#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    /// Bumped by each reset: connections older than the bump close with an RST.
    resets: u64,
}

/// A running proxy; it stops, closing every socket, when dropped.
pub struct Proxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
}

impl Proxy {
    /// A proxy to the PostgreSQL of `TEST_DATABASE_URL`, passing everything.
    pub async fn start() -> Self {
        let target = host_port(&crate::helpers::server_url());
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        let addr = listener.local_addr().unwrap();
        let (state, rx) = watch::channel(State {
            mode: Mode::Pass,
            resets: 0,
        });
        tokio::spawn(accept(listener, addr, target, rx));
        Self { addr, state }
    }

    /// `url` (a database URL of the test server) with the proxy in place of its host and port.
    pub fn url(&self, url: &str) -> String {
        url.replacen(&host_port(url), &self.addr.to_string(), 1)
    }

    /// Closes every connection and refuses new ones until [`Proxy::restore`].
    pub fn kill(&self) {
        self.state.send_modify(|s| s.mode = Mode::Killed);
    }

    /// Closes every open connection with an RST; new ones pass.
    pub fn reset(&self) {
        self.state.send_modify(|s| s.resets += 1);
    }

    /// Keeps every connection open, accepts new ones, and forwards nothing until
    /// [`Proxy::restore`].
    pub fn silent(&self) {
        self.state.send_modify(|s| s.mode = Mode::Silent);
    }

    /// Passes everything again (and listens again after a kill).
    pub fn restore(&self) {
        self.state.send_modify(|s| s.mode = Mode::Pass);
    }
}

/// `host:port` of a `postgres://user[:password]@host:port/db` URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap().to_string()
}

/// Listens on `addr`, again after a kill: the port is the proxy's for its whole life.
fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(128).unwrap()
}

async fn accept(
    mut listener: TcpListener,
    addr: SocketAddr,
    target: String,
    mut rx: watch::Receiver<State>,
) {
    loop {
        if rx.borrow_and_update().mode == Mode::Killed {
            drop(listener);
            // Refuse connections until restored.
            loop {
                if rx.changed().await.is_err() {
                    return;
                }
                if rx.borrow_and_update().mode != Mode::Killed {
                    break;
                }
            }
            listener = listen(addr);
        }
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let target = target.clone();
                tokio::spawn(pipe(client, target, rx.clone()));
            }
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}

/// One connection: forwarded while the mode is `Pass`, held while `Silent`, closed when killed,
/// closed with an RST on a reset.
async fn pipe(mut client: TcpStream, target: String, mut rx: watch::Receiver<State>) {
    let born = rx.borrow().resets;
    let Ok(mut server) = TcpStream::connect(&target).await else {
        return;
    };
    // As the driver's own sockets are: without it, Nagle's algorithm against delayed ACKs holds
    // a query's small writes up to 40 ms at every hop through the proxy.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    loop {
        let state = *rx.borrow_and_update();
        if state.resets != born {
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
            return;
        }
        match state.mode {
            Mode::Killed => return,
            Mode::Silent => {
                if rx.changed().await.is_err() {
                    return;
                }
            }
            Mode::Pass => {
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                    changed = rx.changed() => if changed.is_err() { return },
                }
            }
        }
    }
}
