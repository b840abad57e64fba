//! A host: its own features and weights only; never sees labels or plaintext residuals.

use consort_protocol::data::Dataset;
use consort_protocol::job::Role;

use crate::context::{Target, TaskContext, TaskError};
use crate::paillier::to_fixed_i64;

use super::common::{
    HeteroLrModel, MODEL_VERSION, Params, batches, columns_for, crypto, dataset, fail,
    fixed_columns, ids_hash, linear, one, required_dataset,
};
use super::wire::{
    Align, Ciphers, Partial, PubKey, Setup, Verdict, WIRE_VERSION, WeightDiff, ciphers,
    masked_decrypt, public_key, recv_one, send,
};
use super::{FD, FX};

/// Trains the host's part.
pub fn train(ctx: &dyn TaskContext, p: &Params) -> Result<(), TaskError> {
    let guest = one(ctx, Role::Guest)?;
    let arbiter = one(ctx, Role::Arbiter)?;
    let data = required_dataset(ctx, "train_data");
    let fixed = data.as_ref().map_err(Clone::clone).and_then(fixed_columns);
    let align = Align::of(match (&data, &fixed) {
        (Ok(d), Ok(_)) => Ok(d),
        (Err(e), _) | (_, Err(e)) => Err(e),
    });
    send(ctx, &guest, "align", &align)?;
    let (_, setup): (_, Setup) = recv_one(ctx, &guest, "setup")?;
    if !setup.error.is_empty() {
        return Err(fail(setup.error));
    }
    let (data, x_fixed) = (data?, fixed?);
    let n = data.rows();

    let (_, key): (_, PubKey) = recv_one(ctx, &arbiter, "pubkey")?;
    let pk = public_key(&key)?;
    let encryptor = pk.encryptor();
    let (mut w, _) = super::common::initial_weights(ctx, &data)?;
    let (mut iterations, mut converged) = (0u32, false);

    for it in 0..setup.max_iter {
        if ctx.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        let w_start = w.clone();
        for (bi, rows) in batches(n, setup.batch_size, setup.seed, it)
            .iter()
            .enumerate()
        {
            let step = format!("{it}.{bi}");
            let nb = rows.len();
            let u = linear(&data, &w, 0.0, Some(rows));
            let cu = encryptor.encrypt_many_f64(&u, FD).map_err(crypto)?;
            send(
                ctx,
                &guest,
                &format!("u.{step}"),
                &Ciphers {
                    v: WIRE_VERSION,
                    data: pk.encode_ciphertexts(&cu),
                },
            )?;
            let tag = format!("d.{step}");
            let (from, msg): (_, Ciphers) = recv_one(ctx, &guest, &tag)?;
            let d = ciphers(&pk, &from, &tag, &msg, nb)?;

            let mut cols: Vec<Vec<i64>> = x_fixed
                .iter()
                .map(|c| rows.iter().map(|&r| c[r]).collect())
                .collect();
            cols.push(
                u.iter()
                    .map(|&v| to_fixed_i64(v, FX))
                    .collect::<Result<_, _>>()
                    .map_err(crypto)?,
            );
            let mut grads = pk.matvec(&d, &cols).map_err(crypto)?;
            let share = grads
                .pop()
                .ok_or_else(|| fail("hetero_lr: no loss column"))?;
            let reg = 0.5 * p.alpha * w.iter().map(|x| x * x).sum::<f64>();
            let share = pk.add_plain(
                &share,
                &pk.encode(8.0 * nb as f64 * reg, FX + FD).map_err(crypto)?,
            );
            send(
                ctx,
                &guest,
                &format!("hloss.{step}"),
                &Ciphers {
                    v: WIRE_VERSION,
                    data: pk.encode_ciphertexts(&[share]),
                },
            )?;

            let plain = masked_decrypt(ctx, &pk, &encryptor, &arbiter, &step, &grads)?;
            let scale = 0.25 / nb as f64;
            for (j, wj) in w.iter_mut().enumerate() {
                let g = pk.decode(&plain[j], FX + FD) * scale + p.alpha * *wj;
                *wj -= p.learning_rate * g;
            }
        }
        let sq: f64 = w.iter().zip(&w_start).map(|(a, c)| (a - c).powi(2)).sum();
        send(
            ctx,
            &arbiter,
            &format!("wdiff.{it}"),
            &WeightDiff {
                v: WIRE_VERSION,
                sq_norm: sq,
            },
        )?;
        let (_, verdict): (_, Verdict) = recv_one(ctx, &arbiter, &format!("verdict.{it}"))?;
        iterations = it + 1;
        ctx.log(&format!("hetero_lr host: epoch {it} done"));
        if verdict.converged {
            converged = true;
            break;
        }
    }

    let model = HeteroLrModel {
        v: MODEL_VERSION,
        role: "host".into(),
        header: data.feature_names.clone(),
        weights: w,
        intercept: 0.0,
        fit_intercept: false,
        iterations,
        converged,
    };
    ctx.output("model", &model.to_bytes()?)?;
    send_partial(ctx, &guest, "score.train", Ok(&data), &model)?;
    if setup.score_test {
        let test = dataset(ctx, "test_data").and_then(|t| {
            t.ok_or_else(|| {
                fail("hetero_lr: the guest scores test_data but this host has no test_data input")
            })
        });
        send_partial(
            ctx,
            &guest,
            "score.test",
            test.as_ref().map_err(Clone::clone),
            &model,
        )?;
        test?;
    }
    Ok(())
}

/// Sends `X_h·w_h` (or why it cannot) to the guest for scoring.
fn send_partial(
    ctx: &dyn TaskContext,
    guest: &Target,
    tag: &str,
    data: Result<&Dataset, TaskError>,
    model: &HeteroLrModel,
) -> Result<(), TaskError> {
    let part = data
        .and_then(|d| columns_for(d, &model.header))
        .map(|d| Partial {
            v: WIRE_VERSION,
            error: String::new(),
            ids_hash: ids_hash(&d.ids),
            values: linear(&d, &model.weights, 0.0, None),
        });
    let msg = match &part {
        Ok(p) => p,
        Err(e) => &Partial {
            v: WIRE_VERSION,
            error: e.to_string(),
            ids_hash: Vec::new(),
            values: Vec::new(),
        },
    };
    send(ctx, guest, tag, msg)?;
    part.map(|_| ())
}

/// Predict mode: sends `X_h·w_h` on `test_data` to the guest.
pub fn predict(ctx: &dyn TaskContext, model: &[u8]) -> Result<(), TaskError> {
    let guest = one(ctx, Role::Guest)?;
    let model = HeteroLrModel::from_bytes(model);
    let test = required_dataset(ctx, "test_data");
    match model {
        Ok(model) => {
            send_partial(
                ctx,
                &guest,
                "predict.u",
                test.as_ref().map_err(Clone::clone),
                &model,
            )?;
            ctx.log("hetero_lr host: sent partial scores");
            Ok(())
        }
        Err(e) => {
            let empty = HeteroLrModel {
                v: MODEL_VERSION,
                role: "host".into(),
                header: vec![],
                weights: vec![],
                intercept: 0.0,
                fit_intercept: false,
                iterations: 0,
                converged: false,
            };
            send_partial(ctx, &guest, "predict.u", Err(e.clone()), &empty)?;
            Err(e)
        }
    }
}
