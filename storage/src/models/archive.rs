//! Export and import of one commit as a checksummed archive.
//!
//! Format: `BODY || SHA-256(BODY)` (a 32-byte trailer), where `BODY` is the MessagePack (named
//! fields) of [`Archive`]: format name and version, model id, head commit id, the commits (id
//! and the exact canonical bytes that hash to it) and the artifacts (hash and bytes). An export
//! holds only the named commit (its parents stay named by hash inside it, but are not shipped)
//! and every artifact it references, so the archive is self-contained and the imported commit
//! has the same hash. Import verifies the checksum, every commit hash and every artifact hash
//! before storing anything.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::names::{check_model_id, check_name};
use super::types::{CommitRecord, VersionIndex};
use super::{
    Commit, CommitId, MAIN, Models, RefKind, RefRecord, ReflogEntry, commit_key, decode_commit,
    now_ms, ref_key, sha256_hex, version_key,
};
use crate::error::StorageError;

const FORMAT: &str = "consort-model-archive";
const FORMAT_VERSION: u16 = 1;
const TRAILER: usize = 32;

#[derive(Serialize)]
struct ArchiveRef<'a> {
    format: &'a str,
    version: u16,
    model_id: &'a str,
    head: &'a CommitId,
    commits: Vec<BlobRef<'a>>,
    artifacts: Vec<BlobRef<'a>>,
}

#[derive(Serialize)]
struct BlobRef<'a> {
    id: &'a str,
    #[serde(with = "serde_bytes")]
    bytes: &'a [u8],
}

/// An archive as read.
#[derive(Deserialize)]
struct Archive {
    format: String,
    version: u16,
    model_id: String,
    head: String,
    commits: Vec<Blob>,
    artifacts: Vec<Blob>,
}

