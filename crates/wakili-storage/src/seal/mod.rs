//! Keys and encryption of recordings.
//!
//! Each recording has its own random [`DataKey`], stored only wrapped by a [`MasterKey`] (see
//! [`Keyring`]); destroying the wrapped key crypto-shreds the recording.
//!
//! Media is encrypted with AES-256-GCM in the STREAM construction ([`StreamBE32`]: a 7-byte
//! nonce prefix ‖ a 32-bit big-endian position ‖ a last-block flag). An uploaded chunk `seq` is
//! cut into [`SEGMENT_BYTES`] segments; segment `i` of chunk `seq` is sealed at position
//! `(seq << 12) | i` with the last-block flag clear, and the recording id as associated data.
//! So every chunk (and every segment) decrypts on its own, which serves HTTP ranges and lets
//! chunks arrive out of order, while a segment moved to another position, taken from another
//! recording, or altered by one bit fails authentication.
//!
//! A finished recording is closed by a **terminator**: an empty plaintext sealed at position
//! `chunk_count << 12` with the last-block flag set. Dropping trailing chunks (or the
//! terminator) is detected because no valid terminator exists for the shortened count.
//! Segments are all sealed with the flag clear, so dropping the *trailing segments of one
//! chunk* is not visible to the cipher alone: the chunk's plaintext size and SHA-256 (in the
//! database and the signed manifest) catch that.
//!
//! Sealing is deterministic: the same bytes at the same position give the same ciphertext, so
//! retrying an upload with identical bytes is safe. The service must never seal *different*
//! bytes at one position (accept a chunk `seq` once, or only an identical retry): that would
//! reuse a GCM nonce, which leaks the XOR of the plaintexts and allows forgeries.

mod keys;

use std::fmt;

use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm::{Aes256Gcm, aead::Buffer};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{CryptoError, Result, StorageError};

pub use keys::{DataKey, Keyring, MasterKey, WrappedKey};

/// Plaintext bytes per STREAM segment (the last segment of a chunk may be shorter).
pub const SEGMENT_BYTES: usize = 65_536;
/// Bytes of GCM tag appended to every sealed segment.
pub const TAG_BYTES: usize = 16;
/// Bytes of one full sealed segment (plaintext plus tag).
pub const SEALED_SEGMENT_BYTES: usize = SEGMENT_BYTES + TAG_BYTES;
/// Bits of the STREAM position that number the segments inside a chunk.
pub const SEGMENT_BITS: u32 = 12;
/// Segments a chunk can hold (`2^12`).
pub const MAX_SEGMENTS: u32 = 1 << SEGMENT_BITS;
/// Largest plaintext chunk: 4096 segments of 64 KiB, i.e. 256 MiB.
pub const MAX_CHUNK_BYTES: u64 = MAX_SEGMENTS as u64 * SEGMENT_BYTES as u64;
/// Most chunks a recording can have; chunk sequence numbers are `0..MAX_CHUNKS`.
///
/// The 20 chunk bits of a position could number `2^20` chunks, but the terminator of a
/// recording of `n` chunks sits at chunk position `n`, so the last one is kept for it.
pub const MAX_CHUNKS: u32 = (1 << (32 - SEGMENT_BITS)) - 1;
/// Length of the random nonce prefix of a recording.
pub const NONCE_PREFIX_BYTES: usize = 7;

/// Fills `out` from the thread-local CSPRNG (ChaCha, seeded from the OS).
fn random_bytes(out: &mut [u8]) {
    rand::rng().fill_bytes(out);
}

/// The first 16 hex digits of the SHA-256 of `parts` concatenated: a public key id.
fn short_id(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    hex::encode(&hash.finalize()[..8])
}

// ---------------------------------------------------------------------------------------------
// Segment arithmetic

/// The STREAM position of segment `segment` of chunk `seq`.
pub fn position(seq: u32, segment: u32) -> Result<u32> {
    if seq >= MAX_CHUNKS {
        return Err(CryptoError::ChunkOutOfRange(seq.into()).into());
    }
    if segment >= MAX_SEGMENTS {
        return Err(CryptoError::ChunkTooLarge {
            seq,
            limit: MAX_CHUNK_BYTES,
        }
        .into());
    }
    Ok((seq << SEGMENT_BITS) | segment)
}

