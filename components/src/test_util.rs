//! Helpers for unit tests: CSV loading, planning a task from YAML, running it, AUC.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use consort_protocol::PartyName;
use consort_protocol::data::Dataset;
use consort_protocol::job::{JobSpec, PlannedTask, Role, validate};

use crate::context::Endpoint;
use crate::harness::{RunResult, run_task};
use crate::registry::{component, schema};

/// Loads a CSV with header: column `id`, optional label `y`, the rest features.
pub fn read_csv(path: &str) -> Dataset {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&full).expect("test data file");
    parse_csv(&text)
}

/// Parses CSV text (see [`read_csv`]).
pub fn parse_csv(text: &str) -> Dataset {
    consort_protocol::data::parse_csv(text.as_bytes(), &Default::default()).expect("valid CSV")
}

/// An endpoint.
pub fn ep(role: Role, party: &str) -> Endpoint {
    Endpoint {
        role,
        party: PartyName::new(party).expect("party name"),
    }
}

/// Plans the single task of a job with `parties_yaml` (indented two spaces) and `task_yaml`
/// (indented four).
pub fn plan(parties_yaml: &str, task_yaml: &str) -> PlannedTask {
    let text = format!("name: t\nparties:\n{parties_yaml}tasks:\n  t:\n{task_yaml}");
    let spec = JobSpec::parse(&text).expect("parses");
    let mut plan = validate(&spec, &schema).expect("valid");
    plan.tasks.remove(0)
}

/// Runs `task` with its registered component and the given inputs.
pub fn run(
    task: &PlannedTask,
    inputs: &BTreeMap<Endpoint, BTreeMap<String, Vec<u8>>>,
) -> Vec<RunResult> {
    let f = component(&task.component).expect("built-in");
    run_with(task, f, inputs)
}

/// Runs `task` with component `f`.
pub fn run_with(
    task: &PlannedTask,
    f: crate::ComponentFn,
    inputs: &BTreeMap<Endpoint, BTreeMap<String, Vec<u8>>>,
) -> Vec<RunResult> {
    run_task("job-1", task, f, inputs, &Arc::new(AtomicBool::new(false)))
}

/// The result of `endpoint`.
pub fn result_of<'a>(results: &'a [RunResult], e: &Endpoint) -> &'a RunResult {
    results
        .iter()
        .find(|r| r.endpoint == *e)
        .expect("endpoint ran")
}

/// Output `name` of `r` as a dataset.
pub fn output_dataset(r: &RunResult, name: &str) -> Dataset {
    Dataset::from_bytes(r.outputs.get(name).expect("output present")).expect("dataset")
}

pub use crate::evaluation::auc;
