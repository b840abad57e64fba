//! Horizontal LR (FedAvg with pairwise-masked secure aggregation) on real daemons.
//!
//! The proof that the parties learn together, not one alone: every data party reads its own
//! local model of each round and its row count from its own daemon (`job output .. lr
//! local_models`), every party reads the global model of each round (`global_models`), and the
//! test recomputes the row-weighted mean of the local models and finds the global model, round
//! by round, to within the fixed-point rounding of the secure sum — while the global model is
//! none of the local ones and not their unweighted mean.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use consort_tests::{Federation, Party, assert_succeeds, example_data, submit};
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

/// Fixed-point scale of the secure sum (2^24): each party's `w·n` is rounded to a multiple of
/// 1/SCALE before the masked sum.
const SCALE: f64 = 16_777_216.0;

/// One round of one model: weights, intercept, loss.
#[derive(Debug, Clone)]
struct Round {
    weights: Vec<f64>,
    intercept: f64,
    loss: f64,
}

impl Round {
    /// Every value the aggregation averages: the weights, then the intercept and the loss.
    fn values(&self) -> Vec<f64> {
        let mut v = self.weights.clone();
        v.extend([self.intercept, self.loss]);
        v
    }
}

fn rounds_of(doc: &Value) -> Vec<Round> {
    let f = |v: &Value| v.as_f64().unwrap();
    doc["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r["round"].as_u64(), Some(i as u64), "{r}");
            Round {
                weights: r["weights"].as_array().unwrap().iter().map(f).collect(),
                intercept: f(&r["intercept"]),
                loss: f(&r["loss"]),
            }
        })
        .collect()
}

/// Output `name` of task `lr` at `party`, as it prints (JSON).
fn output_text(party: &Party, job: &str, name: &str) -> String {
    let out = party.cli(&["job", "output", job, "lr", name]);
    assert_eq!(out.code, Some(0), "{}: {out:?}", party.name);
    out.stdout
}

/// A data party's own local models: (row count, one per round).
fn local_models(party: &Party, job: &str) -> (u64, Vec<Round>) {
    let doc: Value = serde_json::from_str(&output_text(party, job, "local_models")).unwrap();
    (doc["samples"].as_u64().unwrap(), rounds_of(&doc))
}

/// The global model of each round, as `party` saw it.
fn global_models(party: &Party, job: &str) -> Vec<Round> {
    rounds_of(&serde_json::from_str(&output_text(party, job, "global_models")).unwrap())
}

