//! The TaskContext of a run inside the daemon: data channel over the network, mailbox,
//! tracking store and output files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use consort_components::{Endpoint, Target, TaskContext, TaskError};
use consort_protocol::job::{Params, Role};
use consort_protocol::jobs::{
    CHANNEL_TOPIC, CHUNK_BYTES, ChannelMessage, ChunkPart, JobId, RECORD_VERSION, mailbox_key,
    valid_tag,
};
use consort_protocol::names;
use consort_protocol::peer::{PeerRequestBody, PeerResponse};
use consort_storage::{Chunk, LogLine, MAX_CHUNKS, Mail, MetricKey, write_atomically};

use super::{ExecDeps, StartRun};

/// How long `remote` keeps retrying delivery to a partner.
const SEND_DEADLINE: Duration = Duration::from_secs(120);

use consort_protocol::clock::now_ms;

/// The executor's own directories of a run, next to its outputs' directory (`out/`), so that
/// no output name can reach (or collide with) them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnDir {
    /// A script operator's task directory (`inputs/`, `outputs/`, `params.json`).
    Script,
    /// Scratch files of a built-in component, removed when the run ends.
    Scratch,
}

impl OwnDir {
    fn name(self) -> &'static str {
        match self {
            OwnDir::Script => "run",
            OwnDir::Scratch => "scratch",
        }
    }
}

/// Subdirectory of a run's directory that holds its outputs.
const OUT_DIR: &str = "out";

/// `<work_dir>/<job>/<task>/<attempt>/<role>`: everything one run writes at this party. The job
/// id and the task name come from a partner's job: one that is not a plain name is refused.
pub fn run_dir(
    work_dir: &Path,
    job: &JobId,
    task: &str,
    attempt: u32,
    role: Role,
) -> Result<PathBuf, String> {
    if JobId::parse(job.as_str()).is_none() {
        return Err(format!(
            "invalid job id '{}'",
            job.as_str()
                .chars()
                .take(80)
                .collect::<String>()
                .escape_debug()
        ));
    }
    names::check("task name", task).map_err(|e| e.to_string())?;
    Ok(work_dir
        .join(job.as_str())
        .join(task)
        .join(attempt.to_string())
        .join(role.as_str()))
}

/// Where a run's output `name` is stored: `<run dir>/out/<name>`. A name, task or job id that
/// breaks the name rule ([`names::check`]) is refused, never joined.
pub fn output_path(
    work_dir: &Path,
    job: &JobId,
    task: &str,
    attempt: u32,
    role: Role,
    name: &str,
) -> Result<PathBuf, String> {
    names::check("output name", name).map_err(|e| e.to_string())?;
    Ok(run_dir(work_dir, job, task, attempt, role)?
        .join(OUT_DIR)
        .join(name))
}

/// One of the executor's own directories of a run: `<run dir>/run` or `<run dir>/scratch`.
pub fn own_dir(
    work_dir: &Path,
    job: &JobId,
    task: &str,
    attempt: u32,
    role: Role,
    which: OwnDir,
) -> Result<PathBuf, String> {
    Ok(run_dir(work_dir, job, task, attempt, role)?.join(which.name()))
}

pub(super) struct ChannelCtx {
    deps: ExecDeps,
    job: JobId,
    task: String,
    attempt: u32,
    me: Endpoint,
    params: Params,
    endpoints: Vec<Endpoint>,
    participants: Vec<consort_protocol::PartyName>,
    inputs: BTreeMap<String, PathBuf>,
    cancel: Arc<AtomicBool>,
    started: Instant,
    timeout: Duration,
    send_seq: Mutex<HashMap<(String, Endpoint), u64>>,
    recv_seq: Mutex<HashMap<(String, Endpoint), u64>>,
    /// A built-in component (a script operator may act outside the context: never resumed).
    builtin: bool,
    /// Whether the run did anything others can see (sent, took, logged, wrote an output).
    acted: AtomicBool,
    rt: tokio::runtime::Runtime,
}

/// `<run dir>/waiting`: present while a built-in run that has done nothing else waits for its
/// first message. A run a restart cut short in that state is restarted in place (same
/// attempt) rather than failed: nothing of it was seen, and what its senders delivered is
/// still in the mailbox. Its creation need not be synced (without it the run fails, as any
/// other cut short); its removal is, right after the message is taken.
pub fn waiting_marker(
    work_dir: &Path,
    job: &JobId,
    task: &str,
    attempt: u32,
    role: Role,
) -> Result<PathBuf, String> {
    Ok(run_dir(work_dir, job, task, attempt, role)?.join(WAITING))
}

