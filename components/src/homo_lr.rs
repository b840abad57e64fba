//! `homo_lr`: horizontal (homogeneous) logistic regression by federated averaging with secure
//! aggregation.
//!
//! Roles: data parties (`guest` and `host`; each has labels and the same feature columns) and
//! exactly one `arbiter` (the aggregator; it may be the same organisation as a data party).
//!
//! # Training (input `model` not wired; input `train_data`, optional `test_data`)
//! 1. Set-up: every data party makes a fresh ristretto255 key pair and sends its public key and
//!    its feature names directly to every other data party (`homo_lr.pk`); names must agree.
//!    Each pair `(i, j)` derives a shared seed `SHA-512(domain ‖ sk_i·pk_j ‖ job ‖ task)`.
//! 2. Round `r`: every data party starts from the global weights, trains `local_epochs` epochs of
//!    mini-batch SGD (`batch_size`, −1 = full batch, shuffling seeded by `seed`, `r`, epoch) with
//!    `learning_rate` and L2 `alpha`, and uploads the vector
//!    `[w·n (d values), b·n, n, loss·n]` (n its sample count, loss its local model's loss on its
//!    data) in fixed point — each value `round(x·2^24)` as a two's-complement u64 — plus the
//!    mask `Σ_{j>i} PRG(s_ij, r) − Σ_{j<i} PRG(s_ij, r)` (wrapping u64 arithmetic; PRG =
//!    SHA-512 in counter mode). The arbiter sums the uploads: the masks cancel, leaving the
//!    weighted sums. It divides by the total count, logs the loss, and returns the global
//!    weights, the loss and whether to stop (`homo_lr.down.{r}`).
//! 3. Stop after `rounds` rounds (alias `max_iter`, which wins if given) or when the aggregated
//!    loss changes by less than `tol`.
//!
//! Every data party ends with the same global weights and writes `model` (MessagePack
//! [`HomoLrModel`]), `train_output` (scores on its training data) and, if `test_data` is wired,
//! `predict_output`. The arbiter writes `model` too.
//!
//! # Per-round outputs (JSON, training only)
//! So that a party can see how training went, and check the aggregation for itself:
//! * `global_models` — every endpoint (data parties and the arbiter), identical bytes at all of
//!   them ([`GlobalModels`]): `{"v": 1, "feature_names": [..], "rounds": [{"round": 0,
//!   "weights": [..], "intercept": x, "loss": x}, ..]}`, the global model the arbiter sent after
//!   each round and the aggregated loss.
//! * `local_models` — data parties only ([`LocalModels`]): `{"v": 1, "feature_names": [..],
//!   "samples": n, "rounds": [{"round": 0, "weights": [..], "intercept": x, "loss": x}, ..]}`,
//!   this party's own local model of each round before aggregation (the one it uploaded, times
//!   `n`, in fixed point and masked), its loss on this party's data, and its row count `n`.
//!
//! Numbers are written in the shortest form that reads back as the same f64 (with a correctly
//! rounding parser). Outputs stay at the party that wrote them (`consort job output JOB TASK
//! local_models` answers at that party only), so nothing here reaches anyone who did not
//! already know it: a data party sees its own update and the global models it received; the
//! arbiter, the global models it computed.
//!
//! After round `r`, `global.weights = Σ_i n_i·local_i.weights / Σ_i n_i` (likewise the
//! intercept and the loss) up to fixed-point rounding: each party's `w·n` is rounded to a
//! multiple of 2^-24, so each global value is within `k·2^-25 / Σ n_i` of the exact weighted
//! mean for `k` data parties (6.6·10^-11 per party for 455 rows). Round `r + 1` starts from the
//! global model of round `r` (round 0 from zero, or from the warm-start model).
//!
//! # Predict (input `model` wired at the data parties)
//! Data parties score input `test_data` locally into `predict_output`. Their only message is
//! `homo_lr.pk` with `predict: true` to the arbiter (if the task has one), which then ends
//! without output; so the arbiter needs no inputs in either mode.
//!
//! # What each party learns
//! The arbiter learns only the per-round sums: the global model, the total sample count and the
//! average loss — not any party's weights, count or loss (each upload is masked by pseudo-random
//! values from seeds it does not know). Data parties learn the global model and loss each round.
//! Secure against a semi-honest arbiter and semi-honest data parties that do not collude with it
//! (a coalition of the arbiter and all but one data party learns the last one's update, as with
//! any sum). No dropout tolerance: a party that leaves makes the task fail.
//!
//! # Wire format (MessagePack with field names)
//! * `homo_lr.pk` (to every other data party and to the arbiter, which checks the names too):
//!   `{v: 1, pk: bin(32) compressed ristretto point, feature_names: [str], predict: bool}`
//!   (`predict: true` and an empty `pk` in predict mode).
//! * `homo_lr.up.{r}`: `{v: 1, data: bin}` — `dim` little-endian u64 values, `dim = d + 3`.
//! * `homo_lr.down.{r}`: `{v: 1, weights: [f64], intercept: f64, loss: f64, stop: bool}`.

use std::time::Instant;

use consort_protocol::data::Dataset;
use consort_protocol::job::{ParamSpec, ParamType, Role};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::scalar::Scalar;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha512};

use crate::context::{Endpoint, Target, TaskContext, TaskError};

/// Version of the wire messages and of [`HomoLrModel`].
const VERSION: u16 = 1;
/// Fixed-point scale: 2^24.
const SCALE: f64 = 16_777_216.0;
/// Largest magnitude accepted for encoding (well inside i64, so sums of many parties fit).
const MAX_ABS: f64 = 1e10;
const MASK_DOMAIN: &[u8] = b"consort/homo_lr/v1/mask-seed";
const PRG_DOMAIN: &[u8] = b"consort/homo_lr/v1/prg";

