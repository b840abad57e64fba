//! This party's model store: each successful training job leaves a version of a model, with
//! this party's parts (one artifact per task and role that wrote a `model` output). Artifacts
//! are content-addressed files (`DATA_DIR/models/objects/ab/abcdef…`, SHA-256, written with
//! fsync; the same bytes are stored once); only the metadata lives in sled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::StorageError;
use crate::files::write_atomically;
use crate::store::{Store, TreeName};
use crate::tree::{Record, Tree};

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

/// The model store.
#[derive(Debug, Clone)]
pub struct Models {
    versions: Tree<ModelVersion>,
    dir: PathBuf,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl Models {
    /// Opens the store; artifacts live under `dir`.
    pub fn open(store: &Store, dir: &Path) -> Result<Self, StorageError> {
        Ok(Self {
            versions: store.tree(TreeName::Models)?,
            dir: dir.to_owned(),
        })
    }

    /// Where artifact `hash` is (or would be) stored.
    pub fn object_path(&self, hash: &str) -> Option<PathBuf> {
        valid_hash(hash).then(|| self.dir.join("objects").join(&hash[..2]).join(hash))
    }

    /// Stores `bytes` once; their hash.
    pub fn put_artifact(&self, bytes: &[u8]) -> Result<String, StorageError> {
        let hash = sha256_hex(bytes);
        let path = self.dir.join("objects").join(&hash[..2]).join(&hash);
        if !path.exists() {
            write_atomically(&path, bytes).map_err(|source| StorageError::Io {
                op: "write",
                path: path.clone(),
                source,
            })?;
        }
        Ok(hash)
    }

    /// Reads artifact `hash`, checking its content against the hash.
    pub fn artifact(&self, hash: &str) -> Result<Vec<u8>, StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt {
            kind: "model artifact",
            tree: "models".into(),
            reason,
        };
        let path = self
            .object_path(hash)
            .ok_or_else(|| corrupt(format!("'{hash}' is not a SHA-256")))?;
        let bytes = std::fs::read(&path).map_err(|source| StorageError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        if sha256_hex(&bytes) != hash {
            return Err(corrupt(format!(
                "{} does not match its hash",
                path.display()
            )));
        }
        Ok(bytes)
    }

    fn key(model_id: &str, version: &str) -> String {
        format!("{model_id}@{version}")
    }

    /// Records a version (its artifacts must be stored already); replaces one of the same key.
    pub fn put_version(&self, v: &ModelVersion) -> Result<(), StorageError> {
        self.versions.put(Self::key(&v.model_id, &v.version), v)?;
        self.versions.flush()
    }

    /// Version `version` of `model_id`, or its newest if `version` is None.
    pub fn version(
        &self,
        model_id: &str,
        version: Option<&str>,
    ) -> Result<Option<ModelVersion>, StorageError> {
        match version {
            Some(v) => self.versions.get(Self::key(model_id, v)),
            None => Ok(self.versions_of(model_id)?.into_iter().last()),
        }
    }

    /// Every version of `model_id`, oldest first (job ids sort by time).
    pub fn versions_of(&self, model_id: &str) -> Result<Vec<ModelVersion>, StorageError> {
        self.versions
            .scan_prefix(format!("{model_id}@"))
            .map(|r| r.map(|(_, v)| v))
            .collect()
    }

    /// Every version of every model, by model id then version.
    pub fn list(&self) -> Result<Vec<ModelVersion>, StorageError> {
        self.versions
            .scan_prefix("")
            .map(|r| r.map(|(_, v)| v))
            .collect()
    }
}

/// The model id of a job: its name and a digest of its sorted `role:party` list, identical at
/// every party.
pub fn model_id(name: &str, parties: &[String]) -> String {
    let mut sorted = parties.to_vec();
    sorted.sort();
    format!("{name}.{}", &sha256_hex(sorted.join(",").as_bytes())[..10])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_stored_once_and_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::temporary().expect("store");
        let m = Models::open(&store, dir.path()).expect("models");
        let h1 = m.put_artifact(b"weights").expect("put");
        let h2 = m.put_artifact(b"weights").expect("put again");
        assert_eq!(h1, h2);
        assert_eq!(m.artifact(&h1).expect("read"), b"weights");
        let path = m.object_path(&h1).expect("path");
        std::fs::write(&path, b"tampered").expect("write");
        assert!(m.artifact(&h1).is_err());
        assert!(m.artifact("../../etc/passwd").is_err());
    }

    #[test]
    fn versions_sort_by_job_id_and_the_newest_is_found() {
        let store = Store::temporary().expect("store");
        let m = Models::open(&store, Path::new("/nonexistent")).expect("models");
        let id = model_id("lr", &["host:b".into(), "guest:a".into()]);
        assert_eq!(id, model_id("lr", &["guest:a".into(), "host:b".into()]));
        for v in ["j0001", "j0002"] {
            m.put_version(&ModelVersion {
                model_id: id.clone(),
                version: v.into(),
                name: "lr".into(),
                party: "a".into(),
                parties: vec![],
                created_at_ms: 0,
                parts: vec![],
                metrics: BTreeMap::new(),
            })
            .expect("put");
        }
        assert_eq!(
            m.version(&id, None).expect("get").expect("some").version,
            "j0002"
        );
        assert_eq!(m.versions_of(&id).expect("list").len(), 2);
        assert!(m.version(&id, Some("j0003")).expect("get").is_none());
    }
}