const WAITING: &str = "waiting";

impl ChannelCtx {
    pub(super) fn new(
        deps: &ExecDeps,
        msg: &StartRun,
        cancel: Arc<AtomicBool>,
        started: Instant,
    ) -> Result<Self, TaskError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| TaskError::Failed(format!("cannot start a runtime: {e}")))?;
        Ok(Self {
            deps: deps.clone(),
            job: msg.job.clone(),
            task: msg.key.task.clone(),
            attempt: msg.key.attempt,
            me: Endpoint {
                role: msg.key.role,
                party: msg.key.party.clone(),
            },
            params: msg.params.clone(),
            endpoints: msg.endpoints.clone(),
            participants: msg.participants.clone(),
            inputs: msg.inputs.clone(),
            cancel,
            started,
            timeout: msg.timeout,
            send_seq: Mutex::default(),
            recv_seq: Mutex::default(),
            builtin: !msg.component.starts_with("script:"),
            acted: AtomicBool::new(false),
            rt,
        })
    }

    /// The run is about to do something others can see: it can no longer be resumed.
    fn act(&self) {
        self.acted.store(true, Ordering::SeqCst);
    }

    /// Marks the run as waiting for its first message, if it has done nothing else yet
    /// (returns the marker to remove when the wait ends).
    fn mark_waiting(&self) -> Option<PathBuf> {
        if !self.builtin || self.acted.load(Ordering::SeqCst) {
            return None;
        }
        let path = waiting_marker(
            &self.deps.work_dir,
            &self.job,
            &self.task,
            self.attempt,
            self.me.role,
        )
        .ok()?;
        let dir = path.parent()?;
        std::fs::create_dir_all(dir).ok()?;
        std::fs::write(&path, b"").ok()?;
        Some(path)
    }

    pub(super) fn timed_out(&self) -> bool {
        self.started.elapsed() > self.timeout
    }

    fn metric_key(&self, namespace: &str, name: &str) -> MetricKey {
        MetricKey {
            job: self.job.to_string(),
            task: self.task.clone(),
            role: self.me.role.to_string(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    pub(super) fn job(&self) -> &JobId {
        &self.job
    }

    pub(super) fn attempt(&self) -> u32 {
        self.attempt
    }

    pub(super) fn input_files(&self) -> &BTreeMap<String, PathBuf> {
        &self.inputs
    }

    fn next(map: &Mutex<HashMap<(String, Endpoint), u64>>, tag: &str, e: &Endpoint) -> u64 {
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry((tag.to_owned(), e.clone())).or_insert(0);
        let seq = *n;
        *n += 1;
        seq
    }
}

/// What `remote` sends: bytes in memory, or a file read chunk by chunk.
enum Source<'a> {
    Bytes(&'a [u8]),
    File {
        file: std::fs::File,
        path: &'a Path,
        len: u64,
    },
}

impl Source<'_> {
    fn len(&self) -> u64 {
        match self {
            Source::Bytes(b) => b.len() as u64,
            Source::File { len, .. } => *len,
        }
    }

    /// `len` bytes at `offset`.
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, TaskError> {
        match self {
            Source::Bytes(b) => Ok(b[offset as usize..offset as usize + len].to_vec()),
            Source::File { file, path, .. } => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, offset).map_err(|e| {
                    TaskError::Failed(format!("cannot read {}: {e}", path.display()))
                })?;
                Ok(buf)
            }
        }
    }
}

/// Chunks of one large message in flight at once (bounds memory at both ends).
const WINDOW: usize = 4;

impl ChannelCtx {
    fn send(&self, to: &Target, tag: &str, source: &Source<'_>) -> Result<(), TaskError> {
        if !valid_tag(tag) {
            return Err(TaskError::Channel(format!("invalid tag '{tag}'")));
        }
        self.act();
        for dest in self.resolve(to) {
            let seq = Self::next(&self.send_seq, tag, &dest);
            if dest.party == self.me.party {
                self.send_local(&dest, tag, seq, source)?;
            } else if source.len() <= CHUNK_BYTES as u64 {
                let data = source.read(0, source.len() as usize)?;
                self.rt
                    .block_on(self.send_message(&dest, tag, seq, data, None))?;
            } else {
                self.send_chunks(&dest, tag, seq, source)?;
            }
            if self.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
        }
        Ok(())
    }