/// How many segments a chunk of `plaintext_len` bytes is cut into (0 for 0).
pub fn segment_count(plaintext_len: u64) -> u64 {
    plaintext_len.div_ceil(SEGMENT_BYTES as u64)
}

/// Plaintext bytes in segment `segment` of a chunk of `plaintext_len` bytes (0 past its end).
pub fn segment_plaintext_len(plaintext_len: u64, segment: u64) -> u64 {
    let start = segment.saturating_mul(SEGMENT_BYTES as u64);
    plaintext_len
        .saturating_sub(start)
        .min(SEGMENT_BYTES as u64)
}

/// The byte range of segment `segment` inside the sealed object of a chunk of
/// `plaintext_len` plaintext bytes (empty past its end).
pub fn segment_object_range(plaintext_len: u64, segment: u64) -> std::ops::Range<u64> {
    let start = segment.saturating_mul(SEALED_SEGMENT_BYTES as u64);
    match segment_plaintext_len(plaintext_len, segment) {
        0 => start..start,
        len => start..start + len + TAG_BYTES as u64,
    }
}

/// Size of the sealed object of a chunk of `plaintext_len` bytes.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    plaintext_len + segment_count(plaintext_len) * TAG_BYTES as u64
}

/// The plaintext size behind a sealed object of `ciphertext_len` bytes, or `None` if no
/// non-empty chunk seals to that size.
pub fn plaintext_len(ciphertext_len: u64) -> Option<u64> {
    let full = ciphertext_len / SEALED_SEGMENT_BYTES as u64;
    let rest = ciphertext_len % SEALED_SEGMENT_BYTES as u64;
    let len = match rest {
        0 if full > 0 => full * SEGMENT_BYTES as u64,
        rest if rest > TAG_BYTES as u64 => full * SEGMENT_BYTES as u64 + rest - TAG_BYTES as u64,
        _ => return None,
    };
    (len <= MAX_CHUNK_BYTES).then_some(len)
}

// ---------------------------------------------------------------------------------------------
// STREAM

/// A fresh random nonce prefix for a new recording (stored beside its wrapped key).
pub fn random_nonce_prefix() -> [u8; NONCE_PREFIX_BYTES] {
    let mut prefix = [0u8; NONCE_PREFIX_BYTES];
    random_bytes(&mut prefix);
    prefix
}

/// The STREAM cipher of one recording: its data key, nonce prefix and id (the associated data
/// of every segment). Seals and opens any segment independently.
pub struct RecordingCipher {
    stream: StreamBE32<Aes256Gcm>,
    recording_id: String,
}

impl RecordingCipher {
    /// The cipher of recording `recording_id` under `key` and its `nonce_prefix`.
    pub fn new(key: &DataKey, nonce_prefix: [u8; NONCE_PREFIX_BYTES], recording_id: &str) -> Self {
        Self {
            stream: StreamBE32::from_aead(key.aes(), &nonce_prefix.into()),
            recording_id: recording_id.to_owned(),
        }
    }

    /// The recording this cipher belongs to.
    pub fn recording_id(&self) -> &str {
        &self.recording_id
    }

