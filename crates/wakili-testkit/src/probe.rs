//! Media files read back as a player would: ffprobe's view of a WebM (Debian's `ffmpeg`,
//! installed by `scripts/install-test-tools`).

use std::{path::Path, process::Command};

/// Runs ffprobe on `path` with `entries` (`-show_entries`), CSV without section names; its lines.
///
/// # Panics
/// When ffprobe is missing or fails on the file.
fn ffprobe(path: &Path, entries: &str) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries, "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/install-test-tools installs ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_owned())
        .collect()
}

/// `bytes` in a temporary file, for ffprobe.
fn on_disk(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(file.path(), bytes).expect("the temporary file is written");
    file
}

/// Every packet's presentation time (seconds) in the WebM file at `path`, in file order.
pub fn packet_times_at(path: &Path) -> Vec<f64> {
    ffprobe(path, "packet=pts_time")
        .iter()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// [`packet_times_at`] of a file held in memory.
pub fn packet_times(webm: &[u8]) -> Vec<f64> {
    packet_times_at(on_disk(webm).path())
}

/// `(codec, start time in seconds)` of every stream of a WebM file held in memory.
pub fn streams(webm: &[u8]) -> Vec<(String, f64)> {
    ffprobe(on_disk(webm).path(), "stream=codec_name,start_time")
        .iter()
        .filter_map(|l| {
            let (codec, start) = l.split_once(',')?;
            Some((codec.to_owned(), start.parse().unwrap_or(0.0)))
        })
        .collect()
}

/// The longest gap between two consecutive packets, seconds.
pub fn longest_gap(times: &[f64]) -> f64 {
    times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}
