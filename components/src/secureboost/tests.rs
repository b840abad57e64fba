//! SecureBoost on the in-memory harness, against plain gradient boosting on the joined data
//! with the same bins and the same rounding of g and h: the same trees, split for split.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use consort_protocol::data::Dataset;
use consort_protocol::job::{JobSpec, PlannedTask, Role, validate};

use super::guest::gradients;
use super::model::{Params, SecureBoostModel};
use super::tree::{Split, Tree};
use super::tree::{
    SplitRules, Sums, best_in_feature, bin_of, cuts, leaf_weight, logistic_gh, quantize,
};
use crate::Endpoint;
use crate::context::{Target, TaskError};
use crate::evaluation::auc;
use crate::harness::{RunResult, run_task};
use crate::registry::{component, schema};

use crate::hetero_lr::tests::{data, ep};

fn plan(hosts: &[&str], params: &str) -> PlannedTask {
    let text = format!(
        "name: t\nparties:\n  guest: [bank-a]\n  host: [{}]\n\
         tasks:\n  t:\n    component: hetero_secureboost\n    params: {params}\n",
        hosts.join(", ")
    );
    let spec = JobSpec::parse(&text).expect("parses");
    validate(&spec, &schema).expect("valid").tasks.remove(0)
}

fn run(
    task: &PlannedTask,
    inputs: &BTreeMap<Endpoint, BTreeMap<String, Vec<u8>>>,
) -> Vec<RunResult> {
    let f = component("hetero_secureboost").expect("built-in");
    run_task("job-1", task, f, inputs, &Arc::new(AtomicBool::new(false)))
}

fn ok(results: &[RunResult]) {
    for r in results {
        assert_eq!(r.result, Ok(()), "{}: {:?}", r.endpoint, r.log);
    }
}

fn of<'a>(results: &'a [RunResult], party: &str) -> &'a RunResult {
    results
        .iter()
        .find(|r| r.endpoint.party.as_str() == party)
        .expect("party")
}

fn bytes(d: &Dataset) -> Vec<u8> {
    d.to_bytes().expect("bytes")
}

/// The columns `names` of `d`.
fn pick(d: &Dataset, names: &[String]) -> Dataset {
    crate::hetero_lr::common::columns_for(d, names).expect("columns")
}

/// A tree as the reference draws it: (feature name, threshold, gain) splits, leaf weights.
#[derive(Debug, Clone, PartialEq)]
enum Plain {
    Leaf(f64),
    Split(String, f64, f64, Box<Plain>, Box<Plain>),
}

/// Whether two trees are the same: the same shape, gains and leaf weights, bit for bit, and
/// the same feature and threshold at every split but where two splits tie (equal gains: which
/// wins depends on the order a host shows its features in, its secret). Returns the ties.
fn same(got: &Plain, want: &Plain) -> Result<usize, String> {
    match (got, want) {
        (Plain::Leaf(a), Plain::Leaf(b)) if a == b => Ok(0),
        (Plain::Split(fa, ta, ga, la, ra), Plain::Split(fb, tb, gb, lb, rb)) if ga == gb => {
            let tie = usize::from((fa, ta) != (fb, tb));
            Ok(tie + same(la, lb)? + same(ra, rb)?)
        }
        _ => Err(format!("{got:?}\n  differs from\n{want:?}")),
    }
}

