//! This party's model store, Git-like.
//!
//! - **Artifacts** are content-addressed files (`DIR/objects/ab/abcdef…`, SHA-256, written with
//!   fsync; the same bytes are stored once).
//! - **Commits** ([`Commit`]) hold one version of a model at this party (job, params, metrics,
//!   artifact hashes, parents, message, author) and are identified by the SHA-256 of their
//!   canonical encoding.
//! - **Refs**: branches (`main` by default) and immutable tags per model, and an append-only
//!   **reflog** of every ref move.
//! - **Revisions** `ID`, `ID@VERSION`, `ID@TAG`, `ID@BRANCH`, `ID@BRANCH~N`, `ID@<hash prefix>`.
//!
//! Layout in the sled tree `models` (values are [`Record`] envelopes):
//!
//! | key                               | value                          |
//! |-----------------------------------|--------------------------------|
//! | `c/<commit hash>`                 | the commit's canonical bytes   |
//! | `v/<model_id>/<version>`          | the commit of that version     |
//! | `ref/<model_id>/heads/<branch>`   | branch: target, who, when      |
//! | `ref/<model_id>/tags/<tag>`       | tag: target, message, who, when|
//! | `log/<model_id>/<seq, 16 hex>`    | reflog entry                   |
//! | `seq/<model_id>`                  | next reflog sequence number    |
//!
//! Every change is one atomic sled batch followed by a flush; changes are serialized by a lock
//! shared by the clones of a [`Models`]. Keys of the first layout (`<model_id>@<version>`, one
//! [`ModelVersion`] each) are migrated into commits on `main` when the store is opened.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

use crate::error::StorageError;
use crate::files::write_atomically;
use crate::store::{Store, TreeName};
use crate::tree::{Record, Tree};

mod archive;
mod delete;
mod history;
mod names;
mod refs;
mod rev;
#[cfg(test)]
mod tests;
mod types;

pub use archive::ImportReport;
pub use delete::DeleteReport;
pub use history::{Change, ChangeKind, LogEntry, ModelDiff};
pub use names::{valid_model_id, valid_ref_name};
pub use refs::RefMove;
pub use rev::{RevSpec, parse_rev};
pub use types::{
    Commit, CommitId, ModelPart, ModelVersion, RefInfo, RefKind, RefRecord, ReflogEntry,
};
use types::{CommitRecord, Seq, VersionIndex};

/// The default branch.
pub const MAIN: &str = "main";

/// The model store. Cloning is cheap and shares the store (and its write lock).
#[derive(Debug, Clone)]
pub struct Models {
    commits: Tree<CommitRecord>,
    index: Tree<VersionIndex>,
    refs: Tree<RefRecord>,
    reflog: Tree<ReflogEntry>,
    seqs: Tree<Seq>,
    legacy: Tree<ModelVersion>,
    dir: PathBuf,
    lock: Arc<Mutex<()>>,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

pub(crate) use consort_protocol::clock::now_ms;

pub(crate) fn commit_key(id: &CommitId) -> String {
    format!("c/{id}")
}

pub(crate) fn version_key(model_id: &str, version: &str) -> String {
    format!("v/{model_id}/{version}")
}

pub(crate) fn ref_key(model_id: &str, kind: RefKind, name: &str) -> String {
    format!("ref/{model_id}/{}/{name}", kind.dir())
}

/// Pending changes, applied as one atomic batch.
pub(crate) struct Writes<'a> {
    m: &'a Models,
    batch: sled::Batch,
    seqs: HashMap<String, u64>,
}

impl Writes<'_> {
    pub(crate) fn put<V: Record>(
        &mut self,
        view: &Tree<V>,
        key: &str,
        v: &V,
    ) -> Result<(), StorageError> {
        self.batch.insert(key.as_bytes(), view.encode(v)?);
        Ok(())
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.batch.remove(key.as_bytes());
    }

    /// Appends a reflog entry.
    pub(crate) fn reflog(&mut self, e: ReflogEntry) -> Result<(), StorageError> {
        let seq = match self.seqs.get(&e.model_id) {
            Some(s) => *s,
            None => self
                .m
                .seqs
                .get(format!("seq/{}", e.model_id))?
                .map_or(0, |s| s.next),
        };
        self.seqs.insert(e.model_id.clone(), seq + 1);
        let key = format!("log/{}/{seq:016x}", e.model_id);
        let view = self.m.reflog.clone();
        self.put(&view, &key, &e)
    }

    /// Applies the batch and flushes.
    pub(crate) fn apply(mut self) -> Result<(), StorageError> {
        let seqs = std::mem::take(&mut self.seqs);
        for (model, next) in seqs {
            let view = self.m.seqs.clone();
            self.put(&view, &format!("seq/{model}"), &Seq { next })?;
        }
        let raw = self.m.commits.raw();
        raw.apply_batch(self.batch)
            .map_err(|source| StorageError::Db {
                op: "apply_batch",
                tree: TreeName::Models.as_str().to_owned(),
                source,
            })?;
        self.m.commits.flush()
    }
}

