//! SecureBoost on real daemons: breast with FATE's example and quick-start settings (1024-bit
//! keys), the model versioned at each party and used by a predict job; three parties.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use consort_tests::{Federation, assert_succeeds, example_data, submit, upload_breast_hetero};
use serde_json::Value;

const T: Duration = Duration::from_secs(180);

/// Parties that accept each other's jobs and let jobs read their tables.
fn federation(names: &[&str]) -> Federation {
    let fed = Federation::init(names);
    fed.all_mutual();
    for i in 0..names.len() {
        fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    }
    fed
}

fn train_job(name: &str, hosts: &[(&str, &str)], params: &str) -> String {
    let host_parties: Vec<&str> = hosts.iter().map(|(p, _)| *p).collect();
    let mut tables = String::from("guest: {table: breast_guest}");
    let mut party_params = String::new();
    for (party, table) in hosts {
        party_params.push_str(&format!("      {party}: {{table: {table}}}\n"));
    }
    if hosts.len() == 1 {
        tables.push_str(&format!(", host: {{table: {}}}", hosts[0].1));
        party_params.clear();
    }
    let reader = if party_params.is_empty() {
        format!("    role_params: {{{tables}}}\n")
    } else {
        format!(
            "    role_params: {{guest: {{table: breast_guest}}}}\n    party_params:\n{party_params}"
        )
    };
    format!(
        "name: {name}
parties: {{guest: [bank-a], host: [{}]}}
tasks:
  reader:
    component: reader
{reader}  psi:
    component: psi
    inputs: {{data: reader.data}}
  sbt:
    component: hetero_secureboost
    inputs: {{train_data: psi.data}}
    params: {params}
  eval:
    component: evaluation
    roles: [guest]
    inputs: {{data: sbt.train_output}}
",
        host_parties.join(", ")
    )
}

fn auc(fed: &Federation, job: &str) -> f64 {
    let m = fed.parties[0]
        .cli(&["--json", "metric", "get", job, "eval", "evaluation", "auc"])
        .json();
    m[0]["points"][0][1].as_f64().unwrap()
}

fn scores(fed: &Federation, job: &str, output: &str) -> Vec<(String, f64)> {
    let out = fed.parties[0].cli(&["job", "output", job, "sbt", output]);
    assert_eq!(out.code, Some(0), "{out:?}");
    out.stdout
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[f.len() - 1].parse().unwrap())
        })
        .collect()
}

#[test]
fn breast_trains_to_fates_auc_versions_the_model_and_predicts() {
    let fed = federation(&["bank-a", "insurer-b"]);
    let _d = fed.start_connected();
    upload_breast_hetero(&fed);
    let a = &fed.parties[0];

    // FATE's example: 2 trees of depth 3, 1024-bit Paillier.
    let started = Instant::now();
    let id = submit(
        a,
        &fed.job_file(
            "sbt.yaml",
            &train_job(
                "breast-sbt",
                &[("insurer-b", "breast_host")],
                "{num_trees: 2, max_depth: 3, key_bits: 1024}",
            ),
        ),
    );
    assert_succeeds(&fed.parties, &id, T);
    eprintln!(
        "FATE example settings: submit → success in {:.2} s (FATE: 78–85 s)",
        started.elapsed().as_secs_f64()
    );
    let example_auc = auc(&fed, &id);
    eprintln!("AUC {example_auc} (FATE: 0.976)");
    assert!(example_auc >= 0.976, "{example_auc}");
    // Loss per tree and the importance of each party's own features.
    let loss = a
        .cli(&["--json", "metric", "get", &id, "sbt", "train", "loss"])
        .json();
    assert_eq!(loss[0]["points"].as_array().unwrap().len(), 2, "{loss}");
    for p in &fed.parties {
        let imp = p
            .cli(&[
                "--json",
                "metric",
                "get",
                &id,
                "sbt",
                "importance",
                "splits",
            ])
            .json();
        assert!(!imp.as_array().unwrap().is_empty(), "{}: {imp}", p.name);
    }

    // Each party keeps its own part of the version.
    let model_of = |i: usize| -> Value {
        let models = fed.parties[i].cli(&["--json", "model", "list"]).json();
        models
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["version"] == id.as_str())
            .cloned()
            .unwrap()
    };
    let (mg, mh) = (model_of(0), model_of(1));
    assert_eq!(mg["model_id"], mh["model_id"]);
    for (m, role) in [(&mg, "guest"), (&mh, "host")] {
        let parts = m["parts"].as_array().unwrap();
        assert!(
            parts
                .iter()
                .any(|p| p["component"] == "hetero_secureboost" && p["role"] == role),
            "{m}"
        );
    }
    let model_id = mg["model_id"].as_str().unwrap().to_owned();

    // Predict with the stored version: the train scores again.
    let predict = format!(
        "name: breast-sbt-predict
parties: {{guest: [bank-a], host: [insurer-b]}}
tasks:
  reader:
    component: reader
    role_params: {{guest: {{table: breast_guest}}, host: {{table: breast_host}}}}
  psi:
    component: psi
    inputs: {{data: reader.data}}
  sbt:
    component: hetero_secureboost
    inputs: {{test_data: psi.data}}
    model: {{id: {model_id}, version: {id}}}
  eval:
    component: evaluation
    roles: [guest]
    inputs: {{data: sbt.predict_output}}
"
    );
    let pid = submit(&fed.parties[1], &fed.job_file("predict.yaml", &predict));
    assert_succeeds(&fed.parties, &pid, T);
    assert_eq!(
        scores(&fed, &pid, "predict_output"),
        scores(&fed, &id, "train_output")
    );
    assert!((auc(&fed, &pid) - example_auc).abs() < 1e-12);

    // FATE's quick start: 1 tree of depth 5.
    let qid = submit(
        a,
        &fed.job_file(
            "quick.yaml",
            &train_job(
                "breast-sbt-quick",
                &[("insurer-b", "breast_host")],
                "{num_trees: 1, max_depth: 5, key_bits: 1024}",
            ),
        ),
    );
    assert_succeeds(&fed.parties, &qid, T);
    let quick_auc = auc(&fed, &qid);
    eprintln!("quick-start AUC {quick_auc} (FATE: 0.9956)");
    assert!(quick_auc >= 0.995, "{quick_auc}");
}

