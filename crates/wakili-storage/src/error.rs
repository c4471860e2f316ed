//! The errors of the recording store: one enum per concern, gathered by [`StorageError`].
//!
//! Callers that only care what went wrong in general match [`StorageError`]; the concern enums
//! say what kind of failure it is (the client's request, the recording's state, a provider, key
//! material, …), which is what the server maps to HTTP statuses. Messages never contain key
//! material; every wrapper is transparent, so a message reads the same at either level.

use wakili_core::recording::RecordingStatus;

/// Everything that can go wrong in the recording store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Key unwrapping or sealed data failed (see [`CryptoError`]).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A setting or key file the operator provided is unusable (see [`ConfigError`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A signed manifest, or media checked against one, is wrong (see [`ManifestError`]).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A download link is invalid or expired (see [`LinkError`]).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The client's request cannot be served as sent (see [`RequestError`]).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The recording does not exist or is in the wrong state (see [`StateError`]).
    #[error(transparent)]
    State(#[from] StateError),
    /// Object storage failed (see [`ProviderError`]).
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] wakili_db::DbError),
    /// The spool file a body streams through could not be written or read.
    #[error("spooling the upload failed: {0}")]
    Spool(String),
    /// Stored data does not match what was recorded about it.
    #[error("stored recording data is inconsistent: {0}")]
    Integrity(String),
}

impl From<std::io::Error> for StorageError {
    /// Reading the media failed ([`ManifestError::Io`]): the only IO read through `?`.
    fn from(e: std::io::Error) -> Self {
        Self::Manifest(ManifestError::Io(e))
    }
}

/// Data keys and sealed (encrypted) data: unwrapping, sealing, authenticating.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A wrapped data key names a master key that is neither current nor retired.
    #[error("unknown master key {0:?}")]
    UnknownMasterKey(String),
    /// A wrapped data key did not authenticate under its master key: tampered, truncated, or
    /// wrapped for another recording.
    #[error("the wrapped data key does not open under its master key")]
    KeyUnwrap,
    /// A chunk with no bytes was sealed; a chunk always holds at least one byte.
    #[error("an empty chunk cannot be sealed")]
    EmptyChunk,
    /// A chunk grew beyond [`crate::seal::MAX_CHUNK_BYTES`].
    #[error("chunk {seq} is larger than {limit} bytes")]
    ChunkTooLarge {
        /// The chunk's sequence number.
        seq: u32,
        /// The limit it crossed.
        limit: u64,
    },
    /// A chunk sequence number or chunk count is beyond what the STREAM positions can address
    /// (see [`crate::seal::MAX_CHUNKS`]).
    #[error("chunk number {0} is out of range")]
    ChunkOutOfRange(u64),
    /// A sealed segment failed authentication: a flipped bit, a segment or chunk moved to
    /// another position, or bytes from another recording.
    #[error("chunk {seq} segment {segment} failed authentication")]
    Tampered {
        /// The chunk's sequence number.
        seq: u32,
        /// The segment's index inside the chunk.
        segment: u32,
    },
    /// The terminator does not authenticate for this chunk count: the recording was truncated
    /// or extended, or the terminator is forged.
    #[error("the terminator does not close a recording of {chunk_count} chunks")]
    BadTerminator {
        /// The chunk count the terminator was checked against.
        chunk_count: u32,
    },
    /// Sealing failed inside the AEAD (not expected with segment-sized inputs).
    #[error("encryption failed")]
    Seal,
}

/// Settings and key files the operator provides.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A master key file could not be parsed (it must hold 64 hex digits or the base64 of 32
    /// bytes); the message says why without repeating the key.
    #[error("invalid master key file: {0}")]
    InvalidKeyFile(String),
    /// A signing key could not be read or written as PKCS#8 PEM.
    #[error("invalid signing key: {0}")]
    InvalidSigningKey(String),
    /// A provider or key setting is unusable.
    #[error("storage configuration: {0}")]
    Setting(String),
}

