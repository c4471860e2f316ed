//! The client's task: drives its str0m session, sends the synthetic media, records what
//! arrives.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use str0m::{
    Event, Input, Output, Rtc,
    change::SdpOffer,
    format::Codec,
    media::{MediaKind, Mid, Rid},
    net::{Protocol, Receive},
    rtp::{ExtensionValues, RtpPacket, RtpWrite},
};
use tokio::{
    io::AsyncWriteExt,
    net::{UdpSocket, tcp::OwnedWriteHalf},
    sync::mpsc,
};

use super::{Command, Incoming, Publish, Seen};

pub(super) enum Link {
    Udp(UdpSocket, SocketAddr),
    Tcp {
        write: OwnedWriteHalf,
        frames: mpsc::Receiver<Vec<u8>>,
        local: SocketAddr,
    },
}

/// The synthetic publisher.
pub(super) struct Media {
    audio: bool,
    layers: Vec<Layer>,
    next_tick: Instant,
    tick: u64,
}

struct Layer {
    rid: &'static str,
    seq: u64,
    picture_id: u16,
    keyframe_due: bool,
}

impl Media {
    pub(super) fn new(publish: &Publish) -> Self {
        let starts = [(100, 1_000), (5_000, 20_000), (20_000, 40_000)];
        let layers = publish
            .layers
            .iter()
            .zip(starts)
            .map(|(rid, (picture_id, seq))| Layer {
                rid,
                seq,
                picture_id,
                keyframe_due: true,
            })
            .collect();
        Self {
            audio: publish.audio,
            layers,
            next_tick: Instant::now(),
            tick: 0,
        }
    }
}

pub(super) struct Runner {
    pub(super) rtc: Rtc,
    pub(super) own: Vec<(Mid, MediaKind)>,
    pub(super) server: SocketAddr,
    pub(super) seen: Arc<Mutex<Seen>>,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) level: u8,
    pub(super) media: Media,
    pub(super) drop_every: Option<u64>,
    /// SRTP/SRTCP datagrams received.
    pub(super) received: u64,
}

impl Runner {
    pub(super) async fn run(mut self, mut link: Link) {
        let mut buf = vec![0u8; 2000];
        let mut tcp_frame: Vec<u8> = Vec::new();
        loop {
            let timeout = self.drain(&mut link).await;
            let wake = timeout.min(self.media.next_tick);
            let received: Option<(usize, SocketAddr, SocketAddr, Protocol)> = tokio::select! {
                command = self.commands.recv() => {
                    match command {
                        Some(Command::AcceptOffer(sdp, reply)) => {
                            let offer = SdpOffer::from_sdp_string(&sdp).expect("SFU offer parses");
                            let answer = self.rtc.sdp_api().accept_offer(offer).expect("offer accepted");
                            let _ = reply.send(answer.to_sdp_string());
                        }
                        Some(Command::Level(level)) => self.level = level,
                        None => return,
                    }
                    None
                }
                read = read_link(&mut link, self.server, &mut buf, &mut tcp_frame) => match read {
                    Some(read) => Some(read),
                    None => return,
                },
                () = tokio::time::sleep_until(wake.into()) => None,
            };
            let now = Instant::now();
            if let Some((n, source, destination, proto)) = received {
                let data = if proto == Protocol::Tcp {
                    &tcp_frame[..]
                } else {
                    &buf[..n]
                };
                let Ok(contents) = data.try_into() else {
                    continue;
                };
                // RFC 7983: first byte 128-191 is RTP or RTCP.
                if let Some(n) = self.drop_every
                    && (128..192).contains(&data[0])
                {
                    self.received += 1;
                    if self.received.is_multiple_of(n) {
                        self.seen.lock().expect("not poisoned").dropped += 1;
                        continue;
                    }
                }
                let input = Input::Receive(
                    now,
                    Receive {
                        proto,
                        source,
                        destination,
                        contents,
                    },
                );
                let _ = self.rtc.handle_input(input);
            } else if now >= self.media.next_tick {
                self.send_media(now, &mut link).await;
            } else {
                let _ = self.rtc.handle_input(Input::Timeout(now));
            }
        }
    }

