//! History: `log` and `diff`.

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Commit, CommitId, MAIN, Models, RefKind};
use crate::error::StorageError;

/// One commit in a log, with the refs pointing at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its id.
    pub id: CommitId,
    /// The commit.
    pub commit: Commit,
    /// Branches pointing at it.
    pub branches: Vec<String>,
    /// Tags pointing at it.
    pub tags: Vec<String>,
}

/// What happened to one key between two commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// In both, different.
    Changed,
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

/// Differences between two commits (only what differs is listed, by key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDiff {
    /// The first commit.
    pub a: CommitId,
    /// The second commit.
    pub b: CommitId,
    /// Params (`task/param`).
    pub params: Vec<Change<serde_json::Value>>,
    /// Metrics.
    pub metrics: Vec<Change<f64>>,
    /// Artifact hashes (`task/role`).
    pub artifacts: Vec<Change<String>>,
}

fn diff_maps<T: Clone>(
    a: &BTreeMap<String, T>,
    b: &BTreeMap<String, T>,
    same: impl Fn(&T, &T) -> bool,
) -> Vec<Change<T>> {
    let mut out = Vec::new();
    for (k, va) in a {
        match b.get(k) {
            None => out.push(Change {
                key: k.clone(),
                kind: ChangeKind::Removed,
                old: Some(va.clone()),
                new: None,
            }),
            Some(vb) if !same(va, vb) => out.push(Change {
                key: k.clone(),
                kind: ChangeKind::Changed,
                old: Some(va.clone()),
                new: Some(vb.clone()),
            }),
            Some(_) => {}
        }
    }
    for (k, vb) in b {
        if !a.contains_key(k) {
            out.push(Change {
                key: k.clone(),
                kind: ChangeKind::Added,
                old: None,
                new: Some(vb.clone()),
            });
        }
    }
    out.sort_by(|x, y| x.key.cmp(&y.key));
    out
}

impl Models {
    /// Commits of `model_id`, newest first, each with the branches and tags pointing at it:
    /// those reachable from `branch` (`main` when None), or every commit of the model if `all`
    /// (including those no ref reaches, e.g. after a rollback). Parents not stored here (an
    /// imported commit, a deleted one) end the walk.
    pub fn log(
        &self,
        model_id: &str,
        branch: Option<&str>,
        all: bool,
    ) -> Result<Vec<LogEntry>, StorageError> {
        self.require_model(model_id)?;
        let mut names: HashMap<CommitId, (Vec<String>, Vec<String>)> = HashMap::new();
        for r in self.refs(model_id)? {
            let e = names.entry(r.record.target.clone()).or_default();
            match r.kind {
                RefKind::Branch => e.0.push(r.name),
                RefKind::Tag => e.1.push(r.name),
            }
        }
        let commits = if all {
            let mut v = self.commits_with_prefix(&format!("v/{model_id}/"))?;
            v.sort_by(|(_, x), (_, y)| {
                (y.created_at_ms, &y.model_version).cmp(&(x.created_at_ms, &x.model_version))
            });
            v
        } else {
            let b = branch.unwrap_or(MAIN);
            let head = self
                .head(model_id, b)?
                .ok_or_else(|| StorageError::RefNotFound {
                    model_id: model_id.to_owned(),
                    name: format!("heads/{b}"),
                })?;
            self.walk(head)?
        };
        Ok(commits
            .into_iter()
            .map(|(id, commit)| {
                let (branches, tags) = names.remove(&id).unwrap_or_default();
                LogEntry {
                    id,
                    commit,
                    branches,
                    tags,
                }
            })
            .collect())
    }

    /// Commits reachable from `head`, newest first (children always before their parents
    /// when clocks agree; ties by version).
    fn walk(&self, head: CommitId) -> Result<Vec<(CommitId, Commit)>, StorageError> {
        let mut arena: Vec<(CommitId, Commit)> = Vec::new();
        let mut heap: BinaryHeap<(u64, String, usize)> = BinaryHeap::new();
        let mut seen: HashSet<CommitId> = HashSet::new();
        let mut push = |id: CommitId,
                        arena: &mut Vec<(CommitId, Commit)>,
                        heap: &mut BinaryHeap<(u64, String, usize)>|
         -> Result<(), StorageError> {
            if seen.insert(id.clone())
                && let Some(c) = self.get_commit(&id)?
            {
                heap.push((c.created_at_ms, c.model_version.clone(), arena.len()));
                arena.push((id, c));
            }
            Ok(())
        };
        push(head, &mut arena, &mut heap)?;
        let mut order = Vec::new();
        while let Some((_, _, i)) = heap.pop() {
            order.push(i);
            let parents = arena[i].1.parents.clone();
            for p in parents {
                push(p, &mut arena, &mut heap)?;
            }
        }
        let mut slots: Vec<Option<(CommitId, Commit)>> = arena.into_iter().map(Some).collect();
        Ok(order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take))
            .collect())
    }

    /// Params, metrics and artifact hashes that differ from `a` to `b` (both `ID@REV`).
    pub fn diff(&self, a: &str, b: &str) -> Result<ModelDiff, StorageError> {
        let (ida, ca) = self.resolve(a)?;
        let (idb, cb) = self.resolve(b)?;
        Ok(ModelDiff {
            a: ida,
            b: idb,
            params: diff_maps(&ca.params(), &cb.params(), |x, y| x == y),
            metrics: diff_maps(&ca.metrics, &cb.metrics, |x, y| {
                x == y || x.to_bits() == y.to_bits()
            }),
            artifacts: diff_maps(&ca.artifacts(), &cb.artifacts(), |x, y| x == y),
        })
    }
}
