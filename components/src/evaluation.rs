//! `evaluation`: binary-classification metrics of a scored dataset (labels + a "score"
//! column, as every learner's `train_output`/`predict_output` has).
//!
//! AUC is rank based and tie aware (tied scores share their average rank, i.e. a tie counts
//! one half); KS is the largest TPR − FPR over all distinct thresholds; the ROC curve has one
//! point per distinct score (plus (0,0)), thinned to at most [`MAX_ROC_POINTS`]. Accuracy,
//! precision, recall, F1 and the confusion matrix predict 1 when `score ≥ threshold`;
//! precision (recall) is 0 when nothing is predicted (is) positive, F1 is 0 when both are 0.
//! AUC and KS are undefined (NaN, `null` in the report, not logged) when only one class is
//! present.

use consort_protocol::data::Dataset;
use serde_json::json;

use crate::context::{TaskContext, TaskError};

/// At most this many ROC points are logged and reported.
pub const MAX_ROC_POINTS: usize = 200;

/// Metric namespace.
pub const NAMESPACE: &str = "evaluation";

/// Confusion matrix at a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives.
    pub fn_: u64,
}

impl Confusion {
    /// Counts at `threshold` (predict 1 when score ≥ threshold); labels are 0/1.
    pub fn at(labels: &[f64], scores: &[f64], threshold: f64) -> Self {
        let mut c = Self::default();
        for (&y, &s) in labels.iter().zip(scores) {
            match (y > 0.5, s >= threshold) {
                (true, true) => c.tp += 1,
                (false, true) => c.fp += 1,
                (false, false) => c.tn += 1,
                (true, false) => c.fn_ += 1,
            }
        }
        c
    }
    /// (tp + tn) / all.
    pub fn accuracy(&self) -> f64 {
        ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn_)
    }
    /// tp / (tp + fp), 0 if nothing is predicted positive.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// tp / (tp + fn), 0 if nothing is positive.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// Harmonic mean of precision and recall, 0 if both are 0.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Indices sorted by descending score (NaN scores last).
fn by_score_desc(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx
}

/// Tie-aware AUC (probability that a random positive outranks a random negative, ties ½);
/// NaN if either class is absent. Labels are 0/1 (> 0.5 counts as positive).
pub fn auc(labels: &[f64], scores: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len().min(labels.len())).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut pos) = (0.0, 0u64);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] > 0.5 {
                rank_sum += avg_rank;
                pos += 1;
            }
        }
        i = j + 1;
    }
    let neg = idx.len() as u64 - pos;
    if pos == 0 || neg == 0 {
        return f64::NAN;
    }
    (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64)
}

/// ROC points (fpr, tpr) from (0, 0) to (1, 1), one per distinct score; empty if either
/// class is absent.
pub fn roc(labels: &[f64], scores: &[f64]) -> Vec<(f64, f64)> {
    let pos = labels.iter().filter(|&&y| y > 0.5).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Vec::new();
    }
    let idx = by_score_desc(scores);
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] > 0.5 {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        points.push((fp / neg, tp / pos));
    }
    points
}

/// Kolmogorov–Smirnov statistic: max(TPR − FPR) over thresholds; NaN if a class is absent.
pub fn ks(labels: &[f64], scores: &[f64]) -> f64 {
    let points = roc(labels, scores);
    if points.is_empty() {
        return f64::NAN;
    }
    points.iter().map(|(f, t)| t - f).fold(0.0, f64::max)
}

/// At most `max` points of `points`, evenly spaced, keeping the first and the last.
pub fn downsample(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let last = points.len() - 1;
    (0..max).map(|k| points[k * last / (max - 1)]).collect()
}

/// Everything `evaluation` computes.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// AUC (NaN if undefined).
    pub auc: f64,
    /// KS (NaN if undefined).
    pub ks: f64,
    /// Confusion matrix at the threshold.
    pub confusion: Confusion,
    /// ROC points, at most [`MAX_ROC_POINTS`].
    pub roc: Vec<(f64, f64)>,
    /// The threshold used.
    pub threshold: f64,
}

/// Computes the report; fails on missing labels, missing/extra score column, non-0/1 labels.
pub fn evaluate(data: &Dataset, threshold: f64) -> Result<Report, TaskError> {
    let labels = data
        .labels
        .as_ref()
        .ok_or_else(|| TaskError::Failed("evaluation: input 'data' has no labels".into()))?;
    let scores = data.column("score").ok_or_else(|| {
        TaskError::Failed(format!(
            "evaluation: input 'data' has no \"score\" column (columns: {:?})",
            data.feature_names
        ))
    })?;
    if let Some((i, y)) = labels
        .iter()
        .enumerate()
        .find(|(_, y)| **y != 0.0 && **y != 1.0)
    {
        return Err(TaskError::Failed(format!(
            "evaluation: label {y} of row {i} is not 0 or 1 (binary evaluation only)"
        )));
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(TaskError::Failed(format!(
            "evaluation: score of row {i} is not finite"
        )));
    }
    Ok(Report {
        auc: auc(labels, scores),
        ks: ks(labels, scores),
        confusion: Confusion::at(labels, scores, threshold),
        roc: downsample(&roc(labels, scores), MAX_ROC_POINTS),
        threshold,
    })
}

fn num(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}

/// Entry point of component `evaluation`.
pub fn evaluation(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let bytes = ctx
        .input("data")?
        .ok_or_else(|| TaskError::Failed("evaluation: input 'data' is not wired".into()))?;
    let data = Dataset::from_bytes(&bytes)
        .map_err(|e| TaskError::Failed(format!("evaluation: input 'data': {e}")))?;
    let threshold = match ctx.params().get("threshold") {
        None | Some(serde_json::Value::Null) => 0.5,
        Some(_) => ctx.param_f64("threshold")?,
    };
    let r = evaluate(&data, threshold)?;
    let c = r.confusion;
    let scalars = [
        ("auc", r.auc),
        ("ks", r.ks),
        ("accuracy", c.accuracy()),
        ("precision", c.precision()),
        ("recall", c.recall()),
        ("f1", c.f1()),
    ];
    for (name, value) in scalars {
        if value.is_finite() {
            ctx.log_metric(NAMESPACE, name, &[(0.0, value)])?;
        }
    }
    if !r.roc.is_empty() {
        ctx.log_metric(NAMESPACE, "roc", &r.roc)?;
        ctx.set_metric_meta(NAMESPACE, "roc", json!({"curve": "roc"}))?;
    }
    let confusion = json!({"tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn_});
    ctx.set_metric_meta(NAMESPACE, "confusion", confusion.clone())?;
    let mut report = json!({
        "v": 1,
        "rows": data.rows(),
        "positives": c.tp + c.fn_,
        "negatives": c.tn + c.fp,
        "threshold": threshold,
        "confusion": confusion,
        "roc": r.roc.iter().map(|&(f, t)| json!([f, t])).collect::<Vec<_>>(),
    });
    for (name, value) in scalars {
        report[name] = num(value);
    }
    let bytes = serde_json::to_vec_pretty(&report)
        .map_err(|e| TaskError::Failed(format!("evaluation: cannot write report: {e}")))?;
    ctx.output("report", &bytes)?;
    ctx.log(&format!(
        "evaluation: {} rows, auc {:.4}, ks {:.4}, accuracy {:.4}, f1 {:.4} at threshold {threshold}",
        data.rows(),
        r.auc,
        r.ks,
        c.accuracy(),
        c.f1()
    ));
    Ok(())
}

#[cfg(test)]
mod tests;
