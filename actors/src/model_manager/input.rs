//! The artifact a task's `model:` reference gives this party's run ([`ResolveInput`]). A model
//! is used only in jobs whose parties all trained it: its weights are theirs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use actix::{Context, Handler, Message, ResponseFuture};
use consort_protocol::PartyName;
use consort_protocol::job::{ModelRef, Role};
use consort_storage::Models;

use super::ModelManager;

/// Which artifact does `model` give `task`'s run in `role`, in a job of `participants`?
/// Answers the path of the artifact, or why the job may not use it (a sentence naming this
/// party, as a decision's reason or a run's warning).
#[derive(Debug, Clone)]
pub struct ResolveInput {
    /// The task's `model:`.
    pub model: ModelRef,
    /// The task.
    pub task: String,
    /// This party's role in it.
    pub role: Role,
    /// Every party of the job.
    pub participants: Vec<PartyName>,
}

impl Message for ResolveInput {
    type Result = Result<PathBuf, String>;
}

/// Handler for [`ResolveInput`]: reads the store on a blocking thread.
impl Handler<ResolveInput> for ModelManager {
    type Result = ResponseFuture<Result<PathBuf, String>>;

    fn handle(&mut self, msg: ResolveInput, _ctx: &mut Context<Self>) -> Self::Result {
        let inner = self.inner();
        Box::pin(async move {
            let inner = inner.map_err(|e| e.to_string())?;
            tokio::task::spawn_blocking(move || resolve(&inner.deps.models, &inner.deps.me, &msg))
                .await
                .map_err(|e| format!("cannot resolve the model input: {e}"))?
        })
    }
}

fn resolve(models: &Models, me: &PartyName, msg: &ResolveInput) -> Result<PathBuf, String> {
    let ResolveInput {
        model,
        task,
        role,
        participants,
    } = msg;
    // `version` (a job id) or `rev` (tag, branch, BRANCH~N, commit): the head of main
    // when neither is given.
    let rev = model.version.as_deref().or(model.rev.as_deref());
    let version = models
        .version(&model.id, rev)
        .map_err(|e| format!("{me} cannot read model {}: {e}", model.id))?
        .ok_or_else(|| {
            format!(
                "{me} has no model {}{}",
                model.id,
                rev.map(|v| format!("@{v}")).unwrap_or_default()
            )
        })?;
    let trained_by: BTreeSet<&str> = version
        .parties
        .iter()
        .filter_map(|rp| rp.split_once(':').map(|(_, p)| p))
        .collect();
    let outsiders: Vec<String> = participants
        .iter()
        .filter(|p| !trained_by.contains(p.as_str()))
        .map(|p| p.to_string())
        .collect();
    if !outsiders.is_empty() {
        return Err(format!(
            "{me}: model {} was not trained with {}; only the parties that trained a model \
             may use it",
            model.id,
            outsiders.join(", ")
        ));
    }
    let part = version
        .parts
        .iter()
        .find(|p| p.task == *task && p.role == role.as_str())
        .ok_or_else(|| {
            format!(
                "{me}: model {}@{} has no part for task {task} as {role}",
                model.id, version.version
            )
        })?;
    models
        .object_path(&part.artifact)
        .ok_or_else(|| format!("model {}: bad artifact hash", model.id))
}
