//! The receiving end of the data channel: messages for this party's task runs, written before
//! they are acknowledged, read (and removed) by the component that waits for them.

use std::time::{Duration, Instant};

use crate::error::StorageError;
use crate::store::{Store, TreeName};

/// Channel messages by key (`job/task/attempt/tag/from/to/seq`, built by the caller).
#[derive(Debug, Clone)]
pub struct Mailbox {
    tree: sled::Tree,
    /// Bumped on every put, so waiters wake at once (all writers are in this process).
    arrivals: std::sync::Arc<(std::sync::Mutex<u64>, std::sync::Condvar)>,
}

fn db(op: &'static str) -> impl FnOnce(sled::Error) -> StorageError {
    move |source| StorageError::Db {
        op,
        tree: "mailbox".into(),
        source,
    }
}

impl Mailbox {
    /// Opens the mailbox tree. Open it once per process and clone the handle: waiters are
    /// woken by puts made through the same handle (or its clones).
    pub fn open(store: &Store) -> Result<Self, StorageError> {
        Ok(Self {
            tree: store.raw_tree(TreeName::Mailbox)?,
            arrivals: Default::default(),
        })
    }

    /// Stores a message and flushes it, so that an acknowledged message survives a crash. A
    /// resend of the same key replaces it with the same bytes (idempotent).
    pub fn put(&self, key: &str, payload: &[u8]) -> Result<(), StorageError> {
        self.tree
            .insert(key.as_bytes(), payload)
            .map_err(db("insert"))?;
        self.tree.flush().map_err(db("flush"))?;
        let (count, cv) = &*self.arrivals;
        *count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        cv.notify_all();
        Ok(())
    }

    /// Waits up to `timeout` for the message under `key`, or until `cancelled` says stop;
    /// removes and returns it.
    pub fn take_wait(
        &self,
        key: &str,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let deadline = Instant::now() + timeout;
        let (count, cv) = &*self.arrivals;
        loop {
            let seen = *count.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(v) = self.tree.remove(key.as_bytes()).map_err(db("remove"))? {
                return Ok(Some(v.to_vec()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || cancelled() {
                return Ok(None);
            }
            // Wake on the next put, or every 100 ms to check cancellation.
            let guard = count.lock().unwrap_or_else(|e| e.into_inner());
            if *guard == seen {
                let _ = cv.wait_timeout(guard, left.min(Duration::from_millis(100)));
            }
        }
    }

    /// Removes every message whose key starts with `prefix` (a finished job).
    pub fn clear(&self, prefix: &str) -> Result<(), StorageError> {
        for item in self.tree.scan_prefix(prefix.as_bytes()) {
            let (k, _) = item.map_err(db("scan"))?;
            self.tree.remove(k).map_err(db("remove"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_waits_for_a_put_from_another_thread() {
        let store = Store::temporary().expect("open");
        let mb = Mailbox::open(&store).expect("mailbox");
        let writer = mb.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            writer.put("j/t/1/tag/a/b/0", b"hello").expect("put");
        });
        let got = mb
            .take_wait("j/t/1/tag/a/b/0", Duration::from_secs(10), &|| false)
            .expect("take");
        t.join().expect("join");
        assert_eq!(got.as_deref(), Some(&b"hello"[..]));
        assert_eq!(
            mb.take_wait("j/t/1/tag/a/b/0", Duration::from_millis(10), &|| false)
                .expect("take"),
            None
        );
    }

    #[test]
    fn cancellation_ends_the_wait() {
        let store = Store::temporary().expect("open");
        let mb = Mailbox::open(&store).expect("mailbox");
        let started = Instant::now();
        let got = mb.take_wait("k", Duration::from_secs(30), &|| {
            started.elapsed() > Duration::from_millis(100)
        });
        assert_eq!(got.expect("take"), None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
