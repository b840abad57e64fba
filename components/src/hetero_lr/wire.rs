//! `hetero_lr`'s messages (the helpers — `send`, `recv`, versions — serve `hetero_secureboost` too) (MessagePack, named fields, version `v`). Ciphertexts travel as one
//! blob of fixed-width big-endian values ([`crate::paillier::PublicKey::encode_ciphertexts`]),
//! plaintext residues mod N likewise at the width of N.

use num_bigint::BigUint;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::context::{Endpoint, Target, TaskContext, TaskError};
use crate::paillier::{Ciphertext, PublicKey};

use super::common::{crypto, fail};

/// Version of every message below.
pub const WIRE_VERSION: u16 = 1;

/// Host → guest, tag `align`: the host's row count and id-list hash.
#[derive(Debug, Serialize, Deserialize)]
pub struct Align {
    pub v: u16,
    /// Empty if the host's data is usable; else why not.
    pub error: String,
    pub rows: u64,
    #[serde(with = "serde_bytes")]
    pub ids_hash: Vec<u8>,
}

impl Align {
    /// What a host says of its data: its row count and id hash, or why it is unusable.
    pub fn of(data: Result<&consort_protocol::data::Dataset, &TaskError>) -> Align {
        match data {
            Ok(d) => Align {
                v: WIRE_VERSION,
                error: String::new(),
                rows: d.rows() as u64,
                ids_hash: super::common::ids_hash(&d.ids),
            },
            Err(e) => Align {
                v: WIRE_VERSION,
                error: e.to_string(),
                rows: 0,
                ids_hash: Vec::new(),
            },
        }
    }
}

/// Guest → hosts and arbiter, tag `setup`: whether rows agree, and the shared settings.
#[derive(Debug, Serialize, Deserialize)]
pub struct Setup {
    pub v: u16,
    /// Empty if every party's ids agree; else why not (every party fails with it).
    pub error: String,
    pub rows: u64,
    pub batch_size: i64,
    pub max_iter: u32,
    pub seed: u64,
    /// Whether the guest scores `test_data` after training (hosts must have it too).
    pub score_test: bool,
}

/// Arbiter → data parties, tag `pubkey`: N, big-endian.
#[derive(Debug, Serialize, Deserialize)]
pub struct PubKey {
    pub v: u16,
    #[serde(with = "serde_bytes")]
    pub n: Vec<u8>,
}

/// A vector of ciphertexts (tags `u.*`, `d.*`, `grad.*`, `hloss.*`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Ciphers {
    pub v: u16,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Guest → arbiter, tag `loss.*`: the batch's encrypted loss total and its row count.
