//! Storing a successful job's models at this party: every run here that wrote a `model`
//! output becomes a part of the version `model_id@job_id` ([`CommitJob`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actix::{Context, Handler, Message, ResponseFuture};
use consort_protocol::PartyName;
use consort_protocol::job::TaskRun;
use consort_protocol::jobs::JobId;
use consort_storage::{
    MetricKey, MetricSeries, ModelPart, ModelVersion, Models, StorageError, model_id,
    resolve_inside,
};
use tracing::{info, warn};

use super::ModelManager;
use crate::failure::{Failure, blocking};
use crate::tracker::Metrics;

/// (task, component, run, path of its `model` output).
pub type RunOutput = (String, String, TaskRun, PathBuf);

/// Stores this party's parts of a successful job's models, once: a repeat (or a restart) finds
/// them stored and does nothing, nor brings back a version deleted since.
#[derive(Debug, Clone)]
pub struct CommitJob {
    /// The job.
    pub job: JobId,
    /// Its name.
    pub name: String,
    /// Its `role:party` list.
    pub parties: Vec<String>,
    /// This party's runs and their `model` outputs.
    pub runs: Vec<RunOutput>,
    /// Branch (`main` by default).
    pub branch: String,
    /// Commit message (default: "job J (NAME)").
    pub message: Option<String>,
    /// Written once the job's models are stored: `<work dir>/<job>/.models-stored`. Its
    /// directory, the job's, holds every run output: model outputs are read only if they
    /// resolve inside it.
    pub marker: PathBuf,
}

impl Message for CommitJob {
    type Result = Result<(), Failure>;
}

/// Handler for [`CommitJob`]: the job's scalar metrics from the Tracker, then the commit on a
/// blocking thread.
impl Handler<CommitJob> for ModelManager {
    type Result = ResponseFuture<Result<(), Failure>>;

    fn handle(&mut self, msg: CommitJob, _ctx: &mut Context<Self>) -> Self::Result {
        let inner = self.inner();
        Box::pin(async move {
            let inner = inner?;
            let job = msg.job.clone();
            let done = async {
                if msg.marker.exists() {
                    return Ok(());
                }
                let metrics = inner
                    .deps
                    .metrics
                    .send(Metrics {
                        job: job.to_string(),
                    })
                    .await??;
                let (models, me) = (inner.deps.models.clone(), inner.deps.me.clone());
                blocking(move || Ok(commit(&models, &me, metrics, msg)?)).await
            }
            .await;
            if let Err(e) = &done {
                warn!(%job, error = %e, "cannot store the job's model");
            }
            done
        })
    }
}

/// Commits the version of the job if it has model outputs here and is not stored yet.
fn commit(
    models: &Models,
    me: &PartyName,
    metrics: Vec<(MetricKey, MetricSeries)>,
    job: CommitJob,
) -> Result<(), StorageError> {
    let marker = job.marker.clone();
    if marker.exists() {
        return Ok(());
    }
    store(models, me, metrics, job)?;
    if let Some(dir) = marker.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&marker, b"").map_err(|source| StorageError::Io {
        op: "write",
        path: marker.clone(),
        source,
    })
}

/// Reads `path`, which must lie in `dir` and not lead out of it through a link.
fn read_inside(dir: &Path, path: &Path) -> std::io::Result<Vec<u8>> {
    let relative = path.strip_prefix(dir).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "a model output outside the job's directory",
        )
    })?;
    std::fs::read(resolve_inside(dir, relative)?)
}

fn store(
    models: &Models,
    me: &PartyName,
    job_metrics: Vec<(MetricKey, MetricSeries)>,
    f: CommitJob,
) -> Result<(), StorageError> {
    let CommitJob {
        job,
        name,
        parties,
        runs,
        branch,
        message,
        marker,
    } = f;
    let (name, parties) = (name.as_str(), parties.as_slice());
    let id = model_id(name, parties);
    if models.version(&id, Some(job.as_str()))?.is_some() {
        return Ok(());
    }
    let mut parts = Vec::new();
    // (No parent: nothing resolves inside, every read is refused.)
    let job_dir = marker.parent().unwrap_or(&marker);
    for (task, component, run, path) in runs {
        let bytes = match read_inside(job_dir, &path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(StorageError::Io {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        let artifact = models.put_artifact(&bytes)?;
        parts.push(ModelPart {
            task,
            component,
            role: run.role.to_string(),
            artifact,
            bytes: bytes.len() as u64,
            params: serde_json::to_value(&run.params).unwrap_or_default(),
        });
    }
    if parts.is_empty() {
        return Ok(());
    }
    // Scalar metrics (one point) summarize the version: AUC, KS, intersection size...
    let mut metrics = BTreeMap::new();
    for (key, series) in job_metrics {
        if let [(_, y)] = series.points.as_slice() {
            metrics.insert(format!("{}/{}/{}", key.task, key.namespace, key.name), *y);
        }
    }
    let version = ModelVersion {
        model_id: id.clone(),
        version: job.to_string(),
        name: name.to_owned(),
        party: me.to_string(),
        parties: {
            let mut p = parties.to_vec();
            p.sort();
            p
        },
        created_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        parts,
        metrics,
    };
    let message = message.unwrap_or_else(|| format!("job {job} ({name})"));
    let commit = models.commit(&version, &branch, &message, me.as_str())?;
    info!(model = %id, version = %job, branch = %branch, commit = %commit.short(), parts = version.parts.len(), "model committed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_output_is_read_only_from_inside_the_job_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let job_dir = tmp.path().join("jobs/j1");
        let out = job_dir.join("lr/0/guest/out");
        std::fs::create_dir_all(&out).expect("mkdir");
        std::fs::write(out.join("model"), b"weights").expect("write");
        std::fs::write(tmp.path().join("identity.key"), b"secret").expect("write");
        std::os::unix::fs::symlink(tmp.path().join("identity.key"), out.join("leak"))
            .expect("symlink");
        assert_eq!(
            read_inside(&job_dir, &out.join("model")).expect("read"),
            b"weights"
        );
        let err = read_inside(&job_dir, &out.join("leak")).expect_err("link out");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        let err = read_inside(&job_dir, &tmp.path().join("identity.key")).expect_err("outside");
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        let err = read_inside(&job_dir, &out.join("missing")).expect_err("missing");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    }
}
