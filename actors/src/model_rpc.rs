//! The wire messages of model agreement between parties: a two-phase move of a branch or tag
//! (prepare everywhere, then commit), and asking a party which version a revision names.
//!
//! Travels as request-response `App` messages on topic [`MODEL_TOPIC`]. Both sides are the
//! ModelManager's: [`Agree`](crate::model_manager::Agree) coordinates, its peer handler answers.

use std::time::Duration;

pub use consort_storage::RefMove;
use serde::{Deserialize, Serialize};

/// Request-response topic of model agreement.
pub const MODEL_TOPIC: &str = "model";

/// How long a prepared move waits for its commit.
pub const PREPARED_FOR: Duration = Duration::from_secs(60);

/// A message of the model protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "rpc", rename_all = "snake_case")]
pub enum ModelRpc {
    /// Phase 1: would this move succeed here? If so, hold it under `tx`; until it is
    /// committed, aborted or expired, no other move of the same ref is prepared here.
    Prepare {
        /// Transaction id chosen by the coordinator.
        tx: u64,
        /// The move.
        op: RefMove,
    },
    /// Phase 2: apply the move held under `tx`.
    Commit {
        /// Transaction id.
        tx: u64,
    },
    /// Forget the move held under `tx`.
    Abort {
        /// Transaction id.
        tx: u64,
    },
    /// Which version does `ID@REV` name here?
    Resolve {
        /// `ID@REV`.
        rev: String,
    },
}

/// An answer of the model protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum ModelAnswer {
    /// Done (prepared, committed, aborted).
    Ok,
    /// Not done, and why.
    Refused {
        /// Reason.
        reason: String,
    },
    /// The version (job id) and commit a revision names at this party.
    Resolved {
        /// Version.
        version: String,
        /// Commit hash at this party.
        commit: String,
    },
}
