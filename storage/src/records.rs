//! The replicated record set: the highest version of every `(origin, key)` this party knows.

use consort_protocol::jobs::RecordKey;
use consort_protocol::peer::{DigestEntry, Record};
use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::store::{Store, TreeName};
use crate::tree::{Record as Stored, Tree};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRecord(Record);

impl Stored for StoredRecord {
    const KIND: &'static str = "replicated record";
    const VERSION: u16 = 1;
}

/// What [`RecordStore::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The record was new or newer and is now stored.
    Stored,
    /// An equal or newer version was already held; nothing changed.
    Stale,
}

/// Replicated records in one tree, keyed so that a job's records are one prefix scan whatever
/// the history: `1 job \0 origin \0 key` for job-scoped records, `0 origin \0 key` for the
/// rest. (Until 2026-11 a second tree indexed the job-scoped records by job: every record
/// was written twice. A store in that layout is rewritten when it is opened.) Signature
/// checks happen before `apply`.
#[derive(Debug, Clone)]
pub struct RecordStore {
    tree: Tree<StoredRecord>,
}

/// The first byte of a store key: a record of no job.
const NO_JOB: u8 = 0;
/// The first byte of a store key: a job-scoped record.
const IN_JOB: u8 = 1;

/// The job a record key belongs to, if it is job-scoped.
fn job_of(key: &str) -> Option<String> {
    RecordKey::parse(key).map(|k| k.job().as_str().to_owned())
}

