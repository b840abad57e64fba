//! hetero_lr end to end in the in-memory harness (guest, host and arbiter as threads of this
//! process, sharing its cores): the breast job with FATE's example settings at 1024 and 2048
//! bits, and default_credit (read from /work/shared/data if present) for AUC at scale.
//!
//! `cargo bench -p consort-components --bench hetero_lr`
//! (`HETERO_LR_BENCH=breast` or `=credit` runs one part.)

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use consort_components::evaluation::auc;
use consort_components::harness::run_task;
use consort_components::{Endpoint, component, schema};
use consort_protocol::PartyName;
use consort_protocol::data::Dataset;
use consort_protocol::job::{JobSpec, Role, validate};

fn load_csv(path: &str) -> Option<Dataset> {
    let file = std::fs::File::open(path).ok()?;
    consort_protocol::data::parse_csv(file, &Default::default()).ok()
}

struct Outcome {
    seconds: f64,
    epochs: f64,
    auc: f64,
    last_loss: f64,
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
    let g = results
        .iter()
        .find(|r| r.endpoint.role == Role::Guest)
        .unwrap();
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
    }
}

fn row(name: &str, params: &str, o: &Outcome) {
    println!(
        "| {name} | `{params}` | {:.2} | {:.0} | {:.3} | {:.4} | {:.4} |",
        o.seconds,
        o.epochs,
        o.seconds / o.epochs,
        o.auc,
        o.last_loss
    );
}

fn main() {
    let which = std::env::var("HETERO_LR_BENCH").unwrap_or_default();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data");
    println!(
        "hetero_lr in the in-memory harness, {} rayon threads shared by all parties",
        rayon::current_num_threads()
    );
    println!(
        "| data | params | wall s (keygen included) | epochs | s/epoch | train AUC | last loss |"
    );
    println!("|---|---|---|---|---|---|---|");
    if which.is_empty() || which == "breast" {
        let g = load_csv(&format!("{dir}/breast_hetero_guest.csv")).unwrap();
        let h = load_csv(&format!("{dir}/breast_hetero_host.csv")).unwrap();
        for bits in [1024, 2048] {
            let params = format!(
                "{{max_iter: 10, batch_size: 300, learning_rate: 0.1, alpha: 0.001, key_bits: {bits}}}"
            );
            row("breast 569×(10+20)", &params, &train(&g, &h, &params));
        }
    }
    if which.is_empty() || which == "credit" {
        let shared = "/work/shared/data";
        match (
            load_csv(&format!("{shared}/default_credit_hetero_guest.csv")),
            load_csv(&format!("{shared}/default_credit_hetero_host.csv")),
        ) {
            (Some(g), Some(h)) => {
                for params in [
                    "{max_iter: 5, batch_size: 1000, learning_rate: 0.15, alpha: 0.01, key_bits: 1024}",
                    "{max_iter: 5, batch_size: 3000, learning_rate: 0.15, alpha: 0.01, key_bits: 1024}",
                ] {
                    row(
                        "default_credit 30000×(13+10)",
                        params,
                        &train(&g, &h, params),
                    );
                }
            }
            _ => println!("(default_credit hetero files not found under {shared}: skipped)"),
        }
    }
}
