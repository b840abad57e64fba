//! Consort's persistent state: a small typed facade over sled.
//!
//! sled never appears outside this crate. Every stored value is a [`Record`]: MessagePack with
//! named fields inside an envelope that carries the record's schema version, so a later build
//! can recognise (and migrate) what an earlier one wrote instead of misreading it.
//!
//! sled is good at many small records; large artifacts (models, tables, big channel payloads)
//! are kept as files next to it and only their metadata lives here (see STACK_NOTES: sled does
//! not fsync its blob files).

mod error;
mod files;
mod mailbox;
mod meta;
mod models;
mod partners;
mod records;
mod store;
mod tables;
mod tracking;
mod tree;

pub use error::StorageError;
pub use files::{resolve_inside, write_atomically};
pub use mailbox::{Chunk, MAX_CHUNKS, Mail, Mailbox};
pub use meta::DaemonMeta;
pub use models::{
    Change, ChangeKind, Commit, CommitId, DeleteReport, ImportReport, LogEntry, MAIN, ModelDiff,
    ModelPart, ModelVersion, Models, RefInfo, RefKind, RefMove, RefRecord, ReflogEntry, RevSpec,
    model_id, parse_rev, sha256_hex, valid_model_id, valid_ref_name,
};
pub use partners::{PartnerEntry, PartnerOverrides};
pub use records::{Applied, RecordStore};
pub use store::{Store, StoreOptions, TreeName};
pub use tables::{TableMeta, Tables, valid_table_name};
pub use tracking::{LogLine, MetricKey, MetricSeries, Tracking};
pub use tree::{Record, Tree};
