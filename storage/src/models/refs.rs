//! Branches, tags and their moves, in two steps for moves agreed across parties:
//! [`Models::check_move`] (would it succeed here?) then [`Models::apply_move`].

use serde::{Deserialize, Serialize};

use super::names::{check_model_id, check_name};
use super::{CommitId, MAIN, Models, RefInfo, RefKind, RefRecord, ReflogEntry, now_ms, ref_key};
use crate::error::StorageError;

/// A ref move, as proposed to every party of a model. Revisions are resolved by each party in
/// its own store (commit hashes differ between parties; versions and tags do not), so name
/// them by version (`ID@<job id>`) or tag when the move must be the same everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RefMove {
    /// Create tag `name` at `rev`.
    Tag {
        /// Model id.
        model_id: String,
        /// Tag name.
        name: String,
        /// Revision (`REV` or `ID@REV`).
        rev: String,
        /// Tag message.
        message: String,
        /// Who asks.
        who: String,
    },
    /// Create branch `name` at `from` (`main` when None).
    Branch {
        /// Model id.
        model_id: String,
        /// Branch name.
        name: String,
        /// Revision (`REV` or `ID@REV`).
        from: Option<String>,
        /// Who asks.
        who: String,
    },
    /// Move branch `branch` to `to` (any commit of the model, reachable or not).
    Rollback {
        /// Model id.
        model_id: String,
        /// Branch name.
        branch: String,
        /// Revision (`REV` or `ID@REV`).
        to: String,
        /// Who asks.
        who: String,
    },
}

struct Plan {
    model_id: String,
    kind: RefKind,
    name: String,
    old: Option<CommitId>,
    new: CommitId,
    message: String,
    who: String,
    why: String,
}

impl Models {
    fn plan(&self, op: &RefMove) -> Result<Plan, StorageError> {
        match op {
            RefMove::Tag {
                model_id,
                name,
                rev,
                message,
                who,
            } => {
                check_model_id(model_id)?;
                check_name("tag", name)?;
                let (new, _) = self.resolve_in(model_id, rev)?;
                self.require_free(model_id, RefKind::Tag, name)?;
                Ok(Plan {
                    model_id: model_id.clone(),
                    kind: RefKind::Tag,
                    name: name.clone(),
                    old: None,
                    new,
                    message: message.clone(),
                    who: who.clone(),
                    why: format!("tag {rev}"),
                })
            }
            RefMove::Branch {
                model_id,
                name,
                from,
                who,
            } => {
                check_model_id(model_id)?;
                check_name("branch", name)?;
                let from = from.as_deref().unwrap_or(MAIN);
                let (new, _) = self.resolve_in(model_id, from)?;
                self.require_free(model_id, RefKind::Branch, name)?;
                Ok(Plan {
                    model_id: model_id.clone(),
                    kind: RefKind::Branch,
                    name: name.clone(),
                    old: None,
                    new,
                    message: String::new(),
                    who: who.clone(),
                    why: format!("branch from {from}"),
                })
            }
            RefMove::Rollback {
                model_id,
                branch,
                to,
                who,
            } => {
                check_model_id(model_id)?;
                check_name("branch", branch)?;
                let (new, _) = self.resolve_in(model_id, to)?;
                let old = self
                    .refs
                    .get(ref_key(model_id, RefKind::Branch, branch))?
                    .ok_or_else(|| StorageError::RefNotFound {
                        model_id: model_id.clone(),
                        name: format!("heads/{branch}"),
                    })?;
                Ok(Plan {
                    model_id: model_id.clone(),
                    kind: RefKind::Branch,
                    name: branch.clone(),
                    old: Some(old.target),
                    new,
                    message: String::new(),
                    who: who.clone(),
                    why: format!("rollback to {to}"),
                })
            }
        }
    }

    fn require_free(&self, model_id: &str, kind: RefKind, name: &str) -> Result<(), StorageError> {
        match self.refs.get(ref_key(model_id, kind, name))? {
            Some(_) => Err(StorageError::RefExists {
                model_id: model_id.to_owned(),
                name: format!("{}/{name}", kind.dir()),
            }),
            None => Ok(()),
        }
    }

    /// Whether `op` would succeed here now (the commit exists, the name is valid and free, the
    /// branch exists…). Changes nothing. [`Models::apply_move`] refuses exactly what this
    /// refuses (unless the store changed in between).
    pub fn check_move(&self, op: &RefMove) -> Result<(), StorageError> {
        self.plan(op).map(|_| ())
    }

