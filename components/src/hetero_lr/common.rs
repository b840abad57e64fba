//! What every role of `hetero_lr` shares: parameters, the model, data helpers.

use consort_protocol::data::Dataset;
use consort_protocol::job::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::context::{Endpoint, Target, TaskContext, TaskError};
use crate::paillier::{PaillierError, to_fixed_i64};

use super::FX;

/// Version of [`HeteroLrModel`]'s encoding.
pub const MODEL_VERSION: u16 = 1;

/// One party's part of a trained hetero LR model (MessagePack, named fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeteroLrModel {
    /// Encoding version.
    pub v: u16,
    /// Role of the party that owns this part ("guest", "host", "arbiter").
    pub role: String,
    /// Feature names, one per weight, in the order of `weights`.
    pub header: Vec<String>,
    /// This party's weights.
    pub weights: Vec<f64>,
    /// The intercept (only at the guest; 0 elsewhere).
    pub intercept: f64,
    /// Whether the intercept was fitted.
    pub fit_intercept: bool,
    /// Epochs run.
    pub iterations: u32,
    /// Whether training stopped on convergence (not on `max_iter`).
    pub converged: bool,
}

impl HeteroLrModel {
    /// MessagePack bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TaskError> {
        rmp_serde::to_vec_named(self).map_err(|e| fail(format!("cannot encode model: {e}")))
    }

    /// Decodes and checks a model.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TaskError> {
        let m: Self = rmp_serde::from_slice(bytes)
            .map_err(|e| fail(format!("input 'model' is not a hetero_lr model: {e}")))?;
        if m.v != MODEL_VERSION {
            return Err(fail(format!(
                "hetero_lr model version {} is not supported",
                m.v
            )));
        }
        if m.header.len() != m.weights.len() {
            return Err(fail(format!(
                "hetero_lr model has {} feature names for {} weights",
                m.header.len(),
                m.weights.len()
            )));
        }
        Ok(m)
    }
}

/// Whether param `warm_start` is set: then a wired `model` is where training starts, not a
/// model to predict with.
pub fn warm_start(ctx: &dyn TaskContext) -> bool {
    ctx.param_bool("warm_start", false).unwrap_or(false)
}

/// The starting weights and intercept of a warm start (zeros without one): the model's, whose
/// features must be `data`'s.
pub fn initial_weights(
    ctx: &dyn TaskContext,
    data: &Dataset,
) -> Result<(Vec<f64>, f64), TaskError> {
    let zeros = (vec![0.0; data.cols()], 0.0);
    if !warm_start(ctx) {
        return Ok(zeros);
    }
    let Some(bytes) = ctx.input("model")? else {
        return Ok(zeros);
    };
    let m = HeteroLrModel::from_bytes(&bytes)?;
    if m.header != data.feature_names {
        return Err(fail(format!(
            "warm start: the model's features ({}) are not train_data's ({})",
            m.header.join(","),
            data.feature_names.join(",")
        )));
    }
    ctx.log(&format!(
        "hetero_lr: warm start from a model trained {} epochs",
        m.iterations
    ));
    Ok((m.weights, m.intercept))
}

/// How the arbiter decides convergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyStop {
    /// |loss − previous loss| < tol.
    Diff,
    /// ‖w − previous w‖ (all parties together) < tol.
    WeightDiff,
}

/// Parameters, with defaults.
#[derive(Debug, Clone)]
pub struct Params {
    pub max_iter: u32,
    pub batch_size: i64,
    pub learning_rate: f64,
    pub alpha: f64,
    pub tol: f64,
    pub early_stop: EarlyStop,
    pub key_bits: u64,
    pub seed: u64,
    pub fit_intercept: bool,
}

