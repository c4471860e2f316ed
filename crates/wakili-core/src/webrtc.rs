//! What a participant's browser or app needs to set up media: quality profiles, audio, simulcast,
//! screen share and codec preferences, in the shapes `getUserMedia`, `getDisplayMedia`,
//! `RTCPeerConnection` and `RTCRtpSender.setParameters` take as they are.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::media::MediaMode;

/// Name of the profile used when a consultation has none and the policy names none.
pub const MEDIUM: &str = "medium";

/// A video quality level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityProfile {
    /// Capture width in pixels.
    pub width: u32,
    /// Capture height in pixels.
    pub height: u32,
    /// Frames per second.
    pub frame_rate: u32,
    /// Sender bitrate cap in kbit/s.
    pub max_bitrate_kbps: u32,
}

/// Audio settings (Opus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioPolicy {
    /// Discontinuous transmission: silence costs almost nothing on poor networks.
    pub dtx: bool,
    /// In-band forward error correction.
    pub fec: bool,
    /// Opus bitrate cap in kbit/s.
    pub max_bitrate_kbps: u32,
    /// Stereo (speech needs mono).
    pub stereo: bool,
    /// Browser echo cancellation.
    pub echo_cancellation: bool,
    /// Browser noise suppression.
    pub noise_suppression: bool,
    /// Browser automatic gain control.
    pub auto_gain_control: bool,
}

/// Screen-share limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScreenSharePolicy {
    /// Largest width captured.
    pub max_width: u32,
    /// Largest height captured.
    pub max_height: u32,
    /// Frame rate cap (documents need few frames, sharp).
    pub max_frame_rate: u32,
    /// Bitrate cap in kbit/s.
    pub max_bitrate_kbps: u32,
    /// `MediaStreamTrack.contentHint`: `detail` keeps text legible.
    pub content_hint: String,
}

/// How media is set up in every consultation (the `[media]` settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaPolicy {
    /// Profile for consultations that have none set.
    pub default_profile: String,
    /// Profiles by name.
    pub profiles: BTreeMap<String, QualityProfile>,
    /// Send simulcast layers for profiles tall enough to need them (≥ 540 px).
    pub simulcast: bool,
    /// Audio.
    pub audio: AudioPolicy,
    /// Screen share.
    pub screen_share: ScreenSharePolicy,
    /// Video codecs in order of preference (MIME types).
    pub video_codecs: Vec<String>,
    /// Audio codecs in order of preference (MIME types).
    pub audio_codecs: Vec<String>,
    /// How media travels in consultations booked without a mode of their own.
    pub mode: MediaMode,
}

impl Default for AudioPolicy {
    fn default() -> Self {
        Self {
            dtx: true,
            fec: true,
            max_bitrate_kbps: 32,
            stereo: false,
            echo_cancellation: true,
            noise_suppression: true,
            auto_gain_control: true,
        }
    }
}

impl Default for ScreenSharePolicy {
    fn default() -> Self {
        Self {
            max_width: 1920,
            max_height: 1080,
            max_frame_rate: 15,
            max_bitrate_kbps: 1500,
            content_hint: "detail".into(),
        }
    }
}

impl Default for MediaPolicy {
    fn default() -> Self {
        let profile = |width, height, frame_rate, max_bitrate_kbps| QualityProfile {
            width,
            height,
            frame_rate,
            max_bitrate_kbps,
        };
        Self {
            default_profile: MEDIUM.into(),
            profiles: BTreeMap::from([
                ("low".into(), profile(480, 360, 15, 300)),
                ("medium".into(), profile(1280, 720, 30, 1000)),
                ("high".into(), profile(1920, 1080, 30, 2500)),
            ]),
            simulcast: true,
            audio: AudioPolicy::default(),
            screen_share: ScreenSharePolicy::default(),
            video_codecs: vec!["video/VP8".into(), "video/H264".into(), "video/VP9".into()],
            audio_codecs: vec!["audio/opus".into()],
            mode: MediaMode::Auto,
        }
    }
}

/// `{ideal, max}` constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Range {
    /// Preferred value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ideal: Option<u32>,
    /// Upper bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// `MediaTrackConstraints` for video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VideoConstraints {
    /// Width.
    pub width: Range,
    /// Height.
    pub height: Range,
    /// Frame rate.
    pub frame_rate: Range,
}