    /// Applies `op` (ref and reflog entry in one atomic, flushed batch); the commit the ref
    /// now points at. A rollback to where the branch already is changes nothing.
    pub fn apply_move(&self, op: &RefMove) -> Result<CommitId, StorageError> {
        let _g = self.lock();
        let plan = self.plan(op)?;
        if plan.old.as_ref() == Some(&plan.new) {
            return Ok(plan.new);
        }
        let at_ms = now_ms();
        let mut w = self.writes();
        w.put(
            &self.refs,
            &ref_key(&plan.model_id, plan.kind, &plan.name),
            &RefRecord {
                target: plan.new.clone(),
                message: plan.message,
                who: plan.who.clone(),
                at_ms,
            },
        )?;
        w.reflog(ReflogEntry {
            model_id: plan.model_id,
            ref_name: format!("{}/{}", plan.kind.dir(), plan.name),
            old: plan.old,
            new: Some(plan.new.clone()),
            who: plan.who,
            at_ms,
            why: plan.why,
        })?;
        w.apply()?;
        Ok(plan.new)
    }

    /// Tags `rev` (`ID@REV`) as `name`; refused if the tag exists.
    pub fn tag(
        &self,
        rev: &str,
        name: &str,
        message: &str,
        who: &str,
    ) -> Result<CommitId, StorageError> {
        let (model_id, _) = super::parse_rev(rev)?;
        self.apply_move(&RefMove::Tag {
            model_id,
            name: name.to_owned(),
            rev: rev.to_owned(),
            message: message.to_owned(),
            who: who.to_owned(),
        })
    }

    /// Creates branch `name` at `from_rev` (`main` when None); refused if it exists.
    pub fn branch(
        &self,
        model_id: &str,
        name: &str,
        from_rev: Option<&str>,
        who: &str,
    ) -> Result<CommitId, StorageError> {
        self.apply_move(&RefMove::Branch {
            model_id: model_id.to_owned(),
            name: name.to_owned(),
            from: from_rev.map(str::to_owned),
            who: who.to_owned(),
        })
    }

    /// Moves branch `branch` to `to_rev`; recorded in the reflog, undone by another rollback.
    pub fn rollback(
        &self,
        model_id: &str,
        branch: &str,
        to_rev: &str,
        who: &str,
    ) -> Result<CommitId, StorageError> {
        self.apply_move(&RefMove::Rollback {
            model_id: model_id.to_owned(),
            branch: branch.to_owned(),
            to: to_rev.to_owned(),
            who: who.to_owned(),
        })
    }

    /// Deletes tag `name` (the only way to change a tag); where it pointed.
    pub fn delete_tag(
        &self,
        model_id: &str,
        name: &str,
        who: &str,
    ) -> Result<CommitId, StorageError> {
        let _g = self.lock();
        let key = ref_key(model_id, RefKind::Tag, name);
        let old = self
            .refs
            .get(&key)?
            .ok_or_else(|| StorageError::RefNotFound {
                model_id: model_id.to_owned(),
                name: format!("tags/{name}"),
            })?;
        let mut w = self.writes();
        w.remove(&key);
        w.reflog(ReflogEntry {
            model_id: model_id.to_owned(),
            ref_name: format!("tags/{name}"),
            old: Some(old.target.clone()),
            new: None,
            who: who.to_owned(),
            at_ms: now_ms(),
            why: "delete tag".into(),
        })?;
        w.apply()?;
        Ok(old.target)
    }

    /// The commit branch `branch` points at, if it exists.
    pub fn head(&self, model_id: &str, branch: &str) -> Result<Option<CommitId>, StorageError> {
        Ok(self
            .refs
            .get(ref_key(model_id, RefKind::Branch, branch))?
            .map(|r| r.target))
    }

    /// Every branch and tag of `model_id`: branches then tags, by name.
    pub fn refs(&self, model_id: &str) -> Result<Vec<RefInfo>, StorageError> {
        let mut out = Vec::new();
        for kind in [RefKind::Branch, RefKind::Tag] {
            let prefix = format!("ref/{model_id}/{}/", kind.dir());
            for item in self.refs.scan_prefix(&prefix) {
                let (key, record) = item?;
                let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                out.push(RefInfo { kind, name, record });
            }
        }
        Ok(out)
    }

    /// The reflog of `model_id`, newest first; only moves of `ref_name` (`heads/main`,
    /// `tags/v1`) if given.
    pub fn reflog(
        &self,
        model_id: &str,
        ref_name: Option<&str>,
    ) -> Result<Vec<ReflogEntry>, StorageError> {
        let mut out = Vec::new();
        for item in self.reflog.scan_prefix_rev(format!("log/{model_id}/")) {
            let (_, e) = item?;
            if ref_name.is_none_or(|r| r == e.ref_name) {
                out.push(e);
            }
        }
        Ok(out)
    }
}
