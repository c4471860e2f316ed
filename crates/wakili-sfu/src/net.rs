//! Sockets: the one UDP socket, and ICE-TCP connections (RFC 4571: each STUN/DTLS/SRTP packet
//! is preceded by its length in two bytes).
//!
//! A task per TCP connection reads frames and hands them to the engine as if they were
//! datagrams from the connection's remote address; the engine writes frames back through the
//! connection's channel. Dropping that channel's sender closes the connection.

use std::{
    io::{self, IoSlice},
    net::SocketAddr,
    os::fd::AsRawFd,
    sync::atomic::{AtomicBool, Ordering},
};

use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg, sendmsg,
};
use str0m::net::Transmit;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, Interest},
    net::{TcpListener, TcpStream, UdpSocket},
    sync::mpsc,
};

use crate::SfuError;

/// Socket buffers: bursts of media for many subscribers leave in one go.
const BUFFER: usize = 4 * 1024 * 1024;
/// Most simultaneous ICE-TCP connections.
const MAX_TCP_CONNECTIONS: usize = 1024;
/// Frames queued for one TCP connection before more are dropped (as UDP would).
const TCP_QUEUE: usize = 512;
/// Most datagrams handed to the kernel in one `sendmmsg`.
const SEND_BATCH: usize = 64;
/// Most datagrams in one segmented send (the kernel's `UDP_MAX_SEGMENTS`).
const GSO_SEGMENTS: usize = 64;
/// Most bytes in one segmented send (one IP packet before segmentation: 64 KiB, headers
/// included).
const GSO_BYTES: usize = 60_000;

/// Binds the UDP socket and, with ICE-TCP, a TCP listener on the same port number. With port
/// 0 the kernel picks the UDP port, which may be taken for TCP: then another is tried.
pub(crate) async fn bind(
    addr: SocketAddr,
    ice_tcp: bool,
    backlog: u32,
) -> Result<(UdpSocket, SocketAddr, Option<mpsc::Receiver<TcpEvent>>), SfuError> {
    let attempts = if ice_tcp && addr.port() == 0 { 8 } else { 1 };
    let mut failure = None;
    for _ in 0..attempts {
        let socket = bind_udp(addr)?;
        let bound = socket.local_addr().map_err(|e| SfuError::Bind {
            addr,
            reason: e.to_string(),
        })?;
        if !ice_tcp {
            return Ok((socket, bound, None));
        }
        let (events, receiver) = mpsc::channel(TCP_QUEUE);
        match listen_tcp(bound, backlog, events) {
            Ok(_) => return Ok((socket, bound, Some(receiver))),
            Err(error) => failure = Some(error),
        }
    }
    Err(failure.unwrap_or(SfuError::Bind {
        addr,
        reason: "no port free for both UDP and TCP".into(),
    }))
}

/// Binds the media socket, with large buffers (best effort: the kernel caps them).
fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, SfuError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind_error = |e: io::Error| SfuError::Bind {
        addr,
        reason: e.to_string(),
    };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_error)?;
    let _ = socket.set_recv_buffer_size(BUFFER);
    let _ = socket.set_send_buffer_size(BUFFER);
    socket.set_nonblocking(true).map_err(bind_error)?;
    socket.bind(&addr.into()).map_err(bind_error)?;
    UdpSocket::from_std(socket.into()).map_err(bind_error)
}

/// Sends `datagrams` (all UDP) on `socket`, in order. Consecutive datagrams to one address of
/// one size (the last may be shorter), as a subscriber's share of a burst is, leave as one
/// segmentation-offload send (`UDP_SEGMENT`): the kernel routes and builds them once, not once
/// each. The rest go many per system call (`sendmmsg`): one inbound packet fans out to every
/// subscriber, and a `sendto` each was a fifth of the SFU's time. Returns how many could not
/// be sent: a datagram the kernel refuses is skipped; when the socket buffer is full, the rest
/// are dropped, as UDP would.
pub(crate) fn send_udp(socket: &UdpSocket, datagrams: &[Transmit]) -> usize {
    let mut failed = 0;
    let mut singles = 0;
    let mut i = 0;
    while i < datagrams.len() {
        let run = gso_run(&datagrams[i..]);
        if run == 1 {
            i += 1;
            continue;
        }
        failed += send_each(socket, &datagrams[singles..i]);
        failed += send_segmented(socket, &datagrams[i..i + run]);
        i += run;
        singles = i;
    }
    failed + send_each(socket, &datagrams[singles..])
}

/// Set once the kernel refused a segmented send (no `UDP_SEGMENT` before Linux 4.18, or a
/// device without checksum offload): from then on every datagram leaves on its own.
static NO_SEGMENTATION: AtomicBool = AtomicBool::new(false);

