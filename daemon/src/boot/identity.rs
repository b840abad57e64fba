//! The party's ed25519 identity key, from which its libp2p PeerId derives.
//!
//! The key file holds libp2p's protobuf encoding of the keypair and must be readable by its
//! owner only: like ssh, we refuse to use a key that others can read.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libp2p_identity::{Keypair, PeerId};

/// Errors creating or loading the identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// An identity already exists; it is never overwritten.
    #[error(
        "an identity already exists at {0}; refusing to overwrite it (it defines this party's PeerId)"
    )]
    Exists(PathBuf),
    /// The key file is missing.
    #[error("no identity key at {0}; create one with `consortd init`")]
    Missing(PathBuf),
    /// The key file can be read by others.
    #[error(
        "identity key {path} has mode {mode:o}; it must be readable by its owner only (chmod 600 {path})"
    )]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is not a valid key.
    #[error("identity key {path} is not a valid ed25519 key: {reason}")]
    Invalid {
        /// The key file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("identity key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Generates a new ed25519 key and writes it to `path` (mode 0600, never overwriting).
pub fn create(path: &Path) -> Result<Keypair, IdentityError> {
    let io = |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    };
    let key = Keypair::generate_ed25519();
    let bytes = key
        .to_protobuf_encoding()
        .map_err(|e| IdentityError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => IdentityError::Exists(path.to_owned()),
            _ => io(e),
        })?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(key)
}

/// Loads the key at `path`, checking its permissions.
pub fn load(path: &Path) -> Result<Keypair, IdentityError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => IdentityError::Missing(path.to_owned()),
        _ => IdentityError::Io {
            path: path.to_owned(),
            source: e,
        },
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let bytes = std::fs::read(path).map_err(|source| IdentityError::Io {
        path: path.to_owned(),
        source,
    })?;
    Keypair::from_protobuf_encoding(&bytes).map_err(|e| IdentityError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The PeerId of `key`.
pub fn peer_id(key: &Keypair) -> PeerId {
    key.public().to_peer_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_gives_same_peer_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("identity.key");
        let key = create(&path).expect("create");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(peer_id(&load(&path).expect("load")), peer_id(&key));
        assert!(matches!(create(&path), Err(IdentityError::Exists(_))));
        assert_eq!(
            peer_id(&load(&path).expect("still the same")),
            peer_id(&key)
        );
    }

    #[test]
    fn refuses_open_or_garbage_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("identity.key");
        create(&path).expect("create");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            load(&path),
            Err(IdentityError::TooOpen { mode: 0o644, .. })
        ));
        std::fs::write(&path, b"garbage").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(load(&path), Err(IdentityError::Invalid { .. })));
        assert!(matches!(
            load(&dir.path().join("nope")),
            Err(IdentityError::Missing(_))
        ));
    }
}
