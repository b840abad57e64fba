//! The guest: labels, its features, the intercept; forms `[[d̃]]` and the encrypted loss.

use consort_protocol::job::Role;
use rayon::prelude::*;

use crate::context::{Target, TaskContext, TaskError};
use crate::paillier::to_fixed_i64;

use super::common::{
    HeteroLrModel, MODEL_VERSION, Params, batches, columns_for, crypto, dataset, fail,
    fixed_columns, hosts, ids_hash, linear, one, required_dataset, score_output, sigmoid,
    signed_labels,
};
use super::wire::{
    Align, Ciphers, Loss, Partial, PubKey, Setup, Verdict, WIRE_VERSION, WeightDiff, ciphers,
    masked_decrypt, public_key, recv, recv_one, send,
};
use super::{FD, FX};

/// Trains the guest's part.
pub fn train(ctx: &dyn TaskContext, p: &Params) -> Result<(), TaskError> {
    let data = required_dataset(ctx, "train_data")?;
    let test = dataset(ctx, "test_data")?;
    let hosts_t = Target::Role(Role::Host);
    let arbiter = one(ctx, Role::Arbiter)?;
    let n = data.rows();

    // Alignment: every host's ids must be ours, in our order.
    let my_hash = ids_hash(&data.ids);
    let mut problems = Vec::new();
    let labels = signed_labels(&data);
    if let Err(e) = &labels {
        problems.push(e.to_string());
    }
    if n == 0 {
        problems.push("hetero_lr: train_data has no rows".into());
    }
    for (from, a) in recv::<Align>(ctx, &hosts_t, "align")? {
        if !a.error.is_empty() {
            problems.push(format!("{from}: {}", a.error));
        } else if a.rows != n as u64 {
            problems.push(format!(
                "hetero_lr: rows are not aligned: {from} has {} rows, the guest {n} \
                 (run psi first)",
                a.rows
            ));
        } else if a.ids_hash != my_hash {
            problems.push(format!(
                "hetero_lr: rows are not aligned: {from}'s ids differ from the guest's \
                 (different ids or order; run psi first)"
            ));
        }
    }
    let setup = Setup {
        v: WIRE_VERSION,
        error: problems.join("; "),
        rows: n as u64,
        batch_size: p.batch_size,
        max_iter: p.max_iter,
        seed: p.seed,
        score_test: test.is_some(),
    };
    send(ctx, &hosts_t, "setup", &setup)?;
    send(ctx, &arbiter, "setup", &setup)?;
    if !setup.error.is_empty() {
        return Err(fail(setup.error));
    }
    let y = labels?;

    let (_, key): (_, PubKey) = recv_one(ctx, &arbiter, "pubkey")?;
    let pk = public_key(&key)?;
    let encryptor = pk.encryptor();
    let x_fixed = fixed_columns(&data)?;
    let m = data.cols();
    let n_hosts = hosts(ctx).len();
    let (mut w, mut b) = super::common::initial_weights(ctx, &data)?;
    if w.len() != m {
        return Err(fail("warm start: weight count differs from the features"));
    }
    let reg = |w: &[f64]| 0.5 * p.alpha * w.iter().map(|x| x * x).sum::<f64>();
    let (mut iterations, mut converged) = (0u32, false);

    for it in 0..p.max_iter {
        if ctx.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        let w_start = (w.clone(), b);
        for (bi, rows) in batches(n, p.batch_size, p.seed, it).iter().enumerate() {
            let step = format!("{it}.{bi}");
            let nb = rows.len();
            let u_g = linear(&data, &w, b, Some(rows));

            // [[d̃]] = Σ_h [[u_h]] + (u_g − 2y').
            let tag = format!("u.{step}");
            let mut total: Option<Vec<_>> = None;
            for (from, msg) in recv::<Ciphers>(ctx, &hosts_t, &tag)? {
                let cs = ciphers(&pk, &from, &tag, &msg, nb)?;
                total = Some(match total {
                    None => cs,
                    Some(t) => t.par_iter().zip(&cs).map(|(a, c)| pk.add(a, c)).collect(),
                });
            }
            let total = total.ok_or_else(|| fail("hetero_lr: no host sent [[u]]"))?;
            let resid: Vec<f64> = rows
                .iter()
                .zip(&u_g)
                .map(|(&r, u)| u - 2.0 * y[r])
                .collect();
            let d = total
                .par_iter()
                .zip(&resid)
                .map(|(c, &v)| pk.encode(v, FD).map(|m| pk.add_plain(c, &m)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(crypto)?;
            send(
                ctx,
                &hosts_t,
                &format!("d.{step}"),
                &Ciphers {
                    v: WIRE_VERSION,
                    data: pk.encode_ciphertexts(&d),
                },
            )?;

            // Columns: features, (u_g − 2y') for the loss, ones for the intercept.
            let mut cols: Vec<Vec<i64>> = x_fixed
                .iter()
                .map(|c| rows.iter().map(|&r| c[r]).collect())
                .collect();
            cols.push(
                resid
                    .iter()
                    .map(|&v| to_fixed_i64(v, FX))
                    .collect::<Result<_, _>>()
                    .map_err(crypto)?,
            );
            if p.fit_intercept {
                cols.push(vec![1; nb]);
            }
            let mut out = pk.matvec(&d, &cols).map_err(crypto)?;
            let intercept = if p.fit_intercept { out.pop() } else { None };
            let mut loss = out.pop().ok_or_else(|| fail("hetero_lr: no loss column"))?;

            // Σ d̃² = Σ_parties Σ u·d̃ − 2Σ y'd̃ … assembled from every host's share.
            let tag = format!("hloss.{step}");
            for (from, msg) in recv::<Ciphers>(ctx, &hosts_t, &tag)? {
                let cs = ciphers(&pk, &from, &tag, &msg, 1)?;
                pk.add_assign(&mut loss, &cs[0]);
            }
            let extra = 8.0 * nb as f64 * reg(&w) - 4.0 * nb as f64;
            let loss = pk.add_plain(&loss, &pk.encode(extra, FX + FD).map_err(crypto)?);
            send(
                ctx,
                &arbiter,
                &format!("loss.{step}"),
                &Loss {
                    v: WIRE_VERSION,
                    rows: nb as u64,
                    data: pk.encode_ciphertexts(&[loss]),
                },
            )?;

            let mut grads = out;
            grads.extend(intercept);
            let plain = masked_decrypt(ctx, &pk, &encryptor, &arbiter, &step, &grads)?;
            let scale = 0.25 / nb as f64;
            for (j, wj) in w.iter_mut().enumerate() {
                let g = pk.decode(&plain[j], FX + FD) * scale + p.alpha * *wj;
                *wj -= p.learning_rate * g;
            }
            if p.fit_intercept {
                b -= p.learning_rate * pk.decode(&plain[m], FD) * scale;
            }
        }
        let sq: f64 = w
            .iter()
            .zip(&w_start.0)
            .map(|(a, c)| (a - c).powi(2))
            .sum::<f64>()
            + (b - w_start.1).powi(2);
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
        if let Some(loss) = verdict.loss {
            ctx.log_metric("train", "loss", &[(it as f64, loss)])?;
            ctx.log(&format!(
                "hetero_lr guest: epoch {it} loss {loss:.6} ({n_hosts} host(s))"
            ));
        }
        if verdict.converged {
            converged = true;
            break;
        }
    }
    ctx.log_metric("train", "iterations", &[(0.0, iterations as f64)])?;
    ctx.log_metric(
        "train",
        "converged",
        &[(0.0, if converged { 1.0 } else { 0.0 })],
    )?;
    ctx.log(&format!(
        "hetero_lr guest: {iterations} epoch(s), {}",
        if converged {
            "converged"
        } else {
            "max_iter reached"
        }
    ));

    let model = HeteroLrModel {
        v: MODEL_VERSION,
        role: "guest".into(),
        header: data.feature_names.clone(),
        weights: w,
        intercept: b,
        fit_intercept: p.fit_intercept,
        iterations,
        converged,
    };
    ctx.output("model", &model.to_bytes()?)?;
    let scores = score(ctx, &data, &model, "score.train")?;
    ctx.output("train_output", &score_output(&data, scores)?)?;
    if let Some(test) = test {
        let test = columns_for(&test, &model.header)?;
        let scores = score(ctx, &test, &model, "score.test")?;
        ctx.output("predict_output", &score_output(&test, scores)?)?;
    }
    Ok(())
}

/// sigmoid(X_g·w_g + b + Σ_h X_h·w_h), the hosts' parts received under `tag`.
fn score(
    ctx: &dyn TaskContext,
    data: &consort_protocol::data::Dataset,
    model: &HeteroLrModel,
    tag: &str,
) -> Result<Vec<f64>, TaskError> {
    let mut u = linear(data, &model.weights, model.intercept, None);
    let hash = ids_hash(&data.ids);
    let mut problems = Vec::new();
    for (from, part) in recv::<Partial>(ctx, &Target::Role(Role::Host), tag)? {
        if !part.error.is_empty() {
            problems.push(format!("{from}: {}", part.error));
        } else if part.values.len() != u.len() || part.ids_hash != hash {
            problems.push(format!(
                "hetero_lr: rows are not aligned for scoring: {from} has {} rows (the guest {}) \
                 or different ids",
                part.values.len(),
                u.len()
            ));
        } else {
            u.iter_mut().zip(&part.values).for_each(|(a, v)| *a += v);
        }
    }
    if !problems.is_empty() {
        return Err(fail(problems.join("; ")));
    }
    Ok(u.into_iter().map(sigmoid).collect())
}

/// Predict mode: scores `test_data` with the guest's model and the hosts' parts.
pub fn predict(ctx: &dyn TaskContext, model: &[u8]) -> Result<(), TaskError> {
    let model = HeteroLrModel::from_bytes(model)?;
    let test = required_dataset(ctx, "test_data")?;
    let test = columns_for(&test, &model.header)?;
    let scores = score(ctx, &test, &model, "predict.u")?;
    ctx.output("predict_output", &score_output(&test, scores)?)?;
    ctx.log(&format!("hetero_lr guest: scored {} rows", test.rows()));
    Ok(())
}
