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

/// Like [`TRAIN`], with an evaluation at the guest; `ITER` and `RATE` to fill in.
const TRAIN_EVAL: &str = "name: breast-lr-eval
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
    params: {max_iter: ITER, batch_size: 300, learning_rate: RATE, key_bits: 512}
  eval:
    component: evaluation
    roles: [guest]
    inputs: {data: lr.train_output}
";

/// Trains once; returns the job id after both parties committed the version.
fn train(fed: &Federation, message: &str) -> String {
    train_spec(fed, message, TRAIN)
}

/// Trains `spec` (`MESSAGE` replaced) once; returns the job id after every party committed
/// the version.
fn train_spec(fed: &Federation, message: &str, spec: &str) -> String {
    let file = fed.job_file(
        &format!("{message}.yaml"),
        &spec.replace("MESSAGE", message),
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

/// Everything a party holds of model `id`: every commit with its refs, and the reflog.
fn state(p: &Party, id: &str) -> Value {
    let log = p.cli(&["--json", "model", "log", id, "--all"]);
    assert_eq!(log.code, Some(0), "{log:?}");
    let reflog = p.cli(&["--json", "model", "reflog", id]);
    assert_eq!(reflog.code, Some(0), "{reflog:?}");
    serde_json::json!({"log": log.json(), "reflog": reflog.json()})
}

/// The artifact files under a party's directory, sorted.
fn objects(p: &Party) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .parent()
                .and_then(|d| d.parent())
                .is_some_and(|d| d.ends_with("objects"))
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&p.dir, &mut out);
    out.sort();
    out
}

/// The file of artifact `hash` at `p`.
fn object(p: &Party, hash: &str) -> std::path::PathBuf {
    objects(p)
        .into_iter()
        .find(|f| f.ends_with(hash))
        .unwrap_or_else(|| panic!("artifact {hash} not at {}", p.name))
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
    // (Another learning rate: v2's weights differ from v1's.)
    let v2 = train_spec(
        &fed,
        "second",
        &TRAIN.replace("learning_rate: 0.1", "learning_rate: 0.2"),
    );
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

    // A tag name taken at one party is refused by it, and nowhere is anything created: the
    // tag still points at v1 everywhere, no commit gained a tag, no ref moved.
    let before: Vec<Value> = fed.parties.iter().map(|p| state(p, &id)).collect();
    let dup = fed.parties[1].cli(&["model", "tag", &format!("{id}@{v2}"), "good"]);
    assert_eq!(dup.code, Some(1), "{dup:?}");
    assert!(
        dup.stderr
            .contains(&format!("model '{id}' already has tags/good")),
        "{}",
        dup.stderr
    );
    for (p, before) in fed.parties.iter().zip(&before) {
        assert_eq!(
            show(p, &format!("{id}@good"))["version"],
            v1.as_str(),
            "{}",
            p.name
        );
        assert_eq!(&state(p, &id), before, "{}", p.name);
    }

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
    // An archive of v2 (which clinic-c does not have, nor its weights) with one byte of
    // bank-a's weights flipped is refused, and imports nothing: same versions, history, refs
    // and artifact files.
    let archive2 = fed.parties[0].dir.join("v2.consort-model");
    let exp = fed.parties[0].cli(&[
        "model",
        "export",
        &format!("{id}@{v2}"),
        "-o",
        archive2.to_str().unwrap(),
    ]);
    assert_eq!(exp.code, Some(0), "{exp:?}");
    let weights_hash = show(&fed.parties[0], &format!("{id}@{v2}"))["parts"][0]["artifact"]
        .as_str()
        .unwrap()
        .to_owned();
    let weights = std::fs::read(object(&fed.parties[0], &weights_hash)).unwrap();
    let mut bytes = std::fs::read(&archive2).unwrap();
    let at = bytes
        .windows(weights.len())
        .position(|w| w == weights.as_slice())
        .expect("the weights are in the archive");
    bytes[at + weights.len() / 2] ^= 0x40;
    let bad = fresh.parties[0].dir.join("bad.consort-model");
    std::fs::write(&bad, &bytes).unwrap();
    let c = &fresh.parties[0];
    let before = (state(c, &id), models(c), objects(c));
    let refused = c.cli(&["model", "import", bad.to_str().unwrap()]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("bad model archive: checksum mismatch"),
        "{}",
        refused.stderr
    );
    assert_eq!((state(c, &id), models(c), objects(c)), before);
    let missing = c.cli(&["model", "show", &format!("{id}@{v2}")]);
    assert_eq!(missing.code, Some(1), "{missing:?}");

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

/// `bank-a` and `insurer-b`, partners, each with its half of the breast data, running.
fn two_with_breast() -> (Federation, Vec<consort_tests::Daemon>) {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    for i in 0..2 {
        fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    }
    let daemons = fed.start_connected();
    consort_tests::upload_breast_hetero(&fed);
    (fed, daemons)
}

/// What `diff` must say for one section, computed from the two versions as `show` gives them:
/// every key whose value differs, with its kind and both values, by key.
fn expected_changes(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
) -> Value {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let changes: Vec<Value> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let kind = match (a.get(k), b.get(k)) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            serde_json::json!({"key": k, "kind": kind, "old": a.get(k), "new": b.get(k)})
        })
        .collect();
    Value::Array(changes)
}

