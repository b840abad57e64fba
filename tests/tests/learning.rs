//! Federated learning on real daemons: tables, training, the model store, prediction.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use consort_tests::{
    Federation, assert_succeeds, example_data, submit, upload_breast_hetero, wait_job_state,
};

const T: Duration = Duration::from_secs(120);

fn data(name: &str) -> String {
    example_data(name)
}

#[test]
fn a_bad_csv_is_refused_with_its_line_and_nothing_is_stored() {
    let fed = Federation::init(&["bank-a"]);
    let _d = fed.start_connected();
    let a = &fed.parties[0];
    let bad = fed.job_file("bad.csv", "id,y,x0,x1\n1,0,0.5,1\n2,1,oops,2\n");
    let out = a.cli(&["data", "upload", &bad, "--name", "t"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("line 3")
            && out.stderr.contains("'x0'")
            && out.stderr.contains("'oops'"),
        "{}",
        out.stderr
    );
    let dup = fed.job_file("dup.csv", "id,x0\n1,1\n1,2\n");
    let out = a.cli(&["data", "upload", &dup, "--name", "t"]);
    assert!(
        out.stderr.contains("id '1' already appears on line 2"),
        "{}",
        out.stderr
    );
    let noid = fed.job_file("noid.csv", "key,x0\n1,1\n");
    let out = a.cli(&["data", "upload", &noid, "--name", "t"]);
    assert!(out.stderr.contains("no id column 'id'"), "{}", out.stderr);
    assert_eq!(
        a.cli(&["--json", "data", "list"]).json(),
        serde_json::json!([])
    );
    // A good file is stored and shown; a second upload under the name is refused.
    let ok = a.cli(&[
        "--json",
        "data",
        "upload",
        &data("breast_hetero_guest.csv"),
        "--name",
        "t",
    ]);
    assert_eq!(ok.code, Some(0), "{ok:?}");
    let t = ok.json();
    assert_eq!(
        (t["rows"].as_u64(), t["label"].as_str()),
        (Some(569), Some("y"))
    );
    assert_eq!(t["features"].as_array().unwrap().len(), 10);
    let again = a.cli(&[
        "data",
        "upload",
        &data("breast_hetero_guest.csv"),
        "--name",
        "t",
    ]);
    assert!(again.stderr.contains("--replace"), "{again:?}");
    let head = a
        .cli(&["--json", "data", "show", "t", "--head", "2"])
        .json();
    assert_eq!(head["rows"].as_array().unwrap().len(), 2);
    assert_eq!(head["header"][0], "id");
    assert_eq!(a.cli(&["data", "delete", "t"]).code, Some(0));
    assert_eq!(a.cli(&["data", "show", "t"]).code, Some(1));
}

/// Two daemons: bank-a is guest and arbiter, insurer-b is host.
fn two_with_breast() -> Federation {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    for i in 0..2 {
        fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    }
    fed
}

use consort_tests::BREAST_LR_JOB as TRAIN;

fn auc(fed: &Federation, job: &str) -> f64 {
    let m = fed.parties[0]
        .cli(&["--json", "metric", "get", job, "eval", "evaluation", "auc"])
        .json();
    m[0]["points"][0][1].as_f64().unwrap()
}

#[test]
fn hetero_lr_trains_across_two_daemons_stores_the_model_and_predicts() {
    let fed = two_with_breast();
    let _d = fed.start_connected();
    upload_breast_hetero(&fed);
    let id = submit(&fed.parties[0], &fed.job_file("train.yaml", TRAIN));

    // What the daemons must reproduce: plain, centralized LR (no encryption, no fixed point) on
    // the two CSV files joined on id, in the guest's row order as psi keeps it, with TRAIN's
    // settings (max_iter 10, batch_size 300, learning_rate 0.1, alpha 0.001, the rest
    // hetero_lr's defaults); and the same on the guest's features alone.
    use consort_components::reference::{self, Settings, Table};
    let read = |f: &str| {
        let file = std::fs::File::open(data(f)).unwrap();
        consort_protocol::data::parse_csv(file, &Default::default()).unwrap()
    };
    let (guest, host) = (
        read("breast_hetero_guest.csv"),
        read("breast_hetero_host.csv"),
    );
    let joined = Table::join(&guest, &[&host]);
    let settings = Settings {
        max_iter: 10,
        batch_size: 300,
        learning_rate: 0.1,
        alpha: 0.001,
        ..Settings::default()
    };
    let central = reference::train(&joined, &settings).unwrap();
    let central_auc = central.auc(&joined);
    let guest_only = Table::from_dataset(&guest);
    let alone_auc = reference::train(&guest_only, &settings)
        .unwrap()
        .auc(&guest_only);

    assert_succeeds(&fed.parties, &id, T);
    let train_auc = auc(&fed, &id);
    plots_of_the_loss(&fed.parties[0], &id);
    dag_of(&fed.parties[1], &id);
    eprintln!(
        "breast train AUC: federated {train_auc:.5}, centralized reference {central_auc:.5}, \
         guest features only {alone_auc:.5}"
    );
    // A pair of rows ordered differently changes the AUC by 1/(212·357) = 1.3e-5.
    assert!(
        (train_auc - central_auc).abs() < 1e-4,
        "federated AUC {train_auc}, centralized {central_auc}"
    );
    // The host's features are worth more than 0.005 AUC on breast; the federated model has
    // (nearly) all of that gain.
    assert!(central_auc - alone_auc > 0.005, "{central_auc} {alone_auc}");
    assert!(
        train_auc - alone_auc > 0.9 * (central_auc - alone_auc),
        "federated AUC {train_auc} is not clearly above the guest alone ({alone_auc})"
    );
    // Each party stored its own part under the same model id and version.
    let models: Vec<serde_json::Value> = fed
        .parties
        .iter()
        .map(|p| {
            let deadline = std::time::Instant::now() + T;
            loop {
                let m = p.cli(&["--json", "model", "list"]).json();
                if m.as_array().is_some_and(|a| !a.is_empty()) {
                    break m[0].clone();
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no model at {}",
                    p.name
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .collect();
    assert_eq!(models[0]["model_id"], models[1]["model_id"]);
    assert_eq!(models[0]["version"], id);
    assert_eq!(models[1]["version"], id);
    let roles = |m: &serde_json::Value| -> Vec<String> {
        let mut r: Vec<String> = m["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["role"].as_str().unwrap().to_owned())
            .collect();
        r.sort();
        r
    };
    assert_eq!(roles(&models[0]), vec!["arbiter", "guest"]);
    assert_eq!(roles(&models[1]), vec!["host"]);
    assert_eq!(
        models[0]["metrics"]["eval/evaluation/auc"].as_f64(),
        Some(train_auc)
    );
    let model_id = models[0]["model_id"].as_str().unwrap().to_owned();
    let show = fed.parties[1].cli(&["model", "show", &format!("{model_id}@{id}")]);
    assert_eq!(show.code, Some(0), "{show:?}");
    assert!(
        show.stdout.contains("hetero_lr") && show.stdout.contains("sha256"),
        "{}",
        show.stdout
    );

    // Predict with the stored model: the same scores, so the same AUC.
    let predict = format!(
        "name: breast-lr-predict
parties: {{guest: [bank-a], host: [insurer-b], arbiter: [bank-a]}}
tasks:
  reader:
    component: reader
    role_params: {{guest: {{table: breast_guest}}, host: {{table: breast_host}}}}
  psi:
    component: psi
    inputs: {{data: reader.data}}
  lr:
    component: hetero_lr
    inputs: {{test_data: psi.data}}
    model: {{id: {model_id}, version: {id}}}
  eval:
    component: evaluation
    roles: [guest]
    inputs: {{data: lr.predict_output}}
"
    );
    let pid = submit(&fed.parties[1], &fed.job_file("predict.yaml", &predict));
    assert_succeeds(&fed.parties, &pid, T);
    assert!((auc(&fed, &pid) - train_auc).abs() < 1e-9);
    // The guest's scores, as CSV.
    let scores = fed.parties[0].cli(&["job", "output", &pid, "lr", "predict_output"]);
    assert_eq!(scores.code, Some(0), "{scores:?}");
    let mut lines = scores.stdout.lines();
    assert_eq!(lines.next(), Some("id,y,score"));
    assert_eq!(lines.count(), 569);
    // Row by row, the reference model's score of the same id. Fixed point is the only
    // difference (features at 2^-16 in the encrypted gradients): it moves the weights by
    // ~2e-7 here (bounded and checked in components/src/reference.rs), hence the scores by
    // about as much; another batch order alone moves the weights by 1.5e-3.
    let out =
        consort_protocol::data::parse_csv(scores.stdout.as_bytes(), &Default::default()).unwrap();
    assert_eq!(out.ids, joined.ids, "the guest's row order");
    assert_eq!(out.labels, joined.labels);
    let worst = out.columns[0]
        .iter()
        .zip(&joined.rows)
        .map(|(s, x)| (s - central.score(x)).abs())
        .fold(0.0, f64::max);
    eprintln!("largest |daemon score − reference score| over 569 ids: {worst:.2e}");
    assert!(
        worst < 1e-5,
        "scores differ from the reference by up to {worst}"
    );
    let predict_auc = reference::auc(out.labels.as_ref().unwrap(), &out.columns[0]);
    assert!((predict_auc - central_auc).abs() < 1e-4, "{predict_auc}");
    let none = fed.parties[1].cli(&["job", "output", &pid, "lr", "predict_output"]);
    assert_eq!(none.code, Some(1), "the host has no scores: {none:?}");

    // A job naming a model version the initiator does not hold is refused at submit, with the
    // reason, and creates nothing.
    let missing = predict.replace(&id, "j00000000000000000000");
    let jobs_before = fed.parties[0].cli(&["--json", "job", "list"]).json();
    let out = fed.parties[0].cli(&["job", "submit", &fed.job_file("missing.yaml", &missing)]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("has no model"), "{out:?}");
    assert_eq!(
        fed.parties[0].cli(&["--json", "job", "list"]).json(),
        jobs_before
    );
}

#[test]
fn a_table_the_policy_does_not_share_gets_the_job_rejected() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    // bank-a shares its table with insurer-b; insurer-b keeps its own (the default).
    fed.edit_config(0, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    let _d = fed.start_connected();
    upload_breast_hetero(&fed);
    let id = submit(&fed.parties[0], &fed.job_file("train.yaml", TRAIN));
    let v = wait_job_state(&fed.parties[0], &id, &["rejected", "success", "failed"], T);
    assert_eq!(v["status"], "rejected", "{v}");
    assert!(
        v.to_string()
            .contains("does not let table 'breast_host' be used in jobs with bank-a"),
        "{v}"
    );
    // The initiator's own policy is checked at submit: nothing is created.
    let alone = Federation::init(&["bank-a", "insurer-b"]);
    alone.all_mutual();
    let _d2 = alone.start_connected();
    upload_breast_hetero(&alone);
    let out = alone.parties[0].cli(&["job", "submit", &alone.job_file("t.yaml", TRAIN)]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("does not let table 'breast_guest' be used in jobs with insurer-b"),
        "{out:?}"
    );
    assert_eq!(
        alone.parties[0].cli(&["--json", "job", "list"]).json(),
        serde_json::json!([])
    );
}

/// `consort metric plot` of the training loss, as SVG and as PNG, each parsed back: the SVG is
/// XML with one point per iteration (10) for each role that logged it (guest and arbiter are
/// both bank-a); the PNG decodes at the asked size and is not blank.
fn plots_of_the_loss(party: &consort_tests::Party, job: &str) {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("loss.svg");
    let out = party.cli(&[
        "--json",
        "metric",
        "plot",
        job,
        "lr",
        "loss",
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json()["points"], 20, "{}", out.stdout);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let circles = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    assert_eq!(circles, 20, "one marker per point");
    assert!(text.contains("train/loss"), "the title names the series");
    let png_path = dir.path().join("loss.png");
    let out = party.cli(&[
        "metric",
        "plot",
        job,
        "lr",
        "train/loss",
        "-o",
        png_path.to_str().unwrap(),
        "--width",
        "640",
        "--height",
        "400",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (640, 400));
    let white = buf[..info.buffer_size()]
        .iter()
        .filter(|b| **b == 255)
        .count();
    assert!(white < info.buffer_size() * 99 / 100, "a blank image");
    // Bad requests are named.
    let bad = party.cli(&[
        "metric",
        "plot",
        job,
        "lr",
        "nope",
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("train/loss"), "{}", bad.stderr);
    let bad = party.cli(&["metric", "plot", job, "lr", "loss", "-o", "loss.gif"]);
    assert!(bad.stderr.contains(".svg or a .png"), "{}", bad.stderr);
}

/// `consort job dag` of the finished training job at the host: an SVG naming each of the 4
/// tasks with its state at both parties, and the same as a PNG.
fn dag_of(party: &consort_tests::Party, job: &str) {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("dag.svg");
    let out = party.cli(&["--json", "job", "dag", job, "-o", svg.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json()["tasks"], 4, "{}", out.stdout);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for task in [
        "reader (reader)",
        "psi (psi)",
        "lr (hetero_lr)",
        "eval (evaluation)",
    ] {
        assert!(texts.contains(&task), "{task} not drawn: {texts:?}");
    }
    assert_eq!(
        texts.iter().filter(|t| **t == "success").count(),
        4,
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("bank-a: success") && t.contains("insurer-b: success")),
        "{texts:?}"
    );
    // Three arrows (reader → psi → lr → eval), each a shaft and a head.
    let paths = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    assert_eq!(paths, 6, "{text}");
    let png_path = dir.path().join("dag.png");
    let out = party.cli(&["job", "dag", job, "-o", png_path.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let info = decoder.read_info().unwrap().info().clone();
    assert!(
        info.width > 800 && info.height > 100,
        "{}x{}",
        info.width,
        info.height
    );
}
