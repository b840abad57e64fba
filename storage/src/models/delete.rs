//! Deleting a version and the artifacts no commit needs any more.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::{
    CommitId, Models, RefKind, RefRecord, ReflogEntry, commit_key, decode_commit, now_ms, ref_key,
    version_key,
};
use crate::error::StorageError;

/// What [`Models::delete`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteReport {
    /// The deleted commit.
    pub commit: CommitId,
    /// Refs that pointed at it (forced delete): branches moved to its parent (or deleted if it
    /// had none here), tags deleted. Each move is in the reflog.
    pub refs: Vec<String>,
    /// Artifacts removed (no other commit referenced them).
    pub artifacts_removed: Vec<String>,
}

impl Models {
    /// Deletes `version` of `model_id`: refused while a branch or tag points at it unless
    /// `force`. Removes the commit and the artifacts no other commit references. Commits whose
    /// parent it was keep its hash as a dangling parent (their own hashes cannot change).
    pub fn delete(
        &self,
        model_id: &str,
        version: &str,
        force: bool,
    ) -> Result<DeleteReport, StorageError> {
        let _g = self.lock();
        let Some((id, commit)) = self.commit_of_version(model_id, version)? else {
            self.require_model(model_id)?;
            return Err(StorageError::RevNotFound {
                model_id: model_id.to_owned(),
                rev: version.to_owned(),
            });
        };
        let pointing: Vec<_> = self
            .refs(model_id)?
            .into_iter()
            .filter(|r| r.record.target == id)
            .collect();
        if !pointing.is_empty() && !force {
            return Err(StorageError::RefInUse {
                model_id: model_id.to_owned(),
                version: version.to_owned(),
                refs: pointing.iter().map(|r| r.full_name()).collect(),
            });
        }
        let at_ms = now_ms();
        let who = "delete";
        let mut w = self.writes();
        let mut moved = Vec::new();
        for r in pointing {
            let key = ref_key(model_id, r.kind, &r.name);
            let parent = match (r.kind, commit.parents.first()) {
                (RefKind::Branch, Some(p)) if self.get_commit(p)?.is_some() => Some(p.clone()),
                _ => None,
            };
            match &parent {
                Some(p) => w.put(
                    &self.refs,
                    &key,
                    &RefRecord {
                        target: p.clone(),
                        message: r.record.message.clone(),
                        who: who.into(),
                        at_ms,
                    },
                )?,
                None => w.remove(&key),
            }
            w.reflog(ReflogEntry {
                model_id: model_id.to_owned(),
                ref_name: r.full_name(),
                old: Some(id.clone()),
                new: parent,
                who: who.into(),
                at_ms,
                why: format!("forced delete of version {version}"),
            })?;
            moved.push(r.full_name());
        }
        w.remove(&commit_key(&id));
        w.remove(&version_key(model_id, version));
        w.apply()?;

        let mut needed = HashSet::new();
        for item in self.commits.scan_prefix("c/") {
            let (_, rec) = item?;
            for p in decode_commit(&rec.body)?.parts {
                needed.insert(p.artifact);
            }
        }
        let mut removed = Vec::new();
        let ours: BTreeSet<&str> = commit.parts.iter().map(|p| p.artifact.as_str()).collect();
        for hash in ours {
            if needed.contains(hash) {
                continue;
            }
            let Some(path) = self.object_path(hash) else {
                continue;
            };
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    if let Some(dir) = path.parent() {
                        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
                    }
                    removed.push(hash.to_owned());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StorageError::Io {
                        op: "remove",
                        path,
                        source,
                    });
                }
            }
        }
        Ok(DeleteReport {
            commit: id,
            refs: moved,
            artifacts_removed: removed,
        })
    }
}
