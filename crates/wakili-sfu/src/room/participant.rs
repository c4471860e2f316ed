//! One participant's session: its str0m `Rtc`, what it publishes, what it receives.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::{Duration, Instant},
};

use str0m::{
    Event, Input, Output, Rtc,
    change::SdpPendingOffer,
    format::PayloadParams,
    media::{Mid, Pt, Rid as StrRid},
    net::Transmit,
    rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo, Ssrc},
};
use wakili_forward::ParticipantId;

use crate::{Rid, TrackId, vp8::Vp8Munger};

/// A str0m event and the participant whose `Rtc` produced it.
pub(crate) type Pending = VecDeque<(ParticipantId, Event)>;

/// Most timeouts one [`Participant::drain_at`] handles; any left wait for the engine's timer,
/// so a session that keeps asking cannot hold up the others.
const MAX_TIMEOUTS_PER_DRAIN: usize = 64;
/// How far ahead a timeout still counts as due in [`Participant::drain_at`]: the step str0m's
/// pacer asks for between two packets (1 µs), with room to spare.
const PACER_STEP: Duration = Duration::from_micros(5);

/// One participant of a room.
pub(crate) struct Participant {
    pub(crate) id: ParticipantId,
    pub(crate) name: String,
    pub(crate) rtc: Rtc,
    /// When str0m next wants `handle_input(Timeout)`.
    pub(crate) timeout: Instant,
    pub(crate) joined_at: Instant,
    /// ICE and DTLS are up.
    pub(crate) connected: bool,
    /// Set when the session failed; the room removes it.
    pub(crate) failed: bool,
    /// Its own tracks, by the m-line they arrive on.
    pub(crate) published: BTreeMap<Mid, TrackId>,
    /// Inbound SSRC → m-line and RID.
    streams: HashMap<Ssrc, (Mid, Option<StrRid>)>,
    /// Others' tracks, as it receives them.
    pub(crate) outgoing: BTreeMap<TrackId, OutTrack>,
    /// The offer awaiting its answer, with the tracks it adds.
    pub(crate) pending_offer: Option<SdpPendingOffer>,
    /// M-lines to stop in the next offer (their track went away).
    pub(crate) to_stop: Vec<Mid>,
    /// The operator's forced layer for all its simulcast subscriptions.
    pub(crate) forced: Option<Rid>,
    pub(crate) forwarded: u64,
    /// The bandwidth its estimator was last asked to probe for.
    pub(crate) bwe_desired: u64,
    /// Its latest downlink estimate (bits/s).
    pub(crate) estimate: Option<u64>,
    /// Packets were written to it that have not been drained yet (see [`Room::flush`]).
    ///
    /// [`Room::flush`]: super::Room::flush
    pub(crate) dirty: bool,
}

impl Participant {
    pub(crate) fn new(id: ParticipantId, name: String, rtc: Rtc, now: Instant) -> Self {
        Self {
            id,
            name,
            rtc,
            timeout: now,
            joined_at: now,
            connected: false,
            failed: false,
            published: BTreeMap::new(),
            streams: HashMap::new(),
            outgoing: BTreeMap::new(),
            pending_offer: None,
            to_stop: Vec::new(),
            forced: None,
            forwarded: 0,
            bwe_desired: 0,
            estimate: None,
            dirty: false,
        }
    }

