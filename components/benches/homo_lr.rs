//! homo_lr: milliseconds per round and test AUC, all parties in one process (in-memory
//! harness). Breast (2 data parties + arbiter) from `examples/data`; default_credit
//! (3 data parties + arbiter) from `/work/shared/data` or `$CONSORT_DATA`, skipped if absent.
//! Run with `cargo bench -p consort-components --bench homo_lr`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use consort_components::evaluation::auc;
use consort_components::feature_scale;
use consort_components::{Endpoint, component, harness::run_task, schema};
use consort_protocol::PartyName;
use consort_protocol::data::Dataset;
use consort_protocol::job::{JobSpec, Role, validate};

fn load(path: &str) -> Option<Dataset> {
    let file = std::fs::File::open(path).ok()?;
    consort_protocol::data::parse_csv(file, &Default::default()).ok()
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
            let losses: Vec<f64> = r.metrics.iter().map(|m| m.2[0].1).collect();
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

/// Fits min-max scaling at each party on its own data and applies it to its data and (at the
/// first party) the test set, as a pipeline would.
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

fn row(data: &str, params: &str, o: &Outcome) {
    println!(
        "| {data} | {params} | {} | {:.2} | {:.1} | {:.4} | {:.4} |",
        o.rounds, o.ms_per_round, o.wall_ms, o.loss, o.auc
    );
}

fn main() {
    let here = env!("CARGO_MANIFEST_DIR");
    let shared = std::env::var("CONSORT_DATA").unwrap_or_else(|_| "/work/shared/data".into());
    println!("| data | params | rounds | ms/round | wall ms | final loss | test AUC |");
    println!("|---|---|---|---|---|---|---|");
    let breast: Vec<Dataset> = ["guest", "host"]
        .iter()
        .map(|p| load(&format!("{here}/../examples/data/breast_homo_{p}.csv")).expect("breast"))
        .collect();
    let breast_test = load(&format!("{here}/../examples/data/breast_homo_test.csv")).expect("test");
    for params in [
        "{}",
        "{rounds: 10, batch_size: 32, local_epochs: 2}",
        "{rounds: 30, batch_size: 32, local_epochs: 1}",
    ] {
        row("breast 2p", params, &run(&breast, &breast_test, params));
    }
    let (bs, bt) = scaled(&breast, &breast_test, "standard");
    let p = "{rounds: 10, batch_size: 32, local_epochs: 2}";
    row("breast 2p + standard scale", p, &run(&bs, &bt, p));

    let credit: Option<Vec<Dataset>> = ["guest", "host_1", "host_2"]
        .iter()
        .map(|p| load(&format!("{shared}/default_credit_homo_{p}.csv")))
        .collect();
    let credit_test = load(&format!("{shared}/default_credit_homo_test.csv"));
    match (credit, credit_test) {
        (Some(train), Some(test)) => {
            for params in [
                "{}",
                "{rounds: 10, batch_size: 64, local_epochs: 1}",
                "{rounds: 20, batch_size: 256, local_epochs: 2}",
            ] {
                row("default_credit 3p", params, &run(&train, &test, params));
            }
            let p = "{rounds: 10, batch_size: 64, local_epochs: 1}";
            let (ts, tt) = scaled(&train, &test, "min_max");
            row("default_credit 3p + min_max", p, &run(&ts, &tt, p));
            let (ts, tt) = scaled(&train, &test, "standard");
            row("default_credit 3p + standard", p, &run(&ts, &tt, p));
        }
        _ => println!("default_credit homo files not found under {shared}: skipped"),
    }
}
