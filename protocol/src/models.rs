//! Replies about model history: log, reflog, diff, ref moves agreed by every party, verify,
//! export, import and delete.
//!
//! They mirror the storage crate's types field for field (so `consort --json` prints what the
//! store holds), with hashes as strings and free-form params as [`JsonText`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::json_text::JsonText;

/// One commit in a model's history, with the refs pointing at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelLogEntry {
    /// The commit's hash.
    pub id: String,
    /// The commit.
    pub commit: CommitInfo,
    /// Branches pointing at it.
    pub branches: Vec<String>,
    /// Tags pointing at it.
    pub tags: Vec<String>,
}

/// A commit: one version of a model at this party, with its place in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// Model id (the same at every party).
    pub model_id: String,
    /// Model version: the training job's id.
    pub model_version: String,
    /// Parent commits' hashes.
    pub parents: Vec<String>,
    /// Commit message.
    pub message: String,
    /// The training job's id.
    pub job_id: String,
    /// The job (and model) name.
    pub name: String,
    /// The party that holds this commit.
    pub party: String,
    /// Who committed it.
    pub author: String,
    /// Roles this party played.
    pub roles: Vec<String>,
    /// Every `role:party` of the job.
    pub parties: Vec<String>,
    /// When the version was stored (ms since the epoch).
    pub created_at_ms: u64,
    /// Scalar metrics (`task/namespace/name` → value).
    pub metrics: BTreeMap<String, f64>,
    /// This party's parts.
    pub parts: Vec<CommitPart>,
}

/// One part of a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitPart {
    /// Task name in the training job.
    pub task: String,
    /// Component.
    pub component: String,
    /// Role this party played.
    pub role: String,
    /// SHA-256 of the artifact (hex).
    pub artifact: String,
    /// Its size.
    pub bytes: u64,
    /// The merged params of the run.
    pub params: JsonText,
}

/// One move of a ref.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReflogInfo {
    /// Model id.
    pub model_id: String,
    /// `heads/NAME` or `tags/NAME`.
    pub ref_name: String,
    /// Where it pointed before (None: created).
    pub old: Option<String>,
    /// Where it points now (None: deleted).
    pub new: Option<String>,
    /// Who moved it.
    pub who: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Why.
    pub why: String,
}

/// What happened to one key between two commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeKind {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// In both, different.
    Changed,
    /// A kind this client does not know (sent by a newer daemon).
    #[serde(other)]
    Other,
}

/// A difference for one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change<T> {
    /// `task/param`, metric key, or `task/role` for artifacts.
    pub key: String,
    /// Added, removed or changed.
    pub kind: ChangeKind,
    /// Value in the first commit.
    pub old: Option<T>,
    /// Value in the second commit.
    pub new: Option<T>,
}

/// Differences between two commits (only what differs, by key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDiffInfo {
    /// The first commit's hash.
    pub a: String,
    /// The second commit's hash.
    pub b: String,
    /// Params (`task/param`).
    pub params: Vec<Change<JsonText>>,
    /// Metrics.
    pub metrics: Vec<Change<f64>>,
    /// Artifact hashes (`task/role`).
    pub artifacts: Vec<Change<String>>,
}

/// A tag, branch or rollback applied at every participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveReport {
    /// The commit the ref now names.
    pub commit: String,
    /// Every party that applied it, this one first.
    pub parties: Vec<String>,
}

/// Which version a revision names at each participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The revision asked about.
    pub rev: String,
    /// Every party names the same version.
    pub consistent: bool,
    /// This party first, then every other participant.
    pub parties: Vec<PartyRevision>,
    /// Parties naming another version, or none.
    pub differing: Vec<String>,
}

/// What one party says a revision is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartyRevision {
    /// Party.
    pub party: String,
    /// Version it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Commit hash at that party.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Why it named none (refused, unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An archive written by export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportReport {
    /// The exported commit.
    pub commit: String,
    /// Size of the archive.
    pub bytes: u64,
    /// Where it was written.
    pub path: String,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The model.
    pub model_id: String,
    /// The imported commit (same hash as at the exporter).
    pub commit: String,
    /// Its version.
    pub version: String,
    /// Whether it was stored already (nothing changed).
    pub already_present: bool,
    /// Artifacts newly written.
    pub artifacts_written: u64,
    /// `main`, when the model had no `main` here and it was created at the imported commit.
    pub branch_created: Option<String>,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteReport {
    /// The deleted commit.
    pub commit: String,
    /// Refs that pointed at it (forced delete), moved to its parent or deleted.
    pub refs: Vec<String>,
    /// Artifacts removed.
    pub artifacts_removed: Vec<String>,
}