    /// Drains str0m's output after a mutation (its single-mutation rule): datagrams to
    /// `transmits`, events to `pending`, and the next timeout.
    pub(crate) fn drain(&mut self, transmits: &mut Vec<Transmit>, pending: &mut Pending) {
        if self.failed {
            return;
        }
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.timeout = at;
                    break;
                }
                Ok(Output::Transmit(transmit)) => transmits.push(transmit),
                Ok(Output::Event(event)) => pending.push_back((self.id, event)),
                Err(error) => {
                    tracing::warn!(participant = %self.name, %error, "session failed");
                    self.fail();
                    break;
                }
            }
        }
        if !self.rtc.is_alive() {
            self.fail();
        }
    }

    /// Drains like [`drain`](Self::drain), and handles the timeouts already due on the spot:
    /// str0m releases a written packet only from a timeout, so the packet leaves in this turn
    /// of the engine instead of a timer tick later. With bandwidth estimation, str0m's pacer
    /// releases one packet per timeout and then asks for the next 1 µs after the time it was
    /// given; the clock is read again for each, so every packet written since the last drain
    /// leaves in this one call (reading `now` only once let one packet per subscriber out per
    /// turn of the engine, the rest a turn each).
    pub(crate) fn drain_at(
        &mut self,
        now: Instant,
        transmits: &mut Vec<Transmit>,
        pending: &mut Pending,
    ) {
        self.drain(transmits, pending);
        for _ in 0..MAX_TIMEOUTS_PER_DRAIN {
            let now = Instant::now().max(now);
            if self.failed || self.timeout > now + PACER_STEP {
                return;
            }
            self.handle_timeout(now.max(self.timeout), transmits, pending);
        }
    }

    /// Drains like [`drain_at`](Self::drain_at) when packets were written to it since it was
    /// last drained ([`dirty`](Self::dirty)); nothing otherwise.
    pub(crate) fn drain_written(
        &mut self,
        now: Instant,
        transmits: &mut Vec<Transmit>,
        pending: &mut Pending,
    ) {
        if std::mem::take(&mut self.dirty) {
            self.drain_at(now, transmits, pending);
        }
    }

    /// Time passed for the session: its timers run, and what they produce is drained.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        transmits: &mut Vec<Transmit>,
        pending: &mut Pending,
    ) {
        if let Err(error) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::warn!(participant = %self.name, %error, "session failed");
            self.fail();
            return;
        }
        self.drain(transmits, pending);
    }

    /// Marks the session failed and stops it.
    pub(crate) fn fail(&mut self) {
        self.failed = true;
        self.rtc.disconnect();
    }

    /// The m-line and RID of the inbound stream `ssrc`, remembered once str0m knows them.
    pub(crate) fn stream(
        &mut self,
        ssrc: Ssrc,
        transmits: &mut Vec<Transmit>,
        pending: &mut Pending,
    ) -> Option<(Mid, Option<StrRid>)> {
        if let Some(known) = self.streams.get(&ssrc) {
            return Some(*known);
        }
        let found = self
            .rtc
            .direct_api()
            .stream_rx(&ssrc)
            .map(|stream| (stream.mid(), stream.rid()));
        // Any use of the direct API counts as a mutation: drain.
        self.drain(transmits, pending);
        if let Some(found) = found {
            self.streams.insert(ssrc, found);
        }
        found
    }

    /// The track received on m-line `mid`, if it is open.
    pub(crate) fn track_on(&self, mid: Mid) -> Option<TrackId> {
        self.outgoing
            .iter()
            .find(|(_, out)| out.state == OutState::Open(mid))
            .map(|(track, _)| *track)
    }

    /// Writes one forwarded packet of `track` with the rewritten header (str0m keeps it for
    /// NACKs when `nackable`). `params` are the publisher's payload parameters, matched to this
    /// session's payload type. Returns whether it was written.
    pub(crate) fn write(&mut self, track: TrackId, packet: Forwarded<'_>) -> bool {
        let Some(out) = self.outgoing.get_mut(&track) else {
            return false;
        };
        let OutState::Open(mid) = out.state else {
            return false;
        };
        let Some(pt) = out.payload_type(&self.rtc, mid, packet.params) else {
            tracing::debug!(participant = %self.name, %mid, "no matching payload type");
            return false;
        };
        let seq = out.extend_seq(packet.seq);
        let rtp = packet.rtp;
        let mut write = RtpWrite::new(
            pt,
            seq,
            packet.timestamp,
            rtp.timestamp,
            rtp.payload.clone(),
        )
        .marker(rtp.header.marker)
        .ext_vals(forwarded_extensions(&rtp.header.ext_vals))
        .nackable(packet.nackable);
        if let Some(layer) = packet.vp8_layer
            && let Some(patch) = out.vp8.patch(layer, &rtp.payload)
        {
            write = write.vp8_patch(patch);
        }
        let mut direct = self.rtc.direct_api();
        let Some(stream) = direct.stream_tx_by_mid(mid, None) else {
            return false;
        };
        // Forwarded media leaves as it arrives: the publisher paced it already, and holding
        // it to the estimate would queue it for as long as the estimate lags the layer sent.
        // The layer is what fits the estimate (the forwarder's choice); str0m still stamps
        // every packet for TWCC, so the estimate keeps following what is sent.
        stream.set_unpaced(true);
        stream.write_rtp(write);
        out.forwarded += 1;
        self.forwarded += 1;
        true
    }
}