impl Models {
    /// Opens the store; artifacts live under `dir`. Migrates records of the first layout.
    pub fn open(store: &Store, dir: &Path) -> Result<Self, StorageError> {
        let m = Self {
            commits: store.tree(TreeName::Models)?,
            index: store.tree(TreeName::Models)?,
            refs: store.tree(TreeName::Models)?,
            reflog: store.tree(TreeName::Models)?,
            seqs: store.tree(TreeName::Models)?,
            legacy: store.tree(TreeName::Models)?,
            dir: dir.to_owned(),
            lock: Arc::new(Mutex::new(())),
        };
        m.migrate_legacy()?;
        Ok(m)
    }

    /// Version records of the first layout (`<model_id>@<version>`: no '/' in the key) become
    /// commits on `main`, in version order.
    fn migrate_legacy(&self) -> Result<(), StorageError> {
        let mut legacy = Vec::new();
        for item in self.commits.raw().iter() {
            let (k, v) = item.map_err(|source| StorageError::Db {
                op: "scan",
                tree: TreeName::Models.as_str().to_owned(),
                source,
            })?;
            if !k.contains(&b'/') {
                legacy.push((k.to_vec(), self.legacy.decode(&v)?));
            }
        }
        for (key, v) in legacy {
            let _g = self.lock();
            let mut w = self.writes();
            w.remove(&String::from_utf8_lossy(&key));
            if self
                .index
                .get(version_key(&v.model_id, &v.version))?
                .is_none()
            {
                let message = format!("version {} of {} (migrated)", v.version, v.name);
                self.commit_locked(&mut w, &v, MAIN, &message, &v.party, false)?;
            }
            w.apply()?;
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn writes(&self) -> Writes<'_> {
        Writes {
            m: self,
            batch: sled::Batch::default(),
            seqs: HashMap::new(),
        }
    }

    /// Where artifact `hash` is (or would be) stored.
    pub fn object_path(&self, hash: &str) -> Option<PathBuf> {
        valid_hash(hash).then(|| self.dir.join("objects").join(&hash[..2]).join(hash))
    }

    /// The directory holding every artifact.
    pub fn objects_dir(&self) -> PathBuf {
        self.dir.join("objects")
    }

    /// Stores `bytes` once (fsynced); their hash.
    pub fn put_artifact(&self, bytes: &[u8]) -> Result<String, StorageError> {
        let _g = self.lock();
        self.write_object(&sha256_hex(bytes), bytes)
    }

    /// Writes an object whose hash is known (the caller holds the lock).
    pub(crate) fn write_object(&self, hash: &str, bytes: &[u8]) -> Result<String, StorageError> {
        let path = self
            .object_path(hash)
            .ok_or_else(|| StorageError::MissingArtifact {
                hash: hash.to_owned(),
            })?;
        if !path.exists() {
            write_atomically(&path, bytes).map_err(|source| StorageError::Io {
                op: "write",
                path: path.clone(),
                source,
            })?;
        }
        Ok(hash.to_owned())
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

    /// Commit `id`, if stored here.
    pub fn get_commit(&self, id: &CommitId) -> Result<Option<Commit>, StorageError> {
        match self.commits.get(commit_key(id))? {
            Some(rec) => decode_commit(&rec.body).map(Some),
            None => Ok(None),
        }
    }

    /// The commit of `version` of `model_id`, if stored here.
    pub fn commit_of_version(
        &self,
        model_id: &str,
        version: &str,
    ) -> Result<Option<(CommitId, Commit)>, StorageError> {
        let Some(ix) = self.index.get(version_key(model_id, version))? else {
            return Ok(None);
        };
        let c = self
            .get_commit(&ix.commit)?
            .ok_or_else(|| dangling(&ix.commit))?;
        Ok(Some((ix.commit, c)))
    }

    /// Commits version `v` (its artifacts must be stored already) on `branch`, whose head
    /// becomes its parent; creates the branch if needed. Refused if the version exists.
    pub fn commit(
        &self,
        v: &ModelVersion,
        branch: &str,
        message: &str,
        who: &str,
    ) -> Result<CommitId, StorageError> {
        let _g = self.lock();
        let mut w = self.writes();
        let id = self.commit_locked(&mut w, v, branch, message, who, true)?;
        w.apply()?;
        Ok(id)
    }

    fn commit_locked(
        &self,
        w: &mut Writes<'_>,
        v: &ModelVersion,
        branch: &str,
        message: &str,
        who: &str,
        check_artifacts: bool,
    ) -> Result<CommitId, StorageError> {
        names::check_model_id(&v.model_id)?;
        names::check_name("version", &v.version)?;
        names::check_name("branch", branch)?;
        if self
            .index
            .get(version_key(&v.model_id, &v.version))?
            .is_some()
        {
            return Err(StorageError::VersionExists {
                model_id: v.model_id.clone(),
                version: v.version.clone(),
            });
        }
        if check_artifacts {
            for p in &v.parts {
                if !self.object_path(&p.artifact).is_some_and(|p| p.exists()) {
                    return Err(StorageError::MissingArtifact {
                        hash: p.artifact.clone(),
                    });
                }
            }
        }
        let head_key = ref_key(&v.model_id, RefKind::Branch, branch);
        let old = self.refs.get(&head_key)?.map(|r| r.target);
        let commit = Commit::of_version(v, old.iter().cloned().collect(), message, who);
        let body = commit.canonical_bytes()?;
        let id = Commit::id_of(&body);
        let at_ms = now_ms();
        w.put(&self.commits, &commit_key(&id), &CommitRecord { body })?;
        w.put(
            &self.index,
            &version_key(&v.model_id, &v.version),
            &VersionIndex { commit: id.clone() },
        )?;
        w.put(
            &self.refs,
            &head_key,
            &RefRecord {
                target: id.clone(),
                message: String::new(),
                who: who.to_owned(),
                at_ms,
            },
        )?;
        w.reflog(ReflogEntry {
            model_id: v.model_id.clone(),
            ref_name: format!("heads/{branch}"),
            old,
            new: Some(id.clone()),
            who: who.to_owned(),
            at_ms,
            why: format!("commit: {message}"),
        })?;
        Ok(id)
    }

    /// Commits a version on `main` with a default message (see [`Models::commit`]).
    pub fn put_version(&self, v: &ModelVersion) -> Result<(), StorageError> {
        let message = format!("version {} of {}", v.version, v.name);
        self.commit(v, MAIN, &message, &v.party).map(|_| ())
    }

    /// Version `version` of `model_id` (a job id, or any revision: tag, branch, `B~N`, hash
    /// prefix), or the head of `main` if `version` is None (the newest version if there is no
    /// `main`). None when it names nothing here.
    pub fn version(
        &self,
        model_id: &str,
        version: Option<&str>,
    ) -> Result<Option<ModelVersion>, StorageError> {
        let rev = version.unwrap_or(MAIN);
        if let Some((_, c)) = self.commit_of_version(model_id, rev)? {
            return Ok(Some(c.to_version()));
        }
        match self.resolve_in(model_id, rev) {
            Ok((_, c)) => Ok(Some(c.to_version())),
            Err(StorageError::RevNotFound { .. }) if version.is_none() => {
                Ok(self.versions_of(model_id)?.into_iter().last())
            }
            Err(
                StorageError::ModelNotFound { .. }
                | StorageError::RevNotFound { .. }
                | StorageError::BadRev { .. },
            ) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every version of `model_id`, oldest first (job ids sort by time).
    pub fn versions_of(&self, model_id: &str) -> Result<Vec<ModelVersion>, StorageError> {
        self.commits_with_prefix(&format!("v/{model_id}/"))
            .map(|r| r.into_iter().map(|(_, c)| c.to_version()).collect())
    }

    /// Every version of every model, by model id then version.
    pub fn list(&self) -> Result<Vec<ModelVersion>, StorageError> {
        self.commits_with_prefix("v/")
            .map(|r| r.into_iter().map(|(_, c)| c.to_version()).collect())
    }

    /// Commits of the version index entries under `prefix`, in key order.
    pub(crate) fn commits_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<(CommitId, Commit)>, StorageError> {
        let mut out = Vec::new();
        for item in self.index.scan_prefix(prefix) {
            let (_, ix) = item?;
            let c = self
                .get_commit(&ix.commit)?
                .ok_or_else(|| dangling(&ix.commit))?;
            out.push((ix.commit, c));
        }
        Ok(out)
    }

    /// Whether anything of `model_id` is stored here.
    pub fn has_model(&self, model_id: &str) -> Result<bool, StorageError> {
        if let Some(item) = self.index.scan_prefix(format!("v/{model_id}/")).next() {
            item?;
            return Ok(true);
        }
        Ok(false)
    }

    pub(crate) fn require_model(&self, model_id: &str) -> Result<(), StorageError> {
        if self.has_model(model_id)? {
            Ok(())
        } else {
            Err(StorageError::ModelNotFound {
                model_id: model_id.to_owned(),
            })
        }
    }
}

pub(crate) fn decode_commit(body: &[u8]) -> Result<Commit, StorageError> {
    rmp_serde::from_slice(body).map_err(|e| StorageError::Corrupt {
        kind: "model commit",
        tree: TreeName::Models.as_str().to_owned(),
        reason: e.to_string(),
    })
}

pub(crate) fn dangling(id: &CommitId) -> StorageError {
    StorageError::Corrupt {
        kind: "model commit",
        tree: TreeName::Models.as_str().to_owned(),
        reason: format!("commit {id} is indexed but not stored"),
    }
}

/// The model id of a job: its name and a digest of its sorted `role:party` list, identical at
/// every party.
pub fn model_id(name: &str, parties: &[String]) -> String {
    let mut sorted = parties.to_vec();
    sorted.sort();
    format!("{name}.{}", &sha256_hex(sorted.join(",").as_bytes())[..10])
}
