//! A plain, centralized logistic regression to check the federated learners against.
//!
//! Everything here runs in one process on plaintext `f64`: no encryption, no fixed point, no
//! messages. It exists so that tests and benchmarks can compute, in the same run, what the
//! federated `hetero_lr` *should* have produced on the joined data, and what the guest could have
//! reached alone, instead of comparing with a constant.
//!
//! # The rule it implements (the same as `hetero_lr`, see `hetero_lr.rs`)
//! * Start from zero weights and a zero intercept.
//! * Epoch `e` (from 0) cuts the rows into batches with [`batches`]: full batch
//!   (`batch_size` −1 or ≥ rows) keeps the row order; otherwise the rows are shuffled by
//!   Fisher–Yates driven by splitmix64 of `seed ^ e·0x9E3779B97F4A7C15` and cut into chunks of
//!   `batch_size` (the last one shorter).
//! * Per batch of `m` rows, with `u = X·w + b` at the weights of the batch's start and
//!   `y' = 2y − 1`:
//!   - [`Objective::Taylor`] (`hetero_lr`, FATE's second-order Taylor approximation of the
//!     logistic loss): `d = 0.25·u − 0.5·y'`, loss `log 2 − ½·y'·u + ⅛·u²`;
//!   - [`Objective::Logistic`] (the exact loss, for the homo baseline): `d = σ(u) − y`,
//!     loss `log(1 + e^{−y'u})`;
//!   - `g_j = (1/m)·Σ_i d_i·x_ij + alpha·w_j`, `w_j −= learning_rate·g_j` (all `j` from the
//!     same start weights), and, with `fit_intercept`, `b −= learning_rate·(1/m)·Σ_i d_i` (no L2
//!     on the intercept).
//! * The epoch's loss is `(Σ_batches Σ_i loss_i + m·½·alpha·‖w‖²) / rows`, each batch's L2 term
//!   taken at its start weights (what the arbiter decrypts and averages).
//! * After each epoch: [`StopRule::LossDiff`] (`early_stop: diff`) stops when a previous epoch
//!   exists and |loss − previous loss| < `tol`; [`StopRule::WeightDiff`] (`early_stop:
//!   weight_diff`) when ‖(w, b) − (w, b) at the epoch's start‖ < `tol`. At most `max_iter` epochs.
//!
//! Scores are `σ(x·w + b)`. [`auc`] is computed from its definition (the fraction of
//! (positive, negative) pairs the score orders correctly, ties counting ½) by counting pairs,
//! independently of `evaluation::auc`'s rank formula; it is O(positives × negatives), a fraction
//! of a second for 30000 rows.
//!
//! The code is deliberately naive: row-major `Vec<Vec<f64>>`, one loop per formula.

use std::collections::HashMap;

use consort_protocol::data::Dataset;

/// The loss being minimized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// FATE's Taylor approximation, as `hetero_lr` trains it.
    Taylor,
    /// The exact logistic loss.
    Logistic,
}

/// When training stops before `max_iter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRule {
    /// |epoch loss − previous epoch loss| < tol (`early_stop: diff`, the default).
    LossDiff,
    /// ‖weights and intercept − their values at the epoch's start‖ < tol
    /// (`early_stop: weight_diff`).
    WeightDiff,
}

/// Training settings. [`Default`] is `hetero_lr`'s defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// At most this many epochs.
    pub max_iter: u32,
    /// Rows per batch; −1 is the full batch.
    pub batch_size: i64,
    /// Step size.
    pub learning_rate: f64,
    /// L2 strength (not applied to the intercept).
    pub alpha: f64,
    /// Convergence tolerance of `stop`.
    pub tol: f64,
    /// Convergence rule.
    pub stop: StopRule,
    /// Shuffling seed.
    pub seed: u64,
    /// Whether to fit an intercept.
    pub fit_intercept: bool,
    /// The loss.
    pub objective: Objective,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_iter: 30,
            batch_size: -1,
            learning_rate: 0.15,
            alpha: 0.01,
            tol: 1e-4,
            stop: StopRule::LossDiff,
            seed: 42,
            fit_intercept: true,
            objective: Objective::Taylor,
        }
    }
}

