//! The board's login token: 32 random bytes as hex, kept in the data directory with mode 0600
//! (created at the first start with a board, read at the next ones).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// 32 random bytes as 64 hex digits.
pub(crate) fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token in `path`, created (0600) when the file does not exist. A file others may read is
/// refused: its token would let them in.
pub(crate) fn load_or_create(path: &Path) -> anyhow::Result<String> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                anyhow::bail!(
                    "{} is readable by others (mode {:o}); `chmod 600` it or delete it for a new token",
                    path.display(),
                    meta.permissions().mode() & 0o777
                );
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the board's token {}", path.display()))?;
            let token = text.trim();
            if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
                anyhow::bail!(
                    "{} does not hold a token (32+ letters or digits); delete it for a new one",
                    path.display()
                );
            }
            Ok(token.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = random_hex();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create the board's token {}", path.display()))?;
            writeln!(f, "{token}")
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_made_once_kept_private_and_refused_when_others_can_read_it() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("board.token");
        let first = load_or_create(&path).expect("created");
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&path).expect("read"), first);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load_or_create(&path).expect_err("readable by others");
        assert!(e.to_string().contains("readable by others"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&path, "short\n").expect("write");
        assert!(load_or_create(&path).is_err());
    }
}
