//! Federated learning end to end on real release daemons, through `consort demo` (which starts
//! the daemons, makes them partners, uploads the tables and submits reader → psi → hetero_lr →
//! evaluation): submit → success of the whole job, AUC, and the cost of the key size and of a
//! third party, side by side in one run.
//!
//! Run: `cargo bench -p consort-tests --bench learning`. default_credit runs when
//! `CONSORT_DATA` (default `../shared/data`, next to the repository) holds its CSV files. Prints a Markdown table.

#![allow(clippy::unwrap_used)]

use consort_tests::consort;

fn demo(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "demo"];
    all.extend_from_slice(args);
    let out = consort(&all);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json();
    assert_eq!(v["status"], "success", "{v}");
    v
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    println!("| job (breast unless said) | submit → success | AUC | ratio |");
    println!("|---|---|---|---|");
    let runs: Vec<serde_json::Value> = (0..3).map(|_| demo(&[])).collect();
    let base = median(runs.iter().map(|v| v["job_s"].as_f64().unwrap()).collect());
    let auc = runs[0]["auc"].as_f64().unwrap();
    println!(
        "| 2 parties (guest+arbiter, host), 1024-bit key, 10 epochs, batch 300 — median of 3 | {base:.2} s | {auc:.4} | 1.0× |"
    );
    for (label, args) in [
        (
            "3 parties (arbiter apart), 1024-bit key",
            vec!["--parties", "3"],
        ),
        (
            "2 parties, 2048-bit key (the default)",
            vec!["--key-bits", "2048"],
        ),
    ] {
        let v = demo(&args);
        let s = v["job_s"].as_f64().unwrap();
        println!(
            "| {label} | {s:.2} s | {:.4} | {:.1}× |",
            v["auc"].as_f64().unwrap(),
            s / base
        );
    }
    let dir = std::env::var("CONSORT_DATA")
        .unwrap_or_else(|_| format!("{}/../../shared/data", env!("CARGO_MANIFEST_DIR")));
    if std::path::Path::new(&dir)
        .join("default_credit_hetero_guest.csv")
        .exists()
    {
        let v = demo(&["--data", "default_credit", "--data-dir", &dir]);
        let s = v["job_s"].as_f64().unwrap();
        println!(
            "| default_credit (30000 × 13+10 features, PSI of 30000 ids), 1024-bit key, 5 epochs, batch 1000 | {s:.1} s | {:.4} | {:.1}× |",
            v["auc"].as_f64().unwrap(),
            s / base
        );
    }
}