/// Rows of features with their ids and (for training) 0/1 labels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// One id per row.
    pub ids: Vec<String>,
    /// Features, row by row.
    pub rows: Vec<Vec<f64>>,
    /// Labels (0 or 1), if known.
    pub labels: Option<Vec<f64>>,
}

impl Table {
    /// A dataset's rows, in its order, with its labels.
    pub fn from_dataset(d: &Dataset) -> Self {
        Self {
            ids: d.ids.clone(),
            rows: (0..d.rows()).map(|i| d.row(i)).collect(),
            labels: d.labels.clone(),
        }
    }

    /// Vertical join: the rows of `guest` (in its order, with its labels) whose id every host
    /// has, each row the guest's features followed by each host's, in the order given. This is
    /// what `psi` + `hetero_lr` see: `psi` keeps the guest's row order.
    pub fn join(guest: &Dataset, hosts: &[&Dataset]) -> Self {
        let index: Vec<HashMap<&str, usize>> = hosts
            .iter()
            .map(|h| {
                h.ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (id.as_str(), i))
                    .collect()
            })
            .collect();
        let mut t = Self {
            labels: guest.labels.as_ref().map(|_| Vec::new()),
            ..Self::default()
        };
        for (i, id) in guest.ids.iter().enumerate() {
            let Some(at): Option<Vec<usize>> = index
                .iter()
                .map(|ix| ix.get(id.as_str()).copied())
                .collect()
            else {
                continue;
            };
            let mut row = guest.row(i);
            for (h, &r) in hosts.iter().zip(&at) {
                row.extend(h.row(r));
            }
            t.ids.push(id.clone());
            t.rows.push(row);
            if let (Some(out), Some(l)) = (&mut t.labels, &guest.labels) {
                out.push(l[i]);
            }
        }
        t
    }

    /// Horizontal pooling: every part's rows, one after the other (all parts must have labels
    /// for the result to have them).
    pub fn pool(parts: &[&Dataset]) -> Self {
        let mut t = Self {
            labels: Some(Vec::new()),
            ..Self::default()
        };
        for p in parts {
            let p = Self::from_dataset(p);
            t.ids.extend(p.ids);
            t.rows.extend(p.rows);
            t.labels = match (t.labels, p.labels) {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    Some(a)
                }
                _ => None,
            };
        }
        t
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A trained model and how training went.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
    /// Epochs run.
    pub epochs: u32,
    /// Whether the stop rule ended training (rather than `max_iter`).
    pub converged: bool,
    /// The loss of each epoch (see the module docs).
    pub losses: Vec<f64>,
}

impl Model {
    /// `σ(x·w + b)`.
    pub fn score(&self, x: &[f64]) -> f64 {
        sigmoid(self.linear(x))
    }

    /// `x·w + b`.
    pub fn linear(&self, x: &[f64]) -> f64 {
        let mut u = self.intercept;
        for (w, v) in self.weights.iter().zip(x) {
            u += w * v;
        }
        u
    }

    /// The score of every row of `t`.
    pub fn scores(&self, t: &Table) -> Vec<f64> {
        t.rows.iter().map(|x| self.score(x)).collect()
    }

    /// AUC of the scores of `t` against its labels (NaN without labels or with one class).
    pub fn auc(&self, t: &Table) -> f64 {
        match &t.labels {
            Some(l) => auc(l, &self.scores(t)),
            None => f64::NAN,
        }
    }
}