/// The schema's parameters.
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::with_default("rounds", ParamType::Int, json!(10)),
        ParamSpec::optional("max_iter", ParamType::Int),
        ParamSpec::with_default("local_epochs", ParamType::Int, json!(1)),
        ParamSpec::with_default("learning_rate", ParamType::Float, json!(0.1)),
        ParamSpec::with_default("alpha", ParamType::Float, json!(0.01)),
        ParamSpec::with_default("batch_size", ParamType::Int, json!(-1)),
        ParamSpec::with_default("seed", ParamType::Int, json!(42)),
        ParamSpec::with_default("tol", ParamType::Float, json!(1e-4)),
        ParamSpec::with_default("fit_intercept", ParamType::Bool, json!(true)),
        ParamSpec::with_default("warm_start", ParamType::Bool, json!(false)),
    ]
}

/// A trained model: the same at every party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HomoLrModel {
    /// Format version.
    pub v: u16,
    /// Feature names, in weight order.
    pub feature_names: Vec<String>,
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// Intercept (0 without `fit_intercept`).
    pub intercept: f64,
    /// Whether the intercept was fitted.
    pub fit_intercept: bool,
    /// Rounds run.
    pub rounds: u32,
    /// Aggregated training loss per round.
    pub loss_history: Vec<f64>,
}

/// One round's model in the per-round outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundModel {
    /// Round number, from 0.
    pub round: u32,
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// Intercept.
    pub intercept: f64,
    /// Loss: a local model's on its party's data, or the aggregated (row-weighted) loss.
    pub loss: f64,
}

/// Output `global_models`: the global model after each round (the same at every endpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalModels {
    /// Format version.
    pub v: u16,
    /// Feature names, in weight order.
    pub feature_names: Vec<String>,
    /// One entry per round.
    pub rounds: Vec<RoundModel>,
}

/// Output `local_models` (data parties only): this party's local model of each round, before
/// aggregation, and its row count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalModels {
    /// Format version.
    pub v: u16,
    /// Feature names, in weight order.
    pub feature_names: Vec<String>,
    /// This party's training rows: its weight in the average.
    pub samples: u64,
    /// One entry per round.
    pub rounds: Vec<RoundModel>,
}

fn json_output<T: Serialize>(ctx: &dyn TaskContext, name: &str, v: &T) -> Result<(), TaskError> {
    let mut bytes = serde_json::to_vec_pretty(v).map_err(|e| fail(format!("{name}: {e}")))?;
    bytes.push(b'\n');
    ctx.output(name, &bytes)
}

#[derive(Serialize, Deserialize)]
struct PkMsg {
    v: u16,
    #[serde(with = "serde_bytes")]
    pk: Vec<u8>,
    feature_names: Vec<String>,
    /// Predict mode: no training follows (sent to the arbiter only).
    #[serde(default)]
    predict: bool,
}

