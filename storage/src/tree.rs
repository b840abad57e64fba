use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StorageError;
use crate::store::TreeName;

/// A value that can be stored: it names its kind and schema version.
pub trait Record: Serialize + DeserializeOwned {
    /// Human name of the record kind, for errors.
    const KIND: &'static str;
    /// Schema version written by this build. Bump it when the shape changes incompatibly.
    const VERSION: u16;
}

#[derive(Serialize)]
struct EnvelopeRef<'a, V> {
    v: u16,
    data: &'a V,
}

#[derive(serde::Deserialize)]
struct Header {
    v: u16,
}

#[derive(serde::Deserialize)]
struct Envelope<V> {
    data: V,
}

/// A typed view of one sled tree holding records of type `V`.
pub struct Tree<V> {
    tree: sled::Tree,
    name: TreeName,
    _v: PhantomData<fn() -> V>,
}

impl<V> Clone for Tree<V> {
    fn clone(&self) -> Self {
        Self {
            tree: self.tree.clone(),
            name: self.name,
            _v: PhantomData,
        }
    }
}

impl<V> std::fmt::Debug for Tree<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tree({})", self.name.as_str())
    }
}

impl<V: Record> Tree<V> {
    pub(crate) fn new(tree: sled::Tree, name: TreeName) -> Self {
        Self {
            tree,
            name,
            _v: PhantomData,
        }
    }