#[test]
fn three_parties_train_predict_and_serve_online_as_the_predict_job() {
    let fed = federation(&["bank-a", "insurer-b", "clinic-c"]);
    let http = consort_tests::free_port();
    fed.append_config(0, &format!("\n[serving]\nlisten = \"127.0.0.1:{http}\"\n"));
    for (i, table) in [(1, "breast_host_a"), (2, "breast_host_b")] {
        fed.append_config(
            i,
            &format!("\n[serving.sources.risk]\ntable = \"{table}\"\n"),
        );
    }
    let _d = fed.start_connected();
    // The host's 20 features split between two hosts.
    let text = std::fs::read_to_string(example_data("breast_hetero_host.csv")).unwrap();
    let mut first = String::new();
    let mut second = String::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        first.push_str(&format!("{},{}\n", f[0], f[1..11].join(",")));
        second.push_str(&format!("{},{}\n", f[0], f[11..].join(",")));
    }
    for (i, (name, csv)) in [
        (
            0,
            (
                "breast_guest",
                std::fs::read_to_string(example_data("breast_hetero_guest.csv")).unwrap(),
            ),
        ),
        (1, ("breast_host_a", first)),
        (2, ("breast_host_b", second)),
    ] {
        let file = fed.job_file(&format!("{name}.csv"), &csv);
        let out = fed.parties[i].cli(&["data", "upload", &file, "--name", name]);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let id = submit(
        &fed.parties[0],
        &fed.job_file(
            "sbt3.yaml",
            &train_job(
                "breast-sbt-3",
                &[
                    ("insurer-b", "breast_host_a"),
                    ("clinic-c", "breast_host_b"),
                ],
                "{num_trees: 3, max_depth: 3, key_bits: 1024}",
            ),
        ),
    );
    assert_succeeds(&fed.parties, &id, T);
    let a = auc(&fed, &id);
    eprintln!("three parties: AUC {a}");
    assert!(a >= 0.976, "{a}");

    // The batch predict job's scores.
    let models = fed.parties[0].cli(&["--json", "model", "list"]).json();
    let model_id = models[0]["model_id"].as_str().unwrap().to_owned();
    let predict = format!(
        "name: sbt3-predict
parties: {{guest: [bank-a], host: [insurer-b, clinic-c]}}
tasks:
  reader:
    component: reader
    role_params: {{guest: {{table: breast_guest}}}}
    party_params:
      insurer-b: {{table: breast_host_a}}
      clinic-c: {{table: breast_host_b}}
  psi:
    component: psi
    inputs: {{data: reader.data}}
  sbt:
    component: hetero_secureboost
    inputs: {{test_data: psi.data}}
    model: {{id: {model_id}, version: {id}}}
"
    );
    let pid = submit(&fed.parties[0], &fed.job_file("predict3.yaml", &predict));
    assert_succeeds(&fed.parties, &pid, T);
    let batch: std::collections::HashMap<String, f64> =
        scores(&fed, &pid, "predict_output").into_iter().collect();
    assert_eq!(batch.len(), 569);

    // Deployed online: every id's score over HTTP equals the batch score; the hosts answer
    // with the directions of their splits, from their own tables.
    let out = fed.parties[0].cli(&[
        "--json",
        "serve",
        "deploy",
        &format!("{model_id}@{id}"),
        "--service",
        "risk",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut client =
        consort_tests::serving::Http::new(std::net::SocketAddr::from(([127, 0, 0, 1], http)), None);
    let rows = consort_tests::serving::guest_rows();
    let requests: Vec<Value> = rows
        .iter()
        .map(|(id, f, _)| serde_json::json!({"id": id, "features": f}))
        .collect();
    let (status, body) = client.post(
        "/v1/services/risk/batch",
        &serde_json::json!({ "requests": requests }),
    );
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 569);
    let mut worst = 0.0f64;
    for (item, (id, _, _)) in items.iter().zip(&rows) {
        let score = item["score"].as_f64().unwrap_or_else(|| panic!("{item}"));
        worst = worst.max((score - batch[id]).abs());
    }
    eprintln!("largest |online − batch| over 569 ids: {worst:.1e}");
    assert!(worst <= 1e-12, "{worst}");
    // One id at a time, too.
    let (id0, f0, _) = &rows[0];
    let (status, one) = client.post(
        "/v1/services/risk/infer",
        &serde_json::json!({"id": id0, "features": f0}),
    );
    assert_eq!(status, 200, "{one}");
    assert!((one["score"].as_f64().unwrap() - batch[id0]).abs() <= 1e-12);
}
