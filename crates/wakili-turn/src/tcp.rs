//! TURN over TCP (RFC 8656 §3.1): a listener that looks, to the protocol library, like one
//! datagram socket. Each connection's byte stream is cut into STUN messages and ChannelData
//! frames (padded to 4 bytes on streams, §12.5); answers to a client address go back on its
//! connection.
//!
//! Hand-written because webrtc-rs's TURN server only takes datagram sockets. With a TLS acceptor
//! the same listener serves TURN over TLS (`turns:`).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use async_trait::async_trait;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;
use util::Conn;

/// Largest message accepted: the protocol library's receive buffer.
pub(crate) const MAX_MESSAGE: usize = 1500;
/// Frames queued per connection before further ones are dropped (as a datagram would be).
const WRITE_QUEUE: usize = 256;
/// Most simultaneous TCP clients.
const MAX_CONNECTIONS: usize = 10_000;
/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type Writers = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

/// Length of the frame starting with `header` (the first 4 bytes), with and without padding.
pub(crate) fn frame_len(header: [u8; 4]) -> Option<(usize, usize)> {
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    match header[0] >> 6 {
        0 => Some((20 + length, 20 + length)),
        1 => Some((4 + length, 4 + length.div_ceil(4) * 4)),
        _ => None,
    }
}

/// The TCP listener as one datagram-like connection.
pub(crate) struct TcpConn {
    local: SocketAddr,
    inbound: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    writers: Writers,
    accept: JoinHandle<()>,
}

impl TcpConn {
    pub fn new(listener: TcpListener, tls: Option<TlsAcceptor>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(4096);
        let writers: Writers = Arc::default();
        let accept = tokio::spawn(accept_loop(listener, tls, tx, Arc::clone(&writers)));
        Ok(Self {
            local,
            inbound: tokio::sync::Mutex::new(rx),
            writers,
            accept,
        })
    }
}

impl Drop for TcpConn {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    inbound: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
) {
    // Refusals and accept errors are logged at most once per LOG_EVERY, not per connection.
    const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
    let mut last_logged: Option<tokio::time::Instant> = None;
    let mut may_log = move || {
        let now = tokio::time::Instant::now();
        let due = last_logged.is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        if due {
            last_logged = Some(now);
        }
        due
    };
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors (EMFILE) or memory: pause instead of spinning.
                if may_log() {
                    tracing::warn!(error = %e, "TURN/TCP accept failed; pausing 100 ms");
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let full = writers.lock().unwrap_or_else(PoisonError::into_inner).len() >= MAX_CONNECTIONS;
        if full {
            if may_log() {
                tracing::warn!(%client, limit = MAX_CONNECTIONS, "TURN/TCP connection limit reached");
            }
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (inbound, writers) = (inbound.clone(), Arc::clone(&writers));
        match &tls {
            None => {
                tokio::spawn(connection(stream, client, inbound, writers));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, client, inbound, writers).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%client, error = %e, "TURN/TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%client, "TURN/TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

async fn connection<S>(
    stream: S,
    client: SocketAddr,
    inbound: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    writers: Writers,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    writers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(client, tx);
    let write = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; MAX_MESSAGE + 4];
    loop {
        let mut header = [0u8; 4];
        if reader.read_exact(&mut header).await.is_err() {
            break;
        }
        let Some((len, padded)) = frame_len(header) else {
            tracing::debug!(%client, "TURN/TCP: not STUN or ChannelData; closing");
            break;
        };
        if padded > buf.len() {
            tracing::debug!(%client, len, "TURN/TCP: message too large; closing");
            break;
        }
        buf[..4].copy_from_slice(&header);
        if reader.read_exact(&mut buf[4..padded]).await.is_err() {
            break;
        }
        if inbound.send((buf[..len].to_vec(), client)).await.is_err() {
            break;
        }
    }
    writers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&client);
    write.abort();
}

#[async_trait]
impl Conn for TcpConn {
    async fn connect(&self, _: SocketAddr) -> util::Result<()> {
        Err(util::Error::Other(
            "a TURN listener does not connect".into(),
        ))
    }

    async fn recv(&self, _: &mut [u8]) -> util::Result<usize> {
        Err(util::Error::Other("use recv_from".into()))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        let Some((message, client)) = self.inbound.lock().await.recv().await else {
            return Err(util::Error::Other("TCP listener closed".into()));
        };
        let n = message.len().min(buf.len());
        buf[..n].copy_from_slice(&message[..n]);
        Ok((n, client))
    }

    async fn send(&self, _: &[u8]) -> util::Result<usize> {
        Err(util::Error::Other("use send_to".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        let sender = self
            .writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&target)
            .cloned();
        let Some(sender) = sender else {
            // The client hung up: like a datagram to nowhere.
            return Ok(buf.len());
        };
        let mut frame = buf.to_vec();
        if frame.first().is_some_and(|b| b >> 6 == 1) {
            frame.resize(frame.len().div_ceil(4) * 4, 0);
        }
        // A full queue means a client that does not read: drop, as the network would.
        let _ = sender.try_send(frame);
        Ok(buf.len())
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_measured_from_their_header() {
        assert_eq!(
            frame_len([0x00, 0x01, 0x00, 0x08]),
            Some((28, 28)),
            "STUN: 20 + attributes"
        );
        assert_eq!(
            frame_len([0x40, 0x00, 0x00, 0x05]),
            Some((9, 12)),
            "ChannelData padded to 4"
        );
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x08]), Some((12, 12)));
        assert_eq!(frame_len([0x80, 0, 0, 0]), None, "RTP or garbage");
    }
}