    /// Two roles of this party talk through the local mailbox.
    fn send_local(
        &self,
        dest: &Endpoint,
        tag: &str,
        seq: u64,
        source: &Source<'_>,
    ) -> Result<(), TaskError> {
        let key = self.key_to(dest, tag, seq);
        let stored = match source {
            Source::File { path, .. } => self.deps.mailbox.put_file(&key, path),
            Source::Bytes(b) if b.len() > CHUNK_BYTES => {
                let whole = Chunk {
                    index: 0,
                    count: 1,
                    total: b.len() as u64,
                    offset: 0,
                };
                self.deps.mailbox.put_chunk(&key, whole, b)
            }
            Source::Bytes(b) => self.deps.mailbox.put(&key, b),
        };
        stored.map_err(|e| TaskError::Channel(e.to_string()))
    }

    fn key_to(&self, dest: &Endpoint, tag: &str, seq: u64) -> String {
        mailbox_key(
            &self.job,
            &self.task,
            self.attempt,
            tag,
            (self.me.role, &self.me.party),
            (dest.role, &dest.party),
            seq,
        )
    }

    /// Streams a large payload as chunks, `WINDOW` at a time; each is retried until
    /// acknowledged (the receiver stores it before acknowledging).
    fn send_chunks(
        &self,
        dest: &Endpoint,
        tag: &str,
        seq: u64,
        source: &Source<'_>,
    ) -> Result<(), TaskError> {
        use futures::StreamExt;
        let total = source.len();
        let count = total.div_ceil(CHUNK_BYTES as u64);
        let count = u32::try_from(count)
            .ok()
            .filter(|c| *c <= MAX_CHUNKS)
            .ok_or_else(|| TaskError::Channel(format!("'{tag}' is too large: {total} bytes")))?;
        self.rt.block_on(async {
            let mut sent = futures::stream::iter(0..count)
                .map(|index| async move {
                    let offset = index as u64 * CHUNK_BYTES as u64;
                    let len = (total - offset).min(CHUNK_BYTES as u64) as usize;
                    let data = source.read(offset, len)?;
                    let part = ChunkPart {
                        index,
                        count,
                        total,
                        offset,
                    };
                    self.send_message(dest, tag, seq, data, Some(part)).await
                })
                .buffer_unordered(WINDOW);
            while let Some(result) = sent.next().await {
                result?;
                if self.is_cancelled() {
                    return Err(TaskError::Cancelled);
                }
            }
            Ok(())
        })
    }

    async fn send_message(
        &self,
        dest: &Endpoint,
        tag: &str,
        seq: u64,
        payload: Vec<u8>,
        part: Option<ChunkPart>,
    ) -> Result<(), TaskError> {
        let msg = ChannelMessage {
            v: RECORD_VERSION,
            job: self.job.clone(),
            task: self.task.clone(),
            attempt: self.attempt,
            tag: tag.to_owned(),
            from_role: self.me.role,
            from: self.me.party.clone(),
            to_role: dest.role,
            to: dest.party.clone(),
            seq,
            payload,
            part,
        };
        let body = rmp_serde::to_vec_named(&msg).map_err(|e| TaskError::Channel(e.to_string()))?;
        drop(msg);
        let req = PeerRequestBody::App {
            topic: CHANNEL_TOPIC.to_owned(),
            body,
        };
        match self
            .deps
            .net
            .request(dest.party.as_str(), req, SEND_DEADLINE)
            .await
        {
            Ok(PeerResponse::App { .. }) => Ok(()),
            Ok(PeerResponse::Error { message }) => Err(TaskError::Channel(format!(
                "{dest} refused '{tag}': {message}"
            ))),
            Ok(other) => Err(TaskError::Channel(format!(
                "unexpected answer from {dest}: {other:?}"
            ))),
            Err(e) => Err(TaskError::Channel(format!(
                "cannot deliver '{tag}' to {dest}: {e}"
            ))),
        }
    }