/// A profile as clients use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ProfileView {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub frame_rate: u32,
    /// Sender bitrate cap in bit/s (`RTCRtpEncodingParameters.maxBitrate`).
    pub max_bitrate: u32,
    /// `getUserMedia({video: constraints})`.
    pub constraints: VideoConstraints,
}

/// `MediaTrackConstraints` for audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AudioConstraints {
    /// Echo cancellation.
    pub echo_cancellation: bool,
    /// Noise suppression.
    pub noise_suppression: bool,
    /// Automatic gain control.
    pub auto_gain_control: bool,
    /// 1 for mono.
    pub channel_count: u32,
}

/// Audio as clients use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AudioView {
    /// `audio/opus`.
    pub codec: String,
    /// `getUserMedia({audio: constraints})`.
    pub constraints: AudioConstraints,
    /// Opus DTX (`usedtx=1` in the SDP fmtp line).
    pub dtx: bool,
    /// Opus in-band FEC (`useinbandfec=1`).
    pub fec: bool,
    /// Sender bitrate cap in bit/s.
    pub max_bitrate: u32,
    /// Opus stereo.
    pub stereo: bool,
}

/// One simulcast layer: `RTCRtpEncodingParameters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Encoding {
    /// Layer id: `q` (quarter), `h` (half), `f` (full).
    pub rid: String,
    /// Downscale factor from the captured resolution.
    pub scale_resolution_down_by: u32,
    /// Bitrate cap in bit/s.
    pub max_bitrate: u32,
    /// Frame rate cap.
    pub max_framerate: u32,
}

/// Simulcast for the consultation's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SimulcastView {
    /// Whether to send layers (`addTransceiver(track, {sendEncodings: encodings})`).
    pub enabled: bool,
    /// The layers, lowest first; empty when disabled.
    pub encodings: Vec<Encoding>,
}

/// `getDisplayMedia` constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DisplayConstraints {
    /// Video limits.
    pub video: VideoConstraints,
    /// Tab/system audio: off (the microphone already carries the speaker).
    pub audio: bool,
}

/// Screen share as clients use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScreenShareView {
    /// `getDisplayMedia(constraints)`.
    pub constraints: DisplayConstraints,
    /// `track.contentHint`.
    pub content_hint: String,
    /// Sender bitrate cap in bit/s.
    pub max_bitrate: u32,
}

/// Codec preferences (`RTCRtpTransceiver.setCodecPreferences` order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CodecsView {
    /// Video MIME types, preferred first.
    pub video: Vec<String>,
    /// Audio MIME types, preferred first.
    pub audio: Vec<String>,
}

/// An `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IceServer {
    /// `stun:`/`turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `RTCConfiguration.iceTransportPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum IceTransportPolicy {
    /// Any candidate: direct when possible, relay otherwise.
    All,
    /// Relay only (hides participants' addresses from each other).
    Relay,
}

/// Everything a participant needs to start media, as `GET /api/v1/webrtc/config` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebrtcConfig {
    /// `RTCConfiguration.iceServers`.
    pub ice_servers: Vec<IceServer>,
    /// `RTCConfiguration.iceTransportPolicy`.
    pub ice_transport_policy: IceTransportPolicy,
    /// All profiles by name.
    pub quality_profiles: BTreeMap<String, ProfileView>,
    /// The profile to start with (the consultation's, or the server default).
    pub default_profile: String,
    /// Audio.
    pub audio: AudioView,
    /// Simulcast layers for `default_profile`.
    pub simulcast: SimulcastView,
    /// Screen share.
    pub screen_share: ScreenShareView,
    /// Codec preferences.
    pub codecs: CodecsView,
    /// How this consultation's media travels: `p2p`, `sfu` or `auto`.
    pub media_mode: MediaMode,
    /// When the TURN credentials inside stop working: fetch a new config before then.
    pub expires_at: DateTime<Utc>,
}

impl QualityProfile {
    /// The profile as clients use it.
    pub fn view(&self) -> ProfileView {
        ProfileView {
            width: self.width,
            height: self.height,
            frame_rate: self.frame_rate,
            max_bitrate: self.max_bitrate_kbps.saturating_mul(1000),
            constraints: VideoConstraints {
                width: Range {
                    ideal: Some(self.width),
                    max: None,
                },
                height: Range {
                    ideal: Some(self.height),
                    max: None,
                },
                frame_rate: Range {
                    ideal: Some(self.frame_rate),
                    max: Some(self.frame_rate),
                },
            },
        }
    }

