//! Questions about this party's models and changes that concern only this party: list, show,
//! log, reflog, diff, export, import, delete. Each is answered on a blocking thread.

use std::path::PathBuf;

use actix::{Context, Handler, Message, ResponseFuture};
use consort_protocol::models::{
    DeleteReport, ExportReport, ImportReport, ModelDiffInfo, ModelLogEntry, ReflogInfo,
};
use consort_protocol::{ModelInfo, ModelPartInfo};
use consort_storage::{ModelVersion, Models};

use super::ModelManager;
use crate::failure::{Failure, blocking};

/// The control protocol's twin of a storage type: the protocol types mirror the storage ones
/// field by field (hashes as text, params as JSON text), so one serde round trip converts them.
fn mirror<T: serde::de::DeserializeOwned>(v: impl serde::Serialize) -> Result<T, Failure> {
    serde_json::from_value(serde_json::to_value(v).map_err(Failure::internal)?)
        .map_err(Failure::internal)
}

/// A model version as the CLI shows it.
pub fn model_info(v: ModelVersion) -> ModelInfo {
    ModelInfo {
        model_id: v.model_id,
        version: v.version,
        name: v.name,
        party: v.party,
        parties: v.parties,
        created_at_ms: v.created_at_ms,
        parts: v
            .parts
            .into_iter()
            .map(|p| ModelPartInfo {
                task: p.task,
                component: p.component,
                role: p.role,
                artifact: p.artifact,
                bytes: p.bytes,
                params: p.params.to_string(),
            })
            .collect(),
        metrics: v.metrics,
    }
}

impl ModelManager {
    /// Runs `f` over the model store on a blocking thread.
    fn with_models<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Models) -> Result<T, Failure> + Send + 'static,
    ) -> ResponseFuture<Result<T, Failure>> {
        let inner = self.inner();
        Box::pin(async move {
            let models = inner?.deps.models.clone();
            blocking(move || f(&models)).await
        })
    }
}

/// Every version of every model held here.
#[derive(Debug, Clone)]
pub struct ListModels;

impl Message for ListModels {
    type Result = Result<Vec<ModelInfo>, Failure>;
}

/// Handler for [`ListModels`].
impl Handler<ListModels> for ModelManager {
    type Result = ResponseFuture<Result<Vec<ModelInfo>, Failure>>;

    fn handle(&mut self, _msg: ListModels, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_models(|m| {
            Ok(m.list()
                .map_err(Failure::internal)?
                .into_iter()
                .map(model_info)
                .collect())
        })
    }
}

/// One version of a model (the newest when `version` is `None`).
#[derive(Debug, Clone)]
pub struct ShowModel {
    /// Model id.
    pub model: String,
    /// Version (job id).
    pub version: Option<String>,
}

impl Message for ShowModel {
    type Result = Result<ModelInfo, Failure>;
}

/// Handler for [`ShowModel`].
impl Handler<ShowModel> for ModelManager {
    type Result = ResponseFuture<Result<ModelInfo, Failure>>;

    fn handle(&mut self, msg: ShowModel, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_models(move |m| {
            let ShowModel { model, version } = msg;
            let v = m
                .version(&model, version.as_deref())
                .map_err(Failure::internal)?
                .ok_or_else(|| {
                    Failure::NotFound(format!(
                        "no model {model}{} here",
                        version.map(|v| format!("@{v}")).unwrap_or_default()
                    ))
                })?;
            Ok(model_info(v))
        })
    }
}

/// A model's commit log.
#[derive(Debug, Clone)]
pub struct ModelLog {
    /// Model id.
    pub model: String,
    /// Branch (`main` when `None`).
    pub branch: Option<String>,
    /// Every branch.
    pub all: bool,
}

impl Message for ModelLog {
    type Result = Result<Vec<ModelLogEntry>, Failure>;
}

/// Handler for [`ModelLog`].
impl Handler<ModelLog> for ModelManager {
    type Result = ResponseFuture<Result<Vec<ModelLogEntry>, Failure>>;

    fn handle(&mut self, msg: ModelLog, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_models(move |m| mirror(m.log(&msg.model, msg.branch.as_deref(), msg.all)?))
    }
}