    /// Waits for the next message under `tag` from every endpoint of `from`.
    fn receive(&self, from: &Target, tag: &str) -> Result<Vec<(Endpoint, Mail)>, TaskError> {
        // The tag names a file in `get_file`'s directory.
        if !valid_tag(tag) {
            return Err(TaskError::Channel(format!("invalid tag '{tag}'")));
        }
        let mut out = Vec::new();
        for src in self.resolve(from) {
            let seq = Self::next(&self.recv_seq, tag, &src);
            let key = mailbox_key(
                &self.job,
                &self.task,
                self.attempt,
                tag,
                (src.role, &src.party),
                (self.me.role, &self.me.party),
                seq,
            );
            let left = self.timeout.saturating_sub(self.started.elapsed());
            let marker = self.mark_waiting();
            // The marker goes durably once the message is complete and before it is taken: a
            // crash after the take finds no marker, and the run fails as any cut short (it
            // never waits again for a message it already took).
            let unmark = || {
                if let Some(marker) = &marker {
                    let _ = std::fs::remove_file(marker);
                    if let Some(dir) = marker.parent() {
                        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
                    }
                }
            };
            let got =
                self.deps
                    .mailbox
                    .take_wait_then(&key, left, &|| self.is_cancelled(), &unmark);
            // Taken (or given up): the run is no longer a pristine waiter.
            self.act();
            unmark();
            let got = got.map_err(|e| TaskError::Channel(e.to_string()))?;
            match got {
                Some(mail) => out.push((src, mail)),
                None if self.is_cancelled() => return Err(TaskError::Cancelled),
                None => {
                    return Err(TaskError::Channel(format!(
                        "nothing from {src} under '{tag}' in time"
                    )));
                }
            }
        }
        Ok(out)
    }
}

impl TaskContext for ChannelCtx {
    fn job_id(&self) -> &str {
        self.job.as_str()
    }
    fn task(&self) -> &str {
        &self.task
    }
    fn me(&self) -> &Endpoint {
        &self.me
    }
    fn params(&self) -> &Params {
        &self.params
    }
    fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    fn input(&self, name: &str) -> Result<Option<Vec<u8>>, TaskError> {
        match self.inputs.get(name) {
            None => Ok(None),
            Some(path) => std::fs::read(path).map(Some).map_err(|e| {
                TaskError::Failed(format!("input '{name}' ({}): {e}", path.display()))
            }),
        }
    }

    fn output(&self, name: &str, data: &[u8]) -> Result<(), TaskError> {
        self.act();
        let path = output_path(
            &self.deps.work_dir,
            &self.job,
            &self.task,
            self.attempt,
            self.me.role,
            name,
        )
        .map_err(TaskError::Failed)?;
        write_atomically(&path, data)
            .map_err(|e| TaskError::Failed(format!("output '{name}': {e}")))
    }

    fn remote(&self, to: &Target, tag: &str, data: &[u8]) -> Result<(), TaskError> {
        self.send(to, tag, &Source::Bytes(data))
    }

    fn remote_file(&self, to: &Target, tag: &str, path: &Path) -> Result<(), TaskError> {
        let file = std::fs::File::open(path)
            .map_err(|e| TaskError::Failed(format!("cannot open {}: {e}", path.display())))?;
        let len = file
            .metadata()
            .map_err(|e| TaskError::Failed(format!("cannot stat {}: {e}", path.display())))?
            .len();
        self.send(to, tag, &Source::File { file, path, len })
    }

    fn get(&self, from: &Target, tag: &str) -> Result<Vec<(Endpoint, Vec<u8>)>, TaskError> {
        let mut out = Vec::new();
        for (src, mail) in self.receive(from, tag)? {
            let data = match mail {
                Mail::Bytes(data) => data,
                Mail::File { path, .. } => {
                    let data = std::fs::read(&path).map_err(|e| {
                        TaskError::Channel(format!("cannot read {}: {e}", path.display()))
                    })?;
                    let _ = std::fs::remove_file(&path);
                    data
                }
            };
            out.push((src, data));
        }
        Ok(out)
    }