impl Params {
    /// Reads the parameters (absent ones take their defaults; `epochs` overrides `max_iter`).
    pub fn from_ctx(ctx: &dyn TaskContext) -> Result<Self, TaskError> {
        let p = ctx.params();
        let int = |name: &str, default: i64| ctx.param_int(name, default);
        let float = |name: &str, default: f64| ctx.param_float(name, default);
        let bad = |name: &str, why: &str| TaskError::Param(name.into(), why.into());
        let max_iter = match p.get("epochs") {
            Some(v) if !v.is_null() => int("epochs", 30)?,
            _ => int("max_iter", 30)?,
        };
        if !(1..=100_000).contains(&max_iter) {
            return Err(bad("max_iter", "must be between 1 and 100000"));
        }
        let batch_size = int("batch_size", -1)?;
        if batch_size == 0 || batch_size < -1 {
            return Err(bad("batch_size", "must be -1 (full batch) or positive"));
        }
        let learning_rate = float("learning_rate", 0.15)?;
        if learning_rate <= 0.0 {
            return Err(bad("learning_rate", "must be positive"));
        }
        let alpha = float("alpha", 0.01)?;
        if alpha < 0.0 {
            return Err(bad("alpha", "must not be negative"));
        }
        let tol = float("tol", 1e-4)?;
        let early_stop = match p.get("early_stop").and_then(|v| v.as_str()) {
            None | Some("diff") => EarlyStop::Diff,
            Some("weight_diff") => EarlyStop::WeightDiff,
            Some(other) => {
                return Err(bad(
                    "early_stop",
                    &format!("'{other}' is not one of \"diff\", \"weight_diff\""),
                ));
            }
        };
        let key_bits = int("key_bits", 2048)?;
        if key_bits % 2 != 0 || !(512..=8192).contains(&key_bits) {
            return Err(bad("key_bits", "must be even and between 512 and 8192"));
        }
        let seed = int("seed", 42)?;
        let fit_intercept = ctx.param_bool("fit_intercept", true)?;
        Ok(Self {
            max_iter: max_iter as u32,
            batch_size,
            learning_rate,
            alpha,
            tol,
            early_stop,
            key_bits: key_bits as u64,
            seed: seed as u64,
            fit_intercept,
        })
    }
}

/// A failure with a message.
pub fn fail(msg: impl Into<String>) -> TaskError {
    TaskError::Failed(msg.into())
}

/// A Paillier error as a task error.
pub fn crypto(e: PaillierError) -> TaskError {
    fail(format!("hetero_lr: {e}"))
}

/// Exactly one guest, one or more hosts, exactly one arbiter.
pub fn check_roles(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let count = |r: Role| ctx.endpoints().iter().filter(|e| e.role == r).count();
    let (g, h, a) = (count(Role::Guest), count(Role::Host), count(Role::Arbiter));
    if g != 1 || h < 1 || a != 1 {
        return Err(fail(format!(
            "hetero_lr needs exactly one guest, at least one host and exactly one arbiter \
             (this task has {g} guest(s), {h} host(s), {a} arbiter(s))"
        )));
    }
    Ok(())
}

/// The single endpoint of `role` (other than this one).
pub fn one(ctx: &dyn TaskContext, role: Role) -> Result<Target, TaskError> {
    ctx.resolve(&Target::Role(role))
        .into_iter()
        .next()
        .map(Target::One)
        .ok_or_else(|| fail(format!("hetero_lr: no {role} endpoint")))
}

/// The host endpoints, in a fixed order.
pub fn hosts(ctx: &dyn TaskContext) -> Vec<Endpoint> {
    ctx.resolve(&Target::Role(Role::Host))
}

/// Input `name` as a dataset (`None` if not wired).
pub fn dataset(ctx: &dyn TaskContext, name: &str) -> Result<Option<Dataset>, TaskError> {
    ctx.input(name)?
        .map(|b| {
            Dataset::from_bytes(&b).map_err(|e| fail(format!("hetero_lr: input '{name}': {e}")))
        })
        .transpose()
}

/// Input `name` as a dataset, required.
pub fn required_dataset(ctx: &dyn TaskContext, name: &str) -> Result<Dataset, TaskError> {
    dataset(ctx, name)?.ok_or_else(|| fail(format!("hetero_lr: input '{name}' is not wired")))
}

/// SHA-256 of the id list (count, then each id length-prefixed).
pub fn ids_hash(ids: &[String]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update((ids.len() as u64).to_le_bytes());
    for id in ids {
        h.update((id.len() as u64).to_le_bytes());
        h.update(id.as_bytes());
    }
    h.finalize().to_vec()
}