/// How many datagrams, from the first, can leave as one segmented send.
fn gso_run(rest: &[Transmit]) -> usize {
    let Some(first) = rest.first() else {
        return 0;
    };
    if NO_SEGMENTATION.load(Ordering::Relaxed) {
        return 1;
    }
    let size = first.contents.len();
    let (mut count, mut bytes) = (1, size);
    for next in &rest[1..] {
        let len = next.contents.len();
        if count == GSO_SEGMENTS
            || next.destination != first.destination
            || len > size
            || bytes + len > GSO_BYTES
        {
            break;
        }
        count += 1;
        bytes += len;
        if len < size {
            break; // only the last segment may be shorter
        }
    }
    count
}

/// One `sendmsg` with `UDP_SEGMENT`: `run` (one destination, equal sizes but the last).
fn send_segmented(socket: &UdpSocket, run: &[Transmit]) -> usize {
    let slices: Vec<IoSlice<'_>> = run.iter().map(|t| IoSlice::new(&t.contents)).collect();
    let address = SockaddrStorage::from(run[0].destination);
    let Ok(size) = u16::try_from(run[0].contents.len()) else {
        return send_each(socket, run);
    };
    let control = [ControlMessage::UdpGsoSegments(&size)];
    let sent = socket.try_io(Interest::WRITABLE, || {
        sendmsg(
            socket.as_raw_fd(),
            &slices,
            &control,
            MsgFlags::empty(),
            Some(&address),
        )
        .map_err(io::Error::from)
    });
    match sent {
        Ok(_) => 0,
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => run.len(),
        Err(error) => {
            tracing::info!(%error, "UDP segmentation offload refused; sending datagrams one by one");
            NO_SEGMENTATION.store(true, Ordering::Relaxed);
            send_each(socket, run)
        }
    }
}

/// Sends `datagrams` many per `sendmmsg`; how many could not be sent.
fn send_each(socket: &UdpSocket, datagrams: &[Transmit]) -> usize {
    let mut failed = 0;
    let mut rest = datagrams;
    while !rest.is_empty() {
        let batch = &rest[..rest.len().min(SEND_BATCH)];
        match socket.try_io(Interest::WRITABLE, || send_batch(socket, batch)) {
            Ok(sent) if sent > 0 => rest = &rest[sent..],
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                failed += rest.len();
                break;
            }
            Ok(_) | Err(_) => {
                // The first datagram of the batch was refused (sendmmsg reports an error only
                // when nothing was sent): skip it.
                failed += 1;
                rest = &rest[1..];
            }
        }
    }
    failed
}

/// One `sendmmsg` call: how many datagrams of `batch`, from the first, the kernel took.
fn send_batch(socket: &UdpSocket, batch: &[Transmit]) -> io::Result<usize> {
    let slices: Vec<[IoSlice<'_>; 1]> = batch.iter().map(|t| [IoSlice::new(&t.contents)]).collect();
    let addresses: Vec<Option<SockaddrStorage>> = batch
        .iter()
        .map(|t| Some(SockaddrStorage::from(t.destination)))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch.len(), None);
    let no_control: [ControlMessage<'_>; 0] = [];
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &slices,
        &addresses,
        no_control,
        MsgFlags::empty(),
    )?;
    Ok(sent.count())
}

