//! Model versioning across parties on real daemons: history, tags, rollback agreed by every
//! participant, export/import, delete protection.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use consort_tests::{Federation, Party, assert_succeeds, submit};
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

fn data(name: &str) -> String {
    format!("{}/../examples/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

const TRAIN: &str = "name: breast-lr
parties: {guest: [bank-a], host: [insurer-b], arbiter: [bank-a]}
conf:
  model: {message: MESSAGE}
tasks:
  reader:
    component: reader
    role_params: {guest: {table: breast_guest}, host: {table: breast_host}}
  lr:
    component: hetero_lr
    inputs: {train_data: reader.data}
    params: {max_iter: 3, batch_size: 300, learning_rate: 0.1, key_bits: 512}
";

/// Trains once; returns the job id after both parties committed the version.
fn train(fed: &Federation, message: &str) -> String {
    let file = fed.job_file(
        &format!("{message}.yaml"),
        &TRAIN.replace("MESSAGE", message),
    );
    let id = submit(&fed.parties[0], &file);
    assert_succeeds(&fed.parties, &id, T);
    for p in &fed.parties {
        wait_until(p, &format!("version {id} committed"), |p| {
            models(p).iter().any(|m| m["version"] == id.as_str())
        });
    }
    id
}

fn models(p: &Party) -> Vec<Value> {
    p.cli(&["--json", "model", "list"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_until(p: &Party, what: &str, f: impl Fn(&Party) -> bool) {
    let deadline = Instant::now() + T;
    while !f(p) {
        assert!(Instant::now() < deadline, "{what} at {}", p.name);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn show(p: &Party, rev: &str) -> Value {
    let out = p.cli(&["--json", "model", "show", rev]);
    assert_eq!(out.code, Some(0), "{out:?}");
    out.json()
}

#[test]
fn history_tags_rollback_export_and_delete_across_two_parties() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    for i in 0..2 {
        fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    }
    let mut daemons = fed.start_connected();
    for (i, (file, name)) in [
        ("breast_hetero_guest.csv", "breast_guest"),
        ("breast_hetero_host.csv", "breast_host"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            fed.parties[i]
                .cli(&["data", "upload", &data(file), "--name", name])
                .code,
            Some(0)
        );
    }
    let v1 = train(&fed, "first");
    let v2 = train(&fed, "second");
    let id = models(&fed.parties[0])[0]["model_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Both versions, newest first, at both parties.
    for p in &fed.parties {
        let log = p.cli(&["--json", "model", "log", &id]).json();
        let versions: Vec<&str> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["commit"]["model_version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, vec![v2.as_str(), v1.as_str()], "{}", p.name);
        assert_eq!(log[0]["branches"][0], "main");
        assert_eq!(log[1]["commit"]["message"], "first");
        let human = p.cli(&["model", "log", &id]);
        assert!(
            human.stdout.lines().next().unwrap().contains("(main)"),
            "{}",
            human.stdout
        );
    }

    // Tag the first everywhere, roll main back to it everywhere.
    let tag = fed.parties[0].cli(&[
        "model",
        "tag",
        &format!("{id}@{v1}"),
        "good",
        "-m",
        "validated",
    ]);
    assert_eq!(tag.code, Some(0), "{tag:?}");
    let rb = fed.parties[1].cli(&["model", "rollback", &id, "--to", "good"]);
    assert_eq!(rb.code, Some(0), "{rb:?}");
    for p in &fed.parties {
        assert_eq!(
            show(p, &format!("{id}@main"))["version"],
            v1.as_str(),
            "{}",
            p.name
        );
        assert_eq!(show(p, &format!("{id}@good"))["version"], v1.as_str());
        let reflog = p
            .cli(&["--json", "model", "reflog", &id, "--ref", "main"])
            .json();
        assert_eq!(reflog[0]["who"], "insurer-b", "{reflog}");
        assert!(
            reflog[0]["why"].as_str().unwrap().contains("rollback"),
            "{reflog}"
        );
    }
    let verify = fed.parties[0].cli(&["--json", "model", "verify", &format!("{id}@main")]);
    assert_eq!(verify.code, Some(0), "{verify:?}");
    let v = verify.json();
    assert_eq!(v["consistent"], true, "{v}");
    assert_eq!(v["parties"].as_array().unwrap().len(), 2);

    // A tag name taken at one party is refused by it, and nowhere is anything created.
    let dup = fed.parties[1].cli(&["model", "tag", &format!("{id}@{v2}"), "good"]);
    assert_eq!(dup.code, Some(1), "{dup:?}");

    // Delete of a tagged version is refused without --force.
    let del = fed.parties[0].cli(&["model", "delete", &format!("{id}@{v1}")]);
    assert_eq!(del.code, Some(1), "{del:?}");
    assert!(
        del.stderr.contains("good") || del.stderr.contains("main"),
        "{}",
        del.stderr
    );

    // Export at bank-a, import at a fresh daemon: the same commit and artifacts.
    let archive = fed.parties[0].dir.join("good.consort-model");
    let exp = fed.parties[0].cli(&[
        "--json",
        "model",
        "export",
        &format!("{id}@good"),
        "-o",
        archive.to_str().unwrap(),
    ]);
    assert_eq!(exp.code, Some(0), "{exp:?}");
    let exported = exp.json()["commit"].as_str().unwrap().to_owned();
    let fresh = Federation::init(&["clinic-c"]);
    let _f = fresh.start_connected();
    let imp = fresh.parties[0].cli(&["--json", "model", "import", archive.to_str().unwrap()]);
    assert_eq!(imp.code, Some(0), "{imp:?}");
    assert_eq!(imp.json()["commit"], exported.as_str());
    let a = show(&fed.parties[0], &format!("{id}@good"));
    let b = show(&fresh.parties[0], &format!("{id}@{v1}"));
    assert_eq!(a["parts"], b["parts"], "same artifacts");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let bad = fresh.parties[0].dir.join("bad.consort-model");
    std::fs::write(&bad, &bytes).unwrap();
    let refused = fresh.parties[0].cli(&["model", "import", bad.to_str().unwrap()]);
    assert_eq!(refused.code, Some(1), "{refused:?}");

    // A branch from the tag, and a warm-started training job committing to it.
    let br = fed.parties[0].cli(&["model", "branch", &id, "exp", "--from", "good"]);
    assert_eq!(br.code, Some(0), "{br:?}");
    let warm = TRAIN
        .replace("{message: MESSAGE}", "{branch: exp, message: warm}")
        .replace(
            "key_bits: 512}",
            &format!("key_bits: 512, warm_start: true}}\n    model: {{id: {id}, rev: exp}}"),
        );
    let file = fed.job_file("warm.yaml", &warm);
    let v3 = submit(&fed.parties[0], &file);
    assert_succeeds(&fed.parties, &v3, T);
    for p in &fed.parties {
        wait_until(p, "warm version committed", |p| {
            models(p).iter().any(|m| m["version"] == v3.as_str())
        });
        let log = p
            .cli(&["--json", "model", "log", &id, "--branch", "exp"])
            .json();
        let versions: Vec<&str> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["commit"]["model_version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, vec![v3.as_str(), v1.as_str()], "{}", p.name);
        assert_eq!(
            show(p, &format!("{id}@main"))["version"],
            v1.as_str(),
            "main did not move"
        );
    }
    let log = fed.parties[0].cli(&["job", "log", &v3]);
    assert!(log.stdout.contains("warm start"), "{}", log.stdout);

    // With insurer-b down, a rollback fails, names it, and moves nothing at bank-a.
    drop(daemons.remove(1));
    let rb = fed.parties[0].cli(&["model", "rollback", &id, "--to", &v2]);
    assert_eq!(rb.code, Some(1), "{rb:?}");
    assert!(
        rb.stderr.contains("insurer-b") && rb.stderr.contains("nothing changed"),
        "{}",
        rb.stderr
    );
    assert_eq!(
        show(&fed.parties[0], &format!("{id}@main"))["version"],
        v1.as_str()
    );
}