    /// Simulcast layers, lowest first: full, half and quarter resolution at 100 %, 25 % and 10 %
    /// of the bitrate (the split browsers and SFUs use), dropping layers under 180 px.
    /// Profiles under 540 px send one layer.
    pub fn simulcast(&self) -> Vec<Encoding> {
        if self.height < 540 {
            return Vec::new();
        }
        let bitrate = self.max_bitrate_kbps.saturating_mul(1000);
        [("q", 4, 10), ("h", 2, 25), ("f", 1, 100)]
            .into_iter()
            .filter(|(_, scale, _)| self.height / scale >= 180)
            .map(|(rid, scale, percent)| Encoding {
                rid: rid.into(),
                scale_resolution_down_by: scale,
                max_bitrate: bitrate / 100 * percent,
                max_framerate: if scale == 4 {
                    self.frame_rate.min(15)
                } else {
                    self.frame_rate
                },
            })
            .collect()
    }
}

impl MediaPolicy {
    /// Problems with the policy, each naming the setting.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.profiles.contains_key(&self.default_profile) {
            problems.push(format!(
                "media.default_profile: {:?} is not one of media.profiles ({})",
                self.default_profile,
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for (name, p) in &self.profiles {
            let ok_name = !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok_name {
                problems.push(format!(
                    "media.profiles.{name}: names are 1–32 letters, digits, - or _"
                ));
            }
            if !(16..=7680).contains(&p.width) || !(16..=4320).contains(&p.height) {
                problems.push(format!("media.profiles.{name}: width/height out of range"));
            }
            if !(1..=120).contains(&p.frame_rate) {
                problems.push(format!("media.profiles.{name}.frame_rate: 1–120"));
            }
            if !(30..=50_000).contains(&p.max_bitrate_kbps) {
                problems.push(format!("media.profiles.{name}.max_bitrate_kbps: 30–50000"));
            }
        }
        if !(6..=510).contains(&self.audio.max_bitrate_kbps) {
            problems.push("media.audio.max_bitrate_kbps: Opus takes 6–510".into());
        }
        if !["detail", "text", "motion", ""].contains(&self.screen_share.content_hint.as_str()) {
            problems.push("media.screen_share.content_hint: detail, text, motion or empty".into());
        }
        problems
    }

    /// The configuration for one participant: `profile` and `media_mode` are the
    /// consultation's (`None`: the defaults), `ice_servers` carry that participant's credentials.
    pub fn config(
        &self,
        profile: Option<&str>,
        media_mode: Option<MediaMode>,
        ice_servers: Vec<IceServer>,
        ice_transport_policy: IceTransportPolicy,
        expires_at: DateTime<Utc>,
    ) -> WebrtcConfig {
        let name = profile
            .filter(|p| self.profiles.contains_key(*p))
            .unwrap_or(&self.default_profile)
            .to_owned();
        let encodings = match (self.simulcast, self.profiles.get(&name)) {
            (true, Some(p)) => p.simulcast(),
            _ => Vec::new(),
        };
        let share = &self.screen_share;
        WebrtcConfig {
            ice_servers,
            ice_transport_policy,
            quality_profiles: self
                .profiles
                .iter()
                .map(|(n, p)| (n.clone(), p.view()))
                .collect(),
            default_profile: name,
            audio: AudioView {
                codec: self
                    .audio_codecs
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "audio/opus".into()),
                constraints: AudioConstraints {
                    echo_cancellation: self.audio.echo_cancellation,
                    noise_suppression: self.audio.noise_suppression,
                    auto_gain_control: self.audio.auto_gain_control,
                    channel_count: if self.audio.stereo { 2 } else { 1 },
                },
                dtx: self.audio.dtx,
                fec: self.audio.fec,
                max_bitrate: self.audio.max_bitrate_kbps.saturating_mul(1000),
                stereo: self.audio.stereo,
            },
            simulcast: SimulcastView {
                enabled: !encodings.is_empty(),
                encodings,
            },
            screen_share: ScreenShareView {
                constraints: DisplayConstraints {
                    video: VideoConstraints {
                        width: Range {
                            ideal: None,
                            max: Some(share.max_width),
                        },
                        height: Range {
                            ideal: None,
                            max: Some(share.max_height),
                        },
                        frame_rate: Range {
                            ideal: None,
                            max: Some(share.max_frame_rate),
                        },
                    },
                    audio: false,
                },
                content_hint: share.content_hint.clone(),
                max_bitrate: share.max_bitrate_kbps.saturating_mul(1000),
            },
            codecs: CodecsView {
                video: self.video_codecs.clone(),
                audio: self.audio_codecs.clone(),
            },
            media_mode: media_mode.unwrap_or(self.mode),
            expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expires() -> DateTime<Utc> {
        "2026-11-25T13:00:00Z".parse().unwrap()
    }

    #[test]
    fn seed_profiles() {
        let p = MediaPolicy::default();
        let view = |n: &str| p.profiles[n].view();
        assert_eq!(
            (
                view("low").width,
                view("low").height,
                view("low").frame_rate,
                view("low").max_bitrate
            ),
            (480, 360, 15, 300_000)
        );
        assert_eq!(
            (
                view("medium").width,
                view("medium").height,
                view("medium").max_bitrate
            ),
            (1280, 720, 1_000_000)
        );
        assert_eq!(
            (
                view("high").width,
                view("high").height,
                view("high").max_bitrate
            ),
            (1920, 1080, 2_500_000)
        );
        assert!(p.problems().is_empty());
    }

    #[test]
    fn simulcast_layers_follow_the_profile() {
        let p = MediaPolicy::default();
        let high = p.profiles["high"].simulcast();
        let rids: Vec<_> = high
            .iter()
            .map(|e| (e.rid.as_str(), e.scale_resolution_down_by, e.max_bitrate))
            .collect();
        assert_eq!(
            rids,
            [("q", 4, 250_000), ("h", 2, 625_000), ("f", 1, 2_500_000)]
        );
        assert_eq!(high[0].max_framerate, 15);
        let medium = p.profiles["medium"].simulcast();
        assert_eq!(
            medium.iter().map(|e| e.rid.as_str()).collect::<Vec<_>>(),
            ["q", "h", "f"]
        );
        assert!(
            p.profiles["low"].simulcast().is_empty(),
            "360p sends one layer"
        );
    }

    #[test]
    fn config_uses_the_consultation_profile_or_the_default() {
        let p = MediaPolicy::default();
        let c = p.config(
            Some("low"),
            None,
            vec![],
            IceTransportPolicy::All,
            expires(),
        );
        assert_eq!(c.default_profile, "low");
        assert!(!c.simulcast.enabled && c.simulcast.encodings.is_empty());
        let c = p.config(
            Some("gone"),
            Some(MediaMode::Sfu),
            vec![],
            IceTransportPolicy::Relay,
            expires(),
        );
        assert_eq!(c.default_profile, "medium");
        assert!(c.simulcast.enabled);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["iceTransportPolicy"], "relay");
        assert_eq!(json["mediaMode"], "sfu", "the consultation's mode");
        let c = p.config(None, None, vec![], IceTransportPolicy::All, expires());
        assert_eq!(c.media_mode, MediaMode::Auto, "the server's default");
        assert_eq!(json["audio"]["constraints"]["echoCancellation"], true);
        assert_eq!(json["audio"]["maxBitrate"], 32_000);
        assert_eq!(
            json["screenShare"]["constraints"]["video"]["frameRate"]["max"],
            15
        );
        assert_eq!(json["screenShare"]["contentHint"], "detail");
        assert_eq!(
            json["simulcast"]["encodings"][2]["scaleResolutionDownBy"],
            1
        );
        assert_eq!(
            json["qualityProfiles"]["high"]["constraints"]["width"]["ideal"],
            1920
        );
    }

    #[test]
    fn policy_problems_name_the_setting() {
        let mut p = MediaPolicy {
            default_profile: "ultra".into(),
            ..Default::default()
        };
        p.profiles.insert(
            "bad name".into(),
            QualityProfile {
                width: 1,
                height: 1,
                frame_rate: 0,
                max_bitrate_kbps: 1,
            },
        );
        let problems = p.problems().join("\n");
        assert!(problems.contains("media.default_profile"), "{problems}");
        assert!(problems.contains("media.profiles.bad name"), "{problems}");
    }
}
