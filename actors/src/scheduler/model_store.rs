//! Storing a successful job's models at this party: every run here that wrote a `model`
//! output becomes a part of the version `model_id@job_id`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use consort_protocol::PartyName;
use consort_protocol::job::TaskRun;
use consort_protocol::jobs::JobId;
use consort_storage::{ModelPart, ModelVersion, Models, StorageError, Tracking, model_id};
use tracing::info;

/// (task, component, run, path of its `model` output).
pub(crate) type RunOutput = (String, String, TaskRun, PathBuf);

/// Where a training job's version goes (`conf.model`).
pub(crate) struct Place {
    /// Branch (`main` by default).
    pub branch: String,
    /// Commit message (default: "job J (NAME)").
    pub message: Option<String>,
}

/// Commits the version of `job` if it has model outputs here and is not stored yet.
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit(
    models: &Models,
    tracking: &Tracking,
    me: &PartyName,
    job: &JobId,
    name: &str,
    parties: &[String],
    runs: Vec<RunOutput>,
    place: &Place,
) -> Result<(), StorageError> {
    let id = model_id(name, parties);
    if models.version(&id, Some(job.as_str()))?.is_some() {
        return Ok(());
    }
    let mut parts = Vec::new();
    for (task, component, run, path) in runs {
        let bytes = match std::fs::read(&path) {
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
    for (key, series) in tracking.metrics(job.as_str())? {
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
    let message = place
        .message
        .clone()
        .unwrap_or_else(|| format!("job {job} ({name})"));
    let commit = models.commit(&version, &place.branch, &message, me.as_str())?;
    info!(model = %id, version = %job, branch = %place.branch, commit = %commit.short(), parts = version.parts.len(), "model committed");
    Ok(())
}