    fn get_file(
        &self,
        from: &Target,
        tag: &str,
        dir: &Path,
    ) -> Result<Vec<(Endpoint, PathBuf)>, TaskError> {
        let failed = |p: &Path, e: std::io::Error| {
            TaskError::Failed(format!("cannot write {}: {e}", p.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        let mut out = Vec::new();
        for (src, mail) in self.receive(from, tag)? {
            let dest = dir.join(format!("{tag}.{src}"));
            match mail {
                Mail::Bytes(data) => std::fs::write(&dest, data).map_err(|e| failed(&dest, e))?,
                Mail::File { path, .. } => {
                    if std::fs::rename(&path, &dest).is_err() {
                        // Another file system: copy, then drop the mailbox's copy.
                        std::fs::copy(&path, &dest).map_err(|e| failed(&dest, e))?;
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
            out.push((src, dest));
        }
        Ok(out)
    }

    fn scratch_dir(&self) -> Result<PathBuf, TaskError> {
        let dir = own_dir(
            &self.deps.work_dir,
            &self.job,
            &self.task,
            self.attempt,
            self.me.role,
            OwnDir::Scratch,
        )
        .map_err(TaskError::Failed)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| TaskError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        Ok(dir)
    }

    fn log_metric(
        &self,
        namespace: &str,
        name: &str,
        points: &[(f64, f64)],
    ) -> Result<(), TaskError> {
        self.act();
        self.deps
            .logs
            .log_metric(&self.metric_key(namespace, name), points)
            .map_err(|e| TaskError::Failed(e.to_string()))
    }

    fn set_metric_meta(
        &self,
        namespace: &str,
        name: &str,
        meta: serde_json::Value,
    ) -> Result<(), TaskError> {
        self.act();
        self.deps
            .logs
            .set_metric_meta(&self.metric_key(namespace, name), meta)
            .map_err(|e| TaskError::Failed(e.to_string()))
    }

    fn log(&self, line: &str) {
        self.act();
        let l = LogLine {
            at_ms: now_ms(),
            task: self.task.clone(),
            role: self.me.role.to_string(),
            attempt: self.attempt,
            line: line.to_owned(),
        };
        if let Err(e) = self.deps.logs.log(self.job.as_str(), &l) {
            tracing::warn!(error = %e, "cannot store a task log line");
        }
    }

    /// The policy is enforced here, where the data is read, not only when the job was
    /// accepted: a table is read only in jobs whose other parties `[policy.tables]` names.
    fn table(&self, name: &str) -> Result<consort_protocol::data::Dataset, TaskError> {
        let others = self.participants.iter().filter(|p| **p != self.me.party);
        let refused = super::tables_refused(&self.deps.table_policy, name, others);
        if !refused.is_empty() {
            return Err(TaskError::Failed(format!(
                "{} does not let table '{name}' be used in jobs with {} (policy.tables)",
                self.me.party,
                refused.join(", ")
            )));
        }
        self.deps
            .tables
            .get(name)
            .map_err(|e| TaskError::Failed(format!("table '{name}': {e}")))?
            .ok_or_else(|| TaskError::Failed(format!("no table '{name}' at {}", self.me.party)))
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst) || self.timed_out()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobId {
        JobId::parse("j0123456789abcdef0123").expect("job id")
    }

    #[test]
    fn output_path_keeps_outputs_apart_from_the_executors_own_dirs() {
        let work = Path::new("/data/jobs");
        assert_eq!(
            output_path(work, &job(), "lr", 2, Role::Host, "model"),
            Ok(PathBuf::from(
                "/data/jobs/j0123456789abcdef0123/lr/2/host/out/model"
            ))
        );
        // An output called `run` or `scratch` cannot reach the executor's directories.
        for which in [OwnDir::Script, OwnDir::Scratch] {
            let own = own_dir(work, &job(), "lr", 2, Role::Host, which).expect("own dir");
            let out = output_path(work, &job(), "lr", 2, Role::Host, which.name()).expect("out");
            assert_ne!(own, out);
            assert!(!own.starts_with(out.parent().expect("out dir")));
        }
    }

    #[test]
    fn output_path_refuses_names_that_are_not_plain() {
        let work = Path::new("/data/jobs");
        for bad in ["", ".", "..", "../../identity.key", "/etc/x", "a/b", "a\0b"] {
            let err = output_path(work, &job(), "lr", 0, Role::Guest, bad).expect_err(bad);
            assert!(err.starts_with("invalid output name"), "{err}");
            let err = output_path(work, &job(), bad, 0, Role::Guest, "data").expect_err(bad);
            assert!(err.starts_with("invalid task name"), "{err}");
        }
        // A job id from a peer is checked when it is deserialized: no path ever gets one.
        assert!(serde_json::from_str::<JobId>("\"../../x\"").is_err());
    }
}