#[derive(Serialize, Deserialize)]
struct UpMsg {
    v: u16,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct DownMsg {
    v: u16,
    weights: Vec<f64>,
    intercept: f64,
    loss: f64,
    stop: bool,
}

fn fail(msg: impl Into<String>) -> TaskError {
    TaskError::Failed(format!("homo_lr: {}", msg.into()))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, TaskError> {
    rmp_serde::to_vec_named(v).map_err(|e| fail(format!("encode: {e}")))
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, TaskError> {
    rmp_serde::from_slice(bytes).map_err(|e| fail(format!("malformed {what}: {e}")))
}

/// Training parameters.
#[derive(Debug, Clone)]
pub struct TrainParams {
    /// Maximum rounds.
    pub rounds: u32,
    /// Local epochs per round.
    pub local_epochs: u32,
    /// SGD step.
    pub learning_rate: f64,
    /// L2 strength.
    pub alpha: f64,
    /// Mini-batch size; `None` = full batch.
    pub batch_size: Option<usize>,
    /// Shuffling seed.
    pub seed: u64,
    /// Early-stop tolerance on the loss change.
    pub tol: f64,
    /// Fit an intercept.
    pub fit_intercept: bool,
}

impl TrainParams {
    /// Reads the parameters (defaults as in the schema).
    pub fn from_ctx(ctx: &dyn TaskContext) -> Result<Self, TaskError> {
        let p = ctx.params();
        let int = |name: &str, default: i64| ctx.param_int(name, default);
        let float = |name: &str, default: f64| ctx.param_float(name, default);
        let rounds = match p.get("max_iter") {
            Some(v) if !v.is_null() => int("max_iter", 10)?,
            _ => int("rounds", 10)?,
        };
        let positive = |name: &str, v: i64| -> Result<u32, TaskError> {
            u32::try_from(v)
                .ok()
                .filter(|&x| x > 0)
                .ok_or_else(|| TaskError::Param(name.into(), "must be a positive integer".into()))
        };
        let batch = int("batch_size", -1)?;
        let learning_rate = float("learning_rate", 0.1)?;
        if learning_rate <= 0.0 {
            return Err(TaskError::Param(
                "learning_rate".into(),
                "must be positive".into(),
            ));
        }
        let alpha = float("alpha", 0.01)?;
        if alpha < 0.0 {
            return Err(TaskError::Param("alpha".into(), "must be ≥ 0".into()));
        }
        Ok(Self {
            rounds: positive("rounds", rounds)?,
            local_epochs: positive("local_epochs", int("local_epochs", 1)?)?,
            learning_rate,
            alpha,
            batch_size: match batch {
                -1 => None,
                b if b > 0 => Some(
                    usize::try_from(b)
                        .map_err(|_| TaskError::Param("batch_size".into(), "too large".into()))?,
                ),
                _ => {
                    return Err(TaskError::Param(
                        "batch_size".into(),
                        "must be positive or -1 (full batch)".into(),
                    ));
                }
            },
            seed: int("seed", 42)? as u64,
            tol: float("tol", 1e-4)?,
            fit_intercept: ctx.param_bool("fit_intercept", true)?,
        })
    }
}

/// Training rows in row-major form with 0/1 labels.
pub struct Rows {
    /// Row-major features, `n × d`.
    pub x: Vec<f64>,
    /// Labels, 0 or 1.
    pub y: Vec<f64>,
    /// Feature count.
    pub d: usize,
}

impl Rows {
    /// Converts a dataset (labels required, 0/1).
    pub fn from_dataset(data: &Dataset, what: &str) -> Result<Self, TaskError> {
        let labels = data
            .labels
            .as_ref()
            .ok_or_else(|| fail(format!("{what} has no labels")))?;
        if let Some(bad) = labels.iter().find(|&&y| y != 0.0 && y != 1.0) {
            return Err(fail(format!("{what}: labels must be 0 or 1, found {bad}")));
        }
        Ok(Self {
            x: row_major(data),
            y: labels.clone(),
            d: data.cols(),
        })
    }

    /// Number of rows.
    pub fn n(&self) -> usize {
        self.y.len()
    }
}

fn row_major(data: &Dataset) -> Vec<f64> {
    let (n, d) = (data.rows(), data.cols());
    let mut x = vec![0.0; n * d];
    for (j, col) in data.columns.iter().enumerate() {
        for (i, v) in col.iter().enumerate() {
            x[i * d + j] = *v;
        }
    }
    x
}

pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

pub(crate) fn dot(w: &[f64], x: &[f64]) -> f64 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

/// Mean logistic loss plus `alpha/2·‖w‖²`.
pub fn loss(rows: &Rows, w: &[f64], b: f64, alpha: f64) -> f64 {
    let n = rows.n();
    if n == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for i in 0..n {
        let z = dot(w, &rows.x[i * rows.d..(i + 1) * rows.d]) + b;
        // log(1 + e^z) − y·z, computed stably.
        let softplus = if z > 0.0 {
            z + (-z).exp().ln_1p()
        } else {
            z.exp().ln_1p()
        };
        total += softplus - rows.y[i] * z;
    }
    total / n as f64 + 0.5 * alpha * dot(w, w)
}

/// One round of local training from `(w, b)`: returns the new weights, intercept and the loss
/// of the result on `rows`. Deterministic given `p.seed`, `round` and the data.
pub fn local_train(
    rows: &Rows,
    w: &[f64],
    b: f64,
    p: &TrainParams,
    round: u32,
) -> (Vec<f64>, f64, f64) {
    let (n, d) = (rows.n(), rows.d);
    let mut w = w.to_vec();
    let mut b = b;
    let mut order: Vec<usize> = (0..n).collect();
    let batch = p.batch_size.unwrap_or(n).clamp(1, n.max(1));
    let mut grad = vec![0.0; d];
    for epoch in 0..p.local_epochs {
        if batch < n {
            let s = p.seed ^ (u64::from(round) << 32) ^ u64::from(epoch).wrapping_mul(0x9E37_79B9);
            order.shuffle(&mut StdRng::seed_from_u64(s));
        }
        for chunk in order.chunks(batch) {
            grad.iter_mut().for_each(|g| *g = 0.0);
            let mut gb = 0.0;
            for &i in chunk {
                let x = &rows.x[i * d..(i + 1) * d];
                let err = sigmoid(dot(&w, x) + b) - rows.y[i];
                for (g, xv) in grad.iter_mut().zip(x) {
                    *g += err * xv;
                }
                gb += err;
            }
            let m = chunk.len() as f64;
            for (wj, g) in w.iter_mut().zip(&grad) {
                *wj -= p.learning_rate * (g / m + p.alpha * *wj);
            }
            if p.fit_intercept {
                b -= p.learning_rate * gb / m;
            }
        }
    }
    let l = loss(rows, &w, b, p.alpha);
    (w, b, l)
}

/// The clear upload vector `[w·n, b·n, n, loss·n]` in fixed point.
pub fn clear_vector(w: &[f64], b: f64, n: usize, loss: f64) -> Result<Vec<u64>, TaskError> {
    let nf = n as f64;
    w.iter()
        .map(|x| x * nf)
        .chain([b * nf, nf, loss * nf])
        .map(to_fixed)
        .collect()
}

/// `round(x·2^24)` as a two's-complement u64.
pub fn to_fixed(x: f64) -> Result<u64, TaskError> {
    if !x.is_finite() || x.abs() > MAX_ABS {
        return Err(fail(format!(
            "value {x} cannot be encoded (diverged? try a smaller learning_rate)"
        )));
    }
    Ok((x * SCALE).round() as i64 as u64)
}

/// Decodes a (summed) fixed-point value.
pub fn from_fixed(v: u64) -> f64 {
    v as i64 as f64 / SCALE
}

/// `dim` pseudo-random u64 values from `seed` for `round` (SHA-512 in counter mode).
pub fn prg(seed: &[u8; 32], round: u32, dim: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(dim + 8);
    let mut block = 0u64;
    while out.len() < dim {
        let h = Sha512::new()
            .chain_update(PRG_DOMAIN)
            .chain_update(seed)
            .chain_update(round.to_le_bytes())
            .chain_update(block.to_le_bytes())
            .finalize();
        for c in h.as_slice().chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            out.push(u64::from_le_bytes(b));
        }
        block += 1;
    }
    out.truncate(dim);
    out
}

/// Adds party `me`'s mask to `v` in place: `+PRG(s_ij)` for peers `j > me`, `−PRG(s_ij)` for
/// `j < me`. `seeds` holds `(j, s_ij)` for every other data party `j`.
pub fn apply_mask(v: &mut [u64], me: usize, seeds: &[(usize, [u8; 32])], round: u32) {
    for (j, seed) in seeds {
        let r = prg(seed, round, v.len());
        for (x, m) in v.iter_mut().zip(r) {
            *x = if *j > me {
                x.wrapping_add(m)
            } else {
                x.wrapping_sub(m)
            };
        }
    }
}

/// A data party's key pair for agreeing mask seeds.
pub struct MaskKey {
    sk: Scalar,
    /// Compressed public key.
    pub pk: [u8; 32],
}

impl MaskKey {
    /// A fresh key pair.
    pub fn random() -> Self {
        let sk = Scalar::random(&mut rand::rng());
        let pk = (&sk * RISTRETTO_BASEPOINT_TABLE).compress().to_bytes();
        Self { sk, pk }
    }

    /// The seed shared with the holder of `peer_pk`, bound to `context` (job and task).
    pub fn seed(&self, peer_pk: &[u8], context: &[u8]) -> Result<[u8; 32], TaskError> {
        let point = CompressedRistretto::from_slice(peer_pk)
            .ok()
            .and_then(|c| c.decompress())
            .ok_or_else(|| fail("a peer's public key is not a ristretto point"))?;
        let shared = (self.sk * point).compress();
        let h = Sha512::new()
            .chain_update(MASK_DOMAIN)
            .chain_update(shared.as_bytes())
            .chain_update(context)
            .finalize();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&h.as_slice()[..32]);
        Ok(seed)
    }
}

fn data_parties(ctx: &dyn TaskContext) -> Vec<Endpoint> {
    let mut v: Vec<Endpoint> = ctx
        .endpoints()
        .iter()
        .filter(|e| e.role != Role::Arbiter)
        .cloned()
        .collect();
    v.sort();
    v
}

fn the_arbiter(ctx: &dyn TaskContext) -> Result<Endpoint, TaskError> {
    let arbiters: Vec<&Endpoint> = ctx
        .endpoints()
        .iter()
        .filter(|e| e.role == Role::Arbiter)
        .collect();
    match arbiters.as_slice() {
        [one] => Ok((*one).clone()),
        _ => Err(fail(format!(
            "needs exactly one arbiter, the task has {}",
            arbiters.len()
        ))),
    }
}

fn read_dataset(ctx: &dyn TaskContext, name: &str) -> Result<Option<Dataset>, TaskError> {
    ctx.input(name)?
        .map(|b| Dataset::from_bytes(&b).map_err(|e| fail(format!("input '{name}': {e}"))))
        .transpose()
}

/// The `homo_lr` component (see the module docs).
pub fn homo_lr(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    // The arbiter learns the mode from the data parties' first message, so it needs no inputs.
    if ctx.me().role == Role::Arbiter {
        return run_arbiter(ctx, &mut |_, _| {});
    }
    let warm = ctx.param_bool("warm_start", false)?;
    if let Some(model) = ctx.input("model")?.filter(|_| !warm) {
        let model: HomoLrModel = decode(&model, "input 'model'")?;
        if model.v != VERSION {
            return Err(fail(format!("model version {} is not {VERSION}", model.v)));
        }
        return predict_mode(ctx, &model);
    }
    run_data_party(ctx)
}

fn predict_mode(ctx: &dyn TaskContext, model: &HomoLrModel) -> Result<(), TaskError> {
    // Tell the arbiter, if the task has one, that there is no training.
    let hello = encode(&PkMsg {
        v: VERSION,
        pk: Vec::new(),
        feature_names: model.feature_names.clone(),
        predict: true,
    })?;
    ctx.remote(&Target::Role(Role::Arbiter), "homo_lr.pk", &hello)?;
    let test = read_dataset(ctx, "test_data")?
        .ok_or_else(|| fail("predict mode needs input 'test_data'"))?;
    let out = score(model, &test)?;
    ctx.output("predict_output", &out)?;
    ctx.log(&format!("homo_lr: scored {} rows", test.rows()));
    Ok(())
}

/// Scores `data` with `model`: a dataset with the same ids, labels if any, and column `score`.
pub fn score(model: &HomoLrModel, data: &Dataset) -> Result<Vec<u8>, TaskError> {
    if data.feature_names != model.feature_names {
        return Err(fail(format!(
            "features {:?} do not match the model's {:?}",
            data.feature_names, model.feature_names
        )));
    }
    let x = row_major(data);
    let d = data.cols();
    let scores: Vec<f64> = (0..data.rows())
        .map(|i| sigmoid(dot(&model.weights, &x[i * d..(i + 1) * d]) + model.intercept))
        .collect();
    let out = Dataset::new(
        data.ids.clone(),
        vec!["score".into()],
        vec![scores],
        data.label_name.clone().zip(data.labels.clone()),
    )
    .map_err(|e| fail(e.to_string()))?;
    out.to_bytes().map_err(|e| fail(e.to_string()))
}

/// Observer of the arbiter's raw (masked) uploads, for tests: `(round, uploads)`.
pub type UploadObserver<'a> = dyn FnMut(u32, &[(Endpoint, Vec<u64>)]) + 'a;

/// The arbiter's part; `observe` sees each round's masked uploads.
pub fn run_arbiter(
    ctx: &dyn TaskContext,
    observe: &mut UploadObserver<'_>,
) -> Result<(), TaskError> {
    let p = TrainParams::from_ctx(ctx)?;
    let parties = data_parties(ctx);
    if parties.is_empty() {
        return Err(fail("needs at least one data party (guest or host)"));
    }
    if parties.len() == 1 {
        ctx.log("homo_lr: warning: one data party only, the arbiter sees its model in clear");
    }
    // Every data party announces its features (its public key is not used here).
    let mut feature_names: Option<Vec<String>> = None;
    let mut predicting = 0;
    for party in &parties {
        let (_, bytes) = ctx
            .get(&Target::One(party.clone()), "homo_lr.pk")?
            .pop()
            .ok_or_else(|| TaskError::Channel(format!("no features from {party}")))?;
        let msg: PkMsg = decode(&bytes, &format!("key message from {party}"))?;
        if msg.v != VERSION {
            return Err(fail(format!("{party} speaks version {}", msg.v)));
        }
        predicting += usize::from(msg.predict);
        match &feature_names {
            None => feature_names = Some(msg.feature_names),
            Some(names) if *names != msg.feature_names => {
                return Err(fail(format!(
                    "{party} has features {:?}, others {names:?}: they must be the same, in the same order",
                    msg.feature_names
                )));
            }
            Some(_) => {}
        }
    }
    match predicting {
        0 => {}
        k if k == parties.len() => {
            ctx.log("homo_lr arbiter: predict mode, nothing to aggregate");
            return Ok(());
        }
        k => {
            return Err(fail(format!(
                "{k} of {} data parties have a model (predict) and the others train",
                parties.len()
            )));
        }
    }
    let feature_names = feature_names.unwrap_or_default();
    let to_parties = Target::Role(Role::Guest);
    let to_hosts = Target::Role(Role::Host);
    let mut prev: Option<f64> = None;
    let mut history = Vec::new();
    let mut last = (Vec::new(), 0.0);
    let mut global_rounds = Vec::new();
    let mut dim = None;
    for round in 0..p.rounds {
        if ctx.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        let t = Instant::now();
        let tag = format!("homo_lr.up.{round}");
        let mut uploads = Vec::with_capacity(parties.len());
        for party in &parties {
            let (from, bytes) = ctx
                .get(&Target::One(party.clone()), &tag)?
                .pop()
                .ok_or_else(|| TaskError::Channel(format!("no upload from {party}")))?;
            let msg: UpMsg = decode(&bytes, &format!("upload from {from}"))?;
            if msg.v != VERSION || msg.data.len() < 24 || !msg.data.len().is_multiple_of(8) {
                return Err(fail(format!(
                    "{from} sent a bad upload (version {}, {} bytes)",
                    msg.v,
                    msg.data.len()
                )));
            }
            let values: Vec<u64> = msg
                .data
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    u64::from_le_bytes(b)
                })
                .collect();
            match dim {
                None if values.len() != feature_names.len() + 3 => {
                    return Err(fail(format!(
                        "{from} uploaded {} values for {} features",
                        values.len(),
                        feature_names.len()
                    )));
                }
                None => dim = Some(values.len()),
                Some(k) if k != values.len() => {
                    return Err(fail(format!(
                        "{from} uploaded {} values, others {k}",
                        values.len()
                    )));
                }
                Some(_) => {}
            }
            uploads.push((from, values));
        }
        observe(round, &uploads);
        let k = dim.unwrap_or(0);
        let mut sum = vec![0u64; k];
        for (_, v) in &uploads {
            for (s, x) in sum.iter_mut().zip(v) {
                *s = s.wrapping_add(*x);
            }
        }
        let decoded: Vec<f64> = sum.into_iter().map(from_fixed).collect();
        let total_n = decoded[k - 2];
        if total_n < 0.5 {
            return Err(fail("the data parties have no training rows"));
        }
        let weights: Vec<f64> = decoded[..k - 3].iter().map(|x| x / total_n).collect();
        let intercept = decoded[k - 3] / total_n;
        let loss = decoded[k - 1] / total_n;
        history.push(loss);
        let converged = prev.is_some_and(|l| (l - loss).abs() < p.tol);
        let stop = converged || round + 1 == p.rounds;
        prev = Some(loss);
        ctx.log_metric("train", "loss", &[(f64::from(round), loss)])?;
        ctx.log(&format!(
            "homo_lr arbiter: round {round} loss {loss:.6} over {total_n:.0} rows in {:.1} ms{}",
            t.elapsed().as_secs_f64() * 1e3,
            if converged { " (converged)" } else { "" }
        ));
        let down = encode(&DownMsg {
            v: VERSION,
            weights: weights.clone(),
            intercept,
            loss,
            stop,
        })?;
        let tag = format!("homo_lr.down.{round}");
        ctx.remote(&to_parties, &tag, &down)?;
        ctx.remote(&to_hosts, &tag, &down)?;
        global_rounds.push(RoundModel {
            round,
            weights: weights.clone(),
            intercept,
            loss,
        });
        last = (weights, intercept);
        if stop {
            break;
        }
    }
    json_output(
        ctx,
        "global_models",
        &GlobalModels {
            v: VERSION,
            feature_names: feature_names.clone(),
            rounds: global_rounds,
        },
    )?;
    let model = HomoLrModel {
        v: VERSION,
        feature_names,
        weights: last.0,
        intercept: last.1,
        fit_intercept: p.fit_intercept,
        rounds: history.len() as u32,
        loss_history: history,
    };
    ctx.output("model", &encode(&model)?)?;
    Ok(())
}