/// The store key of `(origin, key)`. Party names and job ids never contain `\0`, so the
/// split is unambiguous.
fn db_key(origin: &str, key: &str) -> Vec<u8> {
    let job = job_of(key);
    let mut k =
        Vec::with_capacity(2 + job.as_ref().map_or(0, |j| j.len() + 1) + origin.len() + key.len());
    match &job {
        Some(job) => {
            k.push(IN_JOB);
            k.extend_from_slice(job.as_bytes());
            k.push(0);
        }
        None => k.push(NO_JOB),
    }
    k.extend_from_slice(origin.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

impl RecordStore {
    /// Opens the records tree of `store`.
    pub fn open(store: &Store) -> Result<Self, StorageError> {
        let this = Self {
            tree: store.tree(TreeName::Records)?,
        };
        this.migrate(store)?;
        Ok(this)
    }

    /// Rewrites records stored in the layout before 2026-11 (`origin \0 key`, whose first
    /// byte is a party name's) under their current keys, and drops the old by-job index.
    fn migrate(&self, store: &Store) -> Result<(), StorageError> {
        // One record at a time (the store may be large); current keys sort below the scan's
        // start, so a rewritten record is not met again.
        for item in self.tree.scan_range(Some(&[IN_JOB, u8::MAX]), None) {
            let (k, StoredRecord(r)) = item?;
            self.tree.put_as(db_key(r.origin.as_str(), &r.key), &r)?;
            self.tree.remove(&k)?;
        }
        store.drop_tree(TreeName::RecordsByJob)
    }

    /// Every record held of `job` (the job record, decisions, stops, reruns, task states):
    /// one prefix scan, whatever else the store holds.
    pub fn of_job(&self, job: &str) -> Result<Vec<Record>, StorageError> {
        let mut prefix = Vec::with_capacity(job.len() + 2);
        prefix.push(IN_JOB);
        prefix.extend_from_slice(job.as_bytes());
        prefix.push(0);
        self.tree
            .scan_prefix(&prefix)
            .map(|item| item.map(|(_, StoredRecord(r))| r))
            .collect()
    }

    /// The record under `(origin, key)`.
    pub fn get(&self, origin: &str, key: &str) -> Result<Option<Record>, StorageError> {
        Ok(self.tree.get(db_key(origin, key))?.map(|r| r.0))
    }

    /// Keeps `record` if it is newer than what is held.
    pub fn apply(&self, record: &Record) -> Result<Applied, StorageError> {
        let key = db_key(record.origin.as_str(), &record.key);
        if let Some(held) = self.tree.get(&key)?
            && held.0.version >= record.version
        {
            return Ok(Applied::Stale);
        }
        self.tree.put_as(&key, record)?;
        Ok(Applied::Stored)
    }

    /// Stores `record` over whatever is held under its key, without reading it first: for
    /// the store's single writer (the network event loop), which has compared versions.
    pub fn store_newer(&self, record: &Record) -> Result<(), StorageError> {
        // A `StoredRecord` is its record on disk: no copy of it is made to store it.
        self.tree
            .put_as(db_key(record.origin.as_str(), &record.key), record)
    }

    /// Every record held that belongs to no job (one prefix scan).
    pub fn without_job(&self) -> Result<Vec<Record>, StorageError> {
        self.tree
            .scan_prefix([NO_JOB])
            .map(|item| item.map(|(_, StoredRecord(r))| r))
            .collect()
    }

    /// Writes pending changes to disk (after this party's own writes, which others rely on).
    pub fn flush(&self) -> Result<(), StorageError> {
        self.tree.flush()
    }

    /// The version the next write of `(origin, key)` should carry: above both the held
    /// version and the wall clock in milliseconds, so versions stay monotonic across restarts
    /// and clock steps.
    pub fn next_version(&self, origin: &str, key: &str, now_ms: u64) -> Result<u64, StorageError> {
        let held = self.get(origin, key)?.map(|r| r.version).unwrap_or(0);
        Ok(held.saturating_add(1).max(now_ms))
    }

    /// Every record held.
    pub fn all(&self) -> Result<Vec<Record>, StorageError> {
        self.tree
            .scan_prefix([])
            .map(|r| r.map(|(_, v)| v.0))
            .collect()
    }

    /// One page of the digest for a partner: `(origin, key, version)` of at most `limit`
    /// records after store key `after` that `visible` lets the partner see, and the store key
    /// the page ends at (inclusive; `None` when the page runs to the end).
    pub fn digest_page(
        &self,
        after: Option<&[u8]>,
        limit: usize,
        visible: &dyn Fn(&Record) -> bool,
    ) -> Result<(Vec<DigestEntry>, Option<Vec<u8>>), StorageError> {
        let mut entries = Vec::new();
        let mut last = Vec::new();
        for item in self.tree.scan_range(after, None) {
            let (k, StoredRecord(r)) = item?;
            if !visible(&r) {
                continue;
            }
            if entries.len() == limit {
                // A full page ends at its last key; the next page starts after it.
                return Ok((entries, Some(last)));
            }
            last = k;
            entries.push(DigestEntry {
                origin: r.origin,
                key: r.key,
                version: r.version,
            });
        }
        Ok((entries, None))
    }

    /// The records in store-key range `(after, until]` that `digest` (the partner's entries
    /// for that range) lacks or holds older versions of and that `visible` lets it see, up to
    /// `budget` bytes of values. The flag says the answer was cut at the budget.
    pub fn newer_in_range(
        &self,
        digest: &[DigestEntry],
        after: Option<&[u8]>,
        until: Option<&[u8]>,
        visible: &dyn Fn(&Record) -> bool,
        budget: usize,
    ) -> Result<(Vec<Record>, bool), StorageError> {
        let known: std::collections::HashMap<(&str, &str), u64> = digest
            .iter()
            .map(|e| ((e.origin.as_str(), e.key.as_str()), e.version))
            .collect();
        let mut out = Vec::new();
        let mut used = 0usize;
        for item in self.tree.scan_range(after, until) {
            let (_, StoredRecord(r)) = item?;
            let newer = known
                .get(&(r.origin.as_str(), r.key.as_str()))
                .is_none_or(|v| *v < r.version);
            if !newer || !visible(&r) {
                continue;
            }
            if used + r.value.len() > budget && !out.is_empty() {
                return Ok((out, true));
            }
            used += r.value.len();
            out.push(r);
        }
        Ok((out, false))
    }

    /// Records held and bytes of values, per origin party.
    pub fn usage_by_origin(
        &self,
    ) -> Result<std::collections::HashMap<String, (u64, u64)>, StorageError> {
        let mut out: std::collections::HashMap<String, (u64, u64)> = Default::default();
        for item in self.tree.scan_prefix([]) {
            let (_, StoredRecord(r)) = item?;
            let e = out.entry(r.origin.as_str().to_owned()).or_default();
            e.0 += 1;
            e.1 += r.value.len() as u64;
        }
        Ok(out)
    }

    /// `(origin, key, version)` of every record held.
    pub fn digest(&self) -> Result<Vec<DigestEntry>, StorageError> {
        Ok(self
            .all()?
            .into_iter()
            .map(|r| DigestEntry {
                origin: r.origin,
                key: r.key,
                version: r.version,
            })
            .collect())
    }

    /// The records held here that `digest` lacks or holds in an older version.
    pub fn newer_than(&self, digest: &[DigestEntry]) -> Result<Vec<Record>, StorageError> {
        let known: std::collections::HashMap<(&str, &str), u64> = digest
            .iter()
            .map(|e| ((e.origin.as_str(), e.key.as_str()), e.version))
            .collect();
        Ok(self
            .all()?
            .into_iter()
            .filter(|r| {
                known
                    .get(&(r.origin.as_str(), r.key.as_str()))
                    .is_none_or(|v| *v < r.version)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_protocol::PartyName;

    fn rec(origin: &str, key: &str, version: u64) -> Record {
        Record {
            origin: PartyName::new(origin).expect("name"),
            key: key.into(),
            version,
            written_at_ms: 0,
            value: vec![version as u8],
            audience: Default::default(),
            signature: vec![],
        }
    }

    #[test]
    fn a_record_stored_over_another_reads_back_as_stored_and_by_job() {
        let store = Store::temporary().expect("open");
        let a = RecordStore::open(&store).expect("records");
        let mut r = rec("p", "task/j0123456789abcdef0123/t0/1/guest", 3);
        r.audience = vec![PartyName::new("q").expect("name")].into();
        r.signature = vec![7; 64];
        a.apply(&rec("p", "task/j0123456789abcdef0123/t0/1/guest", 1))
            .expect("apply");
        a.store_newer(&r).expect("store");
        assert_eq!(
            a.get("p", "task/j0123456789abcdef0123/t0/1/guest")
                .expect("get"),
            Some(r.clone())
        );
        assert_eq!(a.of_job("j0123456789abcdef0123").expect("of job"), vec![r]);
    }

    #[test]
    fn highest_version_wins_and_digests_diff() {
        let store = Store::temporary().expect("open");
        let a = RecordStore::open(&store).expect("records");
        assert_eq!(a.apply(&rec("p", "k", 2)).expect("apply"), Applied::Stored);
        assert_eq!(a.apply(&rec("p", "k", 1)).expect("apply"), Applied::Stale);
        assert_eq!(a.apply(&rec("p", "k", 2)).expect("apply"), Applied::Stale);
        assert_eq!(a.apply(&rec("q", "k", 1)).expect("apply"), Applied::Stored);
        assert_eq!(a.get("p", "k").expect("get").map(|r| r.version), Some(2));

        let other = Store::temporary().expect("open");
        let b = RecordStore::open(&other).expect("records");
        b.apply(&rec("p", "k", 1)).expect("apply");
        b.apply(&rec("r", "x", 5)).expect("apply");
        let missing = a.newer_than(&b.digest().expect("digest")).expect("diff");
        let mut got: Vec<_> = missing
            .iter()
            .map(|r| (r.origin.as_str(), r.version))
            .collect();
        got.sort();
        assert_eq!(got, vec![("p", 2), ("q", 1)]);
        for r in &missing {
            b.apply(r).expect("apply");
        }
        assert!(
            a.newer_than(&b.digest().expect("digest"))
                .expect("diff")
                .is_empty()
        );
    }

    #[test]
    fn digest_pages_cover_everything_once_and_hide_what_is_not_visible() {
        let store = Store::temporary().expect("open");
        let a = RecordStore::open(&store).expect("records");
        for i in 0..25 {
            a.apply(&rec("p", &format!("k{i:02}"), 1)).expect("apply");
        }
        let mut hidden = rec("p", "secret", 1);
        hidden.audience = vec![PartyName::new("p").expect("name")].into();
        a.apply(&hidden).expect("apply");
        let me = PartyName::new("q").expect("name");
        let visible = |r: &Record| r.visible_to(&me);
        let (mut after, mut seen, mut pages) = (None::<Vec<u8>>, Vec::new(), 0);
        loop {
            let (entries, until) = a.digest_page(after.as_deref(), 10, &visible).expect("page");
            pages += 1;
            // The partner holds nothing: every visible record of the range comes back.
            let (records, cut) = a
                .newer_in_range(
                    &[],
                    after.as_deref(),
                    until.as_deref(),
                    &visible,
                    usize::MAX,
                )
                .expect("range");
            assert!(!cut);
            assert_eq!(records.len(), entries.len());
            seen.extend(records.into_iter().map(|r| r.key));
            match until {
                Some(u) => after = Some(u),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), 25, "each visible record once: {seen:?}");
        assert!(!seen.contains(&"secret".to_owned()));
        // A budget cuts the answer, keeping at least one record.
        let (records, cut) = a
            .newer_in_range(&[], None, None, &visible, 3)
            .expect("range");
        assert!(cut);
        assert_eq!(records.len(), 3);
        assert_eq!(
            a.usage_by_origin().expect("usage").get("p"),
            Some(&(26, 26))
        );
    }

    #[test]
    fn a_jobs_records_are_one_prefix_whatever_else_is_held() {
        let store = Store::temporary().expect("open");
        let s = RecordStore::open(&store).expect("records");
        let job = "j00000000000000000001";
        let other = "j00000000000000000002";
        s.apply(&rec("p", &format!("job/{job}"), 1)).expect("apply");
        s.apply(&rec("q", &format!("decision/{job}"), 1))
            .expect("apply");
        s.apply(&rec("q", &format!("decision/{job}"), 2))
            .expect("apply");
        s.apply(&rec("p", &format!("task/{job}/t0/1/guest"), 3))
            .expect("apply");
        for i in 0..50 {
            s.apply(&rec("q", &format!("task/{other}/t{i}/1/host"), 1))
                .expect("apply");
        }
        s.apply(&rec("p", "not-a-job-key", 1)).expect("apply");
        let mut got: Vec<(String, u64)> = s
            .of_job(job)
            .expect("of job")
            .into_iter()
            .map(|r| (r.key, r.version))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                (format!("decision/{job}"), 2),
                (format!("job/{job}"), 1),
                (format!("task/{job}/t0/1/guest"), 3),
            ]
        );
        assert_eq!(s.of_job(other).expect("of job").len(), 50);
        assert_eq!(
            s.without_job()
                .expect("rest")
                .into_iter()
                .map(|r| r.key)
                .collect::<Vec<_>>(),
            vec!["not-a-job-key".to_owned()]
        );
    }

    #[test]
    fn a_store_in_the_layout_with_a_by_job_index_is_rewritten_when_opened() {
        let store = Store::temporary().expect("open");
        let job = "j00000000000000000001";
        let old_key = |origin: &str, key: &str| {
            let mut k = origin.as_bytes().to_vec();
            k.push(0);
            k.extend_from_slice(key.as_bytes());
            k
        };
        let tree: Tree<StoredRecord> = store.tree(TreeName::Records).expect("tree");
        let in_job = rec("p", &format!("task/{job}/t0/1/guest"), 3);
        let no_job = rec("q", "not-a-job-key", 1);
        for r in [&in_job, &no_job] {
            tree.put_as(old_key(r.origin.as_str(), &r.key), r)
                .expect("put");
        }
        let index: Tree<StoredRecord> = store.tree(TreeName::RecordsByJob).expect("tree");
        index
            .put_as(format!("{job}\0p\0task/{job}/t0/1/guest"), &in_job)
            .expect("put");
        let s = RecordStore::open(&store).expect("records");
        assert_eq!(s.of_job(job).expect("of job"), vec![in_job.clone()]);
        assert_eq!(s.without_job().expect("rest"), vec![no_job.clone()]);
        assert_eq!(
            s.get("p", &in_job.key).expect("get").map(|r| r.version),
            Some(3)
        );
        assert_eq!(
            s.all().expect("all").len(),
            2,
            "no record left at its old key"
        );
        assert_eq!(store.count(TreeName::RecordsByJob).expect("count"), 0);
        // Opening again changes nothing.
        let again = RecordStore::open(&store).expect("records");
        assert_eq!(again.all().expect("all").len(), 2);
    }

    #[test]
    fn next_version_is_monotonic() {
        let store = Store::temporary().expect("open");
        let s = RecordStore::open(&store).expect("records");
        assert_eq!(s.next_version("p", "k", 1000).expect("v"), 1000);
        s.apply(&rec("p", "k", 5000)).expect("apply");
        assert_eq!(s.next_version("p", "k", 1000).expect("v"), 5001);
    }
}
