//! What every room shares: the configuration, the advertised candidates, the time origin.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use str0m::{Candidate, Rtc, RtcConfig, bwe::Bitrate, net::TcpType};
use wakili_forward::Millis;

use crate::{SfuConfig, SfuError};

/// Shared, read-only state of the running SFU.
pub(crate) struct Context {
    pub(crate) config: SfuConfig,
    /// The address in the host candidates (advertised IP, bound port).
    pub(crate) local: SocketAddr,
    candidates: Vec<Candidate>,
    epoch: Instant,
}

impl Context {
    pub(crate) fn new(config: SfuConfig, local: SocketAddr, tcp: bool) -> Result<Self, SfuError> {
        let bad =
            |e: str0m::error::IceError| SfuError::InvalidConfig(format!("host candidate: {e}"));
        let mut candidates = vec![Candidate::host(local, "udp").map_err(bad)?];
        if tcp {
            let passive = Candidate::builder()
                .tcp()
                .host(local)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(bad)?;
            candidates.push(passive);
        }
        Ok(Self {
            config,
            local,
            candidates,
            epoch: Instant::now(),
        })
    }

    /// `now` for the forwarder, which counts milliseconds from the SFU's start.
    pub(crate) fn millis(&self, now: Instant) -> Millis {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        Millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    /// The instant the forwarder's `at` means.
    pub(crate) fn instant(&self, at: Millis) -> Instant {
        self.epoch + Duration::from_millis(at.0)
    }

    /// A new session: ICE-lite, RTP mode, the configured codecs, bandwidth estimation, and
    /// the SFU's host candidates.
    pub(crate) fn new_rtc(&self, now: Instant) -> Rtc {
        let codecs = self.config.codecs;
        let mut builder = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .enable_opus(codecs.opus, false)
            .enable_vp9(codecs.vp9)
            .enable_h264(codecs.h264)
            .enable_av1(codecs.av1);
        if let Some(bps) = self.config.initial_estimate_bps {
            builder = builder.enable_bwe(Some(Bitrate::bps(bps)));
        }
        let mut rtc = builder.build(now);
        for candidate in &self.candidates {
            rtc.add_local_candidate(candidate.clone());
        }
        rtc
    }
}
