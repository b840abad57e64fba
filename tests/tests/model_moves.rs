//! Two-phase model moves (tag, branch, rollback agreed by every participant) on real daemons,
//! along their failure paths: a participant refuses to prepare (the others get the abort and
//! keep nothing prepared), and a participant prepares, then never confirms the commit (the
//! CLI names it and says where the move is applied).

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use consort_actors::model_rpc::{MODEL_TOPIC, ModelAnswer, ModelRpc};
use consort_protocol::peer::PeerResponse;
use consort_storage::{ModelPart, ModelVersion, Models, RefMove, Store, model_id};
use consort_tests::hostile::Hostile;
use consort_tests::{
    Daemon, Federation, Party, assert_succeeds, connected_peers, submit, upload_breast_hetero,
    wait_for,
};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

/// Hetero LR with a third party, clinic-c, as the arbiter: all three hold a part of the model.
const TRAIN: &str = "name: breast-lr3
parties: {guest: [bank-a], host: [insurer-b], arbiter: [clinic-c]}
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

fn models(p: &Party) -> Vec<Value> {
    p.cli(&["--json", "model", "list"])
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Trains once; the job id, once every party committed its part of the version.
fn train(fed: &Federation, message: &str) -> String {
    let file = fed.job_file(
        &format!("{message}.yaml"),
        &TRAIN.replace("MESSAGE", message),
    );
    let id = submit(&fed.parties[0], &file);
    assert_succeeds(&fed.parties, &id, T);
    for p in &fed.parties {
        wait_for(&format!("version {id} at {}", p.name), T, || {
            models(p)
                .iter()
                .any(|m| m["version"] == id.as_str())
                .then_some(())
        });
    }
    id
}

/// The version `ID@REV` names at `p`.
fn version_at(p: &Party, rev: &str) -> Value {
    let out = p.cli(&["--json", "model", "show", rev]);
    assert_eq!(out.code, Some(0), "{}: {out:?}", p.name);
    out.json()["version"].clone()
}

/// Everything a party holds of model `id`: every commit with its refs, and the reflog.
fn state(p: &Party, id: &str) -> Value {
    let log = p.cli(&["--json", "model", "log", id, "--all"]);
    assert_eq!(log.code, Some(0), "{log:?}");
    let reflog = p.cli(&["--json", "model", "reflog", id]);
    assert_eq!(reflog.code, Some(0), "{reflog:?}");
    json!({"log": log.json(), "reflog": reflog.json()})
}

#[test]
fn a_refused_prepare_is_aborted_where_it_was_prepared_and_blocks_nothing_after() {
    let fed = Federation::init(&["bank-a", "insurer-b", "clinic-c"]);
    fed.all_mutual();
    for i in 0..3 {
        fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    }
    let _daemons = fed.start_connected();
    upload_breast_hetero(&fed);
    let v1 = train(&fed, "first");
    let v2 = train(&fed, "second");
    let id = models(&fed.parties[0])[0]["model_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let [bank, insurer, clinic] = [&fed.parties[0], &fed.parties[1], &fed.parties[2]];

    // insurer-b keeps v1 in an archive only: a rollback to v1 is one it must refuse.
    let backup = insurer.dir.join("v1.consort-model");
    let exp = insurer.cli(&[
        "--json",
        "model",
        "export",
        &format!("{id}@{v1}"),
        "-o",
        backup.to_str().unwrap(),
    ]);
    assert_eq!(exp.code, Some(0), "{exp:?}");
    let del = insurer.cli(&["model", "delete", &format!("{id}@{v1}")]);
    assert_eq!(del.code, Some(0), "{del:?}");

    // bank-a and clinic-c could move main to v1; insurer-b refuses, so nobody moves, and
    // clinic-c, which had prepared the move, is told to abort it.
    let before: Vec<Value> = fed.parties.iter().map(|p| state(p, &id)).collect();
    let rb = bank.cli(&["model", "rollback", &id, "--to", &v1]);
    assert_eq!(rb.code, Some(1), "{rb:?}");
    assert!(
        rb.stderr.contains(&format!(
            "nothing changed anywhere: insurer-b refused: model '{id}' has no revision '{v1}' \
             here; aborted at clinic-c"
        )),
        "{}",
        rb.stderr
    );
    assert!(!rb.stderr.contains("clinic-c refused"), "{}", rb.stderr);
    for (p, before) in fed.parties.iter().zip(&before) {
        assert_eq!(&state(p, &id), before, "{} changed", p.name);
        assert_eq!(version_at(p, &format!("{id}@main")), v2.as_str());
    }

    // insurer-b restores v1 from its archive; the same rollback, asked again at once, is
    // prepared and committed everywhere: no prepared move was left holding main at clinic-c
    // (one would for a minute if its abort had not arrived).
    let imp = insurer.cli(&["--json", "model", "import", backup.to_str().unwrap()]);
    assert_eq!(imp.code, Some(0), "{imp:?}");
    assert_eq!(imp.json()["version"], v1.as_str());
    let rb = bank.cli(&["--json", "model", "rollback", &id, "--to", &v1]);
    assert_eq!(rb.code, Some(0), "{rb:?}");
    assert_eq!(
        rb.json()["parties"],
        json!(["bank-a", "clinic-c", "insurer-b"])
    );
    for p in [bank, insurer, clinic] {
        assert_eq!(
            version_at(p, &format!("{id}@main")),
            v1.as_str(),
            "{}",
            p.name
        );
        let reflog = p
            .cli(&["--json", "model", "reflog", &id, "--ref", "main"])
            .json();
        assert_eq!(reflog[0]["who"], "bank-a", "{reflog}");
        assert_eq!(reflog[0]["why"], format!("rollback to {v1}"), "{reflog}");
    }
}

/// The hostile participant's name.
const MALLORY: &str = "aaa-mallory";

/// What Mallory was asked, in order.
type Asked = Arc<Mutex<Vec<ModelRpc>>>;

/// Mallory as a model participant: agrees to every move, then answers nothing more.
fn prepares_then_silent(asked: Asked) -> consort_tests::hostile::Answerer {
    Box::new(move |_from, topic, body| {
        if topic != MODEL_TOPIC {
            return Some(PeerResponse::Error {
                message: "no".into(),
            });
        }
        let rpc: ModelRpc = rmp_serde::from_slice(body).unwrap();
        let prepare = matches!(rpc, ModelRpc::Prepare { .. });
        asked.lock().unwrap().push(rpc);
        prepare.then(|| PeerResponse::App {
            body: rmp_serde::to_vec_named(&ModelAnswer::Ok).unwrap(),
        })
    })
}

/// A model archive of one version whose participants are bank-a, insurer-b and Mallory (as
/// it would come out of a job they ran together); (model id, version, archive).
fn three_party_archive(dir: &std::path::Path) -> (String, String, std::path::PathBuf) {
    let store = Store::open(&dir.join("store"), &Default::default()).unwrap();
    let models = Models::open(&store, &dir.join("models")).unwrap();
    let parties: Vec<String> = [
        format!("arbiter:{MALLORY}"),
        "guest:bank-a".into(),
        "host:insurer-b".into(),
    ]
    .into();
    let id = model_id("shared-lr", &parties);
    let weights = b"weights of a model trained together".to_vec();
    let artifact = models.put_artifact(&weights).unwrap();
    models
        .put_version(&ModelVersion {
            model_id: id.clone(),
            version: "j0001".into(),
            name: "shared-lr".into(),
            party: "bank-a".into(),
            parties,
            created_at_ms: 1,
            parts: vec![ModelPart {
                task: "lr".into(),
                component: "hetero_lr".into(),
                role: "guest".into(),
                artifact,
                bytes: weights.len() as u64,
                params: json!({"max_iter": 3}),
            }],
            metrics: Default::default(),
        })
        .unwrap();
    let path = dir.join("shared.consort-model");
    let file = std::fs::File::create(&path).unwrap();
    models.export(&format!("{id}@j0001"), file).unwrap();
    (id, "j0001".into(), path)
}

#[test]
fn a_participant_that_prepares_then_never_confirms_is_named_with_each_sides_state() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.all_mutual();
    let targets: Vec<(&Party, String)> = fed
        .parties
        .iter()
        .enumerate()
        .map(|(i, p)| (p, fed.addr(i)))
        .collect();
    let asked = Asked::default();
    let mallory = Hostile::start_answering(MALLORY, &targets, prepares_then_silent(asked.clone()));
    for i in 0..2 {
        fed.append_config(i, &mallory.partner_toml());
    }
    let _daemons: Vec<Daemon> = fed.parties.iter().map(|p| p.start()).collect();
    for p in &fed.parties {
        wait_for("partners connected", T, || {
            (connected_peers(p).iter().filter(|(_, c)| *c).count() == 2).then_some(())
        });
    }
    let tmp = tempfile::tempdir().unwrap();
    let (id, v, archive) = three_party_archive(tmp.path());
    for p in &fed.parties {
        let imp = p.cli(&["model", "import", archive.to_str().unwrap()]);
        assert_eq!(imp.code, Some(0), "{imp:?}");
    }
    let [bank, insurer] = [&fed.parties[0], &fed.parties[1]];

    // Everybody prepares; bank-a applies, insurer-b confirms, Mallory never answers the commit.
    let tag = bank.cli(&["model", "tag", &format!("{id}@{v}"), "release"]);
    assert_eq!(tag.code, Some(1), "{tag:?}");
    assert!(
        tag.stderr.contains(&format!(
            "applied at bank-a and at insurer-b (confirmed); not confirmed by {MALLORY} ("
        )),
        "{}",
        tag.stderr
    );
    assert!(
        tag.stderr
            .contains(&format!("run `consort model verify {id}@release`")),
        "{}",
        tag.stderr
    );
    // Mallory was asked to prepare that move, then to commit it (same transaction), and
    // nothing else.
    {
        let asked = asked.lock().unwrap();
        let [
            ModelRpc::Prepare {
                tx,
                op: RefMove::Tag { name, .. },
            },
            ModelRpc::Commit { tx: committed },
        ] = asked.as_slice()
        else {
            panic!("Mallory was asked {asked:?}")
        };
        assert_eq!((name.as_str(), committed), ("release", tx));
    }
    // The tag is there at both honest parties, recorded as bank-a's move.
    for p in [bank, insurer] {
        assert_eq!(version_at(p, &format!("{id}@release")), v.as_str());
        let reflog = p
            .cli(&["--json", "model", "reflog", &id, "--ref", "tags/release"])
            .json();
        assert_eq!(reflog.as_array().unwrap().len(), 1, "{reflog}");
        assert_eq!(reflog[0]["who"], "bank-a", "{reflog}");
    }
    // verify says the same: bank-a and insurer-b name the version, Mallory does not answer.
    let verify = bank.cli(&["--json", "model", "verify", &format!("{id}@release")]);
    assert_eq!(verify.code, Some(1), "{verify:?}");
    let report = verify.json();
    assert_eq!(report["consistent"], false, "{report}");
    assert_eq!(report["differing"], json!([MALLORY]), "{report}");
    let parties = report["parties"].as_array().unwrap();
    for (party, answer) in [
        ("bank-a", Some(&v)),
        ("insurer-b", Some(&v)),
        (MALLORY, None),
    ] {
        let entry = parties
            .iter()
            .find(|p| p["party"] == party)
            .unwrap_or_else(|| panic!("{party} not in {report}"));
        match answer {
            Some(v) => assert_eq!(entry["version"], v.as_str(), "{report}"),
            None => assert!(entry["error"].is_string(), "{report}"),
        }
    }
}
