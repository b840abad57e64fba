//! What the Serving actor loads to deploy a model version: this party's parts of it
//! ([`LoadForServing`]).

use actix::{Context, Handler, Message, ResponseFuture};
use consort_storage::{Models, StorageError};

use super::ModelManager;
use crate::failure::{Failure, blocking};

/// This party's parts of model `model_id` at revision `rev` (a version, tag, branch or commit),
/// with their artifacts' bytes.
#[derive(Debug, Clone)]
pub struct LoadForServing {
    /// Model id.
    pub model_id: String,
    /// Revision.
    pub rev: String,
}

/// One part and its artifact.
#[derive(Debug, Clone)]
pub struct PartBytes {
    /// Task in the training job.
    pub task: String,
    /// Component.
    pub component: String,
    /// This party's role in it.
    pub role: String,
    /// The artifact.
    pub bytes: Vec<u8>,
}

/// A version as serving needs it.
#[derive(Debug, Clone)]
pub struct ServingModel {
    /// Model id.
    pub model_id: String,
    /// Version (training job id).
    pub version: String,
    /// Commit at this party.
    pub commit: String,
    /// Every `role:party` of the training job.
    pub parties: Vec<String>,
    /// This party's parts.
    pub parts: Vec<PartBytes>,
}

impl Message for LoadForServing {
    type Result = Result<ServingModel, Failure>;
}

/// Handler for [`LoadForServing`]: reads the store on a blocking thread.
impl Handler<LoadForServing> for ModelManager {
    type Result = ResponseFuture<Result<ServingModel, Failure>>;

    fn handle(&mut self, msg: LoadForServing, _ctx: &mut Context<Self>) -> Self::Result {
        let inner = self.inner();
        Box::pin(async move {
            let models = inner?.deps.models.clone();
            blocking(move || load(&models, &msg.model_id, &msg.rev)).await
        })
    }
}

fn load(models: &Models, model_id: &str, rev: &str) -> Result<ServingModel, Failure> {
    let found = match models.commit_of_version(model_id, rev)? {
        Some(found) => found,
        None => match models.resolve_in(model_id, rev) {
            Ok(found) => found,
            Err(StorageError::BadRev { .. } | StorageError::RevNotFound { .. }) => {
                return Err(Failure::NotFound(format!("no model {model_id}@{rev} here")));
            }
            Err(e) => return Err(e.into()),
        },
    };
    let (id, commit) = found;
    let mut parts = Vec::new();
    for p in &commit.parts {
        if matches!(
            p.component.as_str(),
            "hetero_lr" | "hetero_secureboost" | "homo_lr" | "feature_scale"
        ) {
            parts.push(PartBytes {
                task: p.task.clone(),
                component: p.component.clone(),
                role: p.role.clone(),
                bytes: models.artifact(&p.artifact)?,
            });
        }
    }
    Ok(ServingModel {
        model_id: commit.model_id.clone(),
        version: commit.model_version.clone(),
        commit: id.as_str().to_owned(),
        parties: commit.parties.clone(),
        parts,
    })
}
