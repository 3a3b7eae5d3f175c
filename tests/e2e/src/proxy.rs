//! A TCP proxy on loopback in front of a server, which a test can turn against the archiver:
//! - **cut**: every open connection is dropped and new ones are closed at once, as if the server
//!   had stopped (a refused connection);
//! - **stall**: every open connection goes silent (it stays open, nothing is forwarded either
//!   way), and so does every connection opened while the stall lasts, as with a dead NAT entry or
//!   a server that accepts and never answers.
//!
//! The server itself keeps its state for the next run. [`CutProxy::restore`] closes the connections
//! that went silent, as a load balancer drops what it held, and forwards new ones again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const FORWARDING: u8 = 0;
const CUT: u8 = 1;
const STALLED: u8 = 2;

pub struct CutProxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    signal: watch::Sender<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mode = Arc::new(AtomicU8::new(FORWARDING));
        let (signal, _) = watch::channel(FORWARDING);
        let task = {
            let mode = mode.clone();
            let signal = signal.clone();
            tokio::spawn(async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    match mode.load(Ordering::SeqCst) {
                        CUT => drop(inbound),
                        STALLED => {
                            tokio::spawn(go_silent(inbound, signal.subscribe()));
                        }
                        _ => {
                            tokio::spawn(forward(inbound, target, signal.subscribe()));
                        }
                    }
                }
            })
        };
        Ok(CutProxy { addr, mode, signal, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection and refuses new ones until [`CutProxy::restore`].
    pub fn cut(&self) {
        self.set(CUT);
    }

    /// Silences every connection, open or new, until [`CutProxy::restore`].
    pub fn stall(&self) {
        self.set(STALLED);
    }

    /// Silences every connection for `window`, then forwards new ones again: a stall that
    /// outlasts a call's retries and ends before the invocation does.
    pub fn stall_for(self: &Arc<Self>, window: Duration) {
        self.stall();
        let proxy = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            proxy.restore();
        });
    }

    pub fn restore(&self) {
        self.set(FORWARDING);
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.signal.send_replace(mode);
    }
}

/// Forwards one connection both ways until either side closes it, the proxy is cut (the
/// connection is dropped) or stalled (it goes silent).
async fn forward(mut inbound: TcpStream, target: SocketAddr, mut mode: watch::Receiver<u8>) {
    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
    let stalled = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
        changed = mode.wait_for(|mode| *mode != FORWARDING) => changed.is_ok_and(|mode| *mode == STALLED),
    };
    if stalled {
        drop(outbound);
        go_silent(inbound, mode).await;
    }
}

/// Keeps a connection open and answers nothing until the client gives up on it or the proxy is
/// restored (then it is closed).
async fn go_silent(mut inbound: TcpStream, mut mode: watch::Receiver<u8>) {
    let swallow = async {
        let mut sink = [0u8; 16 * 1024];
        while matches!(inbound.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        () = swallow => {}
        _ = mode.wait_for(|mode| *mode == FORWARDING) => {}
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
