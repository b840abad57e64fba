//! Revisions: `ID`, `ID@VERSION`, `ID@TAG`, `ID@BRANCH`, `ID@REV~N`, `ID@<hash prefix>`.

use serde::{Deserialize, Serialize};

use super::names::{check_model_id, valid_ref_name};
use super::{Commit, CommitId, MAIN, Models, RefKind, decode_commit, ref_key, version_key};
use crate::error::StorageError;

/// A parsed revision within a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevSpec {
    /// Branch, tag, version or hash prefix.
    pub base: String,
    /// How many first parents to walk back (`~N`; `~` alone is 1).
    pub back: u64,
}

/// Shortest accepted commit-hash prefix.
pub const MIN_HASH_PREFIX: usize = 7;

fn bad(rev: &str, reason: impl Into<String>) -> StorageError {
    StorageError::BadRev {
        rev: rev.to_owned(),
        reason: reason.into(),
    }
}

/// Parses the part after `@` (`main`, `v1`, `main~2`, `abc1234~`).
pub fn parse_spec(rev: &str) -> Result<RevSpec, StorageError> {
    let mut pieces = rev.split('~');
    let base = pieces.next().unwrap_or_default();
    if base.is_empty() {
        return Err(bad(rev, "nothing before '~'"));
    }
    if !valid_ref_name(base) {
        return Err(bad(
            rev,
            "a revision is a branch, tag, version or hash of 1 to 64 of [A-Za-z0-9._-]",
        ));
    }
    let mut back: u64 = 0;
    for p in pieces {
        let n = if p.is_empty() {
            1
        } else if p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse::<u64>()
                .map_err(|_| bad(rev, format!("'~{p}' is too large")))?
        } else {
            return Err(bad(rev, format!("'~{p}' is not '~N'")));
        };
        back = back
            .checked_add(n)
            .ok_or_else(|| bad(rev, "'~N' is too large"))?;
    }
    Ok(RevSpec {
        base: base.to_owned(),
        back,
    })
}

/// Parses `ID[@REV]` into the model id and the revision (`main` when absent).
pub fn parse_rev(s: &str) -> Result<(String, RevSpec), StorageError> {
    let (id, rev) = match s.split_once('@') {
        Some((id, rev)) => {
            if rev.is_empty() {
                return Err(bad(s, "nothing after '@'"));
            }
            if rev.contains('@') {
                return Err(bad(s, "more than one '@'"));
            }
            (id, rev)
        }
        None => (s, MAIN),
    };
    check_model_id(id).map_err(|e| bad(s, e.to_string()))?;
    Ok((id.to_owned(), parse_spec(rev)?))
}

impl Models {
    /// Resolves `ID[@REV]`.
    pub fn resolve(&self, rev: &str) -> Result<(CommitId, Commit), StorageError> {
        let (model_id, spec) = parse_rev(rev)?;
        self.resolve_spec(&model_id, &spec, rev)
    }

    /// Resolves `REV` (or `ID@REV` with this model's id) within `model_id`.
    pub fn resolve_in(
        &self,
        model_id: &str,
        rev: &str,
    ) -> Result<(CommitId, Commit), StorageError> {
        let spec = match rev.split_once('@') {
            Some((id, _)) => {
                let (id2, spec) = parse_rev(rev)?;
                if id2 != model_id {
                    return Err(bad(rev, format!("names model '{id}', not '{model_id}'")));
                }
                spec
            }
            None => parse_spec(rev)?,
        };
        self.resolve_spec(model_id, &spec, rev)
    }

    fn resolve_spec(
        &self,
        model_id: &str,
        spec: &RevSpec,
        rev: &str,
    ) -> Result<(CommitId, Commit), StorageError> {
        self.require_model(model_id)?;
        let mut id = self.resolve_base(model_id, &spec.base, rev)?;
        let mut commit = self.get_commit(&id)?.ok_or_else(|| super::dangling(&id))?;
        for walked in 0..spec.back {
            let parent = match commit.parents.first() {
                Some(p) => self.get_commit(p)?.map(|c| (p.clone(), c)),
                None => None,
            };
            let Some((pid, pc)) = parent else {
                return Err(StorageError::BeyondHistory {
                    model_id: model_id.to_owned(),
                    rev: rev.to_owned(),
                    wanted: spec.back,
                    available: walked,
                });
            };
            id = pid;
            commit = pc;
        }
        Ok((id, commit))
    }

    fn resolve_base(
        &self,
        model_id: &str,
        base: &str,
        rev: &str,
    ) -> Result<CommitId, StorageError> {
        let mut found: Vec<(String, CommitId)> = Vec::new();
        for kind in [RefKind::Branch, RefKind::Tag] {
            if let Some(r) = self.refs.get(ref_key(model_id, kind, base))? {
                found.push((format!("{}/{base}", kind.dir()), r.target));
            }
        }
        if let Some(ix) = self.index.get(version_key(model_id, base))? {
            found.push((format!("version {base}"), ix.commit));
        }
        if found.is_empty()
            && base.len() >= MIN_HASH_PREFIX
            && base.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let prefix = base.to_ascii_lowercase();
            for item in self.commits.scan_prefix(commit_key_prefix(&prefix)) {
                let (key, rec) = item?;
                let c = decode_commit(&rec.body)?;
                if c.model_id == model_id {
                    let hex = String::from_utf8_lossy(&key[2..]).into_owned();
                    let id = CommitId::parse(&hex)
                        .ok_or_else(|| super::dangling(&Commit::id_of(&rec.body)))?;
                    found.push((format!("commit {}", id.short()), id));
                }
            }
        }
        let Some((_, first)) = found.first() else {
            return Err(StorageError::RevNotFound {
                model_id: model_id.to_owned(),
                rev: rev.to_owned(),
            });
        };
        if found.iter().all(|(_, t)| t == first) {
            Ok(first.clone())
        } else {
            Err(StorageError::AmbiguousRev {
                model_id: model_id.to_owned(),
                rev: rev.to_owned(),
                candidates: found.into_iter().map(|(what, _)| what).collect(),
            })
        }
    }
}

fn commit_key_prefix(hex_prefix: &str) -> String {
    format!("c/{hex_prefix}")
}