/// Plain gradient boosting on `x` (all features, the guest's first) with `y`.
fn reference(x: &Dataset, y: &[f64], p: &Params) -> (Vec<Plain>, Vec<f64>) {
    let n = x.rows();
    let cuts: Vec<Vec<f64>> = x
        .columns
        .iter()
        .map(|c| cuts(c, p.max_bin as usize))
        .collect();
    let bins: Vec<Vec<u16>> = x
        .columns
        .iter()
        .zip(&cuts)
        .map(|(col, c)| col.iter().map(|&v| bin_of(c, v)).collect())
        .collect();
    let rules = SplitRules {
        l2: p.l2,
        min_child_weight: p.min_child_weight,
        min_leaf_node: p.min_leaf_node,
        min_sample_split: p.min_sample_split,
        min_gain: p.min_impurity_split,
    };
    let mean = (y.iter().sum::<f64>() / n as f64).clamp(1e-6, 1.0 - 1e-6);
    let mut scores = vec![(mean / (1.0 - mean)).ln(); n];
    let mut trees = Vec::new();
    for t in 0..p.num_trees {
        let (g, h) = gradients(y, &scores, p, t);
        let q = quantize(&g, &h);
        let rows: Vec<usize> = (0..n).collect();
        let mut leaf_of = vec![0.0; n];
        #[allow(clippy::too_many_arguments)]
        fn grow(
            rows: &[usize],
            depth: u32,
            q: &super::tree::Grads,
            bins: &[Vec<u16>],
            cuts: &[Vec<f64>],
            names: &[String],
            rules: &SplitRules,
            p: &Params,
            leaf_of: &mut [f64],
        ) -> Plain {
            let mut total = Sums::default();
            for &r in rows {
                total.add(q.rows[r]);
            }
            let leaf = |leaf_of: &mut [f64]| {
                let w = p.learning_rate * leaf_weight(total, q.g_off_fx, p.l2);
                for &r in rows {
                    leaf_of[r] = w;
                }
                Plain::Leaf(w)
            };
            if depth >= p.max_depth || total.n < rules.min_sample_split {
                return leaf(leaf_of);
            }
            let mut best: Option<(f64, usize, u16)> = None;
            for (f, col) in bins.iter().enumerate() {
                let mut hist = vec![Sums::default(); cuts[f].len() + 1];
                for &r in rows {
                    hist[usize::from(col[r])].add(q.rows[r]);
                }
                if let Some((gain, b)) = best_in_feature(&hist, total, q.g_off_fx, rules)
                    && best.is_none_or(|(bg, _, _)| gain > bg)
                {
                    best = Some((gain, f, b));
                }
            }
            let Some((gain, f, b)) = best else {
                return leaf(leaf_of);
            };
            let (l, r): (Vec<usize>, Vec<usize>) = rows.iter().partition(|&&r| bins[f][r] <= b);
            let left = grow(&l, depth + 1, q, bins, cuts, names, rules, p, leaf_of);
            let right = grow(&r, depth + 1, q, bins, cuts, names, rules, p, leaf_of);
            Plain::Split(
                names[f].clone(),
                cuts[f][usize::from(b)],
                gain,
                Box::new(left),
                Box::new(right),
            )
        }
        let tree = grow(
            &rows,
            0,
            &q,
            &bins,
            &cuts,
            &x.feature_names,
            &rules,
            p,
            &mut leaf_of,
        );
        for (s, w) in scores.iter_mut().zip(&leaf_of) {
            *s += w;
        }
        trees.push(tree);
    }
    (trees, scores)
}

/// The guest's tree with every split named by party, feature and threshold (a host's looked
/// up in its own model).
fn plain_tree(
    tree: &Tree,
    guest: &SecureBoostModel,
    hosts: &HashMap<String, SecureBoostModel>,
) -> Plain {
    fn go(
        tree: &Tree,
        i: usize,
        guest: &SecureBoostModel,
        hosts: &HashMap<String, SecureBoostModel>,
    ) -> Plain {
        let node = &tree.nodes[i];
        let (name, threshold) = match &node.split {
            None => return Plain::Leaf(node.weight),
            Some(Split::Guest { feature, threshold }) => (
                format!("bank-a:{}", guest.header[*feature as usize]),
                *threshold,
            ),
            Some(Split::Host { party, split_id }) => {
                let m = &hosts[party];
                let s = m
                    .splits
                    .iter()
                    .find(|s| s.id == *split_id)
                    .expect("host split");
                (
                    format!("{party}:{}", m.header[s.feature as usize]),
                    s.threshold,
                )
            }
        };
        Plain::Split(
            name,
            threshold,
            node.gain,
            Box::new(go(tree, node.left as usize, guest, hosts)),
            Box::new(go(tree, node.right as usize, guest, hosts)),
        )
    }
    go(tree, 0, guest, hosts)
}

/// Only what reading parameters needs.
struct ParamsOnly {
    me: Endpoint,
    params: consort_protocol::job::Params,
}