    /// Drains str0m, sending datagrams and recording events. Returns the next timeout.
    async fn drain(&mut self, link: &mut Link) -> Instant {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => return at,
                Ok(Output::Transmit(t)) => match link {
                    Link::Udp(socket, _) => {
                        let _ = socket.send_to(&t.contents, t.destination).await;
                    }
                    Link::Tcp { write, .. } => {
                        let len = u16::try_from(t.contents.len()).expect("frame fits");
                        let _ = write.write_u16(len).await;
                        let _ = write.write_all(&t.contents).await;
                    }
                },
                Ok(Output::Event(event)) => self.on_event(event),
                Err(error) => panic!("client session failed: {error}"),
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => self.seen.lock().expect("not poisoned").connected = true,
            Event::KeyframeRequest(request) => {
                self.seen.lock().expect("not poisoned").keyframe_requests += 1;
                for layer in &mut self.media.layers {
                    if request.rid.is_none_or(|rid| &*rid == layer.rid) {
                        layer.keyframe_due = true;
                    }
                }
            }
            Event::RtpPacket(packet) => self.record(&packet),
            _ => {}
        }
    }

    fn record(&mut self, packet: &RtpPacket) {
        let Some(mid) = self
            .rtc
            .direct_api()
            .stream_rx(&packet.header.ssrc)
            .map(|s| s.mid())
        else {
            return;
        };
        let Some(media) = self.rtc.media(mid) else {
            return;
        };
        let mut seen = self.seen.lock().expect("not poisoned");
        let incoming = seen.incoming.entry(mid).or_insert_with(|| Incoming {
            publisher: media.stream_id().to_owned(),
            track: media.track_id().to_owned(),
            kind: media.kind(),
            packets: 0,
            last_seq: None,
            missing: BTreeSet::new(),
            layers: Vec::new(),
            picture_id_jumps: 0,
            last_picture_id: None,
        });
        incoming.packets += 1;
        let seq = *packet.seq_no;
        match incoming.last_seq {
            Some(last) if seq > last => {
                incoming.missing.extend(last + 1..seq);
                incoming.last_seq = Some(seq);
            }
            Some(_) => {
                incoming.missing.remove(&seq);
            }
            None => incoming.last_seq = Some(seq),
        }
        let payload = &packet.payload;
        if incoming.kind == MediaKind::Video && payload.len() >= 6 {
            let layer = payload[5];
            if incoming.layers.last() != Some(&layer) {
                incoming.layers.push(layer);
            }
            let picture_id = u16::from_be_bytes([payload[2], payload[3]]) & 0x7fff;
            if let Some(last) = incoming.last_picture_id
                && picture_id != (last + 1) & 0x7fff
            {
                incoming.picture_id_jumps += 1;
            }
            incoming.last_picture_id = Some(picture_id);
        }
    }

    async fn send_media(&mut self, now: Instant, link: &mut Link) {
        self.media.next_tick = now + Duration::from_millis(20);
        self.media.tick += 1;
        let _ = self.rtc.handle_input(Input::Timeout(now));
        self.drain(link).await;
        if !self.rtc.is_connected() {
            return;
        }
        let tick = self.media.tick;
        for (mid, kind) in self.own.clone() {
            if kind == MediaKind::Audio && self.media.audio {
                let Some(pt) = payload_type(&self.rtc, Codec::Opus) else {
                    continue;
                };
                let exts = ExtensionValues {
                    audio_level: Some(-(self.level.min(127) as i8)),
                    voice_activity: Some(self.level < 60),
                    ..Default::default()
                };
                let write =
                    RtpWrite::new(pt, tick.into(), (tick * 960) as u32, now, vec![0xfc; 40])
                        .ext_vals(exts);
                if let Some(stream) = self.rtc.direct_api().stream_tx_by_mid(mid, None) {
                    stream.write_rtp(write);
                }
                self.drain(link).await;
            } else if kind == MediaKind::Video && tick.is_multiple_of(3) {
                let Some(pt) = payload_type(&self.rtc, Codec::Vp8) else {
                    continue;
                };
                let frame = tick / 3;
                let simulcast = self.media.layers.len() > 1;
                for i in 0..self.media.layers.len() {
                    let layer = &mut self.media.layers[i];
                    let keyframe = std::mem::take(&mut layer.keyframe_due);
                    let [hi, lo] = (layer.picture_id | 0x8000).to_be_bytes();
                    let header = if keyframe { 0x10 } else { 0x11 };
                    let mut payload = vec![0x90, 0x80, hi, lo, header, layer.rid.as_bytes()[0]];
                    // The rest of a VP8 frame tag, then a keyframe's start code and size, so a
                    // recorder takes it for the keyframe it is.
                    let (width, height) = match layer.rid {
                        "q" => (320u16, 180u16),
                        "h" => (640, 360),
                        _ => (1280, 720),
                    };
                    payload.extend([0x00, 0x9d, 0x01, 0x2a]);
                    payload.extend(width.to_le_bytes());
                    payload.extend(height.to_le_bytes());
                    payload.extend((frame as u32).to_be_bytes());
                    payload.resize(60, 0);
                    let write =
                        RtpWrite::new(pt, layer.seq.into(), (frame * 5_400) as u32, now, payload)
                            .marker(true)
                            .nackable(true);
                    layer.seq += 1;
                    layer.picture_id = (layer.picture_id + 1) & 0x7fff;
                    let rid: Option<Rid> = simulcast.then(|| layer.rid.into());
                    if let Some(stream) = self.rtc.direct_api().stream_tx_by_mid(mid, rid) {
                        stream.write_rtp(write);
                    }
                    self.drain(link).await;
                }
            }
        }
    }
}

fn payload_type(rtc: &Rtc, codec: Codec) -> Option<str0m::media::Pt> {
    rtc.codec_config()
        .find(|p| p.spec().codec == codec)
        .map(|p| p.pt())
}

async fn read_link(
    link: &mut Link,
    server: SocketAddr,
    buf: &mut [u8],
    frame: &mut Vec<u8>,
) -> Option<(usize, SocketAddr, SocketAddr, Protocol)> {
    match link {
        Link::Udp(socket, local) => {
            let (n, source) = socket.recv_from(buf).await.ok()?;
            Some((n, source, *local, Protocol::Udp))
        }
        Link::Tcp { frames, local, .. } => {
            *frame = frames.recv().await?;
            Some((frame.len(), server, *local, Protocol::Tcp))
        }
    }
}