    /// Starts sealing chunk `seq`; see [`ChunkSealer`].
    pub fn chunk_sealer(&self, seq: u32) -> Result<ChunkSealer<'_>> {
        ChunkSealer::new(self, seq)
    }

    /// Seals a whole chunk held in memory: its sealed object and plaintext digest.
    pub fn seal_chunk(&self, seq: u32, plaintext: &[u8]) -> Result<(Vec<u8>, ChunkDigest)> {
        let mut sealer = self.chunk_sealer(seq)?;
        let mut out = Vec::with_capacity(
            usize::try_from(ciphertext_len(plaintext.len() as u64)).unwrap_or(0),
        );
        sealer.push(plaintext, &mut out)?;
        let digest = sealer.finish(&mut out)?;
        Ok((out, digest))
    }

    fn seal_in_place(&self, position: u32, last: bool, buf: &mut dyn Buffer) -> Result<()> {
        self.stream
            .encrypt_in_place(position, last, self.recording_id.as_bytes(), buf)
            .map_err(|_| StorageError::Crypto(CryptoError::Seal))
    }

    /// Opens segment `segment` of chunk `seq` in place: `buf` holds the sealed segment
    /// (plaintext length + 16 bytes) and is left holding its plaintext.
    pub fn open_segment(&self, seq: u32, segment: u32, buf: &mut Vec<u8>) -> Result<()> {
        let tampered = || StorageError::Crypto(CryptoError::Tampered { seq, segment });
        let position = position(seq, segment).map_err(|_| tampered())?;
        self.stream
            .decrypt_in_place(position, false, self.recording_id.as_bytes(), buf)
            .map_err(|_| tampered())
    }

    /// Opens a whole sealed chunk object. This authenticates every segment at its position
    /// but cannot tell whether trailing segments were cut off: compare the plaintext length
    /// with the chunk's recorded size.
    pub fn open_chunk(&self, seq: u32, ciphertext: &[u8]) -> Result<Vec<u8>> {
        if ciphertext.is_empty() {
            return Err(CryptoError::Tampered { seq, segment: 0 }.into());
        }
        let mut plaintext = Vec::with_capacity(ciphertext.len());
        let mut buf = Vec::with_capacity(SEALED_SEGMENT_BYTES);
        for (segment, sealed) in (0u32..).zip(ciphertext.chunks(SEALED_SEGMENT_BYTES)) {
            buf.clear();
            buf.extend_from_slice(sealed);
            self.open_segment(seq, segment, &mut buf)?;
            plaintext.extend_from_slice(&buf);
        }
        Ok(plaintext)
    }

    /// Seals the terminator that closes a recording of `chunk_count` chunks (16 bytes).
    pub fn seal_terminator(&self, chunk_count: u32) -> Result<Vec<u8>> {
        let position = terminator_position(chunk_count)?;
        let mut buf = Vec::with_capacity(TAG_BYTES);
        self.seal_in_place(position, true, &mut buf)?;
        Ok(buf)
    }

    /// Checks that `bytes` is this recording's terminator for exactly `chunk_count` chunks.
    pub fn open_terminator(&self, chunk_count: u32, bytes: &[u8]) -> Result<()> {
        let bad = || StorageError::Crypto(CryptoError::BadTerminator { chunk_count });
        let position = terminator_position(chunk_count).map_err(|_| bad())?;
        let mut buf = bytes.to_vec();
        self.stream
            .decrypt_in_place(position, true, self.recording_id.as_bytes(), &mut buf)
            .map_err(|_| bad())?;
        if buf.is_empty() { Ok(()) } else { Err(bad()) }
    }
}

impl fmt::Debug for RecordingCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingCipher")
            .field("recording_id", &self.recording_id)
            .finish_non_exhaustive()
    }
}

fn terminator_position(chunk_count: u32) -> Result<u32> {
    if chunk_count > MAX_CHUNKS {
        return Err(CryptoError::ChunkOutOfRange(chunk_count.into()).into());
    }
    Ok(chunk_count << SEGMENT_BITS)
}

/// Size and SHA-256 of a chunk's plaintext, as recorded in the database and the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkDigest {
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
}

impl ChunkDigest {
    /// The SHA-256 as lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Seals one uploaded chunk as its bytes stream in: buffers up to a full segment, emits sealed
/// segments, and hashes the plaintext on the way.
pub struct ChunkSealer<'a> {
    cipher: &'a RecordingCipher,
    seq: u32,
    segment: u32,
    buf: Vec<u8>,
    size: u64,
    hash: Sha256,
}