/// Signed manifests, and media checked against them offline.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A list of chunks handed to the manifest builder or the range layout is not usable
    /// (duplicate or unsorted sequence numbers, empty or oversized chunks).
    #[error("invalid chunk list: {0}")]
    InvalidChunks(String),
    /// A manifest signature did not verify under the given key.
    #[error("the manifest signature does not verify")]
    BadSignature,
    /// A signed manifest is not a well-formed JWS carrying a version 1 manifest.
    #[error("malformed manifest: {0}")]
    MalformedManifest(String),
    /// A public key is neither SPKI PEM nor the base64 of 32 raw Ed25519 bytes.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(String),
    /// The media's chunk `seq` does not hash to the manifest's value.
    #[error("chunk {seq} does not match its SHA-256 in the manifest")]
    ChunkMismatch {
        /// The chunk's sequence number.
        seq: u32,
    },
    /// The manifest's hash chain does not follow from its chunk hashes.
    #[error("the manifest's hash chain is inconsistent")]
    ChainMismatch,
    /// The media's whole SHA-256 differs from the manifest's.
    #[error("the media's SHA-256 differs from the manifest")]
    WholeHashMismatch,
    /// The media is shorter or longer than the manifest says.
    #[error("the media holds {actual} bytes, the manifest says {expected}")]
    LengthMismatch {
        /// Bytes the manifest accounts for.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// Reading the media failed.
    #[error("reading the media failed: {0}")]
    Io(#[from] std::io::Error),
    /// One track of a session failed verification.
    #[error("track {recording_id}: {error}")]
    Track {
        /// The track's recording id.
        recording_id: String,
        /// What was wrong with it.
        error: Box<ManifestError>,
    },
    /// A session's verification was not given the file of one of its tracks, or was given a
    /// file for a track the manifest does not list.
    #[error("{0}")]
    TrackFiles(String),
    /// A session manifest was verified as a single recording, or the other way round.
    #[error("{0}")]
    NotASession(String),
}

/// Signed, expiring download links.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A download URL is past its expiry time.
    #[error("the download link has expired")]
    UrlExpired,
    /// A download URL's signature does not match its parameters (tampered, or for another
    /// recording or secret).
    #[error("the download link's signature is invalid")]
    UrlSignature,
    /// A download URL lacks a parameter or has one that cannot be parsed.
    #[error("malformed download link: {0}")]
    UrlMalformed(String),
}

/// What the client sent cannot be served: nothing was stored or read.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The announced hash is not 64 hexadecimal digits.
    #[error("X-Content-SHA256 must be the body's SHA-256 as 64 hexadecimal digits")]
    BadHash,
    /// The body does not hash to what the client announced; nothing was stored.
    #[error("the body's SHA-256 is {actual}, not {expected} as announced")]
    HashMismatch {
        /// The announced hash.
        expected: String,
        /// The body's hash.
        actual: String,
    },
    /// The body exceeded the chunk size limit; nothing was stored.
    #[error("the chunk is larger than the {max} bytes allowed")]
    BodyTooLarge {
        /// The limit.
        max: u64,
    },
    /// Reading the request body failed.
    #[error("reading the upload failed: {0}")]
    Body(String),
    /// The recorder reported track metadata that is not valid (the message says which field).
    #[error("invalid track: {0}")]
    InvalidTrack(String),
    /// `complete` found chunks missing (or beyond the announced count).
    #[error("chunks are missing: {missing:?}; unexpected chunks: {unexpected:?}")]
    Missing {
        /// Positions below the count that never arrived.
        missing: Vec<u32>,
        /// Positions at or above the count that did.
        unexpected: Vec<u32>,
    },
    /// A Range request cannot be satisfied by a body of `total` bytes (HTTP 416).
    #[error("range not satisfiable for {total} bytes")]
    RangeNotSatisfiable {
        /// The body length, for the `Content-Range: bytes */{total}` header.
        total: u64,
    },
}

/// The recording is not there, or its state forbids what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// No such recording.
    #[error("no such recording")]
    NotFound,
    /// The recording does not take chunks or completion in this state.
    #[error("the recording is {0}; it takes no more uploads")]
    NotAccepting(RecordingStatus),
    /// The recording is not finalized yet (or deleted), so it cannot be downloaded.
    #[error("the recording is {0}; only completed or incomplete recordings can be downloaded")]
    NotReady(RecordingStatus),
    /// Another body was already stored (or is being stored) at this position.
    #[error("chunk {seq} was already uploaded with a different SHA-256")]
    ChunkConflict {
        /// The position.
        seq: u32,
    },
    /// The recording is under legal hold.
    #[error("the recording is under legal hold")]
    LegalHold,
    /// The recording was crypto-shredded.
    #[error("the recording was deleted")]
    Shredded,
    /// Someone tried to upload to (or complete, or create as an upload) a recording the server
    /// makes: its recorder stores the tracks.
    #[error("the server records this one: its recorder stores the tracks, nobody uploads to it")]
    ServerRecording,
    /// A session has no media of its own.
    #[error("a session recording has no stored media of its own: its tracks have (tracks[].id)")]
    NoMedia,
    /// The recording is not of the kind this operation takes (a track's parent that is not a
    /// session, a session id that names an upload, …).
    #[error("{0}")]
    WrongKind(&'static str),
    /// A session cannot be finalized while one of its tracks is being finalized; try again once
    /// it is.
    #[error("track {0} is still being finalized; finalize the session once it is")]
    TrackPending(String),
}

/// Object storage providers.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// One provider failed (the next one is tried).
    #[error("provider {provider}: {message}")]
    Provider {
        /// The provider's name.
        provider: String,
        /// What it said.
        message: String,
    },
    /// No provider could take or serve the object (each one's error, `;`-separated).
    #[error("no storage provider is available: {0}")]
    NoProvider(String),
    /// No provider has this object.
    #[error("object {0} is missing from every provider")]
    ObjectMissing(String),
}

/// The crate's result type.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
