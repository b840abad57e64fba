use actix::Message;
use consort_protocol::control::StoreCount;
use consort_storage::{StorageError, Store, TreeName};

/// Errors the actors report to their callers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// The actor's storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The actor is gone or its mailbox is closed.
    #[error("actor unavailable: {0}")]
    Mailbox(#[from] actix::MailboxError),
}

/// Asks an actor how many records its trees hold.
#[derive(Debug, Clone, Copy)]
pub struct StoreStats;

impl Message for StoreStats {
    type Result = Result<StoreCount, ActorError>;
}

/// Counts the records of `trees` in `store`, as `actor`'s.
pub(crate) fn count(
    actor: &str,
    store: &Store,
    trees: &[TreeName],
) -> Result<StoreCount, ActorError> {
    let mut records = 0;
    for tree in trees {
        records += store.count(*tree)?;
    }
    Ok(StoreCount {
        actor: actor.to_owned(),
        records,
    })
}
