//! homo_lr: milliseconds per round and test AUC, all parties in one process (in-memory
//! harness), each beside a centralized baseline computed in the same run: plain logistic
//! regression (`consort_components::reference`, exact logistic loss, f64, no masking) on the
//! pooled training rows of every party, with the same learning rate, L2, batch size and
//! number of passes over the data (`rounds × local_epochs`, stopping early on the same `tol`),
//! scored on the same test file.
//!
//! Breast (2 data parties + arbiter) from the repository's `examples/data`; default_credit
//! (3 data parties + arbiter) from `$CONSORT_DATA`, else `<repo>/../shared/data`, skipped with a
//! note if absent. Run with `cargo bench -p consort-components --bench homo_lr`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use consort_components::evaluation::auc;
use consort_components::feature_scale;
use consort_components::reference::{self, Objective, Settings, Table};
use consort_components::{Endpoint, component, harness::run_task, schema};
use consort_protocol::PartyName;
use consort_protocol::data::Dataset;
use consort_protocol::job::{JobSpec, Role, validate};

fn load(path: &Path) -> Option<Dataset> {
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

/// homo_lr's parameters that the benchmark varies (the others keep their defaults:
/// learning_rate 0.1, alpha 0.01, seed 42, tol 1e-4).
#[derive(Clone, Copy)]
struct Config {
    rounds: u32,
    batch_size: i64,
    local_epochs: u32,
    /// Whether to leave every parameter to its default (the `{}` job).
    defaults: bool,
}

const DEFAULTS: Config = Config {
    rounds: 10,
    batch_size: -1,
    local_epochs: 1,
    defaults: true,
};

const fn cfg(rounds: u32, batch_size: i64, local_epochs: u32) -> Config {
    Config {
        rounds,
        batch_size,
        local_epochs,
        defaults: false,
    }
}

impl Config {
    fn params(&self) -> String {
        if self.defaults {
            "{}".into()
        } else {
            format!(
                "{{rounds: {}, batch_size: {}, local_epochs: {}}}",
                self.rounds, self.batch_size, self.local_epochs
            )
        }
    }
    /// The centralized baseline's settings: the same step, L2, batch size and passes.
    fn settings(&self) -> Settings {
        Settings {
            max_iter: self.rounds * self.local_epochs,
            batch_size: self.batch_size,
            learning_rate: 0.1,
            alpha: 0.01,
            tol: 1e-4,
            objective: Objective::Logistic,
            ..Settings::default()
        }
    }
}

struct Outcome {
    rounds: usize,
    ms_per_round: f64,
    wall_ms: f64,
    auc: f64,
    loss: f64,
}

/// Trains with `train` sets (one per data party) and scores `test` at the first party.
fn run(train: &[Dataset], test: &Dataset, params: &str) -> Outcome {
    let names: Vec<String> = (0..train.len()).map(|i| format!("p{i}")).collect();
    let hosts = names[1..].join(", ");
    let text = format!(
        "name: b\nparties:\n  guest: [p0]\n  host: [{hosts}]\n  arbiter: [agg]\ntasks:\n  t:\n    component: homo_lr\n    params: {params}\n"
    );
    let spec = JobSpec::parse(&text).expect("job");
    let task = validate(&spec, &schema).expect("valid").tasks.remove(0);
    let test_bytes = test.to_bytes().expect("bytes");
    let mut inputs = BTreeMap::new();
    for (i, d) in train.iter().enumerate() {
        let e = Endpoint {
            role: if i == 0 { Role::Guest } else { Role::Host },
            party: PartyName::new(&names[i]).expect("name"),
        };
        inputs.insert(
            e,
            BTreeMap::from([
                ("train_data".to_owned(), d.to_bytes().expect("bytes")),
                ("test_data".to_owned(), test_bytes.clone()),
            ]),
        );
    }
    let f = component("homo_lr").expect("homo_lr");
    let start = Instant::now();
    let results = run_task(
        "bench",
        &task,
        f,
        &inputs,
        &Arc::new(AtomicBool::new(false)),
    );
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut out = Outcome {
        rounds: 0,
        ms_per_round: 0.0,
        wall_ms,
        auc: 0.0,
        loss: 0.0,
    };
    for r in &results {
        assert!(r.result.is_ok(), "{}: {:?}", r.endpoint, r.result);
        if r.endpoint.role == Role::Arbiter {
            let losses: Vec<f64> = r
                .metrics
                .iter()
                .filter(|m| m.1 == "loss")
                .map(|m| m.2[0].1)
                .collect();
            out.rounds = losses.len();
            out.loss = losses.last().copied().unwrap_or(f64::NAN);
        }
        if r.endpoint.role == Role::Guest {
            let s = Dataset::from_bytes(&r.outputs["predict_output"]).expect("scores");
            out.auc = auc(s.labels.as_ref().expect("labels"), &s.columns[0]);
        }
    }
    out.ms_per_round = wall_ms / out.rounds.max(1) as f64;
    out
}

/// Fits scaling (`method`) at each party on its own data and applies it to its data and (at
/// the first party) the test set, as a pipeline would.
fn scaled(train: &[Dataset], test: &Dataset, method: &str) -> (Vec<Dataset>, Dataset) {
    let mut out = Vec::new();
    let mut test_scaled = test.clone();
    for (i, d) in train.iter().enumerate() {
        let m = feature_scale::fit(d, method).expect("fit");
        out.push(feature_scale::apply(&m, d).expect("apply").0);
        if i == 0 {
            test_scaled = feature_scale::apply(&m, test).expect("apply").0;
        }
    }
    (out, test_scaled)
}

fn row(data: &str, c: Config, train: &[Dataset], test: &Dataset) {
    let params = c.params();
    let o = run(train, test, &params);
    let parts: Vec<&Dataset> = train.iter().collect();
    let central = reference::train(&Table::pool(&parts), &c.settings()).expect("baseline");
    let central_auc = central.auc(&Table::from_dataset(test));
    println!(
        "| {data} | {params} | {} | {:.2} | {:.1} | {:.4} | {:.4} | {central_auc:.4} ({} epochs) |",
        o.rounds, o.ms_per_round, o.wall_ms, o.loss, o.auc, central.epochs
    );
}

fn main() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data");
    let shared = shared_data();
    println!(
        "| data | params | rounds | ms/round | wall ms | final loss | test AUC | centralized baseline test AUC (pooled rows, same settings) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let breast: Vec<Dataset> = ["guest", "host"]
        .iter()
        .map(|p| load(&examples.join(format!("breast_homo_{p}.csv"))).expect("breast"))
        .collect();
    let breast_test = load(&examples.join("breast_homo_test.csv")).expect("test");
    for c in [DEFAULTS, cfg(10, 32, 2), cfg(30, 32, 1)] {
        row("breast 2p", c, &breast, &breast_test);
    }
    let (bs, bt) = scaled(&breast, &breast_test, "standard");
    row("breast 2p + standard scale", cfg(10, 32, 2), &bs, &bt);

    let credit: Option<Vec<Dataset>> = ["guest", "host_1", "host_2"]
        .iter()
        .map(|p| load(&shared.join(format!("default_credit_homo_{p}.csv"))))
        .collect();
    let credit_test = load(&shared.join("default_credit_homo_test.csv"));
    match (credit, credit_test) {
        (Some(train), Some(test)) => {
            for c in [DEFAULTS, cfg(10, 64, 1), cfg(20, 256, 2)] {
                row("default_credit 3p", c, &train, &test);
            }
            let (ts, tt) = scaled(&train, &test, "min_max");
            row("default_credit 3p + min_max", cfg(10, 64, 1), &ts, &tt);
            let (ts, tt) = scaled(&train, &test, "standard");
            row("default_credit 3p + standard", cfg(10, 64, 1), &ts, &tt);
        }
        _ => println!(
            "(default_credit homo files not found under {}: skipped; set CONSORT_DATA)",
            shared.display()
        ),
    }
}
