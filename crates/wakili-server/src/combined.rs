//! The one file a person watches: a session recording's tracks remuxed into one WebM as it is
//! downloaded, without transcoding (`wakili_mux::merge_live`), each track placed at its start
//! offset. It is a derivative, made again on every download from the track files, which stay
//! the evidence (the session's manifest says so).

use std::io::{Read, Write};

use bytes::Bytes;
use tokio::sync::mpsc;
use wakili_core::recording::RecordingStatus;
use wakili_db::models::Recording;
use wakili_mux::{MergeConfig, MergeInput};
use wakili_storage::{RecordingStore, StorageError};

/// Pieces of the combined file handed to the HTTP body.
const PIECE_BYTES: usize = 64 * 1024;

/// Starts remuxing `session`'s finalized tracks; the file arrives on the returned channel (an
/// error ends it early, as a download would end).
pub(crate) async fn combined(
    recordings: &RecordingStore,
    session: &Recording,
) -> Result<mpsc::Receiver<std::io::Result<Bytes>>, StorageError> {
    let tracks: Vec<Recording> = recordings
        .tracks(&session.id)
        .await?
        .into_iter()
        .filter(|t| {
            matches!(
                t.status,
                RecordingStatus::Completed | RecordingStatus::Incomplete
            )
        })
        .collect();
    let earliest = tracks
        .iter()
        .filter_map(|t| t.track.as_ref().map(|m| m.start_offset_ms))
        .min()
        .unwrap_or(0);
    let mut inputs = Vec::with_capacity(tracks.len());
    for track in &tracks {
        let Some(meta) = &track.track else { continue };
        let media = recordings.media(track, None).await?;
        inputs.push(MergeInput {
            offset_ms: u64::try_from(meta.start_offset_ms - earliest).unwrap_or(0),
            name: format!("{} {} ({})", meta.label, meta.user_id, meta.role.as_str()),
            reader: Incoming {
                body: media.body,
                piece: Bytes::new(),
            },
        });
    }
    let (tx, rx) = mpsc::channel(4);
    let id = session.id.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Outgoing {
            tx: tx.clone(),
            buf: Vec::with_capacity(PIECE_BYTES),
        };
        let merged = wakili_mux::merge_live(inputs, &mut out, &MergeConfig::default())
            .and_then(|_| out.flush().map_err(wakili_mux::MergeError::Output));
        if let Err(error) = merged {
            tracing::error!(recording_id = %id, %error, "combined file not completed");
            let _ = tx.blocking_send(Err(std::io::Error::other(error.to_string())));
        }
    });
    Ok(rx)
}

/// A track's decrypted media as a blocking reader (on the blocking pool).
struct Incoming {
    body: mpsc::Receiver<Result<Bytes, StorageError>>,
    piece: Bytes,
}

impl Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.piece.is_empty() {
            match self.body.blocking_recv() {
                Some(Ok(piece)) => self.piece = piece,
                Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.piece.len());
        buf[..n].copy_from_slice(&self.piece.split_to(n));
        Ok(n)
    }
}

/// The combined file to the HTTP body, in pieces.
struct Outgoing {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for Outgoing {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE_BYTES {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(PIECE_BYTES),
        ));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "download ended"))
    }
}
