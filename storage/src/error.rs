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
    /// No model of that id is stored here.
    #[error("no model '{model_id}' here")]
    ModelNotFound {
        /// The model id.
        model_id: String,
    },
    /// A revision names nothing in the model.
    #[error("model '{model_id}' has no revision '{rev}' here")]
    RevNotFound {
        /// The model id.
        model_id: String,
        /// The revision as given.
        rev: String,
    },
    /// A revision names several commits.
    #[error("revision '{rev}' of model '{model_id}' is ambiguous: {}", candidates.join(", "))]
    AmbiguousRev {
        /// The model id.
        model_id: String,
        /// The revision as given.
        rev: String,
        /// What it could mean.
        candidates: Vec<String>,
    },
    /// `REV~N` walks further back than the history held here.
    #[error("'{rev}' of model '{model_id}' goes back {wanted} commits; only {available} are here")]
    BeyondHistory {
        /// The model id.
        model_id: String,
        /// The revision as given.
        rev: String,
        /// N.
        wanted: u64,
        /// How far the first-parent chain goes here.
        available: u64,
    },
    /// A revision could not be parsed.
    #[error("bad revision '{rev}': {reason}")]
    BadRev {
        /// The revision as given.
        rev: String,
        /// What is wrong.
        reason: String,
    },
    /// A model id, version, branch or tag name is not acceptable.
    #[error("invalid {what} '{name}': {reason}")]
    InvalidName {
        /// `model id`, `branch`, `tag`, `version`.
        what: &'static str,
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A branch or tag of that name exists already.
    #[error("model '{model_id}' already has {name}")]
    RefExists {
        /// The model id.
        model_id: String,
        /// `heads/NAME` or `tags/NAME`.
        name: String,
    },
    /// No branch or tag of that name.
    #[error("model '{model_id}' has no {name}")]
    RefNotFound {
        /// The model id.
        model_id: String,
        /// `heads/NAME` or `tags/NAME`.
        name: String,
    },
    /// A commit cannot be deleted while refs point at it.
    #[error("version '{version}' of model '{model_id}' is still referenced by {} (use force)", refs.join(", "))]
    RefInUse {
        /// The model id.
        model_id: String,
        /// The version.
        version: String,
        /// The refs pointing at it.
        refs: Vec<String>,
    },
    /// That version of the model is stored already (as another commit).
    #[error("model '{model_id}' already has version '{version}'")]
    VersionExists {
        /// The model id.
        model_id: String,
        /// The version.
        version: String,
    },
    /// A commit names an artifact that is not stored here.
    #[error("artifact {hash} is not stored here")]
    MissingArtifact {
        /// Its SHA-256.
        hash: String,
    },
    /// A model archive is refused; nothing was stored.
    #[error("bad model archive: {reason}")]
    BadArchive {
        /// What is wrong with it.
        reason: String,
    },
}
