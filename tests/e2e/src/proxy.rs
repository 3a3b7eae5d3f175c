//! A TCP proxy on loopback that forwards to a target until it is cut: then every open
//! connection is dropped and new ones are closed at once, as if the server had stopped, while
//! the server itself keeps its state for the next run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct CutProxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    cut_signal: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let (cut_signal, _) = watch::channel(false);
        let task = {
            let cut = cut.clone();
            let signal = cut_signal.clone();
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if cut.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let mut on_cut = signal.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = on_cut.wait_for(|cut| *cut) => {}
                        }
                    });
                }
            })
        };
        Ok(CutProxy { addr, cut, cut_signal, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection and refuses new ones until [`CutProxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cut_signal.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.cut_signal.send_replace(false);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
