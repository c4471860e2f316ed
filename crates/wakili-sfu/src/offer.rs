//! What a participant's offer publishes, read from the session str0m built from it, and the
//! checks a join must pass.

use std::collections::BTreeSet;

use str0m::{
    Rtc,
    media::{Mid, Rids},
};

use crate::{Codecs, MediaKind, Rid, SfuError};

/// One m-line on which the participant sends media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Publication {
    /// The m-line.
    pub(crate) mid: Mid,
    /// Audio or video.
    pub(crate) kind: MediaKind,
    /// Simulcast layers, low to high; empty without simulcast.
    pub(crate) layers: Vec<Rid>,
}

/// The m-lines of `sdp` (the offer `rtc` accepted) on which the participant sends media.
///
/// Refuses an offer whose media lines all lack a supported codec, one publishing more than
/// `max_tracks` tracks, and simulcast layers other than `q`, `h`, `f`. An m-line the client
/// only receives on is accepted and left unused (the SFU sends on m-lines it offers itself),
/// as is a single m-line without a supported codec next to usable ones (str0m rejects it in the
/// answer, as a browser would).
pub(crate) fn publications(
    rtc: &Rtc,
    sdp: &str,
    codecs: &Codecs,
    max_tracks: usize,
) -> Result<Vec<Publication>, SfuError> {
    let mids: BTreeSet<Mid> = sdp
        .lines()
        .filter_map(|line| line.trim().strip_prefix("a=mid:"))
        .map(|mid| Mid::from(mid.trim()))
        .collect();
    let mut media_lines = 0;
    let mut usable = 0;
    let mut published = Vec::new();
    for mid in mids {
        // No Media: the data channel's m=application line.
        let Some(media) = rtc.media(mid) else {
            continue;
        };
        media_lines += 1;
        if media.disabled() {
            continue;
        }
        usable += 1;
        if !media.direction().is_receiving() {
            continue;
        }
        let kind = if media.kind().is_audio() {
            MediaKind::Audio
        } else {
            MediaKind::Video
        };
        let mut layers = Vec::new();
        if let Rids::Specific(rids) = media.rids_rx() {
            for rid in rids {
                let layer = Rid::parse(rid).filter(|_| kind == MediaKind::Video);
                layers.push(layer.ok_or_else(|| SfuError::UnsupportedLayer(rid.to_string()))?);
            }
        }
        layers.sort_unstable();
        layers.dedup();
        published.push(Publication { mid, kind, layers });
    }
    if media_lines > 0 && usable == 0 {
        return Err(SfuError::NoSupportedCodec {
            accepted: accepted(codecs),
        });
    }
    if published.len() > max_tracks {
        return Err(SfuError::TooManyTracks {
            offered: published.len(),
            max: max_tracks,
        });
    }
    Ok(published)
}

/// The accepted codecs, for error messages.
fn accepted(codecs: &Codecs) -> String {
    let optional = [
        (codecs.opus, "Opus"),
        (codecs.vp9, "VP9"),
        (codecs.h264, "H.264"),
        (codecs.av1, "AV1"),
    ];
    let mut names = vec!["VP8"];
    names.extend(optional.iter().filter(|(on, _)| *on).map(|(_, name)| *name));
    names.join(", ")
}

/// Checks a room or participant name (see [`SfuError::InvalidName`]).
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), SfuError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(SfuError::InvalidName {
            what,
            name: name.chars().take(80).collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_tokens() {
        assert!(check_name("room", "consultation-42_a.b").is_ok());
        for bad in ["", "has space", "émile", &"x".repeat(65), "a/b"] {
            assert!(check_name("participant", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_codec_list_names_what_is_enabled() {
        let mut codecs = Codecs::default();
        assert_eq!(accepted(&codecs), "VP8, Opus, VP9, H.264, AV1");
        codecs.vp9 = false;
        codecs.av1 = false;
        assert_eq!(accepted(&codecs), "VP8, Opus, H.264");
    }
}
