//! How a consultation's media travels: browser to browser, or through the embedded SFU.
//!
//! A consultation is booked with a [`MediaMode`] (the booking's, else the server's `media.mode`);
//! [`MediaMode::topology`] turns it into the [`Topology`] the call uses at any moment, from who is
//! present and whether the server records.

use serde::{Deserialize, Serialize};

/// The media mode a consultation is booked with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Browser to browser, always (two participants on good networks; no server recording).
    P2p,
    /// Through the SFU, always.
    Sfu,
    /// Browser to browser for two participants; the SFU from the third participant on, or
    /// whenever the server must see the media (it records, or an observer must be kept from
    /// sending).
    #[default]
    Auto,
}

named!(MediaMode, field "mediaMode", "media mode" {
    P2p => "p2p",
    Sfu => "sfu",
    Auto => "auto",
});

/// How the call's media travels right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Each participant's browser sends to the other's.
    P2p,
    /// Each participant sends once to the server, which forwards.
    Sfu,
}

/// From this many participants present on, `auto` uses the SFU.
pub const SFU_FROM_PARTICIPANTS: usize = 3;

impl MediaMode {
    /// The topology for `present` participants, where `server_must_see` says whether the server
    /// must carry the media (it records, or a listen-only observer is present). `p2p` stays peer
    /// to peer whatever happens (a server recording or an observer needs `sfu` or `auto`).
    pub fn topology(self, present: usize, server_must_see: bool) -> Topology {
        match self {
            Self::P2p => Topology::P2p,
            Self::Sfu => Topology::Sfu,
            Self::Auto if present >= SFU_FROM_PARTICIPANTS || server_must_see => Topology::Sfu,
            Self::Auto => Topology::P2p,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn auto_is_peer_to_peer_for_two_and_the_sfu_from_the_third_participant_on() {
        assert_eq!(MediaMode::Auto.topology(1, false), Topology::P2p);
        assert_eq!(MediaMode::Auto.topology(2, false), Topology::P2p);
        assert_eq!(MediaMode::Auto.topology(3, false), Topology::Sfu);
        assert_eq!(MediaMode::Auto.topology(8, false), Topology::Sfu);
    }

    #[test]
    fn auto_uses_the_sfu_whenever_the_server_records() {
        assert_eq!(MediaMode::Auto.topology(2, true), Topology::Sfu);
    }

    #[test]
    fn fixed_modes_ignore_the_head_count() {
        for present in [1, 2, 3, 8] {
            assert_eq!(MediaMode::P2p.topology(present, true), Topology::P2p);
            assert_eq!(MediaMode::Sfu.topology(present, false), Topology::Sfu);
        }
    }

    #[test]
    fn modes_round_trip_through_their_names_and_unknown_ones_are_refused() {
        for mode in [MediaMode::P2p, MediaMode::Sfu, MediaMode::Auto] {
            assert_eq!(mode.as_str().parse::<MediaMode>().unwrap(), mode);
            assert_eq!(
                serde_json::to_value(mode).unwrap(),
                serde_json::json!(mode.as_str())
            );
        }
        let err = "mesh".parse::<MediaMode>().unwrap_err();
        assert!(err.to_string().starts_with("mediaMode: unknown media mode"));
        assert_eq!(MediaMode::default(), MediaMode::Auto);
    }
}
