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

#[cfg(test)]
mod tests {
    use super::*;
    use consort_storage::{ModelPart, ModelVersion, Store};

    fn party(s: &str) -> PartyName {
        PartyName::new(s).expect("party")
    }

    fn ask(models: &Models, task: &str, parties: &[&str]) -> Result<PathBuf, String> {
        let msg = ResolveInput {
            model: ModelRef {
                id: "m.1".into(),
                version: None,
                rev: None,
            },
            task: task.into(),
            role: Role::Guest,
            participants: parties.iter().map(|p| party(p)).collect(),
        };
        resolve(models, &party("bank-a"), &msg)
    }

    #[test]
    fn a_model_is_given_only_to_jobs_of_the_parties_that_trained_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::temporary().expect("store");
        let models = Models::open(&store, dir.path()).expect("models");
        let artifact = models.put_artifact(b"weights").expect("artifact");
        let version = ModelVersion {
            model_id: "m.1".into(),
            version: "j0001".into(),
            name: "m".into(),
            party: "bank-a".into(),
            parties: vec!["guest:bank-a".into(), "host:insurer-b".into()],
            created_at_ms: 0,
            parts: vec![ModelPart {
                task: "lr".into(),
                component: "hetero_lr".into(),
                role: "guest".into(),
                artifact: artifact.clone(),
                bytes: 7,
                params: serde_json::json!({}),
            }],
            metrics: Default::default(),
        };
        models
            .commit(&version, "main", "first", "bank-a")
            .expect("commit");
        let path = ask(&models, "lr", &["bank-a", "insurer-b"]).expect("trained together");
        assert_eq!(std::fs::read(path).expect("artifact"), b"weights");
        let outsider = ask(&models, "lr", &["bank-a", "clinic-c"]).expect_err("outsider");
        assert!(outsider.contains("not trained with clinic-c"), "{outsider}");
        let no_part = ask(&models, "other", &["bank-a"]).expect_err("no part");
        assert!(no_part.contains("no part for task other"), "{no_part}");
    }
}
