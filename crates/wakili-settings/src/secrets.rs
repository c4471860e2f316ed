//! Secrets generated on first start and kept in the data dir, so a fresh install needs no
//! configuration and no secret is ever compiled into the binary.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use rand::RngCore;

use crate::SettingsError;

/// A generated secret: its file name and size.
#[derive(Debug, Clone, Copy)]
pub struct SecretSpec {
    /// File name inside the secrets directory.
    pub file: &'static str,
    /// Random bytes to generate.
    pub bytes: usize,
}

/// The TURN REST API shared secret (coturn `static-auth-secret`).
pub const TURN_SECRET: SecretSpec = SecretSpec {
    file: "turn-rest.key",
    bytes: 32,
};

/// The HS256 key for development tokens.
pub const JWT_SECRET: SecretSpec = SecretSpec {
    file: "jwt-hs256.key",
    bytes: 48,
};

/// The master key wrapping recordings' data keys.
pub const MASTER_KEY: SecretSpec = SecretSpec {
    file: "recording-master.key",
    bytes: 32,
};

/// The Ed25519 seed signing recording manifests.
pub const SIGNING_KEY: SecretSpec = SecretSpec {
    file: "manifest-signing.key",
    bytes: 32,
};

/// The HMAC key of signed download URLs.
pub const DOWNLOAD_URL_SECRET: SecretSpec = SecretSpec {
    file: "download-url.key",
    bytes: 32,
};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SettingsError + '_ {
    move |source| SettingsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads the secret `spec` from `dir`, creating it (mode 0600) when absent. Returns the secret as
/// stored: base64 text, whose bytes are the key.
pub fn load_or_create(dir: &Path, spec: SecretSpec) -> Result<Vec<u8>, SettingsError> {
    let path: PathBuf = dir.join(spec.file);
    match fs::read_to_string(&path) {
        Ok(text) => return Ok(text.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&path)(e)),
    }
    fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    let mut raw = vec![0u8; spec.bytes];
    rand::rng().fill_bytes(&mut raw);
    let text = STANDARD.encode(&raw);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes()).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            Ok(text.into_bytes())
        }
        // Another process (a second `wakili` started at the same moment) won the race: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(&path).map_err(io(&path))?;
            Ok(text.trim().as_bytes().to_vec())
        }
        Err(e) => Err(io(&path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        let first = load_or_create(&secrets, JWT_SECRET).unwrap();
        let second = load_or_create(&secrets, JWT_SECRET).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 64, "48 random bytes as base64");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(secrets.join(JWT_SECRET.file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = fs::metadata(&secrets).unwrap().permissions().mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
    }
}
