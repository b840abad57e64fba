use std::path::PathBuf;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database could not be opened.
    #[error("cannot open the database at {path}: {source}")]
    Open {
        /// Database directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// A read, write or flush failed.
    #[error("database {op} failed on tree '{tree}': {source}")]
    Db {
        /// The operation (`get`, `insert`, `flush`, ...).
        op: &'static str,
        /// The tree it ran on.
        tree: String,
        /// sled's error.
        source: sled::Error,
    },
    /// A stored value could not be decoded.
    #[error("corrupt {kind} record in tree '{tree}': {reason}")]
    Corrupt {
        /// Record kind.
        kind: &'static str,
        /// Tree it was read from.
        tree: String,
        /// Decoder message.
        reason: String,
    },
    /// A stored value has a schema version this build cannot read.
    #[error(
        "{kind} record in tree '{tree}' has schema version {found}; this build reads up to {supported}"
    )]
    UnsupportedVersion {
        /// Record kind.
        kind: &'static str,
        /// Tree it was read from.
        tree: String,
        /// Version found on disk.
        found: u16,
        /// Version this build writes.
        supported: u16,
    },
    /// A file next to the database could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A value could not be encoded (a bug; reported rather than panicking).
    #[error("cannot encode {kind} record: {reason}")]
    Encode {
        /// Record kind.
        kind: &'static str,
        /// Encoder message.
        reason: String,
    },
}