#[derive(Debug, Serialize, Deserialize)]
pub struct Loss {
    pub v: u16,
    pub rows: u64,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Arbiter → a data party, tag `plain.*`: decrypted (still masked) residues mod N.
#[derive(Debug, Serialize, Deserialize)]
pub struct Residues {
    pub v: u16,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Data party → arbiter, tag `wdiff.*`: ‖Δw‖² of this party over the epoch.
#[derive(Debug, Serialize, Deserialize)]
pub struct WeightDiff {
    pub v: u16,
    pub sq_norm: f64,
}

/// Arbiter → data parties, tag `verdict.*`: whether to stop; the loss for the guest.
#[derive(Debug, Serialize, Deserialize)]
pub struct Verdict {
    pub v: u16,
    pub converged: bool,
    pub loss: Option<f64>,
}

/// Host → guest, tags `score.train`, `score.test`, `predict.u`: `X_h·w_h` for scoring.
#[derive(Debug, Serialize, Deserialize)]
pub struct Partial {
    pub v: u16,
    /// Empty if fine; else why the host cannot score (the guest fails with it).
    pub error: String,
    #[serde(with = "serde_bytes")]
    pub ids_hash: Vec<u8>,
    pub values: Vec<f64>,
}

/// Encodes a message.
pub fn enc<T: Serialize>(msg: &T) -> Result<Vec<u8>, TaskError> {
    rmp_serde::to_vec_named(msg).map_err(|e| fail(format!("cannot encode a message: {e}")))
}

/// Sends a message.
pub fn send<T: Serialize>(
    ctx: &dyn TaskContext,
    to: &Target,
    tag: &str,
    msg: &T,
) -> Result<(), TaskError> {
    ctx.remote(to, tag, &enc(msg)?)
}

/// Decodes a message from `from` under `tag`, checking its version.
pub fn dec<T: DeserializeOwned + Versioned>(
    from: &Endpoint,
    tag: &str,
    bytes: &[u8],
) -> Result<T, TaskError> {
    let msg: T = rmp_serde::from_slice(bytes)
        .map_err(|e| fail(format!("bad '{tag}' message from {from}: {e}")))?;
    if msg.version() != WIRE_VERSION {
        return Err(fail(format!(
            "'{tag}' message from {from} has version {}, expected {WIRE_VERSION}",
            msg.version()
        )));
    }
    Ok(msg)
}

/// Receives one message from every endpoint of `from`.
pub fn recv<T: DeserializeOwned + Versioned>(
    ctx: &dyn TaskContext,
    from: &Target,
    tag: &str,
) -> Result<Vec<(Endpoint, T)>, TaskError> {
    ctx.get(from, tag)?
        .into_iter()
        .map(|(e, b)| dec(&e, tag, &b).map(|m| (e, m)))
        .collect()
}

/// Receives exactly one message from `from`.
pub fn recv_one<T: DeserializeOwned + Versioned>(
    ctx: &dyn TaskContext,
    from: &Target,
    tag: &str,
) -> Result<(Endpoint, T), TaskError> {
    recv(ctx, from, tag)?
        .into_iter()
        .next()
        .ok_or_else(|| fail(format!("nobody to receive '{tag}' from")))
}

/// Ciphertexts from a peer, checked, with the expected count.
pub fn ciphers(
    pk: &PublicKey,
    from: &Endpoint,
    tag: &str,
    msg: &Ciphers,
    expect: usize,
) -> Result<Vec<Ciphertext>, TaskError> {
    let cs = pk
        .decode_ciphertexts(&msg.data)
        .map_err(|e| fail(format!("hetero_lr: '{tag}' from {from}: {e}")))?;
    if cs.len() != expect {
        return Err(fail(format!(
            "hetero_lr: '{tag}' from {from} has {} values, expected {expect}",
            cs.len()
        )));
    }
    Ok(cs)
}

/// Residues mod N as one fixed-width blob.
pub fn residues_to_bytes(pk: &PublicKey, ms: &[BigUint]) -> Vec<u8> {
    let w = pk.n().bits().div_ceil(8) as usize;
    let mut out = vec![0u8; w * ms.len()];
    for (slot, m) in out.chunks_mut(w).zip(ms) {
        let b = (m % pk.n()).to_bytes_be();
        slot[w - b.len()..].copy_from_slice(&b);
    }
    out
}

/// Residues from the arbiter, checked (`< N`, expected count).
pub fn residues_from_bytes(
    pk: &PublicKey,
    from: &Endpoint,
    bytes: &[u8],
    expect: usize,
) -> Result<Vec<BigUint>, TaskError> {
    let w = pk.n().bits().div_ceil(8) as usize;
    if bytes.len() != w * expect {
        return Err(fail(format!(
            "hetero_lr: {from} sent {} bytes of residues, expected {expect} × {w}",
            bytes.len()
        )));
    }
    let ms: Vec<BigUint> = bytes.chunks(w).map(BigUint::from_bytes_be).collect();
    if ms.iter().any(|m| m >= pk.n()) {
        return Err(fail(format!("hetero_lr: {from} sent a residue ≥ N")));
    }
    Ok(ms)
}

/// The public key from the arbiter's message.
pub fn public_key(msg: &PubKey) -> Result<PublicKey, TaskError> {
    PublicKey::from_bytes(&msg.n).map_err(crypto)
}

/// Messages that carry a version.
pub trait Versioned {
    /// The version field.
    fn version(&self) -> u16;
}

macro_rules! versioned {
    ($($t:ty),*) => { $(impl Versioned for $t { fn version(&self) -> u16 { self.v } })* };
}
versioned!(
    Align, Setup, PubKey, Ciphers, Loss, Residues, WeightDiff, Verdict, Partial
);

/// Masks `grads` with fresh encrypted random residues, has the arbiter decrypt them (tags
/// `grad.{step}` out, `plain.{step}` back) and returns the unmasked residues.
pub fn masked_decrypt(
    ctx: &dyn TaskContext,
    pk: &PublicKey,
    encryptor: &crate::paillier::Encryptor,
    arbiter: &Target,
    step: &str,
    grads: &[Ciphertext],
) -> Result<Vec<BigUint>, TaskError> {
    use rayon::prelude::*;
    let masks: Vec<BigUint> = grads.iter().map(|_| pk.random_residue()).collect();
    let masked: Vec<Ciphertext> = grads
        .par_iter()
        .zip(&masks)
        .map(|(g, r)| pk.add(g, &encryptor.encrypt(r)))
        .collect();
    let tag = format!("grad.{step}");
    send(
        ctx,
        arbiter,
        &tag,
        &Ciphers {
            v: WIRE_VERSION,
            data: pk.encode_ciphertexts(&masked),
        },
    )?;
    let tag = format!("plain.{step}");
    let (from, msg): (_, Residues) = recv_one(ctx, arbiter, &tag)?;
    let plain = residues_from_bytes(pk, &from, &msg.data, grads.len())?;
    Ok(plain
        .iter()
        .zip(&masks)
        .map(|(m, r)| pk.sub_mod(m, r))
        .collect())
}
