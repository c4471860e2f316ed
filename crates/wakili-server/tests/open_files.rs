//! Out of file descriptors (`EMFILE`), the accept loop pauses instead of spinning and resumes
//! once descriptors are free. Its own test binary: it lowers this process's open-file limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use wakili_db::Backend;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

async fn healthz(stream: &mut TcpStream) -> bool {
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: wakili\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await,
        Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 200")
    )
}

#[tokio::test]
async fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    const CLIENTS: usize = 30;
    let app = spawn_app(Backend::Sqlite).await;
    // The client sockets exist before the limit drops: only the server's accepts need new ones.
    let sockets: Vec<TcpSocket> = (0..CLIENTS).map(|_| TcpSocket::new_v4().unwrap()).collect();
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    rlimit::setrlimit(rlimit::Resource::NOFILE, open_fds() + 4, hard).unwrap();
    let mut streams = Vec::new();
    for socket in sockets {
        // The kernel completes the handshake whether or not the server can accept.
        streams.push(socket.connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard).unwrap();
    // Every connection is served once descriptors are free again.
    for (i, stream) in streams.iter_mut().enumerate() {
        assert!(
            healthz(stream).await,
            "connection {i} served after the limit was lifted"
        );
    }
    let errors = app
        .metric("wakili_http_accept_errors_total")
        .await
        .expect("wakili_http_accept_errors_total in /metrics");
    // One failed accept per 100 ms pause over about a second: not a spin of thousands.
    assert!(
        (1.0..=30.0).contains(&errors),
        "{errors} accept errors in about 1 s"
    );
}
