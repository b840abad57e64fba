//! The wire messages of serving between parties: the guest moves a service's state at every
//! host in two phases (prepare everywhere, then commit), and asks hosts for partial scores.
//!
//! Travels as request-response `App` messages on topic [`SERVING_TOPIC`]. A host answers only
//! the guest of the model a service serves, and only within the quota it set for the service.

use consort_protocol::serving::Split;
use serde::{Deserialize, Serialize};

/// Request-response topic of serving.
pub const SERVING_TOPIC: &str = "serving";

/// Most ids in one partial-score request.
pub const MAX_SCORE_IDS: usize = 4096;

/// Longest id accepted from a partner.
pub const MAX_ID_BYTES: usize = 256;

/// Most versions a service keeps loaded.
pub const MAX_VERSIONS: usize = 8;

/// A service's state as every party holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireState {
    /// The model it serves.
    pub model_id: String,
    /// The versions loaded (every version of `split` and `previous`).
    pub versions: Vec<String>,
    /// The traffic split.
    pub split: Split,
    /// The split a rollback returns to.
    pub previous: Option<Split>,
}

/// A message of the serving protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "rpc", rename_all = "snake_case")]
pub enum ServeRpc {
    /// Phase 1: load what `state` needs (None: the service is removed) and hold it under `tx`.
    Prepare {
        /// Transaction id chosen by the guest.
        tx: u64,
        /// Service name.
        service: String,
        /// The new state.
        state: Option<WireState>,
    },
    /// Phase 2: switch to the state held under `tx`.
    Commit {
        /// Transaction id.
        tx: u64,
    },
    /// Forget the state held under `tx`.
    Abort {
        /// Transaction id.
        tx: u64,
    },
    /// The host's partial scores of `ids` under `version` of `service`.
    Score {
        /// Service name.
        service: String,
        /// Model version.
        version: String,
        /// Ids.
        ids: Vec<String>,
    },
}

/// An answer of the serving protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum ServeAnswer {
    /// Done (prepared, committed, aborted).
    Ok,
    /// Not done, and why.
    Refused {
        /// Reason.
        reason: String,
    },
    /// One partial score per id asked, None for an id this host does not have.
    Scores {
        /// In request order.
        partials: Vec<Option<f64>>,
    },
    /// A tree model's host: per id asked, which way each of its splits (in the order of their
    /// ids) sends it, as a bitmap; None for an id this host does not have.
    Directions {
        /// In request order.
        dirs: Vec<Option<serde_bytes::ByteBuf>>,
    },
}
