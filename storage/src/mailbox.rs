//! The receiving end of the data channel: messages for this party's task runs, written before
//! they are acknowledged, read (and removed) by the component that waits for them.
//!
//! Small messages live in sled. Large ones arrive in chunks that are written straight into a
//! file under the mailbox directory (`pwrite` at the chunk's offset, `fsync`), with a bitmap of
//! the chunks received kept in sled; the message appears in the mailbox once its last chunk is
//! in. Nothing holds more than one chunk per request in memory, a resent chunk is idempotent,
//! and a restart keeps every acknowledged chunk.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::StorageError;
use crate::store::{Store, TreeName};

/// Most chunks one message may have (bounds the bitmap a peer can make us allocate).
pub const MAX_CHUNKS: u32 = 1 << 20;

const INLINE: u8 = 0;
const FILE: u8 = 1;
const PARTS_SUFFIX: &str = "#parts";

/// A message taken from the mailbox.
#[derive(Debug, PartialEq, Eq)]
pub enum Mail {
    /// A small message, in memory.
    Bytes(Vec<u8>),
    /// A large message, as a file that now belongs to the caller (move or delete it).
    File {
        /// Where it is.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
}

/// Where one chunk goes in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Index of this chunk, from 0.
    pub index: u32,
    /// Number of chunks of the message.
    pub count: u32,
    /// Length of the whole message.
    pub total: u64,
    /// Byte offset of this chunk in the message.
    pub offset: u64,
}

/// Channel messages by key (`job/task/attempt/tag/from/to/seq`, built by the caller).
#[derive(Debug, Clone)]
pub struct Mailbox {
    tree: sled::Tree,
    dir: PathBuf,
    /// Bumped on every arrival, so waiters wake at once (all writers are in this process).
    arrivals: Arc<(Mutex<u64>, Condvar)>,
    /// Serializes the bitmap update and completion of chunked messages.
    assembling: Arc<Mutex<()>>,
}

