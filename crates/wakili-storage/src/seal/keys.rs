//! Keys: each recording's random data key, the master keys that wrap it (AES-256-GCM with the
//! recording id as associated data), and the keyring of the current and retired master keys.

use std::fmt;

use aes_gcm::{Aes256Gcm, Key, KeyInit, aead::AeadInOut};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD},
};
use zeroize::Zeroizing;

use super::{TAG_BYTES, random_bytes, short_id};
use crate::error::{ConfigError, CryptoError, Result, StorageError};

/// Domain separation for master key ids.
const MASTER_KEY_ID_CONTEXT: &[u8] = b"wakili-master-key\0";
/// Domain separation for the associated data of wrapped data keys.
const WRAP_CONTEXT: &[u8] = b"wakili-data-key\0";
/// Nonce length of AES-GCM key wrapping.
const WRAP_NONCE_BYTES: usize = 12;

/// The random AES-256 key of one recording; zeroized on drop, never printed.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random key for a new recording.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        random_bytes(key.as_mut_slice());
        Self(key)
    }

    /// Wraps existing key bytes (for tests and key import).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(super) fn aes(&self) -> Aes256Gcm {
        let key: &Key<Aes256Gcm> = (&*self.0).into();
        Aes256Gcm::new(key)
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// A data key encrypted by a master key, as stored beside the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// [`MasterKey::id`] of the key that wrapped it.
    pub key_id: String,
    /// 12-byte nonce ‖ ciphertext ‖ 16-byte tag.
    pub bytes: Vec<u8>,
}

/// A long-lived AES-256 key that wraps the per-recording [`DataKey`]s; zeroized on drop.
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let key = Zeroizing::new(bytes);
        let id = short_id(&[MASTER_KEY_ID_CONTEXT, key.as_slice()]);
        Self { id, key }
    }

    /// A fresh random master key (for `wakili` key generation and tests).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        random_bytes(bytes.as_mut_slice());
        Self::from_bytes(*bytes)
    }

    /// Reads a key file: 64 hex digits or the base64 of 32 bytes, surrounding whitespace
    /// ignored.
    pub fn from_file_text(text: &str) -> Result<Self> {
        let text = text.trim();
        let mut key = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode_to_slice(text, key.as_mut_slice())
                .map_err(|_| ConfigError::InvalidKeyFile("bad hex".into()))?;
            return Ok(Self::from_bytes(*key));
        }
        if text.is_empty() {
            return Err(ConfigError::InvalidKeyFile("the file is empty".into()).into());
        }
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| STANDARD_NO_PAD.decode(text))
                .map_err(|_| {
                    StorageError::Config(ConfigError::InvalidKeyFile(
                        "expected 64 hex digits or the base64 of 32 bytes".into(),
                    ))
                })?,
        );
        if decoded.len() != 32 {
            return Err(ConfigError::InvalidKeyFile(format!(
                "the base64 holds {} bytes, expected 32",
                decoded.len()
            ))
            .into());
        }
        key.copy_from_slice(&decoded);
        Ok(Self::from_bytes(*key))
    }

    /// The key as key-file text (64 lowercase hex digits and a newline).
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(hex::encode(self.key.as_slice()));
        text.push('\n');
        text
    }

    /// A public fingerprint naming this key: the first 16 hex digits of
    /// SHA-256(`"wakili-master-key\0"` ‖ key).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn aes(&self) -> Aes256Gcm {
        let key: &Key<Aes256Gcm> = (&*self.key).into();
        Aes256Gcm::new(key)
    }

    /// Encrypts `key` for the recording `recording_id` (AES-256-GCM, random nonce, the id in
    /// the associated data so a wrapped key cannot be moved to another recording).
    pub fn wrap(&self, key: &DataKey, recording_id: &str) -> Result<WrappedKey> {
        let mut nonce = [0u8; WRAP_NONCE_BYTES];
        random_bytes(&mut nonce);
        let mut buf = Zeroizing::new(Vec::with_capacity(32 + TAG_BYTES));
        buf.extend_from_slice(key.0.as_slice());
        self.aes()
            .encrypt_in_place(&nonce.into(), &wrap_aad(recording_id), &mut *buf)
            .map_err(|_| CryptoError::Seal)?;
        let mut bytes = Vec::with_capacity(WRAP_NONCE_BYTES + buf.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&buf);
        Ok(WrappedKey {
            key_id: self.id.clone(),
            bytes,
        })
    }

    /// Decrypts a key this master key wrapped for `recording_id`.
    pub fn unwrap(&self, wrapped: &WrappedKey, recording_id: &str) -> Result<DataKey> {
        if wrapped.key_id != self.id {
            return Err(CryptoError::UnknownMasterKey(wrapped.key_id.clone()).into());
        }
        if wrapped.bytes.len() != WRAP_NONCE_BYTES + 32 + TAG_BYTES {
            return Err(CryptoError::KeyUnwrap.into());
        }
        let (nonce, sealed) = wrapped.bytes.split_at(WRAP_NONCE_BYTES);
        let nonce: [u8; WRAP_NONCE_BYTES] = nonce.try_into().map_err(|_| CryptoError::KeyUnwrap)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        self.aes()
            .decrypt_in_place(&nonce.into(), &wrap_aad(recording_id), &mut *buf)
            .map_err(|_| CryptoError::KeyUnwrap)?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&buf);
        Ok(DataKey(key))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn wrap_aad(recording_id: &str) -> Vec<u8> {
    [WRAP_CONTEXT, recording_id.as_bytes()].concat()
}

