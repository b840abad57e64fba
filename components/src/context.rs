//! What a running component may do.

use std::fmt;
use std::path::{Path, PathBuf};

use consort_protocol::PartyName;
use consort_protocol::job::{Params, Role};

/// Why a component stopped without success.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The component decided the task failed.
    #[error("{0}")]
    Failed(String),
    /// The task was cancelled (job stopped, timeout).
    #[error("cancelled")]
    Cancelled,
    /// A parameter is missing or has the wrong type (validation should have caught it).
    #[error("parameter '{0}': {1}")]
    Param(String, String),
    /// Exchanging data with another party failed.
    #[error("data channel: {0}")]
    Channel(String),
}

/// One party in one role: the unit that sends and receives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Role.
    pub role: Role,
    /// Party.
    pub party: PartyName,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.role, self.party)
    }
}

/// Whom `remote` sends to and `get` receives from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every endpoint of a role in this task.
    Role(Role),
    /// One endpoint.
    One(Endpoint),
}

/// Where [`TaskContext::scratch_dir`] puts a run's scratch files unless the context says
/// otherwise (whoever runs the task removes it afterwards, as the in-memory harness does).
pub fn default_scratch_dir(job_id: &str, task: &str, me: &Endpoint) -> PathBuf {
    std::env::temp_dir().join(format!(
        "consort-scratch-{}-{job_id}-{task}-{me}",
        std::process::id()
    ))
}

/// The component's view of its task.
pub trait TaskContext: Send + Sync {
    /// Job id.
    fn job_id(&self) -> &str;
    /// Task name.
    fn task(&self) -> &str;
    /// This run's endpoint (party and role).
    fn me(&self) -> &Endpoint;
    /// Merged parameters for this run.
    fn params(&self) -> &Params;
    /// Every endpoint running this task, including this one.
    fn endpoints(&self) -> &[Endpoint];
    /// The bytes of input `name` (an upstream output at this endpoint), if wired.
    fn input(&self, name: &str) -> Result<Option<Vec<u8>>, TaskError>;
    /// Stores output `name`.
    fn output(&self, name: &str, data: &[u8]) -> Result<(), TaskError>;
    /// Sends `data` under `tag` to every endpoint of `to` (never to itself).
    fn remote(&self, to: &Target, tag: &str, data: &[u8]) -> Result<(), TaskError>;
    /// Receives what every endpoint of `from` sent under `tag` (waits; never from itself).
    fn get(&self, from: &Target, tag: &str) -> Result<Vec<(Endpoint, Vec<u8>)>, TaskError>;
    /// Sends the file at `path` under `tag` to every endpoint of `to`. Large files stream in
    /// chunks and never sit in memory whole (the default reads the file; the daemon streams).
    fn remote_file(&self, to: &Target, tag: &str, path: &Path) -> Result<(), TaskError> {
        let data = std::fs::read(path)
            .map_err(|e| TaskError::Failed(format!("cannot read {}: {e}", path.display())))?;
        self.remote(to, tag, &data)
    }
    /// Receives what every endpoint of `from` sent under `tag` as files in `dir`, named
    /// `TAG.ROLE@PARTY`. Large payloads land on disk without passing through memory whole.
    fn get_file(
        &self,
        from: &Target,
        tag: &str,
        dir: &Path,
    ) -> Result<Vec<(Endpoint, PathBuf)>, TaskError> {
        let mut out = Vec::new();
        for (e, data) in self.get(from, tag)? {
            let path = dir.join(format!("{tag}.{e}"));
            std::fs::write(&path, &data).map_err(|err| {
                TaskError::Failed(format!("cannot write {}: {err}", path.display()))
            })?;
            out.push((e, path));
        }
        Ok(out)
    }
    /// Table `name` of this party (what `consort data upload` stored). The policy check at
    /// acceptance has already made sure the job may use it.
    fn table(&self, name: &str) -> Result<consort_protocol::data::Dataset, TaskError> {
        Err(TaskError::Failed(format!(
            "table '{name}': this context has no tables"
        )))
    }
    /// A directory of this run's own for large intermediate files (created on demand).
    fn scratch_dir(&self) -> Result<PathBuf, TaskError> {
        let dir = default_scratch_dir(self.job_id(), self.task(), self.me());
        std::fs::create_dir_all(&dir)
            .map_err(|e| TaskError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        Ok(dir)
    }
    /// Appends points to metric `namespace`/`name`.
    fn log_metric(
        &self,
        namespace: &str,
        name: &str,
        points: &[(f64, f64)],
    ) -> Result<(), TaskError>;
    /// Sets metadata of metric `namespace`/`name` (FATE-Flow's `set_metric_meta`: unit,
    /// curve type, ...).
    fn set_metric_meta(
        &self,
        namespace: &str,
        name: &str,
        meta: serde_json::Value,
    ) -> Result<(), TaskError>;
    /// Writes a line to the task log.
    fn log(&self, line: &str);
    /// Whether the task was cancelled; long loops check it.
    fn is_cancelled(&self) -> bool;

    /// The endpoints `target` names, other than this one.
    fn resolve(&self, target: &Target) -> Vec<Endpoint> {
        self.endpoints()
            .iter()
            .filter(|e| *e != self.me())
            .filter(|e| match target {
                Target::Role(r) => e.role == *r,
                Target::One(one) => *e == one,
            })
            .cloned()
            .collect()
    }

    /// Parameter `name` as a number.
    fn param_f64(&self, name: &str) -> Result<f64, TaskError> {
        self.params()
            .get(name)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| TaskError::Param(name.into(), "missing or not a number".into()))
    }

    /// Optional parameter `name` as a whole number (`default` when absent or null).
    fn param_int(&self, name: &str, default: i64) -> Result<i64, TaskError> {
        match self.params().get(name) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => v
                .as_i64()
                .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| TaskError::Param(name.into(), "not an integer".into())),
        }
    }

    /// Optional parameter `name` as a finite number (`default` when absent or null).
    fn param_float(&self, name: &str, default: f64) -> Result<f64, TaskError> {
        match self.params().get(name) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| TaskError::Param(name.into(), "not a number".into())),
        }
    }

    /// Optional parameter `name` as true/false (`default` when absent or null).
    fn param_bool(&self, name: &str, default: bool) -> Result<bool, TaskError> {
        match self.params().get(name) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| TaskError::Param(name.into(), "not true or false".into())),
        }
    }
}
