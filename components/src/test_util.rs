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
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let id_col = header.iter().position(|h| *h == "id").expect("id column");
    let y_col = header.iter().position(|h| *h == "y");
    let feats: Vec<usize> = (0..header.len())
        .filter(|&i| i != id_col && Some(i) != y_col)
        .collect();
    let mut ids = Vec::new();
    let mut cols = vec![Vec::new(); feats.len()];
    let mut ys = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        ids.push(f[id_col].to_owned());
        if let Some(y) = y_col {
            ys.push(f[y].parse::<f64>().expect("label"));
        }
        for (c, &i) in feats.iter().enumerate() {
            cols[c].push(f[i].parse::<f64>().expect("feature"));
        }
    }
    let names = feats.iter().map(|&i| header[i].to_owned()).collect();
    Dataset::new(ids, names, cols, y_col.map(|_| ("y".to_owned(), ys))).expect("dataset")
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

/// Area under the ROC curve (ties counted half).
pub fn auc(labels: &[f64], scores: &[f64]) -> f64 {
    let mut pairs: Vec<(f64, f64)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pos = labels.iter().filter(|&&y| y > 0.5).count() as f64;
    let neg = labels.len() as f64 - pos;
    // Rank sum of positives with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j + 1 < pairs.len() && pairs[j + 1].0 == pairs[i].0 {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for p in &pairs[i..=j] {
            if p.1 > 0.5 {
                rank_sum += avg;
            }
        }
        i = j + 1;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}