/// The master keys the service knows: the current one wraps new data keys, retired ones still
/// unwrap old ones until they are rewrapped.
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    retired: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring wrapping with `current` and still able to unwrap with `retired`.
    pub fn new(current: MasterKey, retired: Vec<MasterKey>) -> Self {
        Self { current, retired }
    }

    /// The key that wraps new data keys.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// Keys kept only to unwrap what they wrapped before a rotation.
    pub fn retired(&self) -> &[MasterKey] {
        &self.retired
    }

    /// Wraps `key` for `recording_id` with the current master key.
    pub fn wrap(&self, key: &DataKey, recording_id: &str) -> Result<WrappedKey> {
        self.current.wrap(key, recording_id)
    }

    /// Unwraps with whichever known master key `wrapped` names.
    pub fn unwrap(&self, wrapped: &WrappedKey, recording_id: &str) -> Result<DataKey> {
        std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|key| key.id == wrapped.key_id)
            .ok_or_else(|| {
                StorageError::Crypto(CryptoError::UnknownMasterKey(wrapped.key_id.clone()))
            })?
            .unwrap(wrapped, recording_id)
    }

    /// Whether `wrapped` was made by another key than the current one and should be
    /// rewrapped (unwrap, then [`Keyring::wrap`]).
    pub fn needs_rewrap(&self, wrapped: &WrappedKey) -> bool {
        wrapped.key_id != self.current.id
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::seal::RecordingCipher;

    const RID: &str = "rec-0192";

    #[test]
    fn master_key_files_parse_and_print() {
        let key = MasterKey::from_bytes([0xab; 32]);
        assert_eq!(key.id().len(), 16);
        let text = key.to_file_text();
        assert_eq!(text.trim(), "ab".repeat(32));
        let again = MasterKey::from_file_text(&format!("  {}\n\n", text.as_str())).unwrap();
        assert_eq!(again.id(), key.id());
        let b64 = STANDARD.encode([0xab; 32]);
        assert_eq!(MasterKey::from_file_text(&b64).unwrap().id(), key.id());
        assert_eq!(
            MasterKey::from_file_text(b64.trim_end_matches('='))
                .unwrap()
                .id(),
            key.id()
        );
        for bad in [
            "",
            "abc",
            &"ab".repeat(31),
            &STANDARD.encode([1u8; 31]),
            &"zz".repeat(32),
        ] {
            assert!(
                matches!(
                    MasterKey::from_file_text(bad),
                    Err(StorageError::Config(ConfigError::InvalidKeyFile(_)))
                ),
                "{bad:?}"
            );
        }
        assert_ne!(MasterKey::generate().id(), MasterKey::generate().id());
        let debug = format!("{key:?} {:?}", DataKey::from_bytes([0xab; 32]));
        assert!(!debug.contains("ab, ") && !debug.contains("abab") && !debug.contains("171"));
    }

    #[test]
    fn data_keys_wrap_and_unwrap_through_the_keyring() {
        let old = MasterKey::generate();
        let old_id = old.id().to_owned();
        let data = DataKey::generate();
        let wrapped_old = old.wrap(&data, RID).unwrap();
        assert_eq!(wrapped_old.bytes.len(), 12 + 32 + 16);
        let ring = Keyring::new(MasterKey::generate(), vec![old]);
        let wrapped_new = ring.wrap(&data, RID).unwrap();
        assert!(!ring.needs_rewrap(&wrapped_new));
        assert!(ring.needs_rewrap(&wrapped_old));
        assert_eq!(wrapped_old.key_id, old_id);
        assert_ne!(
            wrapped_new.bytes,
            ring.wrap(&data, RID).unwrap().bytes,
            "random nonces"
        );

        // Both unwrap to the same key: what one seals, the other opens.
        let sealed = RecordingCipher::new(&data, [0; 7], RID)
            .seal_chunk(0, b"x")
            .unwrap()
            .0;
        for wrapped in [&wrapped_old, &wrapped_new] {
            let key = ring.unwrap(wrapped, RID).unwrap();
            assert_eq!(
                RecordingCipher::new(&key, [0; 7], RID)
                    .open_chunk(0, &sealed)
                    .unwrap(),
                b"x"
            );
        }

        let unknown = WrappedKey {
            key_id: "0000000000000000".into(),
            ..wrapped_new.clone()
        };
        assert!(
            matches!(ring.unwrap(&unknown, RID), Err(StorageError::Crypto(CryptoError::UnknownMasterKey(id))) if id == "0000000000000000")
        );
        assert!(matches!(
            ring.unwrap(&wrapped_new, "rec-other"),
            Err(StorageError::Crypto(CryptoError::KeyUnwrap))
        ));
        for i in 0..wrapped_new.bytes.len() {
            let mut bad = wrapped_new.clone();
            bad.bytes[i] ^= 0x10;
            assert!(
                matches!(
                    ring.unwrap(&bad, RID),
                    Err(StorageError::Crypto(CryptoError::KeyUnwrap))
                ),
                "byte {i}"
            );
        }
        let mut short = wrapped_new.clone();
        short.bytes.pop();
        assert!(matches!(
            ring.unwrap(&short, RID),
            Err(StorageError::Crypto(CryptoError::KeyUnwrap))
        ));
    }
}