/// `task/role` → artifact hash of a `show` document.
fn artifacts(v: &Value) -> serde_json::Map<String, Value> {
    v["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                format!(
                    "{}/{}",
                    p["task"].as_str().unwrap(),
                    p["role"].as_str().unwrap()
                ),
                p["artifact"].clone(),
            )
        })
        .collect()
}

/// The commit hash of version `v` of model `id` at `p`.
fn commit_of(p: &Party, id: &str, v: &str) -> Value {
    let log = p.cli(&["--json", "model", "log", id, "--all"]).json();
    log.as_array()
        .unwrap()
        .iter()
        .find(|e| e["commit"]["model_version"] == v)
        .unwrap_or_else(|| panic!("no {v} in {log}"))["id"]
        .clone()
}

#[test]
fn diff_names_what_changed_and_verify_names_the_party_that_differs() {
    let (fed, _daemons) = two_with_breast();
    let v1 = train_spec(
        &fed,
        "short",
        &TRAIN_EVAL.replace("ITER", "1").replace("RATE", "0.05"),
    );
    let v2 = train_spec(
        &fed,
        "longer",
        &TRAIN_EVAL.replace("ITER", "3").replace("RATE", "0.15"),
    );
    let id = models(&fed.parties[0])[0]["model_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (a, b) = (format!("{id}@{v1}"), format!("{id}@{v2}"));

    for p in &fed.parties {
        let diff = p.cli(&["--json", "model", "diff", &a, &b]);
        assert_eq!(diff.code, Some(0), "{diff:?}");
        let d = diff.json();
        assert_eq!(d["a"], commit_of(p, &id, &v1), "{}: {d}", p.name);
        assert_eq!(d["b"], commit_of(p, &id, &v2), "{}: {d}", p.name);
        // Exactly the two params that were changed, with both values.
        assert_eq!(
            d["params"],
            serde_json::json!([
                {"key": "lr/learning_rate", "kind": "changed", "old": 0.05, "new": 0.15},
                {"key": "lr/max_iter", "kind": "changed", "old": 1, "new": 3},
            ]),
            "{}",
            p.name
        );
        // Metrics and artifacts: exactly what differs between the two versions here.
        let (sa, sb) = (show(p, &a), show(p, &b));
        let metrics = expected_changes(
            sa["metrics"].as_object().unwrap(),
            sb["metrics"].as_object().unwrap(),
        );
        assert_eq!(d["metrics"], metrics, "{}", p.name);
        let weights = expected_changes(&artifacts(&sa), &artifacts(&sb));
        // Every part here (guest and arbiter at bank-a, host at insurer-b) was retrained.
        let parts = sa["parts"].as_array().unwrap().len();
        assert!(parts >= 1);
        assert_eq!(weights.as_array().unwrap().len(), parts, "{weights}");
        assert_eq!(d["artifacts"], weights, "{}", p.name);
        // The human form shows the same.
        let human = p.cli(&["model", "diff", &a, &b]);
        assert!(
            human
                .stdout
                .lines()
                .any(|l| l.contains("lr/learning_rate") && l.contains("0.05 → 0.15")),
            "{}",
            human.stdout
        );
        // A version against itself: no differences.
        let same = p.cli(&["--json", "model", "diff", &b, &b]).json();
        for section in ["params", "metrics", "artifacts"] {
            assert_eq!(same[section], serde_json::json!([]), "{same}");
        }
    }
    // The guest trained 1 then 3 iterations and evaluated both versions: its AUC moved.
    let guest = fed.parties[0]
        .cli(&["--json", "model", "diff", &a, &b])
        .json();
    let metric = |key: &str| {
        guest["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == key)
            .unwrap_or_else(|| panic!("{key} not in {guest}"))
            .clone()
    };
    assert_eq!(
        metric("lr/train/iterations"),
        serde_json::json!({"key": "lr/train/iterations", "kind": "changed", "old": 1.0, "new": 3.0})
    );
    let auc = metric("eval/evaluation/auc");
    assert_eq!(auc["kind"], "changed", "{auc}");
    assert_ne!(auc["old"], auc["new"], "{auc}");

    // insurer-b force-deletes v2: its main falls back to v1 while bank-a's stays at v2.
    let del = fed.parties[1].cli(&["--json", "model", "delete", &b, "--force"]);
    assert_eq!(del.code, Some(0), "{del:?}");
    assert_eq!(del.json()["refs"], serde_json::json!(["heads/main"]));
    let main = format!("{id}@main");
    for (i, (here, other, mine, theirs)) in [
        ("bank-a", "insurer-b", &v2, &v1),
        ("insurer-b", "bank-a", &v1, &v2),
    ]
    .into_iter()
    .enumerate()
    {
        let out = fed.parties[i].cli(&["--json", "model", "verify", &main]);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains("do not agree"), "{}", out.stderr);
        let v = out.json();
        assert_eq!(v["consistent"], false, "{v}");
        assert_eq!(v["differing"], serde_json::json!([other]), "{v}");
        let version_of = |who: &str| {
            v["parties"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["party"] == who)
                .unwrap_or_else(|| panic!("{who} not in {v}"))["version"]
                .clone()
        };
        assert_eq!(version_of(here), mine.as_str(), "{v}");
        assert_eq!(version_of(other), theirs.as_str(), "{v}");
    }
    let human = fed.parties[0].cli(&["model", "verify", &main]);
    assert_eq!(human.code, Some(1), "{human:?}");
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("insurer-b") && l.contains(&v1)),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("NOT consistent"), "{}", human.stdout);
    // v2 is gone at insurer-b: it names nothing there.
    let gone = fed.parties[0].cli(&["--json", "model", "verify", &b]);
    assert_eq!(gone.code, Some(1), "{gone:?}");
    let g = gone.json();
    assert_eq!(g["differing"], serde_json::json!(["insurer-b"]), "{g}");
    assert!(
        g["parties"][1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no revision")),
        "{g}"
    );
    // Where they agree, verify says so.
    let agreed = fed.parties[0].cli(&["--json", "model", "verify", &a]);
    assert_eq!(agreed.code, Some(0), "{agreed:?}");
    assert_eq!(agreed.json()["consistent"], true);
    assert_eq!(agreed.json()["differing"], serde_json::json!([]));
}
