//! The `[web]` section: the reference web client served at `/c/{consultationId}`.

use serde::{Deserialize, Serialize};

/// The reference web client (`[web]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSettings {
    /// Serve the web client at `/c/{consultationId}` and its files under `/web/`.
    pub enabled: bool,
    /// Development only: serve a login page at `/login` and `POST /api/v1/dev/token`, which mint a
    /// token for any user and role without checking who asks (flag `--dev`; needs HS256).
    pub dev_login: bool,
    /// Seconds between the client's `quality:report`s.
    pub quality_report_seconds: u32,
    /// MediaRecorder timeslice: seconds of media per uploaded chunk.
    pub recording_chunk_seconds: u32,
}

impl Default for WebSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            dev_login: false,
            quality_report_seconds: 5,
            recording_chunk_seconds: 2,
        }
    }
}

impl WebSettings {
    /// Problems with these settings, one message each.
    pub fn problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if !(1..=60).contains(&self.quality_report_seconds) {
            bad.push("web.quality_report_seconds: must be between 1 and 60".to_owned());
        }
        if !(1..=60).contains(&self.recording_chunk_seconds) {
            bad.push("web.recording_chunk_seconds: must be between 1 and 60".to_owned());
        }
        bad
    }
}