/// Trains on `t`, which must have 0/1 labels and rows of equal length.
pub fn train(t: &Table, s: &Settings) -> Result<Model, String> {
    let y = t
        .labels
        .as_ref()
        .ok_or("reference: the table has no labels")?;
    if let Some(bad) = y.iter().find(|&&v| v != 0.0 && v != 1.0) {
        return Err(format!("reference: label {bad} is not 0 or 1"));
    }
    let n = t.len();
    if n == 0 || y.len() != n {
        return Err(format!("reference: {n} rows and {} labels", y.len()));
    }
    let dim = t.rows[0].len();
    if t.rows.iter().any(|r| r.len() != dim) {
        return Err("reference: rows of different lengths".into());
    }

    let mut w = vec![0.0; dim];
    let mut b = 0.0;
    let mut losses = Vec::new();
    let mut converged = false;
    let mut epochs = 0;
    for epoch in 0..s.max_iter {
        let (w_start, b_start) = (w.clone(), b);
        let mut loss_sum = 0.0;
        for batch in batches(n, s.batch_size, s.seed, epoch) {
            let m = batch.len() as f64;
            let l2 = 0.5 * s.alpha * w.iter().map(|v| v * v).sum::<f64>();
            let mut grad = vec![0.0; dim];
            let mut grad_b = 0.0;
            for &i in &batch {
                let x = &t.rows[i];
                let mut u = b;
                for j in 0..dim {
                    u += w[j] * x[j];
                }
                let ys = 2.0 * y[i] - 1.0;
                let (d, loss) = match s.objective {
                    Objective::Taylor => (
                        0.25 * u - 0.5 * ys,
                        std::f64::consts::LN_2 - 0.5 * ys * u + 0.125 * u * u,
                    ),
                    Objective::Logistic => (sigmoid(u) - y[i], log1p_exp(-ys * u)),
                };
                for j in 0..dim {
                    grad[j] += d * x[j];
                }
                grad_b += d;
                loss_sum += loss;
            }
            loss_sum += m * l2;
            for j in 0..dim {
                let g = grad[j] / m + s.alpha * w[j];
                w[j] -= s.learning_rate * g;
            }
            if s.fit_intercept {
                b -= s.learning_rate * grad_b / m;
            }
        }
        let loss = loss_sum / n as f64;
        let moved = (w
            .iter()
            .zip(&w_start)
            .map(|(a, c)| (a - c).powi(2))
            .sum::<f64>()
            + (b - b_start).powi(2))
        .sqrt();
        converged = match s.stop {
            StopRule::LossDiff => losses
                .last()
                .is_some_and(|&prev: &f64| (prev - loss).abs() < s.tol),
            StopRule::WeightDiff => moved < s.tol,
        };
        losses.push(loss);
        epochs = epoch + 1;
        if converged {
            break;
        }
    }
    Ok(Model {
        weights: w,
        intercept: b,
        epochs,
        converged,
        losses,
    })
}

/// The batches (row indices) of epoch `epoch`, as `hetero_lr` cuts them (module docs).
pub fn batches(rows: usize, batch_size: i64, seed: u64, epoch: u32) -> Vec<Vec<usize>> {
    if rows == 0 {
        return Vec::new();
    }
    let size = if batch_size < 0 {
        rows
    } else {
        (batch_size as usize).clamp(1, rows)
    };
    let mut order: Vec<usize> = (0..rows).collect();
    if size < rows {
        let mut state = seed ^ u64::from(epoch).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut i = rows - 1;
        while i > 0 {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let j = (z % (i as u64 + 1)) as usize;
            order.swap(i, j);
            i -= 1;
        }
    }
    order.chunks(size).map(<[usize]>::to_vec).collect()
}

