//! Why an actor refused or failed a request, in the four kinds a caller tells apart.
//!
//! The socket handlers map each kind to a control-protocol error code; the actors never see the
//! control protocol.

use consort_storage::StorageError;

/// A request an actor could not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The named thing (model, revision, partner, ...) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request's arguments are invalid or the owner refuses them.
    #[error("{0}")]
    Invalid(String),
    /// A partner did not answer, or did not confirm.
    #[error("{0}")]
    Unreachable(String),
    /// The actor failed (storage, a lost thread, a gone actor).
    #[error("{0}")]
    Internal(String),
}

impl Failure {
    /// An internal failure from anything printable.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<actix::MailboxError> for Failure {
    fn from(e: actix::MailboxError) -> Self {
        Self::Internal(format!("actor unavailable: {e}"))
    }
}

/// Storage errors of the model store, by kind: missing things are `NotFound`, broken storage is
/// `Internal`, everything else (bad names, refused moves) is `Invalid`.
impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        match &e {
            StorageError::ModelNotFound { .. }
            | StorageError::RevNotFound { .. }
            | StorageError::RefNotFound { .. } => Self::NotFound(e.to_string()),
            StorageError::Open { .. } | StorageError::Db { .. } | StorageError::Io { .. } => {
                Self::Internal(e.to_string())
            }
            _ => Self::Invalid(e.to_string()),
        }
    }
}

/// Runs blocking storage work on a blocking thread (never on an actor's event loop).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::Internal(format!("request failed: {e}")))?
}