/// A packet to forward: the publisher's packet and what the forwarder decided for it.
pub(crate) struct Forwarded<'a> {
    pub(crate) rtp: &'a RtpPacket,
    pub(crate) params: PayloadParams,
    pub(crate) seq: u16,
    pub(crate) timestamp: u32,
    pub(crate) nackable: bool,
    /// `Some(layer)` for VP8, whose picture ids are rewritten across layer switches.
    pub(crate) vp8_layer: Option<Option<Rid>>,
}

/// The header extensions a subscriber gets: the audio level and orientation travel on; the
/// transport ones (MID, RID, TWCC, send time) are str0m's own for each session.
fn forwarded_extensions(inbound: &ExtensionValues) -> ExtensionValues {
    ExtensionValues {
        audio_level: inbound.audio_level,
        // str0m writes the audio level only together with the voice activity flag.
        voice_activity: inbound
            .audio_level
            .map(|_| inbound.voice_activity.unwrap_or(false)),
        video_orientation: inbound.video_orientation,
        ..ExtensionValues::default()
    }
}

/// Where the m-line carrying a track to a subscriber stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutState {
    /// To be added in the next offer.
    Queued,
    /// Offered on this m-line, awaiting the answer.
    Negotiating(Mid),
    /// Negotiated: media flows.
    Open(Mid),
}

impl OutState {
    pub(crate) fn mid(self) -> Option<Mid> {
        match self {
            Self::Queued => None,
            Self::Negotiating(mid) | Self::Open(mid) => Some(mid),
        }
    }
}

/// One of others' tracks as a participant receives it.
#[derive(Debug)]
pub(crate) struct OutTrack {
    pub(crate) state: OutState,
    pub(crate) paused: bool,
    pub(crate) forwarded: u64,
    /// The last extended sequence number written (SRTP needs the rollover count).
    last_seq: Option<u64>,
    /// Publisher payload type → this session's.
    payload_types: Vec<(Pt, Pt)>,
    vp8: Vp8Munger,
}

impl OutTrack {
    pub(crate) fn queued() -> Self {
        Self {
            state: OutState::Queued,
            paused: false,
            forwarded: 0,
            last_seq: None,
            payload_types: Vec::new(),
            vp8: Vp8Munger::default(),
        }
    }

    /// Forwarding resumes after a pause.
    pub(crate) fn resumed(&mut self) {
        self.vp8.restart();
    }

    /// This session's payload type for the publisher's `params`, among those negotiated on `mid`.
    fn payload_type(&mut self, rtc: &Rtc, mid: Mid, params: PayloadParams) -> Option<Pt> {
        if let Some((_, pt)) = self
            .payload_types
            .iter()
            .find(|(from, _)| *from == params.pt())
        {
            return Some(*pt);
        }
        let local = rtc.codec_config().match_params(params)?.pt();
        let negotiated = rtc.media(mid)?.remote_pts().contains(&local);
        negotiated.then(|| {
            self.payload_types.push((params.pt(), local));
            local
        })
    }

    /// The extended form of the forwarder's 16-bit sequence number: the one closest to the
    /// last written. The first starts below 2^16 (rollover count 0, which the receiver assumes).
    fn extend_seq(&mut self, seq: u16) -> SeqNo {
        let extended = match self.last_seq {
            None => u64::from(seq),
            Some(last) => {
                let delta = i64::from(seq.wrapping_sub(last as u16) as i16);
                last.checked_add_signed(delta).unwrap_or(u64::from(seq))
            }
        };
        if self.last_seq.is_none_or(|last| extended > last) {
            self.last_seq = Some(extended);
        }
        extended.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_extended_across_wraparound() {
        let mut out = OutTrack::queued();
        let seqs = [65_534, 65_535, 0, 65_535, 1, 2];
        let extended: Vec<u64> = seqs.iter().map(|s| *out.extend_seq(*s)).collect();
        assert_eq!(extended, [65_534, 65_535, 65_536, 65_535, 65_537, 65_538]);
    }
}
