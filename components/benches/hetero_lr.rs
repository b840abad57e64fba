//! hetero_lr end to end in the in-memory harness (guest, host and arbiter as threads of this
//! process, sharing its cores): the breast job with FATE's example settings at 1024 and 2048
//! bits, and default_credit for AUC at scale. Beside every federated run, in the same run: the
//! centralized reference (`consort_components::reference`: plain logistic regression in f64 on
//! the joined data, same settings and update rule), how far the federated weights are from it,
//! and the same reference on the guest's features alone.
//!
//! Data: breast from the repository's `examples/data`; default_credit from `$CONSORT_DATA`,
//! else `<repo>/../shared/data` (skipped, with a note, if absent).
//!
//! `cargo bench -p consort-components --bench hetero_lr`
//! (`HETERO_LR_BENCH=breast` or `=credit` runs one part.)

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use consort_components::evaluation::auc;
use consort_components::harness::run_task;
use consort_components::hetero_lr::HeteroLrModel;
use consort_components::reference::{self, Settings, Table};
use consort_components::{Endpoint, component, schema};
use consort_protocol::PartyName;
use consort_protocol::data::Dataset;
use consort_protocol::job::{JobSpec, Role, validate};

fn load_csv(path: &Path) -> Option<Dataset> {
    let file = std::fs::File::open(path).ok()?;
    consort_protocol::data::parse_csv(file, &Default::default()).ok()
}

/// `$CONSORT_DATA`, else the shared folder next to the repository.
fn shared_data() -> PathBuf {
    std::env::var_os("CONSORT_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
        PathBuf::from,
    )
}

/// One configuration: the job's params and the same settings for the reference.
struct Config {
    max_iter: u32,
    batch_size: i64,
    learning_rate: f64,
    alpha: f64,
    key_bits: u32,
}

impl Config {
    fn params(&self) -> String {
        format!(
            "{{max_iter: {}, batch_size: {}, learning_rate: {}, alpha: {}, key_bits: {}}}",
            self.max_iter, self.batch_size, self.learning_rate, self.alpha, self.key_bits
        )
    }
    fn settings(&self) -> Settings {
        Settings {
            max_iter: self.max_iter,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            alpha: self.alpha,
            ..Settings::default()
        }
    }
}

struct Outcome {
    seconds: f64,
    epochs: f64,
    auc: f64,
    last_loss: f64,
    /// Guest weights then host weights, and the intercept.
    weights: Vec<f64>,
    intercept: f64,
}

fn train(guest: &Dataset, host: &Dataset, params: &str) -> Outcome {
    let text = format!(
        "name: b\nparties:\n  guest: [bank-a]\n  host: [insurer-b]\n  arbiter: [arbiter-c]\n\
         tasks:\n  t:\n    component: hetero_lr\n    params: {params}\n"
    );
    let spec = JobSpec::parse(&text).unwrap();
    let task = validate(&spec, &schema).unwrap().tasks.remove(0);
    let ep = |role, p: &str| Endpoint {
        role,
        party: PartyName::new(p).unwrap(),
    };
    let inputs = BTreeMap::from([
        (
            ep(Role::Guest, "bank-a"),
            BTreeMap::from([("train_data".to_owned(), guest.to_bytes().unwrap())]),
        ),
        (
            ep(Role::Host, "insurer-b"),
            BTreeMap::from([("train_data".to_owned(), host.to_bytes().unwrap())]),
        ),
    ]);
    let started = Instant::now();
    let results = run_task(
        "bench",
        &task,
        component("hetero_lr").unwrap(),
        &inputs,
        &Arc::new(AtomicBool::new(false)),
    );
    let seconds = started.elapsed().as_secs_f64();
    for r in &results {
        assert!(r.result.is_ok(), "{}: {:?}", r.endpoint, r.result);
    }
    let by_role = |role| results.iter().find(|r| r.endpoint.role == role).unwrap();
    let g = by_role(Role::Guest);
    let model = |role| HeteroLrModel::from_bytes(&by_role(role).outputs["model"]).unwrap();
    let (gm, hm) = (model(Role::Guest), model(Role::Host));
    let scores = Dataset::from_bytes(&g.outputs["train_output"]).unwrap();
    let metric = |name: &str| {
        g.metrics
            .iter()
            .filter(|(ns, n, _)| ns == "train" && n == name)
            .flat_map(|(_, _, p)| p.clone())
            .collect::<Vec<_>>()
    };
    Outcome {
        seconds,
        epochs: metric("iterations")[0].1,
        auc: auc(scores.labels.as_ref().unwrap(), &scores.columns[0]),
        last_loss: metric("loss").last().map_or(f64::NAN, |p| p.1),
        weights: gm.weights.iter().chain(&hm.weights).copied().collect(),
        intercept: gm.intercept,
    }
}

fn row(name: &str, c: &Config, guest: &Dataset, host: &Dataset) {
    let params = c.params();
    let o = train(guest, host, &params);
    let joined = Table::join(guest, &[host]);
    let central = reference::train(&joined, &c.settings()).unwrap();
    let guest_only = Table::from_dataset(guest);
    let alone = reference::train(&guest_only, &c.settings()).unwrap();
    let dw = o
        .weights
        .iter()
        .zip(&central.weights)
        .map(|(a, b)| (a - b).abs())
        .fold((o.intercept - central.intercept).abs(), f64::max);
    println!(
        "| {name} | `{params}` | {:.2} | {:.0} | {:.3} | {:.4} | {:.4} | {dw:.1e} | {:.4} | {:.4} |",
        o.seconds,
        o.epochs,
        o.seconds / o.epochs,
        o.auc,
        central.auc(&joined),
        alone.auc(&guest_only),
        o.last_loss
    );
}

fn main() {
    let which = std::env::var("HETERO_LR_BENCH").unwrap_or_default();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data");
    println!(
        "hetero_lr in the in-memory harness, {} rayon threads shared by all parties",
        rayon::current_num_threads()
    );
    println!(
        "| data | params | wall s (keygen included) | epochs | s/epoch | train AUC | centralized reference AUC (same settings, joined data) | max abs(federated − reference) weight | guest-only reference AUC (same settings) | last loss |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    if which.is_empty() || which == "breast" {
        let g = load_csv(&examples.join("breast_hetero_guest.csv")).unwrap();
        let h = load_csv(&examples.join("breast_hetero_host.csv")).unwrap();
        for key_bits in [1024, 2048] {
            let c = Config {
                max_iter: 10,
                batch_size: 300,
                learning_rate: 0.1,
                alpha: 0.001,
                key_bits,
            };
            row("breast 569×(10+20)", &c, &g, &h);
        }
    }
    if which.is_empty() || which == "credit" {
        let shared = shared_data();
        match (
            load_csv(&shared.join("default_credit_hetero_guest.csv")),
            load_csv(&shared.join("default_credit_hetero_host.csv")),
        ) {
            (Some(g), Some(h)) => {
                for batch_size in [1000, 3000] {
                    let c = Config {
                        max_iter: 5,
                        batch_size,
                        learning_rate: 0.15,
                        alpha: 0.01,
                        key_bits: 1024,
                    };
                    row("default_credit 30000×(13+10)", &c, &g, &h);
                }
            }
            _ => println!(
                "(default_credit hetero files not found under {}: skipped; set CONSORT_DATA)",
                shared.display()
            ),
        }
    }
}