/// AUC by its definition: over every (positive, negative) pair, 1 if the positive scores
/// higher, ½ on a tie, 0 otherwise, averaged. Labels > 0.5 are positive. NaN if a class is
/// absent.
pub fn auc(labels: &[f64], scores: &[f64]) -> f64 {
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    for (&y, &s) in labels.iter().zip(scores) {
        if y > 0.5 {
            pos.push(s);
        } else {
            neg.push(s);
        }
    }
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    // Sum per positive in integers of halves, so that no rounding creeps in.
    let mut halves: u64 = 0;
    for &p in &pos {
        for &q in &neg {
            halves += if p > q {
                2
            } else if p == q {
                1
            } else {
                0
            };
        }
    }
    halves as f64 / 2.0 / (pos.len() as f64 * neg.len() as f64)
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `log(1 + e^x)` without overflow.
fn log1p_exp(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use consort_protocol::data::Dataset;
    use consort_protocol::job::Role;

    use super::*;
    use crate::harness::RunResult;
    use crate::hetero_lr::HeteroLrModel;
    use crate::test_util::{ep, output_dataset, plan, read_csv, run};

    fn breast() -> (Dataset, Dataset) {
        (
            read_csv("../examples/data/breast_hetero_guest.csv"),
            read_csv("../examples/data/breast_hetero_host.csv"),
        )
    }

    /// Runs `hetero_lr` with `params` (YAML flow mapping) in the in-memory harness: guest
    /// bank-a, host insurer-b, arbiter at bank-a.
    fn federated(g: &Dataset, h: &Dataset, params: &str) -> Vec<RunResult> {
        let task = plan(
            "  guest: [bank-a]\n  host: [insurer-b]\n  arbiter: [bank-a]\n",
            &format!("    component: hetero_lr\n    params: {params}\n"),
        );
        let input =
            |d: &Dataset| BTreeMap::from([("train_data".to_owned(), d.to_bytes().expect("bytes"))]);
        let results = run(
            &task,
            &BTreeMap::from([
                (ep(Role::Guest, "bank-a"), input(g)),
                (ep(Role::Host, "insurer-b"), input(h)),
            ]),
        );
        for r in &results {
            assert_eq!(r.result, Ok(()), "{}: {:?}", r.endpoint, r.log);
        }
        results
    }

    fn role(results: &[RunResult], role: Role) -> &RunResult {
        results
            .iter()
            .find(|r| r.endpoint.role == role)
            .expect("role")
    }

    fn model(r: &RunResult) -> HeteroLrModel {
        HeteroLrModel::from_bytes(&r.outputs["model"]).expect("model")
    }

    fn metric(r: &RunResult, name: &str) -> Vec<f64> {
        r.metrics
            .iter()
            .filter(|(ns, n, _)| ns == "train" && n == name)
            .flat_map(|(_, _, p)| p.iter().map(|q| q.1))
            .collect()
    }

    const FATE_BREAST: &str =
        "{max_iter: 10, batch_size: 300, learning_rate: 0.1, alpha: 0.001, key_bits: 512}";

    fn fate_breast() -> Settings {
        Settings {
            max_iter: 10,
            batch_size: 300,
            learning_rate: 0.1,
            alpha: 0.001,
            ..Settings::default()
        }
    }

    /// How far the federated weights, intercept, losses and scores may be from the reference
    /// `m` trained on `t` with `batch_size` and learning rate `lr`. The only inexact step of
    /// `hetero_lr` is fixed point: features enter the encrypted gradient rounded to 2^-16
    /// (error ≤ 2^-17 each), values inside ciphertexts to 2^-32 (negligible). A gradient
    /// component is a mean of x·d over the batch, so one step's error is at most
    /// 2^-17·max|d|, and `steps` steps add at most `steps·lr·2^-17·max|d|` to a weight (with
    /// these step sizes later steps damp a weight error rather than amplify it). max|d| =
    /// 0.25·max|u| + 0.5 is taken from the final model, doubled for the steps before it. For
    /// the FATE settings (20 steps, lr 0.1, max|u| 6.3 on breast) that is 6.3e-5; the observed
    /// difference is 1.9e-7 (the rounding errors are independent and average out). Any other
    /// rule is far outside: another shuffling seed alone moves the weights by 1.5e-3, the
    /// guest alone by > 0.1.
    fn tol(m: &Model, t: &Table, batch_size: i64, lr: f64) -> f64 {
        let max_u = t.rows.iter().map(|x| m.linear(x).abs()).fold(0.0, f64::max);
        let max_d = 2.0 * (0.25 * max_u + 0.5);
        let steps: usize = (0..m.epochs)
            .map(|e| batches(t.len(), batch_size, 0, e).len())
            .sum();
        steps as f64 * lr * 2f64.powi(-17) * max_d
    }

    #[test]
    fn federated_breast_equals_the_centralized_reference_and_beats_the_guest_alone() {
        let (g, h) = breast();
        let results = federated(&g, &h, FATE_BREAST);
        let (gm, hm) = (
            model(role(&results, Role::Guest)),
            model(role(&results, Role::Host)),
        );
        let joined = Table::join(&g, &[&h]);
        assert_eq!(joined.ids, g.ids);
        let reference = train(&joined, &fate_breast()).expect("reference");
        let tol = tol(&reference, &joined, 300, 0.1);
        eprintln!("tolerance {tol:.2e}");
        assert_eq!(reference.weights.len(), 30);
        let fed_w: Vec<f64> = gm.weights.iter().chain(&hm.weights).copied().collect();
        let dw = fed_w
            .iter()
            .zip(&reference.weights)
            .map(|(a, b)| (a - b).abs())
            .fold((gm.intercept - reference.intercept).abs(), f64::max);
        eprintln!("max |federated − reference| over the weights and intercept: {dw:.2e}");
        assert!(dw < tol, "{dw:e}: {fed_w:?} vs {:?}", reference.weights);
        // A weight that the reference moves far from 0: the comparison is not vacuous.
        assert!(reference.weights.iter().any(|w| w.abs() > 0.1));
        assert_eq!(
            (gm.iterations, gm.converged),
            (reference.epochs, reference.converged)
        );
        // The batch order matters far beyond the tolerance: another seed is another model.
        let reshuffled = train(
            &joined,
            &Settings {
                seed: 43,
                ..fate_breast()
            },
        )
        .expect("reference");
        let moved = reshuffled
            .weights
            .iter()
            .zip(&reference.weights)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        eprintln!("another shuffling seed moves the reference weights by up to {moved:.2e}");
        assert!(moved > 20.0 * tol, "{moved:e}");

        // The loss the arbiter decrypted, epoch by epoch.
        let losses = metric(role(&results, Role::Arbiter), "loss");
        assert_eq!(losses.len(), reference.losses.len());
        for (a, b) in losses.iter().zip(&reference.losses) {
            assert!((a - b).abs() < tol, "loss {a} vs reference {b}");
        }

        // Scores per id and the AUC.
        let out = output_dataset(role(&results, Role::Guest), "train_output");
        assert_eq!(out.ids, joined.ids);
        let ref_scores = reference.scores(&joined);
        for (a, b) in out.columns[0].iter().zip(&ref_scores) {
            assert!((a - b).abs() < tol, "score {a} vs reference {b}");
        }
        let labels = out.labels.clone().expect("labels");
        let fed_auc = auc(&labels, &out.columns[0]);
        let ref_auc = reference.auc(&joined);
        assert!((fed_auc - ref_auc).abs() < 1e-3, "{fed_auc} vs {ref_auc}");

        // The guest alone, same settings: clearly worse.
        let guest_only = Table::from_dataset(&g);
        let alone = train(&guest_only, &fate_breast()).expect("guest only");
        let alone_auc = alone.auc(&guest_only);
        eprintln!(
            "breast, 10 epochs: federated AUC {fed_auc:.5}, reference (joined) {ref_auc:.5}, \
             guest only {alone_auc:.5}"
        );
        // The host's features are worth > 0.005 AUC here, and the federated run gets all of it.
        assert!(
            ref_auc > alone_auc + 0.005,
            "{ref_auc} vs guest only {alone_auc}"
        );
        assert!(
            fed_auc - alone_auc > 0.9 * (ref_auc - alone_auc),
            "{fed_auc} vs guest only {alone_auc}"
        );
        let apart = alone
            .weights
            .iter()
            .zip(&gm.weights)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(apart > 1000.0 * tol, "{apart}");
    }

    #[test]
    fn the_stop_rules_end_training_at_the_same_epoch_as_hetero_lr() {
        let (g, h) = breast();
        let joined = Table::join(&g, &[&h]);
        for (params, stop, stop_tol) in [
            (
                "{max_iter: 30, learning_rate: 0.3, alpha: 0.01, tol: 0.002, key_bits: 512}",
                StopRule::LossDiff,
                0.002,
            ),
            (
                "{max_iter: 30, batch_size: 200, learning_rate: 0.15, alpha: 0.01, tol: 0.02, \
                 early_stop: weight_diff, fit_intercept: false, seed: 7, key_bits: 512}",
                StopRule::WeightDiff,
                0.02,
            ),
        ] {
            let results = federated(&g, &h, params);
            let gm = model(role(&results, Role::Guest));
            let hm = model(role(&results, Role::Host));
            let batch = if params.contains("batch_size: 200") {
                200
            } else {
                -1
            };
            let s = Settings {
                max_iter: 30,
                batch_size: batch,
                learning_rate: if batch == 200 { 0.15 } else { 0.3 },
                alpha: 0.01,
                tol: stop_tol,
                stop,
                seed: if batch == 200 { 7 } else { 42 },
                fit_intercept: batch != 200,
                objective: Objective::Taylor,
            };
            let r = train(&joined, &s).expect("reference");
            let tol = tol(&r, &joined, s.batch_size, s.learning_rate);
            assert!(r.converged && r.epochs < 30, "{params}: {r:?}");
            assert_eq!((gm.iterations, gm.converged), (r.epochs, true), "{params}");
            let fed: Vec<f64> = gm.weights.iter().chain(&hm.weights).copied().collect();
            for (a, b) in fed.iter().zip(&r.weights) {
                assert!((a - b).abs() < tol, "{params}: {a} vs {b}");
            }
            assert!((gm.intercept - r.intercept).abs() < tol, "{params}");
            if !s.fit_intercept {
                assert_eq!((gm.intercept, r.intercept), (0.0, 0.0));
            }
        }
    }

    #[test]
    fn batches_cover_every_row_once_and_full_batches_keep_the_order() {
        let b = batches(569, 300, 42, 3);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![300, 269]);
        let mut all = b.concat();
        all.sort_unstable();
        assert_eq!(all, (0..569).collect::<Vec<_>>());
        assert_ne!(b, batches(569, 300, 42, 4));
        assert_eq!(batches(4, -1, 1, 0), vec![vec![0, 1, 2, 3]]);
        assert_eq!(batches(4, 10, 1, 0), vec![vec![0, 1, 2, 3]]);
    }

    #[test]
    fn auc_by_pairs_agrees_with_the_evaluation_components_rank_formula() {
        assert_eq!(auc(&[0.0, 1.0], &[0.1, 0.9]), 1.0);
        assert_eq!(auc(&[0.0, 1.0], &[0.9, 0.1]), 0.0);
        assert_eq!(auc(&[0.0, 1.0], &[0.5, 0.5]), 0.5);
        assert!(auc(&[1.0, 1.0], &[0.5, 0.6]).is_nan());
        // Scores with many ties.
        let labels: Vec<f64> = (0..500)
            .map(|i| f64::from((i * 7 % 11 < 4) as u8))
            .collect();
        let scores: Vec<f64> = (0..500)
            .map(|i| f64::from((i * 13 % 17) as u8) / 4.0)
            .collect();
        let a = auc(&labels, &scores);
        let b = crate::evaluation::auc(&labels, &scores);
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn the_exact_logistic_objective_learns_breast_and_its_loss_decreases() {
        let (g, h) = breast();
        let joined = Table::join(&g, &[&h]);
        let s = Settings {
            max_iter: 20,
            objective: Objective::Logistic,
            tol: 0.0,
            ..Settings::default()
        };
        let m = train(&joined, &s).expect("train");
        assert_eq!(m.epochs, 20);
        assert!(m.losses.windows(2).all(|w| w[1] < w[0]), "{:?}", m.losses);
        assert!((m.losses[0] - std::f64::consts::LN_2).abs() < 1e-12);
        assert!(m.auc(&joined) > 0.99);
    }

    #[test]
    fn join_keeps_the_guests_order_and_drops_ids_a_host_lacks() {
        let g = Dataset::new(
            vec!["c".into(), "a".into(), "b".into()],
            vec!["x".into()],
            vec![vec![3.0, 1.0, 2.0]],
            Some(("y".into(), vec![1.0, 0.0, 1.0])),
        )
        .expect("guest");
        let h = Dataset::new(
            vec!["a".into(), "c".into()],
            vec!["x".into(), "z".into()],
            vec![vec![10.0, 30.0], vec![-1.0, -3.0]],
            None,
        )
        .expect("host");
        let t = Table::join(&g, &[&h]);
        assert_eq!(t.ids, vec!["c", "a"]);
        assert_eq!(t.rows, vec![vec![3.0, 30.0, -3.0], vec![1.0, 10.0, -1.0]]);
        assert_eq!(t.labels, Some(vec![1.0, 0.0]));
        let p = Table::pool(&[&g, &g]);
        assert_eq!((p.len(), p.labels.map(|l| l.len())), (6, Some(6)));
    }
}
