//! `hetero_secureboost`: vertical gradient-boosted trees (SecureBoost), FATE's protocol for a
//! guest with labels and any number of hosts, no arbiter.
//!
//! Rows are aligned beforehand (by `psi`; checked by a hash of the id list, as `hetero_lr`
//! does). Every party bins its own features into quantile buckets (`max_bin`). Per tree:
//!
//! 1. the guest computes each row's gradient g and hessian h of the logistic loss (with `goss`,
//!    the rows of largest |g| and a seeded sample of the rest, amplified), packs g, h and a
//!    count of one into one Paillier plaintext ([`pack`]) and sends the encryptions to the hosts;
//! 2. level by level, the guest names the rows of each node that may split and the nodes whose
//!    histograms the hosts compute: of two sibling nodes only the smaller, the guest deriving
//!    the other as parent minus sibling (histogram subtraction);
//! 3. each host sums the ciphertexts per (node, feature, bin), packs the non-empty bins of a
//!    feature several to a ciphertext, re-randomizes them and sends them, its features in an
//!    order of its own; the guest decrypts, adds its own histograms (in the clear) and picks each
//!    node's split by gain (`G²/(H+λ)` of the children minus the parent's), subject to
//!    `min_child_weight`, `min_leaf_node`, `min_sample_split` and `min_impurity_split`;
//! 4. a split on a host's feature is sent to that host as (node, feature slot, bin): the host
//!    keeps the feature and threshold under an id of its own and answers with the id and which
//!    of the node's rows go left. The guest knows the split only as (host, id).
//!
//! Leaves weigh `−G/(H+λ)·learning_rate`. Scores are log-odds from the label mean's. Predicting
//! (train output, `test_data`, predict mode, a warm start's starting scores) asks each host once
//! for the directions of all its splits over the rows, as bitmaps, and walks the trees at the
//! guest. Each party's model part holds only what it knows; each logs the importance (splits,
//! gain) of its own features.
//!
//! With `validate_data` wired, the guest follows the log loss on it after each tree (the hosts
//! send the directions of that tree's splits over it) and, with `early_stopping_rounds`, stops
//! when it has not improved for that many trees; the model keeps the trees up to the best, and
//! each host keeps only the splits of those.
//!
//! Settings that shape the trees are the guest's; hosts take `num_trees`, `max_depth` and
//! `max_bin` from it. Sums are exact integers (g and h rounded to 2^-20 per row), so the trees
//! equal those of plain gradient boosting on the joined data with the same bins and rounding
//! (`tests.rs`).

mod guest;
mod host;
pub(crate) mod model;
pub(crate) mod pack;
pub(crate) mod tree;
mod wire;

use consort_protocol::job::Role;
use serde_json::json;

use crate::context::{TaskContext, TaskError};
use crate::hetero_lr::common::{fail, warm_start};

pub(crate) use model::SecureBoostModel;

/// Entry point of component `hetero_secureboost`.
pub fn hetero_secureboost(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    model::check_roles(ctx)?;
    let params = model::Params::from_ctx(ctx)?;
    let predict = if warm_start(ctx) {
        None
    } else {
        ctx.input("model")?
    };
    match (ctx.me().role, predict) {
        (Role::Guest, None) => guest::train(ctx, &params),
        (Role::Guest, Some(model)) => guest::predict(ctx, &model),
        (Role::Host, None) => host::train(ctx),
        (Role::Host, Some(model)) => host::predict(ctx, &model),
        (role, _) => Err(fail(format!("hetero_secureboost has no {role} role"))),
    }
}

/// Logs this party's feature importance: metric `importance/splits` and `importance/gain`
/// (one point per feature, x = its index in the header), with the names in the metadata.
fn log_importance(ctx: &dyn TaskContext, model: &SecureBoostModel) -> Result<(), TaskError> {
    let mut splits = Vec::new();
    let mut gains = Vec::new();
    for (i, name) in model.header.iter().enumerate() {
        let imp = model.importance.get(name).copied().unwrap_or_default();
        splits.push((i as f64, f64::from(imp.splits)));
        gains.push((i as f64, imp.gain));
    }
    if !splits.is_empty() {
        ctx.log_metric("importance", "splits", &splits)?;
        ctx.log_metric("importance", "gain", &gains)?;
        let by_name: serde_json::Map<String, serde_json::Value> = model
            .importance
            .iter()
            .map(|(k, v)| (k.clone(), json!({"splits": v.splits, "gain": v.gain})))
            .collect();
        ctx.set_metric_meta(
            "importance",
            "splits",
            json!({"features": model.header, "importance": by_name}),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
