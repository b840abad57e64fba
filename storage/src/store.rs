use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::tree::{Record, Tree};

/// Options for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled page-cache size in bytes (sled's own default is 1 GiB, far too much for a daemon
    /// that mostly idles).
    pub cache_capacity: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_capacity: 16 * 1024 * 1024,
        }
    }
}

/// The trees of the store. Each actor owns the trees of its concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TreeName {
    /// Daemon bookkeeping (start count, clean shutdown marker).
    Meta,
    /// Jobs (Scheduler).
    Jobs,
    /// Task states per job, task, party and attempt (Scheduler).
    Tasks,
    /// Task runs at this party (Executor).
    Runs,
    /// Task log lines (Tracker).
    Logs,
    /// Metrics (Tracker).
    Metrics,
    /// Model commits and refs (ModelManager).
    Models,
    /// Replicated records from every party (Network).
    Records,
    /// Retired (the by-job index of `Records` before 2026-11): dropped when records open.
    RecordsByJob,
    /// Partners added or removed at run time (Network).
    Partners,
    /// Data-channel messages waiting for their task (Executor).
    Mailbox,
    /// Uploaded tables' metadata (their columns are files).
    Tables,
    /// Deployed services (Serving).
    Deployments,
}

impl TreeName {
    /// The sled tree name.
    pub fn as_str(self) -> &'static str {
        match self {
            TreeName::Meta => "meta",
            TreeName::Jobs => "jobs",
            TreeName::Tasks => "tasks",
            TreeName::Runs => "runs",
            TreeName::Logs => "logs",
            TreeName::Metrics => "metrics",
            TreeName::Models => "models",
            TreeName::Records => "records",
            TreeName::RecordsByJob => "records_by_job",
            TreeName::Partners => "partners",
            TreeName::Mailbox => "mailbox",
            TreeName::Tables => "tables",
            TreeName::Deployments => "deployments",
        }
    }
}

/// The daemon's database: one sled instance under the data directory.
///
/// Cloning is cheap and shares the database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the database in directory `path`.
    pub fn open(path: &Path, opts: &StoreOptions) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(opts.cache_capacity)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|source| StorageError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            db,
            path: path.to_owned(),
        })
    }

    /// Opens a throw-away in-memory database (tests and benchmarks only).
    pub fn temporary() -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|source| StorageError::Open {
                path: PathBuf::from("<temporary>"),
                source,
            })?;
        Ok(Self {
            db,
            path: PathBuf::from("<temporary>"),
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A typed handle on one tree.
    pub fn tree<V: Record>(&self, name: TreeName) -> Result<Tree<V>, StorageError> {
        let tree = self
            .db
            .open_tree(name.as_str())
            .map_err(|source| StorageError::Db {
                op: "open_tree",
                tree: name.as_str().to_owned(),
                source,
            })?;
        Ok(Tree::new(tree, name))
    }

    /// Drops tree `name` and everything in it (a tree a newer layout no longer uses).
    pub fn drop_tree(&self, name: TreeName) -> Result<(), StorageError> {
        self.db
            .drop_tree(name.as_str())
            .map(|_| ())
            .map_err(|source| StorageError::Db {
                op: "drop_tree",
                tree: name.as_str().to_owned(),
                source,
            })
    }

    /// Writes every pending change to disk; returns the bytes flushed.
    pub fn flush(&self) -> Result<usize, StorageError> {
        self.db.flush().map_err(|source| StorageError::Db {
            op: "flush",
            tree: "*".to_owned(),
            source,
        })
    }
}

impl Store {
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    pub(crate) fn raw_tree(&self, name: TreeName) -> Result<sled::Tree, StorageError> {
        self.db
            .open_tree(name.as_str())
            .map_err(|source| StorageError::Db {
                op: "open_tree",
                tree: name.as_str().to_owned(),
                source,
            })
    }
}

impl Store {
    /// Number of records in tree `name`, whatever their type (walks the tree: O(n)).
    pub fn count(&self, name: TreeName) -> Result<u64, StorageError> {
        let tree = self
            .db
            .open_tree(name.as_str())
            .map_err(|source| StorageError::Db {
                op: "open_tree",
                tree: name.as_str().to_owned(),
                source,
            })?;
        Ok(tree.len() as u64)
    }
}
