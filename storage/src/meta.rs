use serde::{Deserialize, Serialize};

use crate::error::StorageError;
use crate::store::{Store, TreeName};
use crate::tree::{Record, Tree};

const KEY: &str = "daemon";

/// Daemon bookkeeping that survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonMeta {
    /// How many times the daemon has started on this data directory.
    pub starts: u64,
    /// Unix time (seconds) of the latest start.
    pub last_start_unix: u64,
    /// Whether the previous run ended with a graceful shutdown. `false` while running: a daemon
    /// that finds it `false` at start knows the previous run crashed or was killed.
    pub clean_shutdown: bool,
}

impl Record for DaemonMeta {
    const KIND: &'static str = "daemon meta";
    const VERSION: u16 = 1;
}

impl DaemonMeta {
    fn tree(store: &Store) -> Result<Tree<DaemonMeta>, StorageError> {
        store.tree(TreeName::Meta)
    }

    /// Records a start: returns the metadata as the previous run left it, and marks this run as
    /// not (yet) cleanly stopped. Flushed before returning.
    pub fn record_start(store: &Store, now_unix: u64) -> Result<DaemonMeta, StorageError> {
        let tree = Self::tree(store)?;
        let previous = tree.get(KEY)?.unwrap_or_default();
        let current = DaemonMeta {
            starts: previous.starts + 1,
            last_start_unix: now_unix,
            clean_shutdown: false,
        };
        tree.put(KEY, &current)?;
        store.flush()?;
        Ok(previous)
    }

    /// Marks the current run as cleanly stopped and flushes.
    pub fn record_clean_shutdown(store: &Store) -> Result<(), StorageError> {
        let tree = Self::tree(store)?;
        let mut meta = tree.get(KEY)?.unwrap_or_default();
        meta.clean_shutdown = true;
        tree.put(KEY, &meta)?;
        store.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_shutdown_markers() {
        let store = Store::temporary().expect("open");
        let first = DaemonMeta::record_start(&store, 10).expect("start");
        assert_eq!(first.starts, 0);
        // Crash: no clean shutdown recorded.
        let second = DaemonMeta::record_start(&store, 20).expect("start");
        assert_eq!((second.starts, second.clean_shutdown), (1, false));
        DaemonMeta::record_clean_shutdown(&store).expect("stop");
        let third = DaemonMeta::record_start(&store, 30).expect("start");
        assert_eq!(
            (third.starts, third.last_start_unix, third.clean_shutdown),
            (2, 20, true)
        );
    }
}
