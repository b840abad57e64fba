use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use consort_protocol::job::{JobSpec, validate};

use super::*;
use crate::harness::run_task;
use crate::registry::{component, schema};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn auc_perfect_inverted_ties_and_one_class() {
    let y = [0.0, 0.0, 1.0, 1.0];
    assert!(close(auc(&y, &[0.1, 0.2, 0.8, 0.9]), 1.0));
    assert!(close(auc(&y, &[0.9, 0.8, 0.2, 0.1]), 0.0));
    assert!(
        close(auc(&y, &[0.5, 0.5, 0.5, 0.5]), 0.5),
        "all tied: one half"
    );
    // Pairs (neg, pos): (0.1,0.4) ok, (0.1,0.3) ok, (0.4,0.4) tie ½, (0.4,0.3) wrong → 2.5/4.
    assert!(close(auc(&y, &[0.1, 0.4, 0.4, 0.3]), 0.625));
    assert!(auc(&[1.0, 1.0], &[0.2, 0.3]).is_nan());
}

#[test]
fn ks_roc_and_confusion_by_hand() {
    let y = [0.0, 0.0, 1.0, 1.0];
    let s = [0.1, 0.6, 0.4, 0.9];
    // Thresholds 0.9, 0.6, 0.4, 0.1 → (0,.5), (.5,.5), (.5,1), (1,1).
    assert_eq!(
        roc(&y, &s),
        vec![(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
    );
    assert!(close(ks(&y, &s), 0.5));
    assert!(close(ks(&y, &[0.1, 0.2, 0.8, 0.9]), 1.0));
    let c = Confusion::at(&y, &s, 0.5);
    assert_eq!(
        c,
        Confusion {
            tp: 1,
            fp: 1,
            tn: 1,
            fn_: 1
        }
    );
    assert!(close(c.accuracy(), 0.5) && close(c.precision(), 0.5) && close(c.recall(), 0.5));
    assert!(close(c.f1(), 0.5));
    let none = Confusion::at(&y, &s, 2.0);
    assert_eq!(
        (none.precision(), none.recall(), none.f1()),
        (0.0, 0.0, 0.0)
    );
    // Score equal to the threshold predicts 1.
    assert_eq!(Confusion::at(&[1.0], &[0.5], 0.5).tp, 1);
}

#[test]
fn roc_is_thinned_to_at_most_200_points_keeping_the_ends() {
    let n = 5000;
    let y: Vec<f64> = (0..n).map(|i| (i % 3 == 0) as u8 as f64).collect();
    let s: Vec<f64> = (0..n).map(|i| ((i * 7919) % n) as f64 / n as f64).collect();
    let full = roc(&y, &s);
    assert_eq!(full.len(), n + 1);
    let thin = downsample(&full, MAX_ROC_POINTS);
    assert_eq!(thin.len(), MAX_ROC_POINTS);
    assert_eq!(thin[0], (0.0, 0.0));
    assert_eq!(thin[MAX_ROC_POINTS - 1], (1.0, 1.0));
    assert!(
        thin.windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
    );
}

fn run_eval(data: &Dataset) -> crate::harness::RunResult {
    let text = "name: t\nparties:\n  guest: [bank-a]\ntasks:\n  t:\n    component: evaluation\n";
    let spec = JobSpec::parse(text).expect("parses");
    let mut plan = validate(&spec, &schema).expect("valid");
    let task = plan.tasks.remove(0);
    let me = crate::Endpoint {
        role: consort_protocol::job::Role::Guest,
        party: consort_protocol::PartyName::new("bank-a").expect("name"),
    };
    let inputs = BTreeMap::from([(
        me,
        BTreeMap::from([("data".to_owned(), data.to_bytes().expect("bytes"))]),
    )]);
    let f = component("evaluation").expect("built-in");
    run_task(
        "job-1",
        &task,
        f,
        &inputs,
        &Arc::new(AtomicBool::new(false)),
    )
    .pop()
    .expect("one run")
}

#[test]
fn component_logs_metrics_and_writes_the_report() {
    let data = Dataset::new(
        vec!["a".into(), "b".into(), "c".into(), "d".into()],
        vec!["score".into()],
        vec![vec![0.1, 0.6, 0.4, 0.9]],
        Some(("y".into(), vec![0.0, 0.0, 1.0, 1.0])),
    )
    .expect("dataset");
    let r = run_eval(&data);
    assert_eq!(r.result, Ok(()), "{:?}", r.log);
    let metric = |name: &str| {
        r.metrics
            .iter()
            .find(|(ns, n, _)| ns == "evaluation" && n == name)
            .map(|(_, _, p)| p.clone())
            .unwrap_or_else(|| panic!("metric {name}"))
    };
    assert_eq!(metric("auc"), vec![(0.0, 0.75)]);
    assert_eq!(metric("ks"), vec![(0.0, 0.5)]);
    assert_eq!(metric("accuracy"), vec![(0.0, 0.5)]);
    assert_eq!(metric("f1"), vec![(0.0, 0.5)]);
    assert_eq!(metric("roc").len(), 5);
    assert!(
        r.log
            .iter()
            .any(|l| l.contains("evaluation/roc") && l.contains("\"curve\":\"roc\""))
    );
    assert!(
        r.log
            .iter()
            .any(|l| l.contains("evaluation/confusion") && l.contains("\"tp\":1"))
    );
    let report: serde_json::Value =
        serde_json::from_slice(r.outputs.get("report").expect("report")).expect("json");
    assert_eq!(report["auc"], 0.75);
    assert_eq!(report["confusion"]["fn"], 1);
    assert_eq!(report["roc"].as_array().map(Vec::len), Some(5));
}

#[test]
fn missing_labels_or_score_column_fail_clearly() {
    let no_labels = Dataset::new(
        vec!["a".into()],
        vec!["score".into()],
        vec![vec![0.3]],
        None,
    )
    .expect("dataset");
    let r = run_eval(&no_labels);
    assert!(
        matches!(&r.result, Err(TaskError::Failed(m)) if m.contains("no labels")),
        "{r:?}"
    );
    let no_score = Dataset::new(
        vec!["a".into()],
        vec!["x0".into()],
        vec![vec![0.3]],
        Some(("y".into(), vec![1.0])),
    )
    .expect("dataset");
    let r = run_eval(&no_score);
    assert!(
        matches!(&r.result, Err(TaskError::Failed(m)) if m.contains("no \"score\" column")),
        "{r:?}"
    );
    let multi = Dataset::new(
        vec!["a".into()],
        vec!["score".into()],
        vec![vec![0.3]],
        Some(("y".into(), vec![2.0])),
    )
    .expect("dataset");
    assert!(evaluate(&multi, 0.5).is_err());
}