/// The moves of a model's refs (one ref, or all).
#[derive(Debug, Clone)]
pub struct ModelReflog {
    /// Model id.
    pub model: String,
    /// `heads/NAME`, `tags/NAME`, or a bare branch name.
    pub reference: Option<String>,
}

impl Message for ModelReflog {
    type Result = Result<Vec<ReflogInfo>, Failure>;
}

/// Handler for [`ModelReflog`].
impl Handler<ModelReflog> for ModelManager {
    type Result = ResponseFuture<Result<Vec<ReflogInfo>, Failure>>;

    fn handle(&mut self, msg: ModelReflog, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_models(move |m| {
            let r = msg.reference.map(|r| {
                if r.contains('/') {
                    r
                } else {
                    format!("heads/{r}")
                }
            });
            mirror(m.reflog(&msg.model, r.as_deref())?)
        })
    }
}

/// What changed between two revisions (metrics, params, parts).
#[derive(Debug, Clone)]
pub struct ModelDiff {
    /// `ID@REV`.
    pub a: String,
    /// `ID@REV`.
    pub b: String,
}

impl Message for ModelDiff {
    type Result = Result<ModelDiffInfo, Failure>;
}

/// Handler for [`ModelDiff`].
impl Handler<ModelDiff> for ModelManager {
    type Result = ResponseFuture<Result<ModelDiffInfo, Failure>>;

    fn handle(&mut self, msg: ModelDiff, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_models(move |m| mirror(m.diff(&msg.a, &msg.b)?))
    }
}

/// Writes a revision's archive to a file (atomically: a partial file, then a rename).
#[derive(Debug, Clone)]
pub struct ModelExport {
    /// `ID@REV`.
    pub rev: String,
    /// Absolute path of the archive.
    pub path: PathBuf,
}

impl Message for ModelExport {
    type Result = Result<ExportReport, Failure>;
}

/// Handler for [`ModelExport`].
impl Handler<ModelExport> for ModelManager {
    type Result = ResponseFuture<Result<ExportReport, Failure>>;

    fn handle(&mut self, msg: ModelExport, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_models(move |m| {
            let ModelExport { rev, path } = msg;
            let tmp = path.with_extension("partial");
            let file = std::fs::File::create(&tmp)
                .map_err(|e| Failure::Internal(format!("cannot write {}: {e}", tmp.display())))?;
            let mut w = std::io::BufWriter::new(file);
            let (commit, bytes) = m.export(&rev, &mut w)?;
            let file = w.into_inner().map_err(Failure::internal)?;
            file.sync_all().map_err(Failure::internal)?;
            std::fs::rename(&tmp, &path).map_err(Failure::internal)?;
            Ok(ExportReport {
                commit: commit.as_str().to_owned(),
                bytes,
                path: path.display().to_string(),
            })
        })
    }
}

/// Reads an archive written by [`ModelExport`] (at any party).
#[derive(Debug, Clone)]
pub struct ModelImport {
    /// Absolute path of the archive.
    pub path: PathBuf,
}

impl Message for ModelImport {
    type Result = Result<ImportReport, Failure>;
}

/// Handler for [`ModelImport`].
impl Handler<ModelImport> for ModelManager {
    type Result = ResponseFuture<Result<ImportReport, Failure>>;

    fn handle(&mut self, msg: ModelImport, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_models(move |m| {
            let file = std::fs::File::open(&msg.path).map_err(|e| {
                Failure::Invalid(format!("cannot read {}: {e}", msg.path.display()))
            })?;
            mirror(m.import(std::io::BufReader::new(file))?)
        })
    }
}

/// Deletes a version here (refs naming it block the delete unless `force`).
#[derive(Debug, Clone)]
pub struct ModelDelete {
    /// Model id.
    pub model: String,
    /// Version (job id).
    pub version: String,
    /// Delete even if refs name it.
    pub force: bool,
}

impl Message for ModelDelete {
    type Result = Result<DeleteReport, Failure>;
}

/// Handler for [`ModelDelete`].
impl Handler<ModelDelete> for ModelManager {
    type Result = ResponseFuture<Result<DeleteReport, Failure>>;

    fn handle(&mut self, msg: ModelDelete, _ctx: &mut Context<Self>) -> Self::Result {
        self.with_models(move |m| mirror(m.delete(&msg.model, &msg.version, msg.force)?))
    }
}
