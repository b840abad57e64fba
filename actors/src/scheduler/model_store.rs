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
    /// Written once the job's models are stored, so a restart does not store them again (nor
    /// bring back a version deleted since).
    pub marker: PathBuf,
}

/// A successful job whose models this party stores.
pub(crate) struct Finished {
    /// This party.
    pub me: PartyName,
    /// The job.
    pub job: JobId,
    /// Its name.
    pub name: String,
    /// Its `role:party` list.
    pub parties: Vec<String>,
    /// This party's runs and their `model` outputs.
    pub runs: Vec<RunOutput>,
    /// Where the version goes.
    pub place: Place,
}

/// Commits the version of the job if it has model outputs here and is not stored yet.
pub(crate) fn commit(
    models: &Models,
    tracking: &Tracking,
    finished: Finished,
) -> Result<(), StorageError> {
    let marker = finished.place.marker.clone();
    if marker.exists() {
        return Ok(());
    }
    store(models, tracking, finished)?;
    if let Some(dir) = marker.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(&marker, b"").map_err(|source| StorageError::Io {
        op: "write",
        path: marker.clone(),
        source,
    })
}

fn store(models: &Models, tracking: &Tracking, f: Finished) -> Result<(), StorageError> {
    let Finished {
        me,
        job,
        name,
        parties,
        runs,
        place,
    } = f;
    let (name, parties) = (name.as_str(), parties.as_slice());
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
