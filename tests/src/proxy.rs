//! A TCP proxy a test can cut: one function process reaches the AWS emulator through
//! it, so the test can stage an outage for that process — also in the middle of a
//! batch, after a given number of requests — without disturbing the emulator every
//! other test is using.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A proxy to one upstream address.
pub struct CuttableProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    up: AtomicBool,
    /// Requests still allowed through before the proxy cuts itself.
    budget: AtomicUsize,
    cut: Notify,
}

impl Shared {
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.notify_waiters();
    }
}

/// The end of an HTTP/1.1 request line; header lines never contain it.
const REQUEST_LINE_END: &[u8] = b" HTTP/1.1\r\n";

impl CuttableProxy {
    /// Starts forwarding a local port to `upstream` (e.g. `127.0.0.1:4566`).
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            up: AtomicBool::new(true),
            budget: AtomicUsize::new(usize::MAX),
            cut: Notify::new(),
        });
        let task_shared = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !task_shared.up.load(Ordering::SeqCst) {
                    drop(client); // refused while cut: the caller sees a reset
                    continue;
                }
                let shared = task_shared.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let cut = shared.cut.notified();
                    tokio::select! {
                        () = forward(client, server, &shared) => {}
                        () = cut => {}
                    }
                });
            }
        });
        Self { addr, shared }
    }

    /// The URL to give the function as `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.shared.cut();
    }

    /// Lets `requests` more HTTP requests through, then cuts.
    pub fn cut_after(&self, requests: usize) {
        self.shared.budget.store(requests, Ordering::SeqCst);
    }

    /// Forwards again, without a request budget.
    pub fn restore(&self) {
        self.shared.budget.store(usize::MAX, Ordering::SeqCst);
        self.shared.up.store(true, Ordering::SeqCst);
    }
}

/// Copies both ways; a request beyond the budget cuts the proxy before it is sent.
async fn forward(client: TcpStream, server: TcpStream, shared: &Shared) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buf = vec![0_u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let requests = buf[..n]
                .windows(REQUEST_LINE_END.len())
                .filter(|w| *w == REQUEST_LINE_END)
                .count();
            for _ in 0..requests {
                let allowed = shared
                    .budget
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                    .is_ok();
                if !allowed || !shared.up.load(Ordering::SeqCst) {
                    shared.cut();
                    return;
                }
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}
