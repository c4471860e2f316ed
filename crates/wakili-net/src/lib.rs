//! The TCP listeners' accept queue. Every listener the server opens (HTTP, TURN over TCP and
//! TLS, ICE-TCP) is bound here, so each queues `http.listen_backlog` connections for its accept
//! loop instead of tokio's (and Rust's standard library's) 128.
//!
//! At 5,000 connections/s, 128 is 25 ms of arrivals: whenever an accept loop fell that far
//! behind, Linux dropped the next connections (`TcpExtListenOverflows`), and each dropped client
//! waited a second for its SYN to be retried. That is the storm after a node restarts or a
//! network comes back, when every client reconnects at once: to the signaling and, for those
//! behind UDP-blocking firewalls, to TURN over TCP or TLS.

use std::{io, net::SocketAddr, path::Path};

use tokio::net::{TcpListener, TcpSocket};

/// The accept queue when nothing else is configured; as Linux's own `net.core.somaxconn`
/// default since 5.4.
pub const DEFAULT_BACKLOG: u32 = 4096;

/// Where Linux caps every listen backlog.
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";

/// A listener on `addr` whose kernel queue holds `backlog` connections waiting for the accept
/// loop (address reuse on, as `TcpListener::bind`). Logs a warning when the system caps the
/// queue lower (`net.core.somaxconn`). Call from within the runtime.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(backlog)?;
    if let Some(cap) = system_backlog_cap(Path::new(SOMAXCONN))
        && cap < backlog
    {
        tracing::warn!(
            %addr,
            listen_backlog = backlog,
            somaxconn = cap,
            "the kernel caps the listen backlog below http.listen_backlog: raise net.core.somaxconn (sysctl) or connection storms may be dropped and retried a second later"
        );
    }
    Ok(listener)
}

fn system_backlog_cap(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpStream;

    use super::*;

    /// A burst of connections while the accept loop is busy waits in the kernel's queue: every
    /// connect completes instead of some waiting for SYN retries (1 s, then 2 s more). With
    /// tokio's default backlog (128) all but 129 of these time out, since nothing accepts.
    #[tokio::test]
    async fn a_burst_of_connections_waits_for_the_accept_loop_instead_of_being_dropped() {
        let cap = system_backlog_cap(Path::new(SOMAXCONN)).unwrap_or(DEFAULT_BACKLOG);
        let burst = DEFAULT_BACKLOG.min(cap).min(1000) as usize;
        assert!(
            burst > 500,
            "net.core.somaxconn {cap} leaves no room for the test"
        );
        let listener = listen("127.0.0.1:0".parse().unwrap(), DEFAULT_BACKLOG).unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing accepts until every connect has finished or timed out.
        let connects = (0..burst).map(|_| async move {
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
        });
        let results = futures_util::future::join_all(connects).await;
        let connected: Vec<TcpStream> = results.into_iter().filter_map(|r| r.ok()?.ok()).collect();
        assert_eq!(connected.len(), burst, "connections completed of {burst}");
        for _ in 0..burst {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
        }
    }

    #[test]
    fn the_system_cap_is_read_as_a_number_or_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("somaxconn");
        std::fs::write(&file, "4096\n").unwrap();
        assert_eq!(system_backlog_cap(&file), Some(4096));
        std::fs::write(&file, "lots").unwrap();
        assert_eq!(system_backlog_cap(&file), None);
        assert_eq!(system_backlog_cap(&dir.path().join("absent")), None);
    }
}