impl<'a> ChunkSealer<'a> {
    /// Starts sealing chunk `seq` of `cipher`'s recording.
    pub fn new(cipher: &'a RecordingCipher, seq: u32) -> Result<Self> {
        position(seq, 0)?;
        Ok(Self {
            cipher,
            seq,
            segment: 0,
            buf: Vec::with_capacity(SEALED_SEGMENT_BYTES),
            size: 0,
            hash: Sha256::new(),
        })
    }

    /// Plaintext bytes pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Takes the next plaintext bytes, appending every segment they complete, sealed, to
    /// `out`. Fails, consuming nothing, once the chunk would exceed [`MAX_CHUNK_BYTES`].
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let new_size = self.size.saturating_add(bytes.len() as u64);
        if new_size > MAX_CHUNK_BYTES {
            return Err(CryptoError::ChunkTooLarge {
                seq: self.seq,
                limit: MAX_CHUNK_BYTES,
            }
            .into());
        }
        self.size = new_size;
        self.hash.update(bytes);
        while !bytes.is_empty() {
            let room = SEGMENT_BYTES - self.buf.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buf.extend_from_slice(now);
            bytes = later;
            if self.buf.len() == SEGMENT_BYTES {
                self.seal_buffered(out)?;
            }
        }
        Ok(())
    }

    /// Seals what is buffered as the next segment and appends it to `out`.
    fn seal_buffered(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let position = position(self.seq, self.segment)?;
        self.cipher.seal_in_place(position, false, &mut self.buf)?;
        out.extend_from_slice(&self.buf);
        self.buf.clear();
        self.segment += 1;
        Ok(())
    }

    /// Seals the final partial segment into `out` and returns the plaintext's digest.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<ChunkDigest> {
        if self.size == 0 {
            return Err(CryptoError::EmptyChunk.into());
        }
        if !self.buf.is_empty() {
            self.seal_buffered(out)?;
        }
        Ok(ChunkDigest {
            size: self.size,
            sha256: self.hash.finalize().into(),
        })
    }
}