/// `(weights, intercept)` of the `model` output at `party` (MessagePack, read from a file).
fn final_model(fed: &Federation, party: &Party, job: &str) -> (Vec<f64>, f64) {
    let path = fed.job_file(&format!("{}.model", party.name), "");
    let out = party.cli(&["job", "output", job, "lr", "model", "-o", &path]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let m: Value = rmp_serde::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let w = m["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (w, m["intercept"].as_f64().unwrap())
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Asserts that in every round the global model is the row-weighted mean of the parties' local
/// models (weights, intercept and loss), and that it is none of the local models nor their
/// unweighted mean. `locals`: (party, row count, rounds).
///
/// The tolerance is what the fixed-point secure sum can achieve, nothing more: each party
/// uploads `round(v·n_i·2^24)`, an error of at most 2^-25 in `v·n_i`; the arbiter divides the
/// exact integer sum by `N = Σ n_i`, so each global value is within `k·2^-25/N` of the exact
/// weighted mean for `k` parties (2.2e-10 for 3 parties and 455 rows: under 1e-9), plus f64
/// rounding of the test's own sum (≲1e-15 here).
fn assert_weighted_mean(global: &[Round], locals: &[(&str, u64, Vec<Round>)]) {
    let k = locals.len() as f64;
    let total: u64 = locals.iter().map(|(_, n, _)| n).sum();
    let bound = k / (2.0 * SCALE) / total as f64 + 1e-13;
    assert!(bound < 1e-9, "{bound}");
    for (_, _, rounds) in locals {
        assert_eq!(rounds.len(), global.len(), "one local model per round");
    }
    let (mut worst, mut nearest_local, mut nearest_unweighted) = (0.0f64, f64::MAX, f64::MAX);
    for (r, g) in global.iter().enumerate() {
        let g = g.values();
        let mut mean = vec![0.0; g.len()];
        let mut unweighted = vec![0.0; g.len()];
        for (_, n, rounds) in locals {
            for (j, v) in rounds[r].values().into_iter().enumerate() {
                mean[j] += v * *n as f64;
                unweighted[j] += v / k;
            }
        }
        mean.iter_mut().for_each(|m| *m /= total as f64);
        let err = max_abs_diff(&g, &mean);
        assert!(
            err <= bound,
            "round {r}: the global model is {err:e} away from the row-weighted mean of the \
             local models (bound {bound:e})\nglobal {g:?}\nmean   {mean:?}"
        );
        worst = worst.max(err);
        // Not one party's model alone, nor a mean that ignores the row counts.
        for (name, _, rounds) in locals {
            let d = max_abs_diff(&g, &rounds[r].values());
            assert!(d > 1e-4, "round {r}: the global model is {name}'s ({d:e})");
            nearest_local = nearest_local.min(d);
        }
        let d = max_abs_diff(&g, &unweighted);
        assert!(
            d > 1000.0 * bound,
            "round {r}: the unweighted mean is as close ({d:e})"
        );
        nearest_unweighted = nearest_unweighted.min(d);
    }
    eprintln!(
        "{} rounds: global = row-weighted mean of {} local models within {worst:e} (bound \
         {bound:e}); at least {nearest_local:e} from every local model, {nearest_unweighted:e} \
         from the unweighted mean",
        global.len(),
        locals.len()
    );
}

/// Daemons `names`, all partners of each other, whose tables every partner's jobs may read.
fn federation(names: &[&str]) -> Federation {
    let fed = Federation::init(names);
    fed.all_mutual();
    for i in 0..names.len() {
        fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    }
    fed
}

fn upload(party: &Party, file: &str, table: &str) {
    let out = party.cli(&["data", "upload", file, "--name", table]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn two_parties_global_model_is_the_row_weighted_mean_of_their_local_models() {
    let fed = federation(&["bank-a", "insurer-b"]);
    let _d = fed.start_connected();
    for (p, file) in fed
        .parties
        .iter()
        .zip(["breast_homo_guest.csv", "breast_homo_host.csv"])
    {
        upload(p, &example_data(file), "breast_homo_train");
        upload(p, &example_data("breast_homo_test.csv"), "breast_homo_test");
    }
    // The shipped example: guest bank-a (also the arbiter), host insurer-b.
    let job = format!(
        "{}/../examples/breast_homo_lr.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let id = submit(&fed.parties[0], &job);
    assert_succeeds(&fed.parties, &id, T);
    let (a, b) = (&fed.parties[0], &fed.parties[1]);

    // Each party's local models from its own daemon; the row counts are what it uploaded.
    let (na, la) = local_models(a, &id);
    let (nb, lb) = local_models(b, &id);
    assert_eq!((na, nb), (227, 228));
    // Both received the same global models (bank-a's guest and arbiter wrote the same bytes).
    let global_text = output_text(a, &id, "global_models");
    assert_eq!(output_text(b, &id, "global_models"), global_text);
    let global = global_models(a, &id);
    assert!(global.len() >= 2, "{} rounds", global.len());
    assert_weighted_mean(&global, &[("bank-a", na, la), ("insurer-b", nb, lb)]);

    // Each ends with the last global model, and both hold the same model bytes.
    let last = global.last().unwrap();
    for p in &fed.parties {
        let (w, b) = final_model(&fed, p, &id);
        assert!(
            max_abs_diff(&w, &last.weights) <= 1e-15 && (b - last.intercept).abs() <= 1e-15,
            "{}'s model is not the last global model: {w:?} {b}",
            p.name
        );
    }
    // The model store commits after the job ends: wait for each party's data-party part.
    let artifact = |p: &Party| -> String {
        consort_tests::wait_for(&format!("{}'s stored model", p.name), T, || {
            let m = p.cli(&["--json", "model", "list"]).json();
            let parts = m[0]["parts"].as_array()?.clone();
            let part = parts.into_iter().find(|p| p["role"] != "arbiter")?;
            Some(part["artifact"].as_str().unwrap().to_owned())
        })
    };
    assert_eq!(artifact(a), artifact(b));
    // Online, at either data party alone (homo LR needs no partner to score): every test row
    // scores as the final model says.
    let model_id = b.cli(&["--json", "model", "list"]).json()[0]["model_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for p in [a, b] {
        let out = p.cli(&[
            "serve",
            "deploy",
            &format!("{model_id}@{id}"),
            "--service",
            "homo",
        ]);
        assert_eq!(out.code, Some(0), "{out:?}");
        assert!(out.stdout.contains("this party: local"), "{}", out.stdout);
    }
    let test_csv = example_data("breast_homo_test.csv");
    let scores = fed.job_file("homo_scores.csv", "");
    let out = b.cli(&[
        "serve", "predict", "homo", "--input", &test_csv, "-o", &scores,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let (w, b0) = final_model(&fed, b, &id);
    let rows = parse_rows(&std::fs::read_to_string(&test_csv).unwrap());
    let text = std::fs::read_to_string(&scores).unwrap();
    let online: Vec<f64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(online.len(), rows.len());
    for ((_, x), s) in rows.iter().zip(&online) {
        let z: f64 = w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + b0;
        let want = 1.0 / (1.0 + (-z).exp());
        assert!((s - want).abs() <= 1e-12, "{s} {want}");
    }

    // And the global model scores the held-out test set well at both.
    for p in &fed.parties {
        let m = p
            .cli(&["--json", "metric", "get", &id, "eval", "evaluation", "auc"])
            .json();
        let auc = m[0]["points"][0][1].as_f64().unwrap();
        assert!(auc >= 0.98, "{}: test AUC {auc}", p.name);
    }
}

/// A breast homo CSV as rows of (label, features).
fn parse_rows(text: &str) -> Vec<(f64, Vec<f64>)> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..2], ["id", "y"]);
    lines
        .map(|l| {
            let v: Vec<f64> = l.split(',').skip(1).map(|x| x.parse().unwrap()).collect();
            (v[0], v[1..].to_vec())
        })
        .collect()
}

/// Full-batch gradient descent on L2-regularised logistic loss from `(w, b)`, written here
/// independently of the component: the local model a party should upload in a round that
/// starts from global model `(w, b)`, with its loss on the party's rows.
fn local_step(
    rows: &[(f64, Vec<f64>)],
    w: &[f64],
    b: f64,
    epochs: u32,
    lr: f64,
    alpha: f64,
) -> Round {
    let (mut w, mut b) = (w.to_vec(), b);
    let n = rows.len() as f64;
    let z = |w: &[f64], b: f64, x: &[f64]| w.iter().zip(x).map(|(a, c)| a * c).sum::<f64>() + b;
    for _ in 0..epochs {
        let mut grad = vec![0.0; w.len()];
        let mut gb = 0.0;
        for (y, x) in rows {
            let err = 1.0 / (1.0 + (-z(&w, b, x)).exp()) - y;
            for (g, xv) in grad.iter_mut().zip(x) {
                *g += err * xv;
            }
            gb += err;
        }
        for (wj, g) in w.iter_mut().zip(&grad) {
            *wj -= lr * (g / n + alpha * *wj);
        }
        b -= lr * gb / n;
    }
    let loss = rows
        .iter()
        .map(|(y, x)| {
            let z = z(&w, b, x);
            (1.0 + z.exp()).ln() - y * z
        })
        .sum::<f64>()
        / n
        + 0.5 * alpha * w.iter().map(|v| v * v).sum::<f64>();
    Round {
        weights: w,
        intercept: b,
        loss,
    }
}

const THREE: &str = "name: breast-homo-lr-3
parties:
  guest: [bank-a]
  host: [insurer-b, clinic-c]
  arbiter: [hub-d]
tasks:
  train:
    component: reader
    params: {table: breast_homo_train}
  lr:
    component: homo_lr
    inputs: {train_data: train.data}
    params: {rounds: 6, tol: 0, local_epochs: 2, batch_size: -1, learning_rate: 0.5, alpha: 0.01}
";

#[test]
fn three_parties_and_an_arbiter_average_by_rows_and_each_round_starts_from_the_global_model() {
    let fed = federation(&["bank-a", "insurer-b", "clinic-c", "hub-d"]);
    let _d = fed.start_connected();
    // Three data parties of unequal size: the guest file split 80/147, and the host file.
    let guest = std::fs::read_to_string(example_data("breast_homo_guest.csv")).unwrap();
    let host = std::fs::read_to_string(example_data("breast_homo_host.csv")).unwrap();
    let lines: Vec<&str> = guest.lines().collect();
    let split = |rows: &[&str]| format!("{}\n{}\n", lines[0], rows.join("\n"));
    let tables = [split(&lines[1..81]), split(&lines[81..]), host];
    for (i, text) in tables.iter().enumerate() {
        let file = fed.job_file(&format!("train{i}.csv"), text);
        upload(&fed.parties[i], &file, "breast_homo_train");
    }
    let id = submit(&fed.parties[0], &fed.job_file("three.yaml", THREE));
    assert_succeeds(&fed.parties, &id, T);
    let (data_parties, hub) = (&fed.parties[..3], &fed.parties[3]);

    // Every endpoint, the arbiter too, has the same global models; six rounds (tol 0).
    let global_text = output_text(hub, &id, "global_models");
    for p in data_parties {
        assert_eq!(
            output_text(p, &id, "global_models"),
            global_text,
            "{}",
            p.name
        );
    }
    let global = global_models(hub, &id);
    assert_eq!(global.len(), 6);
    // Local models stay with their party: the arbiter has none.
    let none = hub.cli(&["job", "output", &id, "lr", "local_models"]);
    assert_eq!(none.code, Some(1), "{none:?}");

    let mut locals = Vec::new();
    for (p, text) in data_parties.iter().zip(&tables) {
        let (n, rounds) = local_models(p, &id);
        let rows = parse_rows(text);
        assert_eq!(n, rows.len() as u64, "{}: its row count", p.name);
        // FedAvg: round r's local model is this party's training from round r−1's global
        // model (round 0: from zero), recomputed here from the rows it uploaded.
        for (r, local) in rounds.iter().enumerate() {
            let (w, b) = match r {
                0 => (vec![0.0; 30], 0.0),
                _ => (global[r - 1].weights.clone(), global[r - 1].intercept),
            };
            let want = local_step(&rows, &w, b, 2, 0.5, 0.01);
            let d = max_abs_diff(&local.values(), &want.values());
            assert!(d <= 1e-12, "{} round {r}: local model {d:e} off", p.name);
        }
        locals.push((p.name.as_str(), n, rounds));
    }
    assert_eq!(
        locals.iter().map(|l| l.1).collect::<Vec<_>>(),
        [80, 147, 228]
    );
    assert_weighted_mean(&global, &locals);
    // Training went somewhere: the aggregated loss fell every round.
    assert!(
        global.windows(2).all(|w| w[1].loss < w[0].loss) && global[0].loss < 0.69,
        "{:?}",
        global.iter().map(|g| g.loss).collect::<Vec<_>>()
    );
    // Every data party ends with the last global model.
    let last = global.last().unwrap();
    for p in data_parties {
        let (w, b) = final_model(&fed, p, &id);
        assert!(
            max_abs_diff(&w, &last.weights) <= 1e-15 && (b - last.intercept).abs() <= 1e-15,
            "{}'s model is not the last global model: {w:?} {b}",
            p.name
        );
    }
}
