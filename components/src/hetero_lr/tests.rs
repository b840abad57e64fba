use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use consort_protocol::PartyName;
use consort_protocol::data::Dataset;
use consort_protocol::job::{JobSpec, PlannedTask, Role, validate};

use super::HeteroLrModel;
use crate::Endpoint;
use crate::evaluation::auc;
use crate::harness::{RunResult, run_task};
use crate::registry::{component, schema};
use crate::serving::{FeatureTable, ServedPart, combine};

/// Reads a CSV with columns `id`, optional `y`, features.
pub(crate) fn load_csv(path: &str) -> Dataset {
    let file = std::fs::File::open(path).expect("csv");
    consort_protocol::data::parse_csv(file, &Default::default()).expect("valid CSV")
}

pub(crate) fn data(name: &str) -> Dataset {
    load_csv(&format!(
        "{}/../examples/data/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

pub(crate) fn ep(role: Role, party: &str) -> Endpoint {
    Endpoint {
        role,
        party: PartyName::new(party).expect("name"),
    }
}

/// The guest is bank-a, the host insurer-b; the arbiter runs at the guest's party.
fn plan(params: &str) -> PlannedTask {
    let text = format!(
        "name: t\nparties:\n  guest: [bank-a]\n  host: [insurer-b]\n  arbiter: [bank-a]\n\
         tasks:\n  t:\n    component: hetero_lr\n    params: {params}\n"
    );
    let spec = JobSpec::parse(&text).expect("parses");
    validate(&spec, &schema).expect("valid").tasks.remove(0)
}

const FATE_BREAST: &str =
    "{max_iter: 10, batch_size: 300, learning_rate: 0.1, alpha: 0.001, key_bits: 512}";

fn run(
    task: &PlannedTask,
    inputs: BTreeMap<Endpoint, BTreeMap<String, Vec<u8>>>,
) -> Vec<RunResult> {
    let f = component("hetero_lr").expect("built-in");
    run_task("job-1", task, f, &inputs, &Arc::new(AtomicBool::new(false)))
}

fn inputs(
    guest: Vec<(&str, &Dataset)>,
    host: Vec<(&str, &Dataset)>,
) -> BTreeMap<Endpoint, BTreeMap<String, Vec<u8>>> {
    let enc = |v: Vec<(&str, &Dataset)>| -> BTreeMap<String, Vec<u8>> {
        v.into_iter()
            .map(|(k, d)| (k.to_owned(), d.to_bytes().expect("bytes")))
            .collect()
    };
    BTreeMap::from([
        (ep(Role::Guest, "bank-a"), enc(guest)),
        (ep(Role::Host, "insurer-b"), enc(host)),
    ])
}

fn by_role(results: &[RunResult], role: Role) -> &RunResult {
    results
        .iter()
        .find(|r| r.endpoint.role == role)
        .expect("role")
}

fn scores(bytes: &[u8]) -> Dataset {
    let d = Dataset::from_bytes(bytes).expect("scores");
    assert_eq!(d.feature_names, vec!["score"]);
    d
}

#[test]
fn breast_train_reaches_auc_099_and_predict_reproduces_the_scores() {
    let (g, h) = (
        data("breast_hetero_guest.csv"),
        data("breast_hetero_host.csv"),
    );
    let started = std::time::Instant::now();
    let results = run(
        &plan(FATE_BREAST),
        inputs(vec![("train_data", &g)], vec![("train_data", &h)]),
    );
    for r in &results {
        assert_eq!(r.result, Ok(()), "{}: {:?}", r.endpoint, r.log);
    }
    let elapsed = started.elapsed();
    let guest = by_role(&results, Role::Guest);
    let host = by_role(&results, Role::Host);
    let arbiter = by_role(&results, Role::Arbiter);

    let train = scores(&guest.outputs["train_output"]);
    assert_eq!(train.ids, g.ids);
    let labels = train.labels.clone().expect("labels");
    let a = auc(&labels, &train.columns[0]);
    assert!(
        a >= 0.99,
        "train AUC {a} (see reference.rs for the exact comparison)"
    );

    // Loss per epoch at the guest and the arbiter, decreasing overall.
    let loss = |r: &RunResult| -> Vec<(f64, f64)> {
        r.metrics
            .iter()
            .filter(|(ns, n, _)| ns == "train" && n == "loss")
            .flat_map(|(_, _, p)| p.clone())
            .collect()
    };
    let (gl, al) = (loss(guest), loss(arbiter));
    assert_eq!(gl, al);
    assert!(!gl.is_empty() && gl.len() <= 10);
    assert!(gl.last().expect("loss").1 < gl[0].1, "{gl:?}");
    assert!(gl[0].1 < std::f64::consts::LN_2, "{gl:?}");
    assert!(
        guest
            .metrics
            .iter()
            .any(|(ns, n, _)| ns == "train" && n == "iterations")
    );
    assert!(
        guest
            .metrics
            .iter()
            .any(|(ns, n, _)| ns == "train" && n == "converged")
    );

    // Each party's model holds only its own features.
    let gm = HeteroLrModel::from_bytes(&guest.outputs["model"]).expect("guest model");
    let hm = HeteroLrModel::from_bytes(&host.outputs["model"]).expect("host model");
    assert_eq!(gm.header, g.feature_names);
    assert_eq!(hm.header, h.feature_names);
    assert_eq!(hm.weights.len(), 20);
    assert_eq!((hm.role.as_str(), hm.intercept), ("host", 0.0));
    assert!(gm.intercept != 0.0);

    // Predict mode with the trained models on the same rows gives the same scores.
    let task = plan("{}");
    let mut inp = inputs(vec![("test_data", &g)], vec![("test_data", &h)]);
    inp.get_mut(&ep(Role::Guest, "bank-a"))
        .expect("g")
        .insert("model".into(), guest.outputs["model"].clone());
    inp.get_mut(&ep(Role::Host, "insurer-b"))
        .expect("h")
        .insert("model".into(), host.outputs["model"].clone());
    inp.insert(
        ep(Role::Arbiter, "bank-a"),
        BTreeMap::from([("model".into(), arbiter.outputs["model"].clone())]),
    );
    let results = run(&task, inp);
    for r in &results {
        assert_eq!(r.result, Ok(()), "{}: {:?}", r.endpoint, r.log);
    }
    let pred = scores(&by_role(&results, Role::Guest).outputs["predict_output"]);
    assert_eq!(pred.ids, train.ids);
    assert_eq!(pred.labels, train.labels);
    for (a, b) in pred.columns[0].iter().zip(&train.columns[0]) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    // Online, one id at a time (the serving path): the same scores as the predict job, exactly.
    let served_g = ServedPart::hetero_lr(&guest.outputs["model"], None).expect("guest part");
    let served_h = ServedPart::hetero_lr(&host.outputs["model"], None).expect("host part");
    let (tg, th) = (FeatureTable::new(g.clone()), FeatureTable::new(h.clone()));
    for (id, want) in pred.ids.iter().zip(&pred.columns[0]) {
        let u_g = served_g
            .partial(tg.row(id).expect("guest id"))
            .expect("guest");
        let u_h = served_h
            .partial(th.row(id).expect("host id"))
            .expect("host");
        let got = combine(u_g, &[("insurer-b", u_h)]);
        assert_eq!(got.to_bits(), want.to_bits(), "{id}: {got} against {want}");
    }
    eprintln!("breast hetero_lr (512-bit key, debug build): train {elapsed:?}, AUC {a:.4}");
}

#[test]
fn test_data_in_train_mode_is_scored_too() {
    let (g, h) = (
        data("breast_hetero_guest.csv"),
        data("breast_hetero_host.csv"),
    );
    let (g_test, h_test) = (
        g.select(&(0..50).collect::<Vec<_>>()),
        h.select(&(0..50).collect::<Vec<_>>()),
    );
    let results = run(
        &plan("{max_iter: 2, learning_rate: 0.1, key_bits: 512}"),
        inputs(
            vec![("train_data", &g), ("test_data", &g_test)],
            vec![("train_data", &h), ("test_data", &h_test)],
        ),
    );
    for r in &results {
        assert_eq!(r.result, Ok(()), "{}: {:?}", r.endpoint, r.log);
    }
    let guest = by_role(&results, Role::Guest);
    let train = scores(&guest.outputs["train_output"]);
    let test = scores(&guest.outputs["predict_output"]);
    assert_eq!(test.ids, g_test.ids);
    assert_eq!(test.columns[0][..], train.columns[0][..50]);
}

#[test]
fn misaligned_ids_fail_clearly_at_every_party() {
    let (g, h) = (
        data("breast_hetero_guest.csv"),
        data("breast_hetero_host.csv"),
    );
    // Same ids, different order.
    let mut order: Vec<usize> = (0..h.rows()).collect();
    order.swap(0, 1);
    let h_swapped = h.select(&order);
    let results = run(
        &plan(FATE_BREAST),
        inputs(vec![("train_data", &g)], vec![("train_data", &h_swapped)]),
    );
    for r in &results {
        assert!(
            matches!(&r.result, Err(crate::TaskError::Failed(m)) if m.contains("not aligned") && m.contains("psi")),
            "{}: {:?}",
            r.endpoint,
            r.result
        );
    }
    // Fewer rows.
    let h_short = h.select(&(0..100).collect::<Vec<_>>());
    let results = run(
        &plan(FATE_BREAST),
        inputs(vec![("train_data", &g)], vec![("train_data", &h_short)]),
    );
    assert!(
        results.iter().all(
            |r| matches!(&r.result, Err(crate::TaskError::Failed(m)) if m.contains("100 rows"))
        )
    );
}

#[test]
fn batches_are_deterministic_and_cover_every_row() {
    let b1 = super::common::batches(569, 300, 42, 3);
    assert_eq!(b1, super::common::batches(569, 300, 42, 3));
    assert_ne!(b1, super::common::batches(569, 300, 42, 4));
    assert_eq!(b1.iter().map(Vec::len).collect::<Vec<_>>(), vec![300, 269]);
    let mut all: Vec<usize> = b1.concat();
    all.sort_unstable();
    assert_eq!(all, (0..569).collect::<Vec<_>>());
    assert_eq!(
        super::common::batches(5, -1, 1, 0),
        vec![vec![0, 1, 2, 3, 4]]
    );
}

#[test]
fn warm_start_continues_from_the_given_model() {
    let (g, h) = (
        data("breast_hetero_guest.csv"),
        data("breast_hetero_host.csv"),
    );
    let cold = run(
        &plan(FATE_BREAST),
        inputs(vec![("train_data", &g)], vec![("train_data", &h)]),
    );
    let first_loss = |results: &[RunResult]| -> f64 {
        by_role(results, Role::Guest)
            .metrics
            .iter()
            .find(|(ns, n, _)| ns == "train" && n == "loss")
            .map(|(_, _, p)| p[0].1)
            .expect("loss")
    };
    let mut warm_inputs = inputs(vec![("train_data", &g)], vec![("train_data", &h)]);
    for r in &cold {
        assert_eq!(r.result, Ok(()), "{}", r.endpoint);
        warm_inputs
            .entry(r.endpoint.clone())
            .or_default()
            .insert("model".into(), r.outputs["model"].clone());
    }
    let warm_plan = plan(&FATE_BREAST.replace("key_bits: 512", "key_bits: 512, warm_start: true"));
    let warm = run(&warm_plan, warm_inputs);
    for r in &warm {
        assert_eq!(r.result, Ok(()), "{}: {:?}", r.endpoint, r.log);
    }
    // Starting from trained weights, the first epoch's loss is already below the cold one's.
    assert!(
        first_loss(&warm) < first_loss(&cold) - 0.05,
        "warm {} vs cold {}",
        first_loss(&warm),
        first_loss(&cold)
    );
    assert!(
        by_role(&warm, Role::Guest)
            .log
            .iter()
            .any(|l| l.contains("warm start"))
    );
}