impl fmt::Debug for ChunkSealer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkSealer")
            .field("seq", &self.seq)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const RID: &str = "rec-0192";

    fn cipher() -> RecordingCipher {
        RecordingCipher::new(&DataKey::from_bytes([7; 32]), [1, 2, 3, 4, 5, 6, 7], RID)
    }

    fn data(len: usize, salt: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 8) as u8)
            .collect()
    }

    #[test]
    fn chunks_round_trip_at_segment_boundaries() {
        let c = cipher();
        for (seq, len) in [
            (0u32, 1usize),
            (1, 65_535),
            (2, 65_536),
            (3, 65_537),
            (4, 200_000),
        ] {
            let plain = data(len, seq as u8);
            let (sealed, digest) = c.seal_chunk(seq, &plain).unwrap();
            assert_eq!(sealed.len() as u64, ciphertext_len(len as u64));
            assert_eq!(plaintext_len(sealed.len() as u64), Some(len as u64));
            assert_eq!(digest.size, len as u64);
            assert_eq!(digest.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));
            assert_eq!(c.open_chunk(seq, &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn streaming_in_odd_pieces_matches_one_push() {
        let c = cipher();
        let plain = data(200_000, 9);
        let (whole, digest) = c.seal_chunk(5, &plain).unwrap();
        let mut sealer = c.chunk_sealer(5).unwrap();
        let mut out = Vec::new();
        for piece in plain.chunks(7_777) {
            sealer.push(piece, &mut out).unwrap();
            // Only whole sealed segments ever leave the sealer.
            assert_eq!(out.len() % SEALED_SEGMENT_BYTES, 0);
        }
        assert_eq!(sealer.finish(&mut out).unwrap(), digest);
        assert_eq!(out, whole);
    }

    #[test]
    fn each_chunk_decrypts_alone_with_a_fresh_cipher() {
        let sealed = cipher().seal_chunk(42, &data(70_000, 1)).unwrap().0;
        assert_eq!(cipher().open_chunk(42, &sealed).unwrap(), data(70_000, 1));
    }

    #[test]
    fn sealing_is_deterministic_per_position() {
        let c = cipher();
        let plain = data(1000, 3);
        assert_eq!(
            c.seal_chunk(3, &plain).unwrap().0,
            c.seal_chunk(3, &plain).unwrap().0
        );
        assert_ne!(
            c.seal_chunk(3, &plain).unwrap().0,
            c.seal_chunk(4, &plain).unwrap().0
        );
    }

    #[test]
    fn empty_and_oversized_chunks_are_refused() {
        let c = cipher();
        assert!(matches!(
            c.seal_chunk(0, &[]),
            Err(StorageError::Crypto(CryptoError::EmptyChunk))
        ));
        // Sealing 256 MiB is slow in debug builds: start the sealer near its limit instead,
        // as if 4095 full segments had already been emitted.
        let mut sealer = c.chunk_sealer(0).unwrap();
        sealer.size = MAX_CHUNK_BYTES - SEGMENT_BYTES as u64;
        sealer.segment = MAX_SEGMENTS - 1;
        let mut out = Vec::new();
        sealer
            .push(&vec![0u8; SEGMENT_BYTES - 1], &mut out)
            .unwrap();
        assert!(out.is_empty());
        assert!(matches!(
            sealer.push(&[0, 0], &mut out),
            Err(StorageError::Crypto(CryptoError::ChunkTooLarge {
                seq: 0,
                ..
            }))
        ));
        assert!(out.is_empty());
        sealer.push(&[0], &mut out).unwrap();
        assert_eq!(sealer.size(), MAX_CHUNK_BYTES);
        assert_eq!(out.len(), SEALED_SEGMENT_BYTES);
        assert!(matches!(
            sealer.push(&[0], &mut out),
            Err(StorageError::Crypto(CryptoError::ChunkTooLarge { .. }))
        ));
        // A chunk of exactly the maximum still finishes; its last segment is number 4095.
        assert_eq!(sealer.finish(&mut out).unwrap().size, MAX_CHUNK_BYTES);
        let mut last = out[..SEALED_SEGMENT_BYTES].to_vec();
        c.open_segment(0, MAX_SEGMENTS - 1, &mut last).unwrap();
        assert!(matches!(
            c.chunk_sealer(MAX_CHUNKS),
            Err(StorageError::Crypto(CryptoError::ChunkOutOfRange(_)))
        ));
        assert!(c.chunk_sealer(MAX_CHUNKS - 1).is_ok());
    }

    #[test]
    fn any_flipped_byte_is_tampering() {
        let c = cipher();
        let sealed = c.seal_chunk(1, &data(65_600, 4)).unwrap().0;
        // Every byte of the short segment, and a spread of the full one.
        let positions = (0..sealed.len()).filter(|i| i % 257 == 0 || *i >= SEALED_SEGMENT_BYTES);
        for i in positions {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let segment = (i / SEALED_SEGMENT_BYTES) as u32;
            assert!(
                matches!(c.open_chunk(1, &bad), Err(StorageError::Crypto(CryptoError::Tampered { seq: 1, segment: s })) if s == segment),
                "byte {i}"
            );
        }
    }

    #[test]
    fn reordered_segments_and_chunks_are_tampering() {
        let c = cipher();
        let sealed = c.seal_chunk(0, &data(3 * SEGMENT_BYTES, 5)).unwrap().0;
        let mut swapped = sealed.clone();
        let (a, b) = swapped.split_at_mut(SEALED_SEGMENT_BYTES);
        a.swap_with_slice(&mut b[..SEALED_SEGMENT_BYTES]);
        assert!(matches!(
            c.open_chunk(0, &swapped),
            Err(StorageError::Crypto(CryptoError::Tampered {
                seq: 0,
                segment: 0
            }))
        ));

        let first = c.seal_chunk(0, &data(100, 1)).unwrap().0;
        let second = c.seal_chunk(1, &data(100, 1)).unwrap().0;
        assert!(matches!(
            c.open_chunk(1, &first),
            Err(StorageError::Crypto(CryptoError::Tampered { seq: 1, .. }))
        ));
        assert!(matches!(
            c.open_chunk(0, &second),
            Err(StorageError::Crypto(CryptoError::Tampered { seq: 0, .. }))
        ));
        assert!(c.open_chunk(0, &[]).is_err());
        assert!(c.open_chunk(0, &first[..TAG_BYTES]).is_err());
    }

    #[test]
    fn another_recording_or_key_cannot_open() {
        let sealed = cipher().seal_chunk(0, b"evidence").unwrap().0;
        let other_id = RecordingCipher::new(
            &DataKey::from_bytes([7; 32]),
            [1, 2, 3, 4, 5, 6, 7],
            "rec-0193",
        );
        assert!(other_id.open_chunk(0, &sealed).is_err());
        let other_prefix = RecordingCipher::new(&DataKey::from_bytes([7; 32]), [0; 7], RID);
        assert!(other_prefix.open_chunk(0, &sealed).is_err());
        let other_key =
            RecordingCipher::new(&DataKey::from_bytes([8; 32]), [1, 2, 3, 4, 5, 6, 7], RID);
        assert!(other_key.open_chunk(0, &sealed).is_err());
    }

    #[test]
    fn terminator_binds_the_chunk_count() {
        let c = cipher();
        let t = c.seal_terminator(5).unwrap();
        assert_eq!(t.len(), TAG_BYTES);
        c.open_terminator(5, &t).unwrap();
        for wrong in [0, 4, 6] {
            assert!(matches!(
                c.open_terminator(wrong, &t),
                Err(StorageError::Crypto(CryptoError::BadTerminator { chunk_count })) if chunk_count == wrong
            ));
        }
        let mut flipped = t.clone();
        flipped[3] ^= 0x80;
        assert!(c.open_terminator(5, &flipped).is_err());
        // A data segment at the terminator's position is not a terminator.
        let data_seg = c.seal_chunk(5, b"x").unwrap().0;
        assert!(c.open_terminator(5, &data_seg).is_err());
        // The terminator is not a data segment either.
        assert!(c.open_chunk(5, &t).is_err());
        c.open_terminator(0, &c.seal_terminator(0).unwrap())
            .unwrap();
        c.open_terminator(MAX_CHUNKS, &c.seal_terminator(MAX_CHUNKS).unwrap())
            .unwrap();
        assert!(c.seal_terminator(MAX_CHUNKS + 1).is_err());
        // Another recording's terminator does not close this one.
        let other = RecordingCipher::new(&DataKey::from_bytes([7; 32]), [1, 2, 3, 4, 5, 6, 7], "x");
        assert!(
            c.open_terminator(5, &other.seal_terminator(5).unwrap())
                .is_err()
        );
    }

    #[test]
    fn segment_math() {
        assert_eq!(position(0, 0).unwrap(), 0);
        assert_eq!(position(1, 0).unwrap(), 4096);
        assert_eq!(position(3, 7).unwrap(), 3 * 4096 + 7);
        assert!(position(0, MAX_SEGMENTS).is_err());
        assert_eq!(MAX_CHUNK_BYTES, 256 * 1024 * 1024);
        assert_eq!(segment_count(0), 0);
        assert_eq!(segment_count(1), 1);
        assert_eq!(segment_count(65_536), 1);
        assert_eq!(segment_count(65_537), 2);
        assert_eq!(ciphertext_len(65_537), 65_537 + 32);
        assert_eq!(segment_object_range(65_537, 0), 0..65_552);
        assert_eq!(segment_object_range(65_537, 1), 65_552..65_569);
        assert_eq!(segment_object_range(65_537, 2), 131_104..131_104);
        assert_eq!(plaintext_len(0), None);
        assert_eq!(plaintext_len(16), None);
        assert_eq!(plaintext_len(17), Some(1));
        assert_eq!(plaintext_len(SEALED_SEGMENT_BYTES as u64 + 16), None);
        assert_eq!(
            plaintext_len(ciphertext_len(MAX_CHUNK_BYTES)),
            Some(MAX_CHUNK_BYTES)
        );
        assert_eq!(plaintext_len(ciphertext_len(MAX_CHUNK_BYTES) + 17), None);
    }
}