/// Labels as y' ∈ {−1, 1}; fails on anything but 0/1 labels.
pub fn signed_labels(ds: &Dataset) -> Result<Vec<f64>, TaskError> {
    let labels = ds
        .labels
        .as_ref()
        .ok_or_else(|| fail("hetero_lr: the guest's train_data has no labels"))?;
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| match y {
            0.0 => Ok(-1.0),
            1.0 => Ok(1.0),
            _ => Err(fail(format!(
                "hetero_lr: label {y} of row {i} (id '{}') is not 0 or 1",
                ds.ids[i]
            ))),
        })
        .collect()
}

/// Every feature as fixed point at [`FX`] bits, column by column; fails on values that do not
/// fit (non-finite or |x| ≥ 2^46).
pub fn fixed_columns(ds: &Dataset) -> Result<Vec<Vec<i64>>, TaskError> {
    ds.columns
        .iter()
        .zip(&ds.feature_names)
        .map(|(col, name)| {
            col.iter()
                .enumerate()
                .map(|(i, &x)| {
                    to_fixed_i64(x, FX).map_err(|_| {
                        fail(format!(
                            "hetero_lr: feature '{name}' of row {i} is {x}: not finite or too large"
                        ))
                    })
                })
                .collect()
        })
        .collect()
}

/// `X·w` (+ `b`) for the given rows (all rows when `rows` is `None`).
pub fn linear(ds: &Dataset, w: &[f64], b: f64, rows: Option<&[usize]>) -> Vec<f64> {
    let n = rows.map_or(ds.rows(), <[usize]>::len);
    let mut u = vec![b; n];
    for (col, &wj) in ds.columns.iter().zip(w) {
        match rows {
            Some(rows) => u
                .iter_mut()
                .zip(rows)
                .for_each(|(ui, &r)| *ui += wj * col[r]),
            None => u.iter_mut().zip(col).for_each(|(ui, &x)| *ui += wj * x),
        }
    }
    u
}

/// The columns of `ds` in the order of `header` (predict mode); fails if one is missing.
pub fn columns_for(ds: &Dataset, header: &[String]) -> Result<Dataset, TaskError> {
    let mut cols = Vec::with_capacity(header.len());
    for name in header {
        let c = ds.column(name).ok_or_else(|| {
            fail(format!(
                "hetero_lr: test_data has no feature '{name}' that the model was trained on"
            ))
        })?;
        cols.push(c.to_vec());
    }
    Dataset::new(
        ds.ids.clone(),
        header.to_vec(),
        cols,
        ds.label_name.clone().zip(ds.labels.clone()),
    )
    .map_err(|e| fail(format!("hetero_lr: {e}")))
}

/// The batches of epoch `epoch`: row indices, identical at every party for the same seed.
/// Full batch (`batch_size` −1 or ≥ rows) keeps the row order; otherwise the rows are
/// shuffled per epoch (Fisher–Yates driven by splitmix64 of the seed and epoch) and cut.
pub fn batches(rows: usize, batch_size: i64, seed: u64, epoch: u32) -> Vec<Vec<usize>> {
    if rows == 0 {
        return Vec::new();
    }
    let bs = if batch_size < 0 {
        rows
    } else {
        (batch_size as usize).min(rows)
    };
    let mut order: Vec<usize> = (0..rows).collect();
    if bs < rows {
        let mut state = seed ^ (u64::from(epoch).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..rows).rev() {
            let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order.chunks(bs).map(<[usize]>::to_vec).collect()
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The score output: ids, labels (if any), one column "score".
pub fn score_output(ds: &Dataset, scores: Vec<f64>) -> Result<Vec<u8>, TaskError> {
    Dataset::new(
        ds.ids.clone(),
        vec!["score".into()],
        vec![scores],
        ds.label_name.clone().zip(ds.labels.clone()),
    )
    .and_then(|d| d.to_bytes())
    .map_err(|e| fail(format!("hetero_lr: cannot write scores: {e}")))
}
