//! Wakili's recording store.
//!
//! Recordings of consultations are legal evidence. This crate holds what makes them
//! trustworthy, as pure functions with no IO:
//!
//! - [`seal`]: per-recording data keys wrapped by master keys, and AES-256-GCM STREAM
//!   encryption of uploaded chunks in independently readable 64 KiB segments;
//! - [`manifest`]: the hash chain over the chunks and the Ed25519-signed (JWS) manifest;
//! - [`verify`]: offline verification of a downloaded recording against its manifest;
//! - [`range`]: HTTP `Range` parsing and the plan of sealed segments a range needs;
//! - [`url`]: HMAC-signed, expiring download links.

pub mod error;
pub mod health;
pub mod latency;
pub mod manifest;
pub mod placement;
pub mod providers;
pub mod range;
pub mod seal;
pub mod service;
pub mod url;
pub mod verify;

pub use ed25519_dalek::VerifyingKey;
pub use error::{
    ConfigError, CryptoError, LinkError, ManifestError, ProviderError, RequestError, Result,
    StateError, StorageError,
};
pub use manifest::{
    Chain, ChunkEntry, ConsentEntry, Derivative, EncryptionInfo, Manifest, ManifestChunk,
    ManifestDraft, ManifestSigner, ManifestStatus, ManifestTrack, SESSION_FORMAT,
    parse_verifying_key, verify_manifest,
};
pub use providers::{ProviderStatus, Providers};
pub use range::{Layout, SegmentRead, parse_range};
pub use seal::{
    ChunkDigest, ChunkSealer, DataKey, Keyring, MasterKey, RecordingCipher, WrappedKey,
    ciphertext_len, random_nonce_prefix,
};
pub use service::{
    ChunkReceipt, CompleteRequest, Completion, Media, RecordingStore, StorageConfig, Stores,
    TrackNote, Usage, finalize_backoff,
};
pub use url::DownloadGrant;
pub use verify::{Verified, VerifiedSession, verify_recording, verify_session};
