//! The values of the model store: versions (the caller's view), commits (hashed objects), refs
//! and reflog entries.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::tree::Record;

use super::sha256_hex;

/// One task's model at this party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPart {
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
    /// The merged params of the run (JSON).
    pub params: serde_json::Value,
}

/// A version of a model at this party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Model id (the same at every party).
    pub model_id: String,
    /// Version: the training job's id.
    pub version: String,
    /// Job name.
    pub name: String,
    /// This party.
    pub party: String,
    /// Every `role:party` of the job, sorted.
    pub parties: Vec<String>,
    /// When it was stored (ms since the epoch).
    pub created_at_ms: u64,
    /// This party's parts.
    pub parts: Vec<ModelPart>,
    /// Scalar metrics at this party (`task/namespace/name` → last value), e.g. the AUC.
    pub metrics: BTreeMap<String, f64>,
}

impl Record for ModelVersion {
    const KIND: &'static str = "model version";
    const VERSION: u16 = 1;
}

/// A commit's id: the lowercase hex SHA-256 of its canonical encoding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommitId(String);

impl CommitId {
    /// Checks a full 64-hex-digit id (from a user, a peer or an archive).
    pub fn parse(s: &str) -> Option<Self> {
        super::valid_hash(s).then(|| Self(s.to_owned()))
    }

    /// The id as hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its first 12 hex digits, for display.
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A commit: one version of a model at this party, with its place in the history.
///
/// Its id is the SHA-256 of [`Commit::canonical_bytes`] (MessagePack, named fields, in this
/// declaration order). The store keeps exactly those bytes, so the id never changes even if a
/// later build adds fields. Params and artifact hashes are per part (`parts[i].params`,
/// `parts[i].artifact`); [`Commit::params`] and [`Commit::artifacts`] flatten them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// Model id (the same at every party).
    pub model_id: String,
    /// Model version: the training job's id (the same at every party).
    pub model_version: String,
    /// Parent commits (the branch head when it was committed; none for the first).
    pub parents: Vec<CommitId>,
    /// Commit message.
    pub message: String,
    /// The training job's id.
    pub job_id: String,
    /// The job (and model) name.
    pub name: String,
    /// The party that holds this commit.
    pub party: String,
    /// Who committed it (a party, a user).
    pub author: String,
    /// Roles this party played, sorted, unique.
    pub roles: Vec<String>,
    /// Every `role:party` of the job, sorted.
    pub parties: Vec<String>,
    /// When the version was stored (ms since the epoch).
    pub created_at_ms: u64,
    /// Scalar metrics summary (`task/namespace/name` → value).
    pub metrics: BTreeMap<String, f64>,
    /// This party's parts: task, component, role, params, artifact hash and size.
    pub parts: Vec<ModelPart>,
}

impl Commit {
    /// A commit of version `v`.
    pub fn of_version(v: &ModelVersion, parents: Vec<CommitId>, message: &str, who: &str) -> Self {
        let roles: BTreeSet<&str> = v.parts.iter().map(|p| p.role.as_str()).collect();
        Self {
            model_id: v.model_id.clone(),
            model_version: v.version.clone(),
            parents,
            message: message.to_owned(),
            job_id: v.version.clone(),
            name: v.name.clone(),
            party: v.party.clone(),
            author: who.to_owned(),
            roles: roles.into_iter().map(str::to_owned).collect(),
            parties: v.parties.clone(),
            created_at_ms: v.created_at_ms,
            metrics: v.metrics.clone(),
            parts: v.parts.clone(),
        }
    }

    /// The version this commit holds.
    pub fn to_version(&self) -> ModelVersion {
        ModelVersion {
            model_id: self.model_id.clone(),
            version: self.model_version.clone(),
            name: self.name.clone(),
            party: self.party.clone(),
            parties: self.parties.clone(),
            created_at_ms: self.created_at_ms,
            parts: self.parts.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// The canonical encoding, whose SHA-256 is the commit id.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, StorageError> {
        rmp_serde::to_vec_named(self).map_err(|e| StorageError::Encode {
            kind: "model commit",
            reason: e.to_string(),
        })
    }

    /// The commit id of canonical bytes.
    pub fn id_of(canonical: &[u8]) -> CommitId {
        CommitId(sha256_hex(canonical))
    }

    /// Params per `task/param` (top-level keys of each part's params; the whole params under
    /// `task` when they are not an object).
    pub fn params(&self) -> BTreeMap<String, serde_json::Value> {
        let mut out = BTreeMap::new();
        for p in &self.parts {
            match &p.params {
                serde_json::Value::Object(map) => {
                    for (k, v) in map {
                        out.insert(format!("{}/{k}", p.task), v.clone());
                    }
                }
                other => {
                    out.insert(p.task.clone(), other.clone());
                }
            }
        }
        out
    }

    /// Artifact hash per `task/role`.
    pub fn artifacts(&self) -> BTreeMap<String, String> {
        self.parts
            .iter()
            .map(|p| (format!("{}/{}", p.task, p.role), p.artifact.clone()))
            .collect()
    }
}

/// `c/<id>`: a commit's canonical bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommitRecord {
    #[serde(with = "serde_bytes")]
    pub(crate) body: Vec<u8>,
}

impl Record for CommitRecord {
    const KIND: &'static str = "model commit";
    const VERSION: u16 = 1;
}

/// `v/<model_id>/<version>`: the commit of a version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VersionIndex {
    pub(crate) commit: CommitId,
}

impl Record for VersionIndex {
    const KIND: &'static str = "model version index";
    const VERSION: u16 = 1;
}

/// `seq/<model_id>`: the next reflog sequence number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Seq {
    pub(crate) next: u64,
}

impl Record for Seq {
    const KIND: &'static str = "model reflog sequence";
    const VERSION: u16 = 1;
}

/// Kind of a ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefKind {
    /// A branch (`heads/NAME`): moves with commits and rollbacks.
    Branch,
    /// A tag (`tags/NAME`): immutable once created (it can only be deleted).
    Tag,
}

impl RefKind {
    /// `heads` or `tags`.
    pub fn dir(self) -> &'static str {
        match self {
            RefKind::Branch => "heads",
            RefKind::Tag => "tags",
        }
    }
}

/// `ref/<model_id>/heads/<name>` or `ref/<model_id>/tags/<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefRecord {
    /// The commit it points at.
    pub target: CommitId,
    /// Tag message (empty for branches).
    pub message: String,
    /// Who last moved it.
    pub who: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

impl Record for RefRecord {
    const KIND: &'static str = "model ref";
    const VERSION: u16 = 1;
}

/// A branch or tag, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefInfo {
    /// Branch or tag.
    pub kind: RefKind,
    /// Its name (without `heads/` or `tags/`).
    pub name: String,
    /// Target, message, who, when.
    pub record: RefRecord,
}

impl RefInfo {
    /// `heads/NAME` or `tags/NAME`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.kind.dir(), self.name)
    }
}

/// `log/<model_id>/<seq>`: one move of a ref. Append-only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReflogEntry {
    /// Model id.
    pub model_id: String,
    /// `heads/NAME` or `tags/NAME`.
    pub ref_name: String,
    /// Where it pointed before (None: created).
    pub old: Option<CommitId>,
    /// Where it points now (None: deleted).
    pub new: Option<CommitId>,
    /// Who moved it.
    pub who: String,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Why (`commit: …`, `rollback to …`, `tag`, …).
    pub why: String,
}

impl Record for ReflogEntry {
    const KIND: &'static str = "model reflog entry";
    const VERSION: u16 = 1;
}