#[derive(Deserialize)]
struct Blob {
    id: String,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

/// What [`Models::import`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The model.
    pub model_id: String,
    /// The imported commit (same hash as at the exporter).
    pub commit: CommitId,
    /// Its version.
    pub version: String,
    /// Whether it was stored already (nothing changed).
    pub already_present: bool,
    /// Artifacts newly written.
    pub artifacts_written: usize,
    /// `main`, when the model had no `main` here and it was created at the imported commit.
    pub branch_created: Option<String>,
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
    failed: Option<std::io::Error>,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf).inspect_err(|e| {
            self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
        })?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn bad(reason: impl Into<String>) -> StorageError {
    StorageError::BadArchive {
        reason: reason.into(),
    }
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> StorageError {
    move |source| StorageError::Io {
        op,
        path: PathBuf::from("<model archive>"),
        source,
    }
}

impl Models {
    /// Writes the commit `rev` (`ID@REV`) and its artifacts to `out` as one archive; the
    /// commit and the archive's size in bytes.
    pub fn export(&self, rev: &str, out: impl Write) -> Result<(CommitId, u64), StorageError> {
        let (id, commit) = self.resolve(rev)?;
        let body = self
            .commits
            .get(commit_key(&id))?
            .ok_or_else(|| super::dangling(&id))?
            .body;
        let mut blobs = BTreeMap::new();
        for p in &commit.parts {
            if !blobs.contains_key(&p.artifact) {
                blobs.insert(p.artifact.clone(), self.artifact(&p.artifact)?);
            }
        }
        let archive = ArchiveRef {
            format: FORMAT,
            version: FORMAT_VERSION,
            model_id: &commit.model_id,
            head: &id,
            commits: vec![BlobRef {
                id: id.as_str(),
                bytes: &body,
            }],
            artifacts: blobs
                .iter()
                .map(|(h, b)| BlobRef { id: h, bytes: b })
                .collect(),
        };
        let mut w = HashingWriter {
            inner: out,
            hasher: Sha256::new(),
            written: 0,
            failed: None,
        };
        if let Err(e) = rmp_serde::encode::write_named(&mut w, &archive) {
            return Err(match w.failed.take() {
                Some(e) => io("write")(e),
                None => StorageError::Encode {
                    kind: "model archive",
                    reason: e.to_string(),
                },
            });
        }
        let digest = w.hasher.finalize_reset();
        w.inner.write_all(&digest).map_err(io("write"))?;
        w.inner.flush().map_err(io("flush"))?;
        Ok((id, w.written + TRAILER as u64))
    }

    /// Reads an archive written by [`Models::export`]: verifies its checksum, every commit hash
    /// and every artifact hash, and refuses a version stored here as another commit — all
    /// before storing anything. Then stores the artifacts (fsynced) and commits (one flushed
    /// batch). Creates `main` at the commit if the model has no `main` here; otherwise no ref
    /// moves (tag, branch or roll back to it).
    pub fn import(&self, mut input: impl Read) -> Result<ImportReport, StorageError> {
        let mut data = Vec::new();
        input.read_to_end(&mut data).map_err(io("read"))?;
        if data.len() < TRAILER {
            return Err(bad("too short to be a model archive"));
        }
        let (body, trailer) = data.split_at(data.len() - TRAILER);
        if Sha256::digest(body).as_slice() != trailer {
            return Err(bad(
                "checksum mismatch: the archive is corrupted or truncated",
            ));
        }
        let archive: Archive =
            rmp_serde::from_slice(body).map_err(|e| bad(format!("not a model archive: {e}")))?;
        if archive.format != FORMAT || archive.version != FORMAT_VERSION {
            return Err(bad(format!(
                "format {} v{} (this build reads {FORMAT} v{FORMAT_VERSION})",
                archive.format, archive.version
            )));
        }
        check_model_id(&archive.model_id).map_err(|e| bad(e.to_string()))?;
        let head = CommitId::parse(&archive.head)
            .ok_or_else(|| bad(format!("head '{}' is not a commit hash", archive.head)))?;

        let mut commits: Vec<(CommitId, Commit, &[u8])> = Vec::new();
        for blob in &archive.commits {
            let id = CommitId::parse(&blob.id)
                .ok_or_else(|| bad(format!("'{}' is not a commit hash", blob.id)))?;
            if Commit::id_of(&blob.bytes) != id {
                return Err(bad(format!("commit {id} does not match its hash")));
            }
            let c = decode_commit(&blob.bytes).map_err(|e| bad(e.to_string()))?;
            if c.model_id != archive.model_id {
                return Err(bad(format!("commit {id} is of model '{}'", c.model_id)));
            }
            check_name("version", &c.model_version).map_err(|e| bad(e.to_string()))?;
            commits.push((id, c, &blob.bytes));
        }
        let Some((_, head_commit, _)) = commits.iter().find(|(id, ..)| *id == head) else {
            return Err(bad(format!("head commit {head} is not in the archive")));
        };
        let mut shipped = HashSet::new();
        for blob in &archive.artifacts {
            if self.object_path(&blob.id).is_none() || sha256_hex(&blob.bytes) != blob.id {
                return Err(bad(format!(
                    "artifact '{}' does not match its hash",
                    blob.id
                )));
            }
            shipped.insert(blob.id.as_str());
        }
        for (id, c, _) in &commits {
            for p in &c.parts {
                let here = self.object_path(&p.artifact).is_some_and(|p| p.exists());
                if !shipped.contains(p.artifact.as_str()) && !here {
                    return Err(bad(format!(
                        "commit {id} needs artifact {} which is neither in the archive nor here",
                        p.artifact
                    )));
                }
            }
        }

        // One commit per version, also inside the archive: two different commits claiming the
        // same version would leave the version index and the branch disagreeing.
        let mut claimed = std::collections::HashMap::new();
        for (id, c, _) in &commits {
            if let Some(other) = claimed.insert((&c.model_id, &c.model_version), id)
                && other != id
            {
                return Err(bad(format!(
                    "commits {other} and {id} both claim version {} of {}",
                    c.model_version, c.model_id
                )));
            }
        }

        let _g = self.lock();
        let mut fresh = Vec::new();
        for (id, c, bytes) in &commits {
            match self.index.get(version_key(&c.model_id, &c.model_version))? {
                Some(ix) if ix.commit == *id => {}
                Some(_) => {
                    return Err(StorageError::VersionExists {
                        model_id: c.model_id.clone(),
                        version: c.model_version.clone(),
                    });
                }
                None => fresh.push((id, c, *bytes)),
            }
        }
        let already_present = !fresh.iter().any(|(id, ..)| **id == head);
        let version = head_commit.model_version.clone();
        let mut written = 0;
        for blob in &archive.artifacts {
            if !self.object_path(&blob.id).is_some_and(|p| p.exists()) {
                self.write_object(&blob.id, &blob.bytes)?;
                written += 1;
            }
        }
        let mut w = self.writes();
        for (id, c, bytes) in &fresh {
            w.put(
                &self.commits,
                &commit_key(id),
                &CommitRecord {
                    body: bytes.to_vec(),
                },
            )?;
            w.put(
                &self.index,
                &version_key(&c.model_id, &c.model_version),
                &VersionIndex {
                    commit: (*id).clone(),
                },
            )?;
        }
        let main_key = ref_key(&archive.model_id, RefKind::Branch, MAIN);
        let mut branch_created = None;
        if self.refs.get(&main_key)?.is_none() {
            let at_ms = now_ms();
            w.put(
                &self.refs,
                &main_key,
                &RefRecord {
                    target: head.clone(),
                    message: String::new(),
                    who: "import".into(),
                    at_ms,
                },
            )?;
            w.reflog(ReflogEntry {
                model_id: archive.model_id.clone(),
                ref_name: format!("heads/{MAIN}"),
                old: None,
                new: Some(head.clone()),
                who: "import".into(),
                at_ms,
                why: format!("import of version {version}"),
            })?;
            branch_created = Some(MAIN.to_owned());
        }
        w.apply()?;
        Ok(ImportReport {
            model_id: archive.model_id,
            commit: head,
            version,
            already_present,
            artifacts_written: written,
            branch_created,
        })
    }
}