impl crate::context::TaskContext for ParamsOnly {
    fn job_id(&self) -> &str {
        "job-1"
    }
    fn task(&self) -> &str {
        "t"
    }
    fn me(&self) -> &Endpoint {
        &self.me
    }
    fn params(&self) -> &consort_protocol::job::Params {
        &self.params
    }
    fn endpoints(&self) -> &[Endpoint] {
        std::slice::from_ref(&self.me)
    }
    fn input(&self, _: &str) -> Result<Option<Vec<u8>>, TaskError> {
        Ok(None)
    }
    fn output(&self, _: &str, _: &[u8]) -> Result<(), TaskError> {
        Ok(())
    }
    fn remote(&self, _: &Target, _: &str, _: &[u8]) -> Result<(), TaskError> {
        Ok(())
    }
    fn get(&self, _: &Target, _: &str) -> Result<Vec<(Endpoint, Vec<u8>)>, TaskError> {
        Ok(Vec::new())
    }
    fn log_metric(&self, _: &str, _: &str, _: &[(f64, f64)]) -> Result<(), TaskError> {
        Ok(())
    }
    fn set_metric_meta(&self, _: &str, _: &str, _: serde_json::Value) -> Result<(), TaskError> {
        Ok(())
    }
    fn log(&self, _: &str) {}
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// The guest's parameters of a task with `settings`.
fn params_of(settings: &str, hosts: &[&str]) -> Result<Params, TaskError> {
    let task = plan(hosts, settings);
    let run = task
        .runs
        .iter()
        .find(|r| r.role == Role::Guest)
        .expect("guest run");
    Params::from_ctx(&ParamsOnly {
        me: ep(Role::Guest, "bank-a"),
        params: run.params.clone(),
    })
}

fn params(settings: &str, hosts: &[&str]) -> Params {
    params_of(settings, hosts).expect("params")
}

/// Trains with `guest` and `hosts` (party, data), checks every party succeeded and the trees
/// equal the reference's on the joined data; returns the results.
fn train_and_compare(
    settings: &str,
    guest: &Dataset,
    hosts: &[(&str, &Dataset)],
) -> (Vec<RunResult>, Vec<f64>) {
    let names: Vec<&str> = hosts.iter().map(|(p, _)| *p).collect();
    let task = plan(&names, settings);
    let mut inputs = BTreeMap::from([(
        ep(Role::Guest, "bank-a"),
        BTreeMap::from([("train_data".to_owned(), bytes(guest))]),
    )]);
    for (party, d) in hosts {
        inputs.insert(
            ep(Role::Host, party),
            BTreeMap::from([("train_data".to_owned(), bytes(d))]),
        );
    }
    let results = run(&task, &inputs);
    ok(&results);
    let g = SecureBoostModel::from_bytes(&of(&results, "bank-a").outputs["model"]).expect("guest");
    let hm: HashMap<String, SecureBoostModel> = names
        .iter()
        .map(|p| {
            let m = SecureBoostModel::from_bytes(&of(&results, p).outputs["model"]).expect("host");
            assert!(m.trees.is_empty(), "a host keeps no trees");
            (p.to_string(), m)
        })
        .collect();
    // The reference on the joined data: the guest's features, then each host's.
    // Names carry their party: both sides of breast call their features x0, x1, ...
    let mut joined = guest.clone();
    joined.feature_names = guest
        .feature_names
        .iter()
        .map(|f| format!("bank-a:{f}"))
        .collect();
    for (party, d) in hosts {
        joined
            .feature_names
            .extend(d.feature_names.iter().map(|f| format!("{party}:{f}")));
        joined.columns.extend(d.columns.clone());
    }
    let y = guest.labels.clone().expect("labels");
    let p = params(settings, &names);
    let (want, want_scores) = reference(&joined, &y, &p);
    let got: Vec<Plain> = g.trees.iter().map(|t| plain_tree(t, &g, &hm)).collect();
    assert_eq!(got.len(), want.len());
    let mut ties = 0;
    for (a, b) in got.iter().zip(&want) {
        ties += same(a, b).unwrap_or_else(|e| panic!("not the reference's tree: {e}"));
    }
    eprintln!("trees equal to the reference's ({ties} tied splits)");
    (results, want_scores)
}

const FATE_EXAMPLE: &str = "{num_trees: 2, max_depth: 3, key_bits: 512}";

#[test]
fn breast_trees_equal_plain_boosting_on_the_joined_data() {
    let (g, h) = (
        data("breast_hetero_guest.csv"),
        data("breast_hetero_host.csv"),
    );
    let started = std::time::Instant::now();
    let (results, want_scores) = train_and_compare(FATE_EXAMPLE, &g, &[("insurer-b", &h)]);
    eprintln!(
        "2 trees, depth 3, 512 bits: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let guest = of(&results, "bank-a");
    let train = Dataset::from_bytes(&guest.outputs["train_output"]).expect("scores");
    let labels = train.labels.clone().expect("labels");
    let a = auc(&labels, &train.columns[0]);
    assert!(a >= 0.976, "train AUC {a}");
    for (got, want) in train.columns[0].iter().zip(&want_scores) {
        let want = 1.0 / (1.0 + (-want).exp());
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
    // Loss per tree, decreasing; importance of each party's own features.
    let loss: Vec<f64> = guest
        .metrics
        .iter()
        .filter(|(ns, n, _)| ns == "train" && n == "loss")
        .flat_map(|(_, _, p)| p.iter().map(|p| p.1))
        .collect();
    assert_eq!(loss.len(), 2);
    assert!(loss[1] < loss[0], "{loss:?}");
    for r in &results {
        let splits: f64 = r
            .metrics
            .iter()
            .filter(|(ns, n, _)| ns == "importance" && n == "splits")
            .flat_map(|(_, _, p)| p.iter().map(|p| p.1))
            .sum();
        let m = SecureBoostModel::from_bytes(&r.outputs["model"]).expect("model");
        let in_model: u32 = m.importance.values().map(|i| i.splits).sum();
        assert_eq!(splits, f64::from(in_model), "{}", r.endpoint);
    }
    let gm = SecureBoostModel::from_bytes(&guest.outputs["model"]).expect("guest");
    let hm = SecureBoostModel::from_bytes(&of(&results, "insurer-b").outputs["model"]).expect("h");
    let total: u32 = gm
        .importance
        .values()
        .chain(hm.importance.values())
        .map(|i| i.splits)
        .sum();
    let split_nodes = gm
        .trees
        .iter()
        .flat_map(|t| &t.nodes)
        .filter(|n| n.split.is_some())
        .count();
    assert_eq!(total as usize, split_nodes);
    assert!(hm.splits.len() as u32 == hm.importance.values().map(|i| i.splits).sum::<u32>());
}

#[test]
fn fate_quick_start_settings_reach_auc_0995_on_breast() {
    let (g, h) = (
        data("breast_hetero_guest.csv"),
        data("breast_hetero_host.csv"),
    );
    let (results, _) = train_and_compare(
        "{num_trees: 1, max_depth: 5, key_bits: 512}",
        &g,
        &[("insurer-b", &h)],
    );
    let t = Dataset::from_bytes(&of(&results, "bank-a").outputs["train_output"]).expect("t");
    let a = auc(t.labels.as_ref().expect("labels"), &t.columns[0]);
    eprintln!("quick-start AUC {a}");
    assert!(a >= 0.995, "AUC {a}");
}

#[test]
fn three_parties_deep_trees_and_predict_mode_agree() {
    let g = data("breast_hetero_guest.csv");
    let h = data("breast_hetero_host.csv");
    // The host's 20 features split between two hosts.
    let (first, second) = h.feature_names.split_at(10);
    let (h1, h2) = (pick(&h, first), pick(&h, second));
    let settings = "{num_trees: 2, max_depth: 5, key_bits: 512, min_child_weight: 0.1}";
    let (results, _) = train_and_compare(settings, &g, &[("insurer-b", &h1), ("clinic-c", &h2)]);
    predict_mode_reproduces_train_scores(&results, &g, &[("insurer-b", &h1), ("clinic-c", &h2)]);
}

/// With GOSS, rows outside the sample weigh nothing, so splits that part the sampled rows alike
/// tie, and which one wins depends on the order a host shows its features in (its secret):
/// the trees are not compared, the model is checked by its AUC and by predict mode.
#[test]
fn goss_samples_by_seed_and_the_model_predicts_its_train_scores() {
    let (g, h) = (
        data("breast_hetero_guest.csv"),
        data("breast_hetero_host.csv"),
    );
    let task = plan(
        &["insurer-b"],
        "{num_trees: 3, max_depth: 3, key_bits: 512, goss: true, top_rate: 0.2, other_rate: 0.2}",
    );
    let inputs = BTreeMap::from([
        (
            ep(Role::Guest, "bank-a"),
            BTreeMap::from([("train_data".to_owned(), bytes(&g))]),
        ),
        (
            ep(Role::Host, "insurer-b"),
            BTreeMap::from([("train_data".to_owned(), bytes(&h))]),
        ),
    ]);
    let results = run(&task, &inputs);
    ok(&results);
    let t = Dataset::from_bytes(&of(&results, "bank-a").outputs["train_output"]).expect("t");
    let a = auc(t.labels.as_ref().expect("labels"), &t.columns[0]);
    assert!(a >= 0.97, "AUC with GOSS {a}");
    // The sample is the seed's: the same rows each time, at the guest.
    let p = params(
        "{goss: true, top_rate: 0.2, other_rate: 0.2}",
        &["insurer-b"],
    );
    let y = g.labels.clone().expect("labels");
    let s = vec![0.0; y.len()];
    let (g1, _) = gradients(&y, &s, &p, 0);
    assert_eq!(g1, gradients(&y, &s, &p, 0).0);
    let kept = g1.iter().filter(|v| **v != 0.0).count();
    assert_eq!(kept, (0.2 * y.len() as f64).ceil() as usize * 2);
    assert_ne!(
        g1,
        gradients(&y, &s, &p, 1).0,
        "another tree, another sample"
    );
    predict_mode_reproduces_train_scores(&results, &g, &[("insurer-b", &h)]);
}

fn predict_mode_reproduces_train_scores(
    results: &[RunResult],
    g: &Dataset,
    hosts: &[(&str, &Dataset)],
) {
    let names: Vec<&str> = hosts.iter().map(|(p, _)| *p).collect();
    // Predict mode on the same rows gives the train scores.
    let task = plan(&names, "{key_bits: 512}");
    let mut inputs = BTreeMap::new();
    let mut all = vec![("bank-a", Role::Guest, g)];
    all.extend(hosts.iter().map(|(p, d)| (*p, Role::Host, *d)));
    for (party, role, d) in all {
        inputs.insert(
            ep(role, party),
            BTreeMap::from([
                ("test_data".to_owned(), bytes(d)),
                (
                    "model".to_owned(),
                    of(results, party).outputs["model"].clone(),
                ),
            ]),
        );
    }
    let predicted = run(&task, &inputs);
    ok(&predicted);
    let p = Dataset::from_bytes(&of(&predicted, "bank-a").outputs["predict_output"]).expect("p");
    let t = Dataset::from_bytes(&of(results, "bank-a").outputs["train_output"]).expect("t");
    assert_eq!(p.ids, t.ids);
    assert_eq!(
        p.columns, t.columns,
        "predict mode reproduces the train scores"
    );
}

#[test]
fn a_warm_start_adds_the_trees_training_would_have_grown() {
    let (g, h) = (
        data("breast_hetero_guest.csv"),
        data("breast_hetero_host.csv"),
    );
    let (one, _) = train_and_compare(
        "{num_trees: 1, max_depth: 3, key_bits: 512}",
        &g,
        &[("insurer-b", &h)],
    );
    let (two, _) = train_and_compare(
        "{num_trees: 2, max_depth: 3, key_bits: 512}",
        &g,
        &[("insurer-b", &h)],
    );
    let task = plan(
        &["insurer-b"],
        "{num_trees: 1, max_depth: 3, key_bits: 512, warm_start: true}",
    );
    let mut inputs = BTreeMap::new();
    for (party, role, d) in [("bank-a", Role::Guest, &g), ("insurer-b", Role::Host, &h)] {
        inputs.insert(
            ep(role, party),
            BTreeMap::from([
                ("train_data".to_owned(), bytes(d)),
                ("model".to_owned(), of(&one, party).outputs["model"].clone()),
            ]),
        );
    }
    let warm = run(&task, &inputs);
    ok(&warm);
    let w = Dataset::from_bytes(&of(&warm, "bank-a").outputs["train_output"]).expect("w");
    let t = Dataset::from_bytes(&of(&two, "bank-a").outputs["train_output"]).expect("t");
    for (a, b) in w.columns[0].iter().zip(&t.columns[0]) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    let wm = SecureBoostModel::from_bytes(&of(&warm, "bank-a").outputs["model"]).expect("m");
    assert_eq!(wm.trees.len(), 2);
    let hm = SecureBoostModel::from_bytes(&of(&warm, "insurer-b").outputs["model"]).expect("m");
    let ids: Vec<u32> = hm.splits.iter().map(|s| s.id).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "split ids stay unique across the warm start");
}

#[test]
fn misaligned_rows_and_bad_settings_fail_with_the_reason_at_every_party() {
    let g = data("breast_hetero_guest.csv");
    let h = data("breast_hetero_host.csv");
    let fewer = Dataset::new(
        h.ids[1..].to_vec(),
        h.feature_names.clone(),
        h.columns.iter().map(|c| c[1..].to_vec()).collect(),
        None,
    )
    .expect("dataset");
    let task = plan(&["insurer-b"], "{num_trees: 1, key_bits: 512}");
    let inputs = BTreeMap::from([
        (
            ep(Role::Guest, "bank-a"),
            BTreeMap::from([("train_data".to_owned(), bytes(&g))]),
        ),
        (
            ep(Role::Host, "insurer-b"),
            BTreeMap::from([("train_data".to_owned(), bytes(&fewer))]),
        ),
    ]);
    for r in run(&task, &inputs) {
        let e = r.result.expect_err("fails").to_string();
        assert!(
            e.contains("not aligned") && e.contains("psi"),
            "{}: {e}",
            r.endpoint
        );
    }
    let e = params_of("{max_depth: 40}", &["insurer-b"]).expect_err("bad depth");
    assert!(e.to_string().contains("max_depth"), "{e}");
    let _ = logistic_gh(1.0, 0.0);
}

/// Rows `range` of `d`.
fn rows(d: &Dataset, range: std::ops::Range<usize>) -> Dataset {
    Dataset::new(
        d.ids[range.clone()].to_vec(),
        d.feature_names.clone(),
        d.columns
            .iter()
            .map(|c| c[range.clone()].to_vec())
            .collect(),
        d.label_name
            .clone()
            .zip(d.labels.as_ref().map(|l| l[range.clone()].to_vec())),
    )
    .expect("rows")
}

#[test]
fn early_stopping_keeps_the_trees_up_to_the_best_validation_loss() {
    let (g, h) = (
        data("breast_hetero_guest.csv"),
        data("breast_hetero_host.csv"),
    );
    let (gt, gv, ht, hv) = (
        rows(&g, 0..400),
        rows(&g, 400..569),
        rows(&h, 0..400),
        rows(&h, 400..569),
    );
    let task = plan(
        &["insurer-b"],
        "{num_trees: 40, max_depth: 4, learning_rate: 0.5, key_bits: 512, \
         min_child_weight: 0.01, early_stopping_rounds: 2}",
    );
    let inputs = BTreeMap::from([
        (
            ep(Role::Guest, "bank-a"),
            BTreeMap::from([
                ("train_data".to_owned(), bytes(&gt)),
                ("validate_data".to_owned(), bytes(&gv)),
            ]),
        ),
        (
            ep(Role::Host, "insurer-b"),
            BTreeMap::from([
                ("train_data".to_owned(), bytes(&ht)),
                ("validate_data".to_owned(), bytes(&hv)),
            ]),
        ),
    ]);
    let results = run(&task, &inputs);
    ok(&results);
    let guest = of(&results, "bank-a");
    let series = |name: &str| -> Vec<f64> {
        guest
            .metrics
            .iter()
            .filter(|(ns, n, _)| ns == name && n == "loss")
            .flat_map(|(_, _, p)| p.iter().map(|p| p.1))
            .collect()
    };
    let (train, val) = (series("train"), series("validate"));
    assert_eq!(train.len(), val.len());
    assert!(val.len() < 40, "stopped early: {} trees grown", val.len());
    let best = val
        .iter()
        .enumerate()
        .fold((0, f64::MAX), |b, (i, &v)| if v < b.1 { (i, v) } else { b });
    assert_eq!(
        val.len(),
        best.0 + 3,
        "two trees without improvement after the best"
    );
    let gm = SecureBoostModel::from_bytes(&guest.outputs["model"]).expect("guest");
    assert_eq!(
        gm.trees.len(),
        best.0 + 1,
        "the model keeps the trees up to the best"
    );
    // The host keeps exactly the splits of the kept trees.
    let hm = SecureBoostModel::from_bytes(&of(&results, "insurer-b").outputs["model"]).expect("h");
    let mut referenced: Vec<u32> = gm
        .trees
        .iter()
        .flat_map(|t| &t.nodes)
        .filter_map(|n| match &n.split {
            Some(Split::Host { split_id, .. }) => Some(*split_id),
            _ => None,
        })
        .collect();
    referenced.sort_unstable();
    let mut held: Vec<u32> = hm.splits.iter().map(|s| s.id).collect();
    held.sort_unstable();
    assert_eq!(held, referenced);
    // The train output is the kept trees' scores: predict mode gives the same.
    predict_mode_reproduces_train_scores(&results, &gt, &[("insurer-b", &ht)]);
}

/// A host that takes part until its first histograms, then sends `hist` (what a hostile or
/// broken partner could send); the real guest must refuse them, naming the host, and not
/// panic.
fn hostile_host(
    ctx: &dyn crate::context::TaskContext,
    hist: super::wire::Hist,
) -> Result<(), TaskError> {
    use super::wire::{Align, Gh, Level, Setup, recv_one, send};
    let guest = Target::Role(Role::Guest);
    let data = crate::hetero_lr::common::required_dataset(ctx, "train_data")?;
    send(ctx, &guest, "align", &Align::of(Ok(&data)))?;
    let _: (_, Setup) = recv_one(ctx, &guest, "setup")?;
    let _: (_, Gh) = recv_one(ctx, &guest, "gh.0")?;
    let _: (_, Level) = recv_one(ctx, &guest, "level.0.0")?;
    send(ctx, &guest, "hist.0.0", &hist)
}

fn wrong_nodes(ctx: &dyn crate::context::TaskContext) -> Result<(), TaskError> {
    if ctx.me().role == Role::Guest {
        return super::hetero_secureboost(ctx);
    }
    let hist = super::wire::Hist {
        v: super::wire::WIRE_VERSION,
        nodes: vec![super::wire::NodeHist {
            node: 7,
            slots: vec![vec![0]],
        }],
        data: Vec::new(),
    };
    hostile_host(ctx, hist)
}

fn bins_out_of_range(ctx: &dyn crate::context::TaskContext) -> Result<(), TaskError> {
    if ctx.me().role == Role::Guest {
        return super::hetero_secureboost(ctx);
    }
    let hist = super::wire::Hist {
        v: super::wire::WIRE_VERSION,
        nodes: vec![super::wire::NodeHist {
            node: 0,
            slots: vec![vec![3, 1, 60_000]],
        }],
        data: vec![0; 17],
    };
    hostile_host(ctx, hist)
}

#[test]
fn a_hosts_malformed_histograms_fail_the_guest_with_the_host_named() {
    let (g, h) = (
        data("breast_hetero_guest.csv"),
        data("breast_hetero_host.csv"),
    );
    let task = plan(&["insurer-b"], "{num_trees: 1, key_bits: 512}");
    let inputs = BTreeMap::from([
        (
            ep(Role::Guest, "bank-a"),
            BTreeMap::from([("train_data".to_owned(), bytes(&g))]),
        ),
        (
            ep(Role::Host, "insurer-b"),
            BTreeMap::from([("train_data".to_owned(), bytes(&h))]),
        ),
    ]);
    for (f, why) in [
        (
            wrong_nodes as crate::registry::ComponentFn,
            "not the nodes asked for",
        ),
        (bins_out_of_range, "bins out of order or range"),
    ] {
        let results = run_task(
            "job-1",
            &task,
            f,
            &inputs,
            &Arc::new(AtomicBool::new(false)),
        );
        let e = of(&results, "bank-a")
            .result
            .clone()
            .expect_err("the guest refuses")
            .to_string();
        assert!(e.contains("insurer-b") && e.contains(why), "{e}");
    }
}
