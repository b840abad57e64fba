//! The Scheduler's questions to the ModelManager about a job's `model:` inputs: may this job use
//! them here (asked before deciding a proposal), and which artifact a starting run reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use actix::Recipient;
use consort_protocol::PartyName;
use consort_protocol::job::{JobPlan, Role};

use crate::model_manager::ResolveInput;

/// (task, role of this party) → may the job use the task's model here (or why not).
pub(crate) type ModelChecks = BTreeMap<(String, Role), Result<(), String>>;

/// The model inputs this party's runs of `plan` read.
pub(crate) fn wanted(plan: &JobPlan, me: &PartyName) -> Vec<ResolveInput> {
    let participants: Vec<PartyName> = plan.participants().into_iter().collect();
    let mut out = Vec::new();
    for task in &plan.tasks {
        let Some(model) = &task.model else { continue };
        for run in task.runs.iter().filter(|r| &r.party == me) {
            out.push(ResolveInput {
                model: model.clone(),
                task: task.name.clone(),
                role: run.role,
                participants: participants.clone(),
            });
        }
    }
    out
}

/// Asks the ModelManager about each input.
pub(crate) async fn check(
    models: Recipient<ResolveInput>,
    wanted: Vec<ResolveInput>,
) -> ModelChecks {
    let mut checks = ModelChecks::new();
    for input in wanted {
        let key = (input.task.clone(), input.role);
        let answer = resolve(&models, input).await.map(|_| ());
        checks.insert(key, answer);
    }
    checks
}

/// The artifact `input` names, asked of the ModelManager.
pub(crate) async fn resolve(
    models: &Recipient<ResolveInput>,
    input: ResolveInput,
) -> Result<PathBuf, String> {
    models
        .send(input)
        .await
        .unwrap_or_else(|e| Err(format!("the model manager is unavailable: {e}")))
}