fn db(op: &'static str) -> impl FnOnce(sled::Error) -> StorageError {
    move |source| StorageError::Db {
        op,
        tree: "mailbox".into(),
        source,
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_owned();
    move |source| StorageError::Io { op, path, source }
}

fn corrupt(reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        kind: "mailbox entry",
        tree: "mailbox".into(),
        reason: reason.into(),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

impl Mailbox {
    /// Opens the mailbox tree; large messages go under `dir`. Open it once per process and
    /// clone the handle: waiters are woken by arrivals through the same handle (or clones).
    pub fn open(store: &Store, dir: &Path) -> Result<Self, StorageError> {
        Ok(Self {
            tree: store.raw_tree(TreeName::Mailbox)?,
            dir: dir.to_owned(),
            arrivals: Default::default(),
            assembling: Default::default(),
        })
    }

    fn notify(&self) {
        let (count, cv) = &*self.arrivals;
        *count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        cv.notify_all();
    }

    /// The file of a large message: the key's segments as directories (each must be a plain
    /// name, so a key can never point outside the mailbox directory).
    fn path_for(&self, key: &str) -> Result<PathBuf, StorageError> {
        let mut path = self.dir.clone();
        for seg in key.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\0') {
                return Err(corrupt(format!("unsafe mailbox key '{key}'")));
            }
            path.push(seg);
        }
        Ok(path)
    }

    /// Stores a message and flushes it, so that an acknowledged message survives a crash. A
    /// resend of the same key replaces it with the same bytes (idempotent).
    pub fn put(&self, key: &str, payload: &[u8]) -> Result<(), StorageError> {
        let mut value = Vec::with_capacity(payload.len() + 1);
        value.push(INLINE);
        value.extend_from_slice(payload);
        self.tree
            .insert(key.as_bytes(), value)
            .map_err(db("insert"))?;
        self.tree.flush().map_err(db("flush"))?;
        self.notify();
        Ok(())
    }

    /// Stores a copy of the file at `src` as a (large) message.
    pub fn put_file(&self, key: &str, src: &Path) -> Result<(), StorageError> {
        let path = self.path_for(key)?;
        let dir = path.parent().unwrap_or(&self.dir).to_owned();
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let part = path.with_extension("part");
        std::fs::copy(src, &part).map_err(io("copy", src))?;
        std::fs::File::open(&part)
            .and_then(|f| f.sync_all())
            .map_err(io("sync", &part))?;
        self.complete(key, &part, &path)
    }

    /// Moves a finished part file into place and makes the message visible.
    fn complete(&self, key: &str, part: &Path, path: &Path) -> Result<(), StorageError> {
        std::fs::rename(part, path).map_err(io("rename", part))?;
        sync_dir(path.parent().unwrap_or(&self.dir))?;
        let mut value = vec![FILE];
        value.extend_from_slice(path.as_os_str().as_encoded_bytes());
        self.tree
            .insert(key.as_bytes(), value)
            .map_err(db("insert"))?;
        self.tree
            .remove(format!("{key}{PARTS_SUFFIX}").as_bytes())
            .map_err(db("remove"))?;
        self.tree.flush().map_err(db("flush"))?;
        self.notify();
        Ok(())
    }

    /// Stores one chunk of a large message: written and synced at its offset before it is
    /// counted; the message becomes visible when its last chunk is in. Resending a chunk, even
    /// after the message is complete, changes nothing.
    pub fn put_chunk(&self, key: &str, chunk: Chunk, bytes: &[u8]) -> Result<(), StorageError> {
        let bad = |why: String| Err(corrupt(format!("chunk of '{key}': {why}")));
        if chunk.count == 0 || chunk.count > MAX_CHUNKS || chunk.index >= chunk.count {
            return bad(format!("chunk {} of {}", chunk.index, chunk.count));
        }
        let end = chunk.offset.checked_add(bytes.len() as u64);
        if end.is_none_or(|e| e > chunk.total) {
            return bad(format!(
                "{} bytes at {} overrun the {} announced",
                bytes.len(),
                chunk.offset,
                chunk.total
            ));
        }
        let path = self.path_for(key)?;
        if self.tree.contains_key(key.as_bytes()).map_err(db("get"))? {
            return Ok(());
        }
        let parts_key = format!("{key}{PARTS_SUFFIX}");
        let part = path.with_extension("part");
        {
            // The first chunk creates the part file; the lock keeps a concurrent first chunk
            // from racing the bitmap (the data write itself runs unlocked).
            let _guard = self.assembling.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(bits) = self.tree.get(parts_key.as_bytes()).map_err(db("get"))? {
                if bits.get(..HEADER) != Some(&header(chunk)[..]) {
                    return bad("chunk count or total changed between chunks".into());
                }
            } else {
                let dir = path.parent().unwrap_or(&self.dir).to_owned();
                std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                let f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&part)
                    .map_err(io("open", &part))?;
                f.set_len(chunk.total).map_err(io("size", &part))?;
                let mut bits = header(chunk).to_vec();
                bits.resize(HEADER + bitmap_len(chunk.count), 0);
                self.tree
                    .insert(parts_key.as_bytes(), bits)
                    .map_err(db("insert"))?;
            }
        }
        let f = OpenOptions::new()
            .write(true)
            .open(&part)
            .map_err(io("open", &part))?;
        f.write_all_at(bytes, chunk.offset)
            .map_err(io("write", &part))?;
        f.sync_data().map_err(io("sync", &part))?;
        drop(f);

        let _guard = self.assembling.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bits) = self.tree.get(parts_key.as_bytes()).map_err(db("get"))? else {
            // Completed by a concurrent resend of the same last chunk.
            return Ok(());
        };
        let mut bits = bits.to_vec();
        if bits.len() != HEADER + bitmap_len(chunk.count) {
            return Err(corrupt(format!("chunk bitmap of '{key}'")));
        }
        let map = &mut bits[HEADER..];
        map[(chunk.index / 8) as usize] |= 1 << (chunk.index % 8);
        let done = (0..chunk.count).all(|i| map[(i / 8) as usize] & (1 << (i % 8)) != 0);
        if done {
            return self.complete(key, &part, &path);
        }
        self.tree
            .insert(parts_key.as_bytes(), bits)
            .map_err(db("insert"))?;
        self.tree.flush().map_err(db("flush"))?;
        Ok(())
    }

    /// Waits up to `timeout` for the message under `key`, or until `cancelled` says stop;
    /// removes and returns it.
    pub fn take_wait(
        &self,
        key: &str,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<Mail>, StorageError> {
        self.take_wait_then(key, timeout, cancelled, &|| {})
    }

    /// Like [`Mailbox::take_wait`], calling `before_take` once the message is complete and
    /// before it is removed (a receiver that must record durably that it is about to take it).
    pub fn take_wait_then(
        &self,
        key: &str,
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
        before_take: &dyn Fn(),
    ) -> Result<Option<Mail>, StorageError> {
        let deadline = Instant::now() + timeout;
        let (count, cv) = &*self.arrivals;
        loop {
            let seen = *count.lock().unwrap_or_else(|e| e.into_inner());
            if self.tree.contains_key(key.as_bytes()).map_err(db("get"))? {
                before_take();
                if let Some(v) = self.tree.remove(key.as_bytes()).map_err(db("remove"))? {
                    return decode(&v).map(Some);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || cancelled() {
                return Ok(None);
            }
            // Wake on the next arrival, or every 100 ms to check cancellation.
            let guard = count.lock().unwrap_or_else(|e| e.into_inner());
            if *guard == seen {
                let _ = cv.wait_timeout(guard, left.min(Duration::from_millis(100)));
            }
        }
    }

    /// Removes every message (and partial message) whose key starts with `prefix` and, if
    /// `to` is given, is addressed to that `role@party`; deletes their files.
    pub fn clear(&self, prefix: &str, to: Option<&str>) -> Result<usize, StorageError> {
        let mut removed = 0;
        for item in self.tree.scan_prefix(prefix.as_bytes()) {
            let (k, v) = item.map_err(db("scan"))?;
            let key = String::from_utf8_lossy(&k).into_owned();
            if to.is_some_and(|to| key.split('/').nth(5) != Some(to)) {
                continue;
            }
            if let Some(msg_key) = key.strip_suffix(PARTS_SUFFIX) {
                if let Ok(path) = self.path_for(msg_key) {
                    let _ = std::fs::remove_file(path.with_extension("part"));
                }
            } else if let Ok(Mail::File { path, .. }) = decode(&v) {
                let _ = std::fs::remove_file(path);
            }
            self.tree.remove(&k).map_err(db("remove"))?;
            removed += 1;
        }
        Ok(removed)
    }
}

impl Mailbox {
    /// Drops everything of a finished job: its entries and its whole directory, including
    /// part files whose bitmap a crash lost before it reached the disk.
    pub fn clear_job(&self, job: &consort_protocol::jobs::JobId) -> Result<usize, StorageError> {
        let removed = self.clear(&format!("{job}/"), None)?;
        let dir = self.dir.join(job.as_str());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &dir)(e)),
        }
        Ok(removed)
    }
}