/// What an ICE-TCP connection tells the engine.
pub(crate) enum TcpEvent {
    /// A connection from `peer`; frames for it go into `writer`.
    Opened {
        peer: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    /// A frame from `peer`.
    Frame { peer: SocketAddr, data: Vec<u8> },
    /// `peer`'s connection ended.
    Closed { peer: SocketAddr },
}

/// Binds the ICE-TCP listener and accepts connections until `events` closes.
fn listen_tcp(
    addr: SocketAddr,
    backlog: u32,
    events: mpsc::Sender<TcpEvent>,
) -> Result<tokio::task::JoinHandle<()>, SfuError> {
    let listener = wakili_net::listen(addr, backlog).map_err(|e| SfuError::Bind {
        addr,
        reason: e.to_string(),
    })?;
    Ok(tokio::spawn(accept(listener, events)))
}

async fn accept(listener: TcpListener, events: mpsc::Sender<TcpEvent>) {
    let open = std::sync::Arc::new(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = events.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "ICE-TCP accept failed");
                continue;
            }
        };
        // Each connection task holds a clone: the count of clones is the count of connections.
        if std::sync::Arc::strong_count(&open) > MAX_TCP_CONNECTIONS {
            tracing::warn!(%peer, "too many ICE-TCP connections, refused");
            continue;
        }
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, peer, events.clone(), open.clone()));
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    events: mpsc::Sender<TcpEvent>,
    _open: std::sync::Arc<()>,
) {
    let (writer, mut frames) = mpsc::channel::<Vec<u8>>(TCP_QUEUE);
    if events
        .send(TcpEvent::Opened { peer, writer })
        .await
        .is_err()
    {
        return;
    }
    let (mut read, mut write) = stream.split();
    let reading = async {
        loop {
            let length = usize::from(read.read_u16().await?);
            let mut data = vec![0; length];
            read.read_exact(&mut data).await?;
            if events.send(TcpEvent::Frame { peer, data }).await.is_err() {
                return Ok::<(), io::Error>(());
            }
        }
    };
    let writing = async {
        while let Some(frame) = frames.recv().await {
            let Ok(length) = u16::try_from(frame.len()) else {
                continue;
            };
            write.write_u16(length).await?;
            write.write_all(&frame).await?;
        }
        Ok::<(), io::Error>(())
    };
    tokio::select! {
        result = reading => if let Err(error) = result {
            tracing::debug!(%peer, %error, "ICE-TCP connection ended");
        },
        result = writing => if let Err(error) = result {
            tracing::debug!(%peer, %error, "ICE-TCP connection ended");
        },
    }
    let _ = events.send(TcpEvent::Closed { peer }).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::{collections::HashMap, time::Duration};

    use str0m::net::Protocol;

    use super::*;

    fn datagram(to: SocketAddr, tag: u8, len: usize) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: "127.0.0.1:1".parse().unwrap(),
            destination: to,
            contents: vec![tag; len].into(),
        }
    }

    #[test]
    fn a_run_is_one_destination_of_one_size_ending_at_a_shorter_datagram() {
        let (a, b) = (
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:5001".parse().unwrap(),
        );
        let burst = [
            datagram(a, 0, 1000),
            datagram(a, 1, 1000),
            datagram(a, 2, 1000),
            datagram(a, 3, 400),
            datagram(a, 4, 1000),
        ];
        assert_eq!(gso_run(&burst), 4, "the shorter one ends it");
        assert_eq!(gso_run(&burst[3..]), 1, "a longer one cannot follow");
        let mixed = [datagram(a, 0, 1000), datagram(b, 1, 1000)];
        assert_eq!(gso_run(&mixed), 1, "another destination");
        let many: Vec<_> = (0..100).map(|i| datagram(a, i, 200)).collect();
        assert_eq!(gso_run(&many), GSO_SEGMENTS);
        let big: Vec<_> = (0..10).map(|i| datagram(a, i, 9_000)).collect();
        assert_eq!(gso_run(&big), GSO_BYTES / 9_000);
        assert_eq!(gso_run(&[]), 0);
    }

    #[tokio::test]
    async fn a_burst_arrives_as_the_datagrams_it_was_in_order() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (one, two) = (
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        );
        let (to_one, to_two) = (one.local_addr().unwrap(), two.local_addr().unwrap());
        // Two subscribers' shares of a burst, each a run with a shorter last datagram, then a
        // lone one: segmented sends and a sendmmsg, in order.
        let mut sent = Vec::new();
        for (to, base) in [(to_one, 0u8), (to_two, 20)] {
            for i in 0..5 {
                sent.push(datagram(to, base + i, 1_100));
            }
            sent.push(datagram(to, base + 5, 300));
        }
        sent.push(datagram(to_one, 9, 50));
        sender.writable().await.unwrap();
        assert_eq!(send_udp(&sender, &sent), 0);
        assert!(
            !NO_SEGMENTATION.load(Ordering::Relaxed),
            "the kernel took the segmented sends"
        );
        let mut got: HashMap<SocketAddr, Vec<(u8, usize)>> = HashMap::new();
        let mut buf = [0u8; 2048];
        for (socket, expected) in [(&one, 7), (&two, 6)] {
            for _ in 0..expected {
                let (n, _) =
                    tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
                        .await
                        .expect("a datagram is missing")
                        .unwrap();
                assert!(
                    buf[..n].iter().all(|b| *b == buf[0]),
                    "one datagram's bytes"
                );
                let at = socket.local_addr().unwrap();
                got.entry(at).or_default().push((buf[0], n));
            }
        }
        let expect = |base: u8| -> Vec<(u8, usize)> {
            (0..5)
                .map(|i| (base + i, 1_100))
                .chain([(base + 5, 300)])
                .collect()
        };
        let mut first = expect(0);
        first.push((9, 50));
        assert_eq!(got[&to_one], first);
        assert_eq!(got[&to_two], expect(20));
    }
}
