//! Value fingerprints for `decode_secret`: an HMAC-SHA256 under a random
//! per-installation key, so two values can be compared ("did the password
//! change?") without a fingerprint being a cheap offline guess-check of the
//! value (an unsalted hash of a short password is).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// File under `state_dir` holding the key.
pub const KEY_FILE: &str = "fingerprint.key";
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error("cannot read the fingerprint key {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the fingerprint key {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the fingerprint key {path} is {len} bytes, not {KEY_LEN}: delete it to make a new one")]
    Length { path: PathBuf, len: usize },
}

/// The key. Its `Debug` does not print it.
#[derive(Clone)]
pub struct FingerprintKey([u8; KEY_LEN]);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(..)")
    }
}

impl FingerprintKey {
    /// A fresh random key (fingerprints comparable within this process only).
    pub fn random() -> Self {
        let mut key = [0u8; KEY_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key).expect("system randomness");
        Self(key)
    }

    /// The installation's key from `state_dir`, created (owner-only) on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, FingerprintError> {
        let path = state_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; KEY_LEN] =
                    bytes.as_slice().try_into().map_err(|_| FingerprintError::Length { path, len: bytes.len() })?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random();
                let write = |path: &Path| -> std::io::Result<()> {
                    std::fs::create_dir_all(state_dir)?;
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    let mut file = options.open(path)?;
                    file.write_all(&key.0)?;
                    file.sync_all()
                };
                match write(&path) {
                    Ok(()) => Ok(key),
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(state_dir),
                    Err(source) => Err(FingerprintError::Write { path, source }),
                }
            }
            Err(source) => Err(FingerprintError::Read { path, source }),
        }
    }

    /// `hmac-sha256:` and the first 32 hex digits (128 bits) of the value's HMAC.
    pub fn fingerprint(&self, value: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        format!("hmac-sha256:{}", &hex::encode(digest)[..32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_per_installation_and_keyed() {
        let dir = tempfile::tempdir().unwrap();
        let a = FingerprintKey::load_or_create(dir.path()).unwrap();
        let again = FingerprintKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.fingerprint(b"hunter2"), again.fingerprint(b"hunter2"));
        assert_ne!(a.fingerprint(b"hunter2"), a.fingerprint(b"hunter3"));
        // Another installation's key gives other fingerprints: no precomputed table works.
        let other = tempfile::tempdir().unwrap();
        let b = FingerprintKey::load_or_create(other.path()).unwrap();
        assert_ne!(a.fingerprint(b"hunter2"), b.fingerprint(b"hunter2"));
        // The plain SHA-256 of the value (what an attacker could precompute) is not in it.
        let plain = hex::encode(<Sha256 as sha2::Digest>::digest(b"hunter2"));
        assert!(!plain.contains(a.fingerprint(b"hunter2").trim_start_matches("hmac-sha256:")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
        }
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let err = FingerprintKey::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("5 bytes"), "{err}");
        assert_eq!(format!("{a:?}"), "FingerprintKey(..)");
    }
}