fn run_data_party(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let p = TrainParams::from_ctx(ctx)?;
    let train = read_dataset(ctx, "train_data")?
        .ok_or_else(|| fail("train mode needs input 'train_data'"))?;
    let rows = Rows::from_dataset(&train, "input 'train_data'")?;
    let arbiter = the_arbiter(ctx)?;
    let parties = data_parties(ctx);
    let me_idx = parties
        .iter()
        .position(|e| e == ctx.me())
        .ok_or_else(|| fail("this endpoint is not a data party"))?;

    // Key agreement with every other data party, and a check that the features agree.
    let key = MaskKey::random();
    let peers: Vec<(usize, Endpoint)> = parties
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me_idx)
        .map(|(i, e)| (i, e.clone()))
        .collect();
    let hello = encode(&PkMsg {
        v: VERSION,
        pk: key.pk.to_vec(),
        feature_names: train.feature_names.clone(),
        predict: false,
    })?;
    for (_, peer) in &peers {
        ctx.remote(&Target::One(peer.clone()), "homo_lr.pk", &hello)?;
    }
    ctx.remote(&Target::One(arbiter.clone()), "homo_lr.pk", &hello)?;
    let context = format!("{}\u{0}{}", ctx.job_id(), ctx.task());
    let mut seeds = Vec::with_capacity(peers.len());
    for (j, peer) in &peers {
        let (_, bytes) = ctx
            .get(&Target::One(peer.clone()), "homo_lr.pk")?
            .pop()
            .ok_or_else(|| TaskError::Channel(format!("no key from {peer}")))?;
        let msg: PkMsg = decode(&bytes, &format!("key message from {peer}"))?;
        if msg.v != VERSION {
            return Err(fail(format!("{peer} speaks version {}", msg.v)));
        }
        if msg.feature_names != train.feature_names {
            return Err(fail(format!(
                "{peer} has features {:?}, this party {:?}: they must be the same, in the same order",
                msg.feature_names, train.feature_names
            )));
        }
        seeds.push((*j, key.seed(&msg.pk, context.as_bytes())?));
    }
    ctx.log(&format!(
        "homo_lr: {} rows, {} features; {} data parties, secure aggregation at {arbiter}",
        rows.n(),
        rows.d,
        parties.len()
    ));

    let (mut w, mut b) = (vec![0.0; rows.d], 0.0);
    if let Some(bytes) = ctx.input("model")? {
        // Warm start (predict mode returned earlier): the global model to start from.
        let m: HomoLrModel = decode(&bytes, "input 'model'")?;
        if m.feature_names != train.feature_names {
            return Err(fail(
                "warm start: the model's features are not train_data's",
            ));
        }
        ctx.log(&format!(
            "homo_lr: warm start from a model of {} rounds",
            m.rounds
        ));
        (w, b) = (m.weights, m.intercept);
    }
    let mut history = Vec::new();
    let (mut local_rounds, mut global_rounds) = (Vec::new(), Vec::new());
    let to_arbiter = Target::One(arbiter.clone());
    let mut round = 0u32;
    loop {
        if ctx.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        let t = Instant::now();
        let (lw, lb, local_loss) = local_train(&rows, &w, b, &p, round);
        let mut v = clear_vector(&lw, lb, rows.n(), local_loss)?;
        apply_mask(&mut v, me_idx, &seeds, round);
        let mut data = Vec::with_capacity(v.len() * 8);
        for x in &v {
            data.extend_from_slice(&x.to_le_bytes());
        }
        ctx.remote(
            &to_arbiter,
            &format!("homo_lr.up.{round}"),
            &encode(&UpMsg { v: VERSION, data })?,
        )?;
        let (_, bytes) = ctx
            .get(&to_arbiter, &format!("homo_lr.down.{round}"))?
            .pop()
            .ok_or_else(|| TaskError::Channel("no global model from the arbiter".into()))?;
        let down: DownMsg = decode(&bytes, "global model")?;
        if down.v != VERSION || down.weights.len() != rows.d {
            return Err(fail(format!(
                "the arbiter sent {} weights (version {}) for {} features",
                down.weights.len(),
                down.v,
                rows.d
            )));
        }
        local_rounds.push(RoundModel {
            round,
            weights: lw,
            intercept: lb,
            loss: local_loss,
        });
        global_rounds.push(RoundModel {
            round,
            weights: down.weights.clone(),
            intercept: down.intercept,
            loss: down.loss,
        });
        w = down.weights;
        b = down.intercept;
        history.push(down.loss);
        ctx.log_metric("train", "loss", &[(f64::from(round), down.loss)])?;
        ctx.log(&format!(
            "homo_lr: round {round} local loss {local_loss:.6}, global loss {:.6} ({:.1} ms)",
            down.loss,
            t.elapsed().as_secs_f64() * 1e3
        ));
        round += 1;
        if down.stop {
            break;
        }
    }
    let model = HomoLrModel {
        v: VERSION,
        feature_names: train.feature_names.clone(),
        weights: w,
        intercept: b,
        fit_intercept: p.fit_intercept,
        rounds: round,
        loss_history: history,
    };
    ctx.output("model", &encode(&model)?)?;
    ctx.output("train_output", &score(&model, &train)?)?;
    json_output(
        ctx,
        "local_models",
        &LocalModels {
            v: VERSION,
            feature_names: train.feature_names.clone(),
            samples: rows.n() as u64,
            rounds: local_rounds,
        },
    )?;
    json_output(
        ctx,
        "global_models",
        &GlobalModels {
            v: VERSION,
            feature_names: train.feature_names.clone(),
            rounds: global_rounds,
        },
    )?;
    if let Some(test) = read_dataset(ctx, "test_data")? {
        ctx.output("predict_output", &score(&model, &test)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::test_util::{
        auc, ep, output_dataset, parse_csv, plan, read_csv, result_of, run, run_with,
    };

    const PARTIES: &str = "  guest: [a]\n  host: [b]\n  arbiter: [c]\n";
    const TASK: &str = "    component: homo_lr\n    params: {rounds: 10, batch_size: 32, local_epochs: 2, learning_rate: 0.1}\n";

    fn bytes(d: &Dataset) -> Vec<u8> {
        d.to_bytes().expect("bytes")
    }

    fn breast_inputs(with_test: bool) -> BTreeMap<Endpoint, BTreeMap<String, Vec<u8>>> {
        let test = bytes(&read_csv("../examples/data/breast_homo_test.csv"));
        let mut m = BTreeMap::new();
        for (e, file) in [
            (
                ep(Role::Guest, "a"),
                "../examples/data/breast_homo_guest.csv",
            ),
            (ep(Role::Host, "b"), "../examples/data/breast_homo_host.csv"),
        ] {
            let mut ins = BTreeMap::from([("train_data".to_owned(), bytes(&read_csv(file)))]);
            if with_test {
                ins.insert("test_data".to_owned(), test.clone());
            }
            m.insert(e, ins);
        }
        m
    }

    fn scores_auc(d: &Dataset) -> f64 {
        assert_eq!(d.feature_names, vec!["score".to_owned()]);
        auc(d.labels.as_ref().expect("labels"), &d.columns[0])
    }

    #[test]
    fn breast_two_parties_reach_centralized_quality_with_identical_models() {
        let task = plan(PARTIES, TASK);
        let results = run(&task, &breast_inputs(true));
        for r in &results {
            assert_eq!(r.result, Ok(()), "{}: {:?}", r.endpoint, r.log);
        }
        let (g, h, a) = (
            result_of(&results, &ep(Role::Guest, "a")),
            result_of(&results, &ep(Role::Host, "b")),
            result_of(&results, &ep(Role::Arbiter, "c")),
        );
        let mg: HomoLrModel = rmp_serde::from_slice(&g.outputs["model"]).expect("model");
        let mh: HomoLrModel = rmp_serde::from_slice(&h.outputs["model"]).expect("model");
        let ma: HomoLrModel = rmp_serde::from_slice(&a.outputs["model"]).expect("model");
        assert_eq!(mg, mh, "every data party ends with the same model");
        assert_eq!(mg.weights, ma.weights);
        assert_eq!(ma.feature_names, mg.feature_names);
        assert_eq!(mg.feature_names.len(), 30);
        assert!(mg.intercept != 0.0);
        for r in [g, h] {
            let test_auc = scores_auc(&output_dataset(r, "predict_output"));
            eprintln!("{}: test AUC {test_auc:.4}", r.endpoint);
            assert!(test_auc >= 0.98, "{}: test AUC {test_auc}", r.endpoint);
            let train_auc = scores_auc(&output_dataset(r, "train_output"));
            assert!(train_auc >= 0.98, "{}: train AUC {train_auc}", r.endpoint);
        }
        // Loss logged per round at the arbiter and the parties, and it went down.
        let losses: Vec<f64> = a
            .metrics
            .iter()
            .filter(|m| m.0 == "train" && m.1 == "loss")
            .map(|m| m.2[0].1)
            .collect();
        assert_eq!(losses.len(), mg.rounds as usize);
        assert!(
            losses[losses.len() - 1] < losses[0] && losses[0] < 0.69,
            "{losses:?}"
        );
        assert_eq!(mg.loss_history, losses);
        assert_eq!(g.metrics.len(), losses.len());
    }

    #[test]
    fn per_round_outputs_show_the_global_model_is_the_row_weighted_mean_of_the_local_ones() {
        // Three data parties of unequal size (the guest file split 80/147, and the host file),
        // so that an unweighted mean would differ; a separate arbiter.
        let text = std::fs::read_to_string(format!(
            "{}/../examples/data/breast_homo_guest.csv",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("guest data");
        let lines: Vec<&str> = text.lines().collect();
        let part = |rows: &[&str]| {
            let mut t = String::from(lines[0]);
            for r in rows {
                t.push('\n');
                t.push_str(r);
            }
            bytes(&parse_csv(&t))
        };
        let tables = [
            (ep(Role::Guest, "a"), part(&lines[1..81])),
            (ep(Role::Host, "b"), part(&lines[81..])),
            (
                ep(Role::Host, "c"),
                bytes(&read_csv("../examples/data/breast_homo_host.csv")),
            ),
        ];
        let inputs: BTreeMap<Endpoint, BTreeMap<String, Vec<u8>>> = tables
            .iter()
            .map(|(e, t)| {
                (
                    e.clone(),
                    BTreeMap::from([("train_data".into(), t.clone())]),
                )
            })
            .collect();
        let task = plan(
            "  guest: [a]\n  host: [b, c]\n  arbiter: [d]\n",
            "    component: homo_lr\n    params: {rounds: 5, tol: 0, batch_size: 32}\n",
        );
        let results = run(&task, &inputs);
        for r in &results {
            assert_eq!(r.result, Ok(()), "{}: {:?}", r.endpoint, r.log);
        }
        let arbiter = result_of(&results, &ep(Role::Arbiter, "d"));
        assert!(!arbiter.outputs.contains_key("local_models"));
        let global: GlobalModels =
            serde_json::from_slice(&arbiter.outputs["global_models"]).expect("json");
        assert_eq!(global.rounds.len(), 5);
        let locals: Vec<LocalModels> = tables
            .iter()
            .map(|(e, _)| {
                let r = result_of(&results, e);
                assert_eq!(
                    r.outputs["global_models"], arbiter.outputs["global_models"],
                    "{e}: the same global models everywhere"
                );
                serde_json::from_slice(&r.outputs["local_models"]).expect("json")
            })
            .collect();
        let counts: Vec<u64> = locals.iter().map(|l| l.samples).collect();
        assert_eq!(counts, vec![80, 147, 228]);
        let total = 455.0;
        let bound = 3.0 / (2.0 * SCALE) / total + 1e-12;
        for (r, g) in global.rounds.iter().enumerate() {
            let mean = |f: &dyn Fn(&RoundModel) -> f64| -> f64 {
                locals
                    .iter()
                    .map(|l| f(&l.rounds[r]) * l.samples as f64)
                    .sum::<f64>()
                    / total
            };
            let mut off_unweighted = 0.0f64;
            for j in 0..30 {
                let want = mean(&|m| m.weights[j]);
                assert!(
                    (g.weights[j] - want).abs() <= bound,
                    "round {r} w{j}: global {} vs row-weighted mean {want}",
                    g.weights[j]
                );
                let unweighted = locals.iter().map(|l| l.rounds[r].weights[j]).sum::<f64>() / 3.0;
                off_unweighted = off_unweighted.max((g.weights[j] - unweighted).abs());
            }
            assert!(off_unweighted > 1e-4, "round {r}: {off_unweighted}");
            assert!((g.intercept - mean(&|m| m.intercept)).abs() <= bound);
            assert!((g.loss - mean(&|m| m.loss)).abs() <= bound);
        }
        // The model is the last round's global model (to the last bit, except that serde_json's
        // default float parser may be one ulp off).
        let m: HomoLrModel = rmp_serde::from_slice(&arbiter.outputs["model"]).expect("model");
        let last = global.rounds.last().expect("rounds");
        for (a, b) in m
            .weights
            .iter()
            .chain([&m.intercept])
            .zip(last.weights.iter().chain([&last.intercept]))
        {
            assert!((a - b).abs() <= 1e-15, "{a} {b}");
        }
    }

    static SPY: Mutex<Vec<(Endpoint, Vec<u64>)>> = Mutex::new(Vec::new());

    /// The real component, with the arbiter recording round 0's uploads.
    fn spying(ctx: &dyn TaskContext) -> Result<(), TaskError> {
        if ctx.me().role == Role::Arbiter {
            return run_arbiter(ctx, &mut |round, ups| {
                if round == 0 {
                    SPY.lock().expect("spy").extend(ups.iter().cloned());
                }
            });
        }
        homo_lr(ctx)
    }

    #[test]
    fn uploads_are_masked_and_the_masks_cancel() {
        // The arbiter is the guest's organisation here.
        let task = plan(
            "  guest: [a]\n  host: [b]\n  arbiter: [a]\n",
            "    component: homo_lr\n    params: {rounds: 2}\n",
        );
        let results = run_with(&task, spying, &breast_inputs(false));
        assert!(results.iter().all(|r| r.result.is_ok()), "{results:?}");
        let seen = SPY.lock().expect("spy").clone();
        assert_eq!(seen.len(), 2);
        // What each party would upload without masks, recomputed from its data.
        let p = TrainParams {
            rounds: 2,
            local_epochs: 1,
            learning_rate: 0.1,
            alpha: 0.01,
            batch_size: None,
            seed: 42,
            tol: 1e-4,
            fit_intercept: true,
        };
        let mut clear_sum = vec![0u64; 33];
        let mut masked_sum = vec![0u64; 33];
        for (e, masked) in &seen {
            let file = if e.role == Role::Guest {
                "../examples/data/breast_homo_guest.csv"
            } else {
                "../examples/data/breast_homo_host.csv"
            };
            let rows = Rows::from_dataset(&read_csv(file), "t").expect("rows");
            let (w, b, l) = local_train(&rows, &vec![0.0; 30], 0.0, &p, 0);
            let clear = clear_vector(&w, b, rows.n(), l).expect("encode");
            assert_eq!(masked.len(), clear.len());
            let equal = masked.iter().zip(&clear).filter(|(m, c)| m == c).count();
            assert_eq!(equal, 0, "{e}: every uploaded value is masked");
            for k in 0..33 {
                clear_sum[k] = clear_sum[k].wrapping_add(clear[k]);
                masked_sum[k] = masked_sum[k].wrapping_add(masked[k]);
            }
        }
        assert_eq!(masked_sum, clear_sum, "the masks cancel in the sum");
        assert_eq!(from_fixed(clear_sum[31]), 455.0, "total rows");
    }

    #[test]
    fn masks_of_three_parties_cancel() {
        let keys: Vec<MaskKey> = (0..3).map(|_| MaskKey::random()).collect();
        let ctx = b"job\0task";
        let mut total = vec![0u64; 5];
        for (i, k) in keys.iter().enumerate() {
            let seeds: Vec<(usize, [u8; 32])> = keys
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, other)| (j, k.seed(&other.pk, ctx).expect("seed")))
                .collect();
            let mut v = vec![to_fixed(1.5).expect("fixed"); 5];
            apply_mask(&mut v, i, &seeds, 7);
            assert!(v.iter().all(|x| *x != to_fixed(1.5).expect("fixed")));
            for (t, x) in total.iter_mut().zip(&v) {
                *t = t.wrapping_add(*x);
            }
        }
        assert!(total.iter().all(|t| from_fixed(*t) == 4.5), "{total:?}");
        assert_eq!(from_fixed(to_fixed(-2.25).expect("fixed")), -2.25);
        assert!(to_fixed(f64::NAN).is_err());
    }

    #[test]
    fn predict_mode_scores_with_a_trained_model() {
        let task = plan(PARTIES, TASK);
        let results = run(&task, &breast_inputs(true));
        let g = result_of(&results, &ep(Role::Guest, "a"));
        let model = g.outputs["model"].clone();
        let model_copy = model.clone();
        let trained_scores = g.outputs["predict_output"].clone();
        let test = bytes(&read_csv("../examples/data/breast_homo_test.csv"));
        let inputs = BTreeMap::from([
            (
                ep(Role::Guest, "a"),
                BTreeMap::from([
                    ("model".to_owned(), model.clone()),
                    ("test_data".to_owned(), test.clone()),
                ]),
            ),
            (
                ep(Role::Host, "b"),
                BTreeMap::from([("model".to_owned(), model), ("test_data".to_owned(), test)]),
            ),
        ]);
        let results = run(&task, &inputs);
        for r in &results {
            assert_eq!(r.result, Ok(()), "{}", r.endpoint);
        }
        let g = result_of(&results, &ep(Role::Guest, "a"));
        assert_eq!(g.outputs["predict_output"], trained_scores);
        // The arbiter (no inputs) learnt the mode from the data parties and wrote nothing.
        assert!(
            result_of(&results, &ep(Role::Arbiter, "c"))
                .outputs
                .is_empty()
        );
        // A model for other features is refused.
        let mut other: HomoLrModel = rmp_serde::from_slice(&model_copy).expect("model");
        other.feature_names[0] = "zz".into();
        let err =
            score(&other, &read_csv("../examples/data/breast_homo_test.csv")).expect_err("refused");
        assert!(err.to_string().contains("do not match"), "{err}");
    }

    #[test]
    fn max_iter_is_an_alias_of_rounds_and_bad_params_fail() {
        let task = plan(
            PARTIES,
            "    component: homo_lr\n    params: {max_iter: 3, tol: 0}\n",
        );
        let results = run(&task, &breast_inputs(false));
        assert!(results.iter().all(|r| r.result.is_ok()), "{results:?}");
        let a = result_of(&results, &ep(Role::Arbiter, "c"));
        let m: HomoLrModel = rmp_serde::from_slice(&a.outputs["model"]).expect("model");
        assert_eq!(m.rounds, 3);
        assert_eq!(a.metrics.len(), 3);

        let task = plan(
            PARTIES,
            "    component: homo_lr\n    params: {batch_size: 0}\n",
        );
        for r in run(&task, &breast_inputs(false)) {
            assert!(
                matches!(&r.result, Err(TaskError::Param(p, _)) if p == "batch_size"),
                "{}: {:?}",
                r.endpoint,
                r.result
            );
        }
    }

    #[test]
    fn mismatched_features_and_missing_labels_fail_clearly() {
        let task = plan(PARTIES, TASK);
        let mut inputs = breast_inputs(false);
        let mut host = read_csv("../examples/data/breast_homo_host.csv");
        host.feature_names[3] = "renamed".into();
        inputs
            .get_mut(&ep(Role::Host, "b"))
            .expect("host")
            .insert("train_data".into(), bytes(&host));
        let results = run(&task, &inputs);
        let g = result_of(&results, &ep(Role::Guest, "a"));
        let err = g.result.clone().expect_err("fails");
        assert!(err.to_string().contains("must be the same"), "{err}");

        let mut host = read_csv("../examples/data/breast_homo_host.csv");
        host.labels = None;
        host.label_name = None;
        let err = Rows::from_dataset(&host, "train").err().expect("fails");
        assert!(err.to_string().contains("no labels"), "{err}");
    }
}
