//! The arbiter: generates the key pair, decrypts masked gradients and the loss, decides
//! convergence. It never sees an unmasked gradient or any data.

use consort_protocol::job::Role;

use crate::context::{Target, TaskContext, TaskError};
use crate::paillier::generate_keypair;

use super::common::{
    EarlyStop, HeteroLrModel, MODEL_VERSION, Params, batches, crypto, fail, hosts, one,
};
use super::wire::{
    Ciphers, Loss, PubKey, Residues, Setup, Verdict, WIRE_VERSION, WeightDiff, ciphers, recv,
    recv_one, residues_to_bytes, send,
};
use super::{FD, FX};

/// The arbiter's part of training.
pub fn train(ctx: &dyn TaskContext, p: &Params) -> Result<(), TaskError> {
    let guest = one(ctx, Role::Guest)?;
    let data_parties = Target::Role(Role::Host);
    let (pk, sk) = generate_keypair(p.key_bits).map_err(crypto)?;
    ctx.log(&format!(
        "hetero_lr arbiter: {}-bit Paillier key generated",
        p.key_bits
    ));
    let key = PubKey {
        v: WIRE_VERSION,
        n: pk.to_bytes(),
    };
    send(ctx, &guest, "pubkey", &key)?;
    send(ctx, &data_parties, "pubkey", &key)?;

    let (_, setup): (_, Setup) = recv_one(ctx, &guest, "setup")?;
    if !setup.error.is_empty() {
        return Err(fail(setup.error));
    }
    let n = usize::try_from(setup.rows).map_err(|_| fail("hetero_lr: row count too large"))?;
    let n_hosts = hosts(ctx).len();
    let mut prev_loss: Option<f64> = None;
    let (mut iterations, mut converged) = (0u32, false);

    for it in 0..setup.max_iter {
        if ctx.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        let (mut loss_sum, mut loss_rows) = (0.0, 0usize);
        for (bi, rows) in batches(n, setup.batch_size, setup.seed, it)
            .iter()
            .enumerate()
        {
            let step = format!("{it}.{bi}");
            // Masked gradients from every data party: decrypt, return.
            let tag = format!("grad.{step}");
            let mut senders = recv::<Ciphers>(ctx, &Target::Role(Role::Guest), &tag)?;
            senders.extend(recv::<Ciphers>(ctx, &data_parties, &tag)?);
            for (from, msg) in senders {
                let count = msg.data.len() / pk.ciphertext_width().max(1);
                let cs = ciphers(&pk, &from, &tag, &msg, count)?;
                let plain = sk.decrypt_many(&cs);
                send(
                    ctx,
                    &Target::One(from),
                    &format!("plain.{step}"),
                    &Residues {
                        v: WIRE_VERSION,
                        data: residues_to_bytes(&pk, &plain),
                    },
                )?;
            }
            let tag = format!("loss.{step}");
            let (from, msg): (_, Loss) = recv_one(ctx, &guest, &tag)?;
            if msg.rows != rows.len() as u64 {
                return Err(fail(format!(
                    "hetero_lr: {from}'s loss covers {} rows, the batch has {}",
                    msg.rows,
                    rows.len()
                )));
            }
            let c = ciphers(
                &pk,
                &from,
                &tag,
                &Ciphers {
                    v: msg.v,
                    data: msg.data,
                },
                1,
            )?;
            let total = pk.decode(&sk.decrypt(&c[0]), FX + FD);
            loss_sum += std::f64::consts::LN_2 * rows.len() as f64 + 0.125 * total;
            loss_rows += rows.len();
        }
        let loss = loss_sum / loss_rows.max(1) as f64;
        let diffs = recv::<WeightDiff>(ctx, &Target::Role(Role::Guest), &format!("wdiff.{it}"))?
            .into_iter()
            .chain(recv::<WeightDiff>(
                ctx,
                &data_parties,
                &format!("wdiff.{it}"),
            )?)
            .map(|(_, d)| d.sq_norm)
            .sum::<f64>();
        converged = match p.early_stop {
            EarlyStop::Diff => prev_loss.is_some_and(|prev| (prev - loss).abs() < p.tol),
            EarlyStop::WeightDiff => diffs.sqrt() < p.tol,
        };
        prev_loss = Some(loss);
        iterations = it + 1;
        ctx.log_metric("train", "loss", &[(it as f64, loss)])?;
        ctx.log(&format!(
            "hetero_lr arbiter: epoch {it} loss {loss:.6} ‖Δw‖ {:.3e}{}",
            diffs.sqrt(),
            if converged { " converged" } else { "" }
        ));
        send(
            ctx,
            &guest,
            &format!("verdict.{it}"),
            &Verdict {
                v: WIRE_VERSION,
                converged,
                loss: Some(loss),
            },
        )?;
        send(
            ctx,
            &data_parties,
            &format!("verdict.{it}"),
            &Verdict {
                v: WIRE_VERSION,
                converged,
                loss: None,
            },
        )?;
        if converged {
            break;
        }
    }
    ctx.log(&format!(
        "hetero_lr arbiter: {iterations} epoch(s) with {n_hosts} host(s), {}",
        if converged {
            "converged"
        } else {
            "max_iter reached"
        }
    ));
    let model = HeteroLrModel {
        v: MODEL_VERSION,
        role: "arbiter".into(),
        header: vec![],
        weights: vec![],
        intercept: 0.0,
        fit_intercept: false,
        iterations,
        converged,
    };
    ctx.output("model", &model.to_bytes()?)
}
