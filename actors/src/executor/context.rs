//! The TaskContext of a run inside the daemon: data channel over the network, mailbox,
//! tracking store and output files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consort_components::{Endpoint, Target, TaskContext, TaskError};
use consort_protocol::job::{Params, Role};
use consort_protocol::jobs::{
    CHANNEL_TOPIC, ChannelMessage, JobId, RECORD_VERSION, mailbox_key, valid_tag,
};
use consort_protocol::peer::{PeerRequestBody, PeerResponse};
use consort_storage::{LogLine, MetricKey};

use super::{ExecDeps, StartRun};

/// How long `remote` keeps retrying delivery to a partner.
const SEND_DEADLINE: Duration = Duration::from_secs(120);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a run's output `name` is stored.
pub fn output_path(
    work_dir: &Path,
    job: &JobId,
    task: &str,
    attempt: u32,
    role: Role,
    name: &str,
) -> PathBuf {
    work_dir
        .join(job.as_str())
        .join(task)
        .join(attempt.to_string())
        .join(role.as_str())
        .join(name)
}

pub(super) struct ChannelCtx {
    deps: ExecDeps,
    job: JobId,
    task: String,
    attempt: u32,
    me: Endpoint,
    params: Params,
    endpoints: Vec<Endpoint>,
    inputs: BTreeMap<String, PathBuf>,
    cancel: Arc<AtomicBool>,
    started: Instant,
    timeout: Duration,
    send_seq: Mutex<HashMap<(String, Endpoint), u64>>,
    recv_seq: Mutex<HashMap<(String, Endpoint), u64>>,
    rt: tokio::runtime::Runtime,
}

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
            inputs: msg.inputs.clone(),
            cancel,
            started,
            timeout: msg.timeout,
            send_seq: Mutex::default(),
            recv_seq: Mutex::default(),
            rt,
        })
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

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
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
        if !valid_tag(name) {
            return Err(TaskError::Failed(format!("invalid output name '{name}'")));
        }
        let path = output_path(
            &self.deps.work_dir,
            &self.job,
            &self.task,
            self.attempt,
            self.me.role,
            name,
        );
        write_atomically(&path, data)
            .map_err(|e| TaskError::Failed(format!("output '{name}': {e}")))
    }

    fn remote(&self, to: &Target, tag: &str, data: &[u8]) -> Result<(), TaskError> {
        if !valid_tag(tag) {
            return Err(TaskError::Channel(format!("invalid tag '{tag}'")));
        }
        for dest in self.resolve(to) {
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
                seq: Self::next(&self.send_seq, tag, &dest),
                payload: data.to_vec(),
            };
            if dest.party == self.me.party {
                // Two roles of this party talk through the local mailbox.
                self.deps
                    .mailbox
                    .put(&msg.mailbox_key(), &msg.payload)
                    .map_err(|e| TaskError::Channel(e.to_string()))?;
                continue;
            }
            let body =
                rmp_serde::to_vec_named(&msg).map_err(|e| TaskError::Channel(e.to_string()))?;
            let req = PeerRequestBody::App {
                topic: CHANNEL_TOPIC.to_owned(),
                body,
            };
            let answer = self.rt.block_on(self.deps.net.request(
                dest.party.as_str(),
                req,
                SEND_DEADLINE,
            ));
            match answer {
                Ok(PeerResponse::App { .. }) => {}
                Ok(PeerResponse::Error { message }) => {
                    return Err(TaskError::Channel(format!(
                        "{} refused '{tag}': {message}",
                        dest
                    )));
                }
                Ok(other) => {
                    return Err(TaskError::Channel(format!(
                        "unexpected answer from {dest}: {other:?}"
                    )));
                }
                Err(e) => {
                    return Err(TaskError::Channel(format!(
                        "cannot deliver '{tag}' to {dest}: {e}"
                    )));
                }
            }
            if self.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
        }
        Ok(())
    }

    fn get(&self, from: &Target, tag: &str) -> Result<Vec<(Endpoint, Vec<u8>)>, TaskError> {
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
            let got = self
                .deps
                .mailbox
                .take_wait(&key, left, &|| self.is_cancelled())
                .map_err(|e| TaskError::Channel(e.to_string()))?;
            match got {
                Some(data) => out.push((src, data)),
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

    fn log_metric(
        &self,
        namespace: &str,
        name: &str,
        points: &[(f64, f64)],
    ) -> Result<(), TaskError> {
        self.deps
            .tracking
            .log_metric(&self.metric_key(namespace, name), points)
            .map_err(|e| TaskError::Failed(e.to_string()))
    }

    fn set_metric_meta(
        &self,
        namespace: &str,
        name: &str,
        meta: serde_json::Value,
    ) -> Result<(), TaskError> {
        self.deps
            .tracking
            .set_metric_meta(&self.metric_key(namespace, name), meta)
            .map_err(|e| TaskError::Failed(e.to_string()))
    }

    fn log(&self, line: &str) {
        let l = LogLine {
            at_ms: now_ms(),
            task: self.task.clone(),
            role: self.me.role.to_string(),
            attempt: self.attempt,
            line: line.to_owned(),
        };
        if let Err(e) = self.deps.tracking.log(self.job.as_str(), &l) {
            tracing::warn!(error = %e, "cannot store a task log line");
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst) || self.timed_out()
    }
}
