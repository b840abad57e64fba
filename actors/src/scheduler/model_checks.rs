//! The Scheduler's questions about the data a job would use here, asked before it decides a
//! proposal (and at submit), off its thread: may the job use its `model:` inputs (the
//! ModelManager answers), and do the tables its `reader` runs name exist (read on a blocking
//! thread). Also which artifact a starting run reads.

use std::collections::BTreeMap;
use std::path::PathBuf;

use actix::Recipient;
use consort_protocol::PartyName;
use consort_protocol::job::{JobPlan, Role};

use consort_storage::Tables;

use crate::model_manager::ResolveInput;

/// The answers about a job's data here.
#[derive(Debug, Default)]
pub(crate) struct DataChecks {
    /// (task, role of this party) → may the job use the task's model here (or why not).
    pub models: BTreeMap<(String, Role), Result<(), String>>,
    /// Table → whether it exists here (or why it could not be read).
    pub tables: BTreeMap<String, Result<bool, String>>,
}

/// What the job's runs at this party would read.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    /// Model inputs.
    pub models: Vec<ResolveInput>,
    /// Tables named by `reader` runs.
    pub tables: Vec<String>,
}

impl Wanted {
    pub(crate) fn is_empty(&self) -> bool {
        self.models.is_empty() && self.tables.is_empty()
    }
}

/// The model inputs and tables this party's runs of `plan` read.
pub(crate) fn wanted(plan: &JobPlan, me: &PartyName) -> Wanted {
    let participants: Vec<PartyName> = plan.participants().into_iter().collect();
    let mut out = Wanted::default();
    for task in &plan.tasks {
        for run in task.runs.iter().filter(|r| &r.party == me) {
            if let Some(model) = &task.model {
                out.models.push(ResolveInput {
                    model: model.clone(),
                    task: task.name.clone(),
                    role: run.role,
                    participants: participants.clone(),
                });
            }
            if task.component == "reader"
                && let Some(table) = run.params.get("table").and_then(|v| v.as_str())
            {
                out.tables.push(table.to_owned());
            }
        }
    }
    out
}

/// Asks the ModelManager about each model input and reads each table's metadata on a
/// blocking thread.
pub(crate) async fn check(
    models: Recipient<ResolveInput>,
    tables: Tables,
    wanted: Wanted,
) -> DataChecks {
    let mut checks = DataChecks::default();
    for input in wanted.models {
        let key = (input.task.clone(), input.role);
        let answer = resolve(&models, input).await.map(|_| ());
        checks.models.insert(key, answer);
    }
    if !wanted.tables.is_empty() {
        let names = wanted.tables;
        checks.tables = tokio::task::spawn_blocking(move || {
            names
                .into_iter()
                .map(|t| {
                    let held = tables
                        .meta(&t)
                        .map(|m| m.is_some())
                        .map_err(|e| e.to_string());
                    (t, held)
                })
                .collect()
        })
        .await
        .unwrap_or_default();
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
