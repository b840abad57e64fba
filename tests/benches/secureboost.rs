//! SecureBoost on real release daemons (bank-a guest, insurer-b host, loopback): seconds per
//! tree and submit → success of the whole job (reader → psi → hetero_secureboost → evaluation)
//! on breast and default_credit at 1024 and 2048 bits, and how a tree's time grows with rows
//! (default_credit's 30,000 rows, then 90,000 and 300,000 synthetic rows made from them). For
//! default_credit, scikit-learn's `HistGradientBoostingClassifier` with the same trees, depth
//! and learning rate on the joined data is run in the same run
//! (`tests/reference/default_credit_sklearn.py`, when python3 with scikit-learn is there).
//!
//! `CONSORT_DATA` (default `../shared/data`, next to the repository) holds default_credit.
//! Run: `cargo bench -p consort-tests --bench secureboost [-- --no-300k]`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use consort_tests::*;

const T: Duration = Duration::from_secs(3600);

struct Case {
    label: String,
    guest: &'static str,
    host: &'static str,
    rows: usize,
    key_bits: u32,
    trees: u32,
    depth: u32,
}

fn job(c: &Case) -> String {
    format!(
        "name: sbt-bench
parties: {{guest: [bank-a], host: [insurer-b]}}
tasks:
  reader:
    component: reader
    role_params: {{guest: {{table: {}}}, host: {{table: {}}}}}
  psi:
    component: psi
    inputs: {{data: reader.data}}
  sbt:
    component: hetero_secureboost
    inputs: {{train_data: psi.data}}
    params: {{num_trees: {}, max_depth: {}, learning_rate: 0.3, key_bits: {}}}
  eval:
    component: evaluation
    roles: [guest]
    inputs: {{data: sbt.train_output}}
",
        c.guest, c.host, c.trees, c.depth, c.key_bits
    )
}

/// Rows × `factor` of a CSV, ids made unique, features moved by a small deterministic amount
/// (so quantiles differ from the original's), labels kept.
fn grow_csv(src: &Path, factor: usize, label_cols: usize) -> String {
    let text = std::fs::read_to_string(src).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let mut out = String::with_capacity(text.len() * factor);
    out.push_str(header);
    out.push('\n');
    for k in 0..factor {
        for (i, row) in rows.iter().enumerate() {
            let mut f = row.split(',');
            out.push_str(&format!("{}_{k}", f.next().unwrap()));
            for (j, v) in f.enumerate() {
                if j < label_cols {
                    out.push_str(&format!(",{v}"));
                } else {
                    let x: f64 = v.parse().unwrap();
                    let jitter = 1e-3 * (((i * 31 + j * 7 + k * 13) as f64).sin());
                    out.push_str(&format!(",{:.6}", x + jitter));
                }
            }
            out.push('\n');
        }
    }
    out
}

fn sklearn_auc(dir: &str, trees: u32, depth: u32) -> Option<f64> {
    let script = format!(
        "{}/reference/default_credit_sklearn.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new("python3")
        .args([
            &script,
            "--trees",
            &trees.to_string(),
            "--depth",
            &depth.to_string(),
            "--lr",
            "0.3",
            "--data-dir",
            dir,
        ])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["train_auc"].as_f64()
}

fn main() {
    let skip_300k = std::env::args().any(|a| a == "--no-300k");
    let dir = std::env::var("CONSORT_DATA")
        .unwrap_or_else(|_| format!("{}/../../shared/data", env!("CARGO_MANIFEST_DIR")));
    let dir_path = Path::new(&dir);
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    for i in 0..2 {
        fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    }
    let _d = fed.start_connected();
    upload_breast_hetero(&fed);
    let upload = |i: usize, name: &str, csv_path: &str| {
        let out = fed.parties[i].cli(&["data", "upload", csv_path, "--name", name]);
        assert_eq!(out.code, Some(0), "{out:?}");
    };
    let guest_csv = dir_path.join("default_credit_hetero_guest.csv");
    let host_csv = dir_path.join("default_credit_hetero_host.csv");
    upload(0, "dc_guest", guest_csv.to_str().unwrap());
    upload(1, "dc_host", host_csv.to_str().unwrap());
    // 90,000 and 300,000 rows: default_credit three and ten times over.
    let mut sizes = vec![(3usize, "dc90k_guest", "dc90k_host")];
    if !skip_300k {
        sizes.push((10, "dc300k_guest", "dc300k_host"));
    }
    for (factor, g, h) in &sizes {
        let gf = fed.job_file(&format!("{g}.csv"), &grow_csv(&guest_csv, *factor, 1));
        let hf = fed.job_file(&format!("{h}.csv"), &grow_csv(&host_csv, *factor, 0));
        upload(0, g, &gf);
        upload(1, h, &hf);
    }

    let mut cases = Vec::new();
    for bits in [1024, 2048] {
        cases.push(Case {
            label: format!("breast, FATE's example (2 trees, depth 3), {bits}-bit"),
            guest: "breast_guest",
            host: "breast_host",
            rows: 569,
            key_bits: bits,
            trees: 2,
            depth: 3,
        });
    }
    for bits in [1024, 2048] {
        cases.push(Case {
            label: format!("default_credit (5 trees, depth 3), {bits}-bit"),
            guest: "dc_guest",
            host: "dc_host",
            rows: 30_000,
            key_bits: bits,
            trees: 5,
            depth: 3,
        });
    }
    cases.push(Case {
        label: "synthetic from default_credit (2 trees, depth 3), 1024-bit".into(),
        guest: "dc90k_guest",
        host: "dc90k_host",
        rows: 90_000,
        key_bits: 1024,
        trees: 2,
        depth: 3,
    });
    if !skip_300k {
        cases.push(Case {
            label: "synthetic from default_credit (1 tree, depth 3), 1024-bit".into(),
            guest: "dc300k_guest",
            host: "dc300k_host",
            rows: 300_000,
            key_bits: 1024,
            trees: 1,
            depth: 3,
        });
    }

    println!(
        "| case | rows | submit → success | s per tree (mean) | per tree per 10k rows | AUC |"
    );
    println!("|---|---|---|---|---|---|");
    let a = &fed.parties[0];
    for c in &cases {
        let started = Instant::now();
        let id = submit(a, &fed.job_file("sbt.yaml", &job(c)));
        assert_succeeds(&fed.parties, &id, T);
        let total = started.elapsed().as_secs_f64();
        let log = a.cli(&["job", "log", &id]).stdout;
        let trees: Vec<f64> = log
            .lines()
            .filter(|l| l.contains("hetero_secureboost guest: tree"))
            .filter_map(|l| {
                let at = l.find(") in ")? + 5;
                l[at..].split(' ').next()?.parse().ok()
            })
            .collect();
        let per_tree = trees.iter().sum::<f64>() / trees.len().max(1) as f64;
        let auc = a
            .cli(&["--json", "metric", "get", &id, "eval", "evaluation", "auc"])
            .json()[0]["points"][0][1]
            .as_f64()
            .unwrap();
        println!(
            "| {} | {} | {total:.2} s | {per_tree:.2} s | {:.3} s | {auc:.4} |",
            c.label,
            c.rows,
            per_tree / (c.rows as f64 / 10_000.0)
        );
    }
    match sklearn_auc(&dir, 5, 3) {
        Some(auc) => println!(
            "\nscikit-learn HistGradientBoostingClassifier, default_credit joined, 5 trees, depth \
             3, learning rate 0.3, 32 bins, l2 0.1: train AUC {auc:.4}"
        ),
        None => println!("\n(scikit-learn not available: no reference AUC)"),
    }
}
