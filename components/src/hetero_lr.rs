//! `hetero_lr`: vertical (hetero) federated logistic regression, FATE's protocol with an arbiter.
//!
//! Rows are aligned beforehand (by `psi`): every data party holds the same ids in the same
//! order, which is checked first (each host sends a SHA-256 of its id list to the guest; the
//! guest tells everyone whether they agree). The guest has the labels and its features (and the
//! intercept), each host has its own features, the arbiter holds the Paillier private key.
//!
//! Per mini-batch (Taylor approximation of the logistic loss, labels y' = 2y − 1 ∈ {−1, 1}):
//! 1. each host sends `[[u_h]]`, `u_h = X_h·w_h`, to the guest;
//! 2. the guest forms `[[d̃]] = Σ_h [[u_h]] + (u_g − 2y')` (`d̃ = 4d` with FATE's
//!    `d = 0.25·u − 0.5·y'`; the factor 0.25 is applied after decryption) and sends it to every
//!    host;
//! 3. each data party computes `[[Xᵀ·d̃]]` (multi-exponentiation), adds a fresh encrypted random
//!    mask mod N, sends it to the arbiter, which decrypts and returns the masked values; the
//!    party removes its mask, scales by 0.25/n, adds `alpha·w` and steps `w −= lr·g` (no L2 on
//!    the intercept);
//! 4. the loss `log 2 − ½·y'u + ⅛·u²` (plus `½·alpha·‖w‖²` of every party) is computed under
//!    encryption: `Σ u·d̃` splits into one extra column of each party's multi-exponentiation
//!    (`Σ u_h·d̃` at each host, `Σ (u_g − 2y')·d̃` at the guest), which together give
//!    `Σ d̃² = Σ u² − 4Σ y'u + 4n`; the guest sends the encrypted total to the arbiter, which
//!    decrypts only that scalar. (FATE has each host send `[[u_h²]]` instead; this form works
//!    for any number of hosts and costs no extra encryptions.)
//!
//! After each epoch the arbiter decides convergence (`early_stop = "diff"`: |Δloss| < tol;
//! `"weight_diff"`: ‖Δw‖ over all parties < tol, each party sending its own ‖Δw‖²) and tells
//! every party. The arbiter never sees an unmasked gradient; hosts never see labels or
//! plaintext residuals. Scoring (train output, test data, predict mode) is FATE's: hosts send
//! `X_h·w_h` in plaintext to the guest, which adds its part and applies the sigmoid.
//!
//! Settings that must agree (`max_iter`/`epochs`, `batch_size`, `seed`) are taken from the
//! guest and sent to everyone; `tol` and `early_stop` are the arbiter's; `learning_rate`,
//! `alpha` and `fit_intercept` are each party's own (the intercept only exists at the guest).
//!
//! Fixed point: features, weights' products `u` and the scalar columns use 16 fractional bits
//! ([`FX`]); values inside ciphertexts (`[[u_h]]`, `[[d̃]]`) use 32 ([`FD`]); gradients and the
//! loss are decoded at 48 bits. See [`crate::paillier`] for the encoding.

mod arbiter;
pub(crate) mod common;
mod guest;
mod host;
pub(crate) mod wire;

use consort_protocol::job::Role;

use crate::context::{TaskContext, TaskError};

pub use common::{HeteroLrModel, MODEL_VERSION};

/// Fractional bits of plaintext scalars in multi-exponentiations (features, `u`).
pub const FX: u32 = 16;
/// Fractional bits of values inside ciphertexts (`[[u_h]]`, `[[d̃]]`).
pub const FD: u32 = 32;

/// Entry point of component `hetero_lr`.
pub fn hetero_lr(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    common::check_roles(ctx)?;
    let params = common::Params::from_ctx(ctx)?;
    // A wired model means predict mode, unless `warm_start` makes it the starting point.
    let predict = if common::warm_start(ctx) {
        None
    } else {
        ctx.input("model")?
    };
    match (ctx.me().role, predict) {
        (Role::Guest, None) => guest::train(ctx, &params),
        (Role::Guest, Some(model)) => guest::predict(ctx, &model),
        (Role::Host, None) => host::train(ctx, &params),
        (Role::Host, Some(model)) => host::predict(ctx, &model),
        (Role::Arbiter, None) => arbiter::train(ctx, &params),
        (Role::Arbiter, Some(_)) => {
            ctx.log("hetero_lr: predict mode, nothing to do at the arbiter");
            Ok(())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