    fn db_err(&self, op: &'static str) -> impl FnOnce(sled::Error) -> StorageError + '_ {
        move |source| StorageError::Db {
            op,
            tree: self.name.as_str().to_owned(),
            source,
        }
    }

    pub(crate) fn encode(&self, value: &V) -> Result<Vec<u8>, StorageError> {
        rmp_serde::to_vec_named(&EnvelopeRef {
            v: V::VERSION,
            data: value,
        })
        .map_err(|e| StorageError::Encode {
            kind: V::KIND,
            reason: e.to_string(),
        })
    }

    pub(crate) fn decode(&self, bytes: &[u8]) -> Result<V, StorageError> {
        let corrupt = |e: rmp_serde::decode::Error| StorageError::Corrupt {
            kind: V::KIND,
            tree: self.name.as_str().to_owned(),
            reason: e.to_string(),
        };
        let header: Header = rmp_serde::from_slice(bytes).map_err(corrupt)?;
        if header.v != V::VERSION {
            return Err(StorageError::UnsupportedVersion {
                kind: V::KIND,
                tree: self.name.as_str().to_owned(),
                found: header.v,
                supported: V::VERSION,
            });
        }
        let env: Envelope<V> = rmp_serde::from_slice(bytes).map_err(corrupt)?;
        Ok(env.data)
    }

    /// The record under `key`, if any.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<V>, StorageError> {
        match self.tree.get(key).map_err(self.db_err("get"))? {
            Some(bytes) => self.decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key`, replacing any previous record.
    pub fn put(&self, key: impl AsRef<[u8]>, value: &V) -> Result<(), StorageError> {
        let bytes = self.encode(value)?;
        self.tree
            .insert(key.as_ref(), bytes)
            .map_err(self.db_err("insert"))?;
        Ok(())
    }

    /// Stores `value`, which serializes exactly as a `V` does (a newtype's inner value), under
    /// `key`: saves building a `V` from a borrowed value.
    pub(crate) fn put_as<T: serde::Serialize>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
    ) -> Result<(), StorageError> {
        let bytes = rmp_serde::to_vec_named(&EnvelopeRef {
            v: V::VERSION,
            data: value,
        })
        .map_err(|e| StorageError::Encode {
            kind: V::KIND,
            reason: e.to_string(),
        })?;
        self.tree
            .insert(key.as_ref(), bytes)
            .map_err(self.db_err("insert"))?;
        Ok(())
    }

    /// Removes the record under `key`; returns it if there was one.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<V>, StorageError> {
        match self.tree.remove(key).map_err(self.db_err("remove"))? {
            Some(bytes) => self.decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Writes this tree's pending changes to disk.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.tree.flush().map_err(self.db_err("flush"))?;
        Ok(())
    }

    /// Number of records (walks the tree: O(n)).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the tree holds no record.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The underlying sled tree (atomic batches spanning several record types).
    pub(crate) fn raw(&self) -> &sled::Tree {
        &self.tree
    }

    /// Records whose key starts with `prefix`, in reverse key order.
    pub fn scan_prefix_rev(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, V), StorageError>> + '_ {
        self.tree.scan_prefix(prefix).rev().map(move |item| {
            let (k, v) = item.map_err(self.db_err("scan"))?;
            Ok((k.to_vec(), self.decode(&v)?))
        })
    }

    /// Records with `after < key <= until` (open ends for `None`), in key order.
    pub fn scan_range(
        &self,
        after: Option<&[u8]>,
        until: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, V), StorageError>> + '_ {
        use std::ops::Bound;
        let lo = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_vec()));
        let hi = until.map_or(Bound::Unbounded, |u| Bound::Included(u.to_vec()));
        self.tree.range::<Vec<u8>, _>((lo, hi)).map(move |item| {
            let (k, v) = item.map_err(self.db_err("scan"))?;
            Ok((k.to_vec(), self.decode(&v)?))
        })
    }

    /// Records whose key starts with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, V), StorageError>> + '_ {
        self.tree.scan_prefix(prefix).map(move |item| {
            let (k, v) = item.map_err(self.db_err("scan"))?;
            Ok((k.to_vec(), self.decode(&v)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreOptions};
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Job {
        name: String,
        tasks: u32,
    }
    impl Record for Job {
        const KIND: &'static str = "job";
        const VERSION: u16 = 1;
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct JobV2 {
        name: String,
    }
    impl Record for JobV2 {
        const KIND: &'static str = "job";
        const VERSION: u16 = 2;
    }

    #[test]
    fn put_get_remove_scan() {
        let store = Store::temporary().expect("open");
        let jobs = store.tree::<Job>(TreeName::Jobs).expect("tree");
        assert!(jobs.is_empty());
        for i in 0..5u32 {
            let job = Job {
                name: format!("j{i}"),
                tasks: i,
            };
            jobs.put(format!("job/{i}"), &job).expect("put");
        }
        jobs.put(
            "other",
            &Job {
                name: "o".into(),
                tasks: 0,
            },
        )
        .expect("put");
        assert_eq!(jobs.len(), 6);
        assert_eq!(jobs.get("job/3").expect("get").map(|j| j.tasks), Some(3));
        let scanned: Vec<_> = jobs
            .scan_prefix("job/")
            .collect::<Result<_, _>>()
            .expect("scan");
        assert_eq!(scanned.len(), 5);
        assert_eq!(
            jobs.remove("job/3").expect("remove").map(|j| j.tasks),
            Some(3)
        );
        assert_eq!(jobs.get("job/3").expect("get"), None);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
            let jobs = store.tree::<Job>(TreeName::Jobs).expect("tree");
            jobs.put(
                "a",
                &Job {
                    name: "a".into(),
                    tasks: 1,
                },
            )
            .expect("put");
            store.flush().expect("flush");
        }
        let store = Store::open(dir.path(), &StoreOptions::default()).expect("reopen");
        let jobs = store.tree::<Job>(TreeName::Jobs).expect("tree");
        assert_eq!(
            jobs.get("a").expect("get"),
            Some(Job {
                name: "a".into(),
                tasks: 1
            })
        );
    }

    #[test]
    fn other_schema_version_is_reported_not_misread() {
        let store = Store::temporary().expect("open");
        store
            .tree::<JobV2>(TreeName::Jobs)
            .expect("tree")
            .put("a", &JobV2 { name: "a".into() })
            .expect("put");
        let err = store
            .tree::<Job>(TreeName::Jobs)
            .expect("tree")
            .get("a")
            .expect_err("version mismatch");
        assert!(
            matches!(
                err,
                StorageError::UnsupportedVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_reported_as_corrupt() {
        let store = Store::temporary().expect("open");
        let raw = store.db().open_tree("jobs").expect("tree");
        raw.insert("a", &b"\xc1garbage"[..]).expect("insert");
        let err = store
            .tree::<Job>(TreeName::Jobs)
            .expect("tree")
            .get("a")
            .expect_err("corrupt");
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    }
}
