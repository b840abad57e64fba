//! Storing a successful job's models at this party: every run here that wrote a `model`
//! output becomes a part of the version `model_id@job_id`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use consort_protocol::PartyName;
use consort_protocol::job::TaskRun;
use consort_protocol::jobs::JobId;
use consort_storage::{
    ModelPart, ModelVersion, Models, StorageError, Tracking, model_id, resolve_inside,
};
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
    /// bring back a version deleted since): `<work dir>/<job>/.models-stored`. Its directory,
    /// the job's, holds every run output: model outputs are read only if they resolve inside it.
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
    // (No parent: nothing resolves inside, every read is refused.)
    let job_dir = place.marker.parent().unwrap_or(&place.marker);
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
