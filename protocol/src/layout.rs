//! Where things live in a data directory: the names `consortd` creates and `consort` looks for.
//!
//! Shared by both binaries so that they agree by construction (the CLI finds the socket and the
//! lock the daemon made). The two functions only read the environment, never the file system.

use std::path::{Path, PathBuf};

/// Configuration file name inside the data directory.
pub const CONFIG_FILE: &str = "consort.toml";
/// Identity key file name inside the data directory.
pub const IDENTITY_FILE: &str = "identity.key";
/// Control socket file name inside the data directory (unless the config names another).
pub const SOCKET_FILE: &str = "consortd.sock";
/// Lock file that makes one daemon per data directory.
pub const LOCK_FILE: &str = "consortd.lock";

/// The data directory used when neither `--dir` nor `CONSORT_DIR` is given: `~/.consort`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".consort")
}

/// Makes `path` absolute against the current directory, without touching the file system.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