fn bitmap_len(count: u32) -> usize {
    count.div_ceil(8) as usize
}

/// The bitmap entry starts with the message's chunk count and length, so chunks that
/// disagree about them are refused.
const HEADER: usize = 12;

fn header(chunk: Chunk) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&chunk.count.to_be_bytes());
    h[4..].copy_from_slice(&chunk.total.to_be_bytes());
    h
}

fn decode(v: &[u8]) -> Result<Mail, StorageError> {
    match v.split_first() {
        Some((&INLINE, rest)) => Ok(Mail::Bytes(rest.to_vec())),
        Some((&FILE, rest)) => {
            let path = PathBuf::from(
                std::str::from_utf8(rest).map_err(|_| corrupt("file path is not UTF-8"))?,
            );
            let len = std::fs::metadata(&path).map_err(io("stat", &path))?.len();
            Ok(Mail::File { path, len })
        }
        _ => Err(corrupt("unknown entry kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Mailbox) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::temporary().expect("open");
        let mb = Mailbox::open(&store, &dir.path().join("mailbox")).expect("mailbox");
        (dir, mb)
    }

    #[test]
    fn take_waits_for_a_put_from_another_thread() {
        let (_d, mb) = open();
        let writer = mb.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            writer.put("j/t/1/tag/a/b/0", b"hello").expect("put");
        });
        let got = mb
            .take_wait("j/t/1/tag/a/b/0", Duration::from_secs(10), &|| false)
            .expect("take");
        t.join().expect("join");
        assert_eq!(got, Some(Mail::Bytes(b"hello".to_vec())));
        assert_eq!(
            mb.take_wait("j/t/1/tag/a/b/0", Duration::from_millis(10), &|| false)
                .expect("take"),
            None
        );
    }

    #[test]
    fn clearing_a_job_drops_part_files_whose_bitmap_was_lost() {
        let (_d, mb) = open();
        let job = consort_protocol::jobs::JobId::mint(1, 2);
        // A part file on disk with no entry in sled: what a kill -9 can leave behind.
        let orphan = mb.dir.join(job.as_str()).join("t/1/tag/a/b/0000.part");
        std::fs::create_dir_all(orphan.parent().expect("parent")).expect("mkdir");
        std::fs::write(&orphan, b"x").expect("write");
        mb.put(&format!("{job}/t/1/tag/a/b/1"), b"kept until now")
            .expect("put");
        assert_eq!(mb.clear_job(&job).expect("clear"), 1);
        assert!(!orphan.exists());
        assert!(!mb.dir.join(job.as_str()).exists());
        // Clearing again is fine.
        assert_eq!(mb.clear_job(&job).expect("clear"), 0);
    }

    #[test]
    fn cancellation_ends_the_wait() {
        let (_d, mb) = open();
        let started = Instant::now();
        let got = mb.take_wait("k", Duration::from_secs(30), &|| {
            started.elapsed() > Duration::from_millis(100)
        });
        assert_eq!(got.expect("take"), None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    fn chunks(data: &[u8], size: usize) -> Vec<(Chunk, &[u8])> {
        let count = data.len().div_ceil(size) as u32;
        data.chunks(size)
            .enumerate()
            .map(|(i, c)| {
                (
                    Chunk {
                        index: i as u32,
                        count,
                        total: data.len() as u64,
                        offset: (i * size) as u64,
                    },
                    c,
                )
            })
            .collect()
    }

    #[test]
    fn chunks_out_of_order_and_resent_assemble_one_file() {
        let (_d, mb) = open();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut parts = chunks(&data, 1024);
        parts.reverse();
        let key = "j/t/0/big/guest@a/host@b/0000000000000000";
        for (i, (c, bytes)) in parts.iter().enumerate() {
            assert_eq!(
                mb.take_wait(key, Duration::ZERO, &|| false).expect("take"),
                None,
                "visible before its last chunk ({i})"
            );
            mb.put_chunk(key, *c, bytes).expect("chunk");
            mb.put_chunk(key, *c, bytes).expect("resent chunk");
        }
        // A resend after completion is harmless.
        mb.put_chunk(key, parts[0].0, parts[0].1)
            .expect("late resend");
        let Some(Mail::File { path, len }) =
            mb.take_wait(key, Duration::ZERO, &|| false).expect("take")
        else {
            panic!("no file message");
        };
        assert_eq!(len, data.len() as u64);
        assert_eq!(std::fs::read(&path).expect("read"), data);
    }

    #[test]
    fn acknowledged_chunks_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = vec![9u8; 5000];
        let parts = chunks(&data, 1000);
        let key = "j/t/0/big/guest@a/host@b/0000000000000001";
        {
            let store = Store::open(&dir.path().join("db"), &Default::default()).expect("db");
            let mb = Mailbox::open(&store, &dir.path().join("mb")).expect("mb");
            for (c, b) in &parts[..3] {
                mb.put_chunk(key, *c, b).expect("chunk");
            }
        }
        let store = Store::open(&dir.path().join("db"), &Default::default()).expect("db");
        let mb = Mailbox::open(&store, &dir.path().join("mb")).expect("mb");
        for (c, b) in &parts[3..] {
            mb.put_chunk(key, *c, b).expect("chunk");
        }
        match mb.take_wait(key, Duration::ZERO, &|| false).expect("take") {
            Some(Mail::File { path, .. }) => assert_eq!(std::fs::read(path).expect("read"), data),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_chunks_and_keys_are_refused() {
        let (d, mb) = open();
        let key = "j/t/0/big/guest@a/host@b/0000000000000002";
        let c = Chunk {
            index: 0,
            count: 2,
            total: 10,
            offset: 8,
        };
        assert!(mb.put_chunk(key, c, b"abc").is_err(), "overrun");
        let c = Chunk {
            index: 2,
            count: 2,
            total: 10,
            offset: 0,
        };
        assert!(mb.put_chunk(key, c, b"abc").is_err(), "index out of range");
        let c = Chunk {
            index: 0,
            count: MAX_CHUNKS + 1,
            total: 10,
            offset: 0,
        };
        assert!(mb.put_chunk(key, c, b"abc").is_err(), "too many chunks");
        let ok = Chunk {
            index: 0,
            count: 2,
            total: 10,
            offset: 0,
        };
        assert!(
            mb.put_chunk("j/../../x/a/b/0", ok, b"abc").is_err(),
            "path escape"
        );
        mb.put_chunk(key, ok, b"abcde").expect("first chunk");
        let other = Chunk {
            index: 1,
            count: 3,
            total: 10,
            offset: 5,
        };
        assert!(mb.put_chunk(key, other, b"fgh").is_err(), "count changed");
        assert!(!d.path().join("x").exists());
        // Clearing removes the partial message and its file.
        assert_eq!(mb.clear("j/t/0/", Some("host@b")).expect("clear"), 1);
        assert!(
            !mb.path_for(key)
                .expect("path")
                .with_extension("part")
                .exists()
        );
    }

    #[test]
    fn clear_keeps_other_receivers_messages() {
        let (_d, mb) = open();
        mb.put("j/t/0/x/guest@a/host@b/0", b"1").expect("put");
        mb.put("j/t/0/x/guest@a/arbiter@b/0", b"2").expect("put");
        assert_eq!(mb.clear("j/t/0/", Some("host@b")).expect("clear"), 1);
        assert!(
            mb.take_wait("j/t/0/x/guest@a/arbiter@b/0", Duration::ZERO, &|| false)
                .expect("take")
                .is_some()
        );
    }
}
