//! `psi`: private set intersection of sample ids (ECDH over ristretto255).
//!
//! Roles: exactly one guest and one or more hosts. Input `data` (a [`Dataset`]) at every party;
//! output `data`: the rows whose ids every party has, in the same order at every party (the
//! guest's row order).
//!
//! # Protocol (guest G with secret `a`, each host H with secret `b`)
//! 1. Every party hashes each of its ids to a ristretto point `P(id)` (SHA-512 of a domain tag and
//!    the id, Elligator twice) and blinds it with its secret scalar. G sends `a·P(g)` for its ids,
//!    in its row order, to every host (`psi.a.*`); H sends `b·P(h)` for its ids, in a random order
//!    it keeps secret, to G (`psi.b.*`).
//! 2. H blinds G's values again and returns `b·a·P(g)` in G's order (`psi.ab.*`); G blinds H's
//!    values again (`a·b·P(h)`) and compares: equal double-blinded points are equal ids.
//! 3. G keeps its rows that matched at every host and sends each host, in G's row order, the
//!    positions of the matching rows in the host's shuffled list (`psi.r.*`); the host maps them
//!    back to its own rows.
//!
//! # What each party learns
//! * The guest learns the size of each host's set and, for each host, which of its own ids that
//!   host has (the pairwise intersections; with one host this is the intersection). It learns
//!   nothing about host ids outside the intersection (it sees only blinded points) nor the hosts'
//!   row order (host lists are shuffled).
//! * A host learns the size of the guest's set and which of its own rows are in the final
//!   intersection (its output). It sees only blinded guest points, so it learns nothing about
//!   guest ids outside the intersection, nor about the other hosts.
//!
//! Security is against semi-honest parties (under the decisional Diffie-Hellman assumption in
//! ristretto255, with the hash modelled as a random oracle). Scalar multiplications are the
//! library's constant-time ones; secret scalars are fresh per task run.
//!
//! # Wire format
//! Every stream `psi.X` is a header message under tag `psi.X.n` — MessagePack
//! `{v: 1, n: <items>}` — followed by `ceil(n / chunk)` messages under tags `psi.X.0`,
//! `psi.X.1`, ... — MessagePack `{v: 1, data: <bin>}` where `data` concatenates fixed-width
//! items: 32-byte compressed ristretto points for `a`, `b`, `ab`; 4-byte little-endian u32
//! positions for `r`. Parameter `chunk` (default 100 000) is the number of items per message.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use consort_protocol::data::Dataset;
use consort_protocol::job::Role;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use crate::context::{Endpoint, Target, TaskContext, TaskError};

/// Version of the `psi` wire messages.
const WIRE_VERSION: u16 = 1;
/// Domain separation for hashing ids to points.
const DOMAIN: &[u8] = b"consort/psi/v1/id";
/// Width of a compressed point.
const POINT: usize = 32;
/// Points per rayon work unit (one batch inversion each).
const BATCH: usize = 512;
/// Default ids per message.
pub const DEFAULT_CHUNK: usize = 100_000;

#[derive(Serialize, Deserialize)]
struct Header {
    v: u16,
    n: u64,
}

#[derive(Serialize, Deserialize)]
struct Chunk {
    v: u16,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

fn fail(msg: impl Into<String>) -> TaskError {
    TaskError::Failed(format!("psi: {}", msg.into()))
}

/// A secret blinding key. The effective exponent is `2·half`: blinding multiplies by `half` and
/// then uses the batched double-and-compress, which saves one inverse square root per point.
pub struct BlindKey {
    half: Scalar,
}

impl BlindKey {
    /// A fresh random key.
    pub fn random() -> Self {
        Self {
            half: Scalar::random(&mut rand::rng()),
        }
    }

    /// Hashes `ids` to points and blinds them: 32 bytes per id, in order.
    pub fn hash_and_blind(&self, ids: &[String]) -> Vec<u8> {
        let parts: Vec<Vec<u8>> = ids
            .par_chunks(BATCH)
            .map(|batch| {
                let points: Vec<RistrettoPoint> = batch
                    .iter()
                    .map(|id| self.half * hash_to_point(id.as_bytes()))
                    .collect();
                flatten(RistrettoPoint::double_and_compress_batch(&points))
            })
            .collect();
        parts.concat()
    }

    /// Blinds already-blinded points again (32 bytes each, in order). Fails on bytes that are
    /// not a whole number of valid points.
    pub fn reblind(&self, bytes: &[u8]) -> Result<Vec<u8>, TaskError> {
        if !bytes.len().is_multiple_of(POINT) {
            return Err(fail(format!(
                "{} bytes of points is not a multiple of {POINT}",
                bytes.len()
            )));
        }
        let parts: Result<Vec<Vec<u8>>, TaskError> = bytes
            .par_chunks(BATCH * POINT)
            .map(|batch| {
                let points = batch
                    .chunks_exact(POINT)
                    .map(|c| {
                        let compressed = CompressedRistretto::from_slice(c)
                            .map_err(|_| fail("malformed point"))?;
                        compressed
                            .decompress()
                            .map(|p| self.half * p)
                            .ok_or_else(|| fail("peer sent bytes that are not a ristretto point"))
                    })
                    .collect::<Result<Vec<RistrettoPoint>, TaskError>>()?;
                Ok(flatten(RistrettoPoint::double_and_compress_batch(&points)))
            })
            .collect();
        Ok(parts?.concat())
    }
}

fn hash_to_point(id: &[u8]) -> RistrettoPoint {
    RistrettoPoint::from_hash(Sha512::new().chain_update(DOMAIN).chain_update(id))
}

fn flatten(points: Vec<CompressedRistretto>) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * POINT);
    for p in points {
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// Sends `items` (concatenated, `width` bytes each) as stream `prefix` to `to`.
fn send_stream(
    ctx: &dyn TaskContext,
    to: &Target,
    prefix: &str,
    width: usize,
    items: &[u8],
    chunk: usize,
) -> Result<(), TaskError> {
    let n = items.len() / width;
    let header = Header {
        v: WIRE_VERSION,
        n: n as u64,
    };
    ctx.remote(to, &format!("{prefix}.n"), &encode(&header)?)?;
    for (i, part) in items.chunks(chunk * width).enumerate() {
        send_chunk(ctx, to, prefix, i, part.to_vec())?;
    }
    Ok(())
}

fn send_chunk(
    ctx: &dyn TaskContext,
    to: &Target,
    prefix: &str,
    i: usize,
    data: Vec<u8>,
) -> Result<(), TaskError> {
    if ctx.is_cancelled() {
        return Err(TaskError::Cancelled);
    }
    let msg = Chunk {
        v: WIRE_VERSION,
        data,
    };
    ctx.remote(to, &format!("{prefix}.{i}"), &encode(&msg)?)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, TaskError> {
    rmp_serde::to_vec_named(v).map_err(|e| fail(format!("encode: {e}")))
}

fn get_one(ctx: &dyn TaskContext, from: &Endpoint, tag: &str) -> Result<Vec<u8>, TaskError> {
    ctx.get(&Target::One(from.clone()), tag)?
        .pop()
        .map(|(_, d)| d)
        .ok_or_else(|| TaskError::Channel(format!("nothing from {from} under '{tag}'")))
}

/// Receives stream `prefix` from `from`, calling `each` on every chunk (a whole number of
/// `width`-byte items) as it arrives. Returns the number of items.
fn recv_stream(
    ctx: &dyn TaskContext,
    from: &Endpoint,
    prefix: &str,
    width: usize,
    mut each: impl FnMut(usize, Vec<u8>) -> Result<(), TaskError>,
) -> Result<usize, TaskError> {
    let header: Header = rmp_serde::from_slice(&get_one(ctx, from, &format!("{prefix}.n"))?)
        .map_err(|e| fail(format!("{from} sent a bad header for '{prefix}': {e}")))?;
    if header.v != WIRE_VERSION {
        return Err(fail(format!(
            "{from} speaks wire version {}, expected {WIRE_VERSION}",
            header.v
        )));
    }
    let n = usize::try_from(header.n).map_err(|_| fail("item count too large"))?;
    let mut got = 0usize;
    let mut i = 0usize;
    while got < n {
        if ctx.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        let msg: Chunk = rmp_serde::from_slice(&get_one(ctx, from, &format!("{prefix}.{i}"))?)
            .map_err(|e| fail(format!("{from} sent a bad chunk {i} of '{prefix}': {e}")))?;
        if msg.v != WIRE_VERSION {
            return Err(fail(format!(
                "{from} speaks wire version {}, expected {WIRE_VERSION}",
                msg.v
            )));
        }
        if msg.data.is_empty() || !msg.data.len().is_multiple_of(width) {
            return Err(fail(format!(
                "{from} sent chunk {i} of '{prefix}' with {} bytes, not a positive multiple of {width}",
                msg.data.len()
            )));
        }
        let count = msg.data.len() / width;
        if got + count > n {
            return Err(fail(format!(
                "{from} sent more than the {n} items it announced for '{prefix}'"
            )));
        }
        got += count;
        each(got - count, msg.data)?;
        i += 1;
    }
    Ok(n)
}

fn chunk_param(ctx: &dyn TaskContext) -> Result<usize, TaskError> {
    match ctx.params().get("chunk") {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_CHUNK),
        Some(v) => v
            .as_u64()
            .filter(|&c| c > 0)
            .and_then(|c| usize::try_from(c).ok())
            .ok_or_else(|| TaskError::Param("chunk".into(), "must be a positive integer".into())),
    }
}

/// The `psi` component (see the module docs).
pub fn psi(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let chunk = chunk_param(ctx)?;
    let bytes = ctx
        .input("data")?
        .ok_or_else(|| fail("input 'data' is not wired"))?;
    let data = Dataset::from_bytes(&bytes).map_err(|e| fail(format!("input 'data': {e}")))?;
    let guests: Vec<&Endpoint> = ctx
        .endpoints()
        .iter()
        .filter(|e| e.role == Role::Guest)
        .collect();
    let hosts = ctx.resolve(&Target::Role(Role::Host));
    if guests.len() != 1 {
        return Err(fail(format!(
            "needs exactly one guest, the task has {}",
            guests.len()
        )));
    }
    match ctx.me().role {
        Role::Guest => {
            if hosts.is_empty() {
                return Err(fail("needs at least one host"));
            }
            run_guest(ctx, &data, &hosts, chunk)
        }
        Role::Host => run_host(ctx, &data, guests[0], chunk),
        Role::Arbiter => Err(fail("the arbiter takes no part in psi")),
    }
}

fn finish(ctx: &dyn TaskContext, data: &Dataset, rows: &[usize]) -> Result<(), TaskError> {
    let out = data.select(rows);
    ctx.output(
        "data",
        &out.to_bytes()
            .map_err(|e| fail(format!("output 'data': {e}")))?,
    )?;
    ctx.log_metric("psi", "intersection_size", &[(0.0, rows.len() as f64)])?;
    Ok(())
}

fn run_guest(
    ctx: &dyn TaskContext,
    data: &Dataset,
    hosts: &[Endpoint],
    chunk: usize,
) -> Result<(), TaskError> {
    let start = Instant::now();
    let n = data.rows();
    let key = BlindKey::random();
    let mine = key.hash_and_blind(&data.ids);
    ctx.log(&format!(
        "psi guest: {n} ids hashed and blinded in {:.2} s",
        start.elapsed().as_secs_f64()
    ));
    send_stream(ctx, &Target::Role(Role::Host), "psi.a", POINT, &mine, chunk)?;
    drop(mine);

    // For each host: the host position of each guest row, if matched.
    let mut per_host: Vec<Vec<Option<u32>>> = Vec::with_capacity(hosts.len());
    for host in hosts {
        let t = Instant::now();
        let mut table: HashMap<[u8; 32], u32> = HashMap::new();
        let host_n = recv_stream(ctx, host, "psi.b", POINT, |first, bytes| {
            let double = key.reblind(&bytes)?;
            table.reserve(double.len() / POINT);
            for (k, p) in double.chunks_exact(POINT).enumerate() {
                let pos = u32::try_from(first + k).map_err(|_| fail("too many host ids"))?;
                let mut b = [0u8; 32];
                b.copy_from_slice(p);
                if table.insert(b, pos).is_some() {
                    return Err(fail(format!("{host} sent the same point twice")));
                }
            }
            Ok(())
        })?;
        let mut matches: Vec<Option<u32>> = vec![None; n];
        let echoed = recv_stream(ctx, host, "psi.ab", POINT, |first, bytes| {
            for (k, p) in bytes.chunks_exact(POINT).enumerate() {
                let mut b = [0u8; 32];
                b.copy_from_slice(p);
                matches[first + k] = table.get(&b).copied();
            }
            Ok(())
        })?;
        if echoed != n {
            return Err(fail(format!(
                "{host} returned {echoed} double-blinded ids for the guest's {n}"
            )));
        }
        let found = matches.iter().filter(|m| m.is_some()).count();
        ctx.log(&format!(
            "psi guest: {host} has {host_n} ids, {found} in common with the guest ({:.2} s)",
            t.elapsed().as_secs_f64()
        ));
        per_host.push(matches);
    }

    let rows: Vec<usize> = (0..n)
        .filter(|&i| per_host.iter().all(|m| m[i].is_some()))
        .collect();
    for (host, matches) in hosts.iter().zip(&per_host) {
        let mut positions = Vec::with_capacity(rows.len() * 4);
        for &i in &rows {
            if let Some(p) = matches[i] {
                positions.extend_from_slice(&p.to_le_bytes());
            }
        }
        send_stream(
            ctx,
            &Target::One(host.clone()),
            "psi.r",
            4,
            &positions,
            chunk,
        )?;
    }
    ctx.log(&format!(
        "psi guest: intersection {} of {n} ids with {} host(s) in {:.2} s",
        rows.len(),
        hosts.len(),
        start.elapsed().as_secs_f64()
    ));
    finish(ctx, data, &rows)
}

fn run_host(
    ctx: &dyn TaskContext,
    data: &Dataset,
    guest: &Endpoint,
    chunk: usize,
) -> Result<(), TaskError> {
    let start = Instant::now();
    let n = data.rows();
    let key = BlindKey::random();
    // The guest sees our blinded ids in a secret random order.
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(&mut rand::rng());
    let shuffled: Vec<String> = perm.iter().map(|&i| data.ids[i].clone()).collect();
    let mine = key.hash_and_blind(&shuffled);
    drop(shuffled);
    ctx.log(&format!(
        "psi host: {n} ids hashed and blinded in {:.2} s",
        start.elapsed().as_secs_f64()
    ));
    let to_guest = Target::One(guest.clone());
    send_stream(ctx, &to_guest, "psi.b", POINT, &mine, chunk)?;
    drop(mine);

    // Double-blind the guest's points as they arrive and send them straight back, same order.
    let mut guest_n = 0usize;
    let mut sent = 0usize;
    recv_stream(ctx, guest, "psi.a", POINT, |_, bytes| {
        let double = key.reblind(&bytes)?;
        send_chunk(ctx, &to_guest, "psi.ab", sent, double)?;
        sent += 1;
        guest_n += bytes.len() / POINT;
        Ok(())
    })?;
    // The count goes last (the guest reads it first, then the chunks already queued).
    ctx.remote(
        &to_guest,
        "psi.ab.n",
        &encode(&Header {
            v: WIRE_VERSION,
            n: guest_n as u64,
        })?,
    )?;

    let mut rows: Vec<usize> = Vec::new();
    let mut seen: HashSet<u32> = HashSet::new();
    recv_stream(ctx, guest, "psi.r", 4, |_, bytes| {
        for c in bytes.chunks_exact(4) {
            let p = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let row = usize::try_from(p)
                .ok()
                .and_then(|p| perm.get(p).copied())
                .ok_or_else(|| fail(format!("{guest} sent position {p} of {n}")))?;
            if !seen.insert(p) {
                return Err(fail(format!("{guest} sent position {p} twice")));
            }
            rows.push(row);
        }
        Ok(())
    })?;
    ctx.log(&format!(
        "psi host: guest has {guest_n} ids; intersection {} of {n} ids in {:.2} s",
        rows.len(),
        start.elapsed().as_secs_f64()
    ));
    finish(ctx, data, &rows)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use consort_protocol::data::Dataset;
    use consort_protocol::job::Role;

    use super::*;
    use crate::test_util::{ep, output_dataset, plan, result_of, run, run_with};

    /// Ids `u{k}` for `ks`, one feature `f` = k·scale, labels at the guest.
    fn dataset(ks: &[u64], scale: f64, labels: bool) -> Dataset {
        Dataset::new(
            ks.iter().map(|k| format!("u{k}")).collect(),
            vec!["f".into()],
            vec![ks.iter().map(|&k| k as f64 * scale).collect()],
            labels.then(|| ("y".into(), ks.iter().map(|k| (k % 2) as f64).collect())),
        )
        .expect("dataset")
    }

    /// A deterministic scramble of `ks`.
    fn scramble(mut ks: Vec<u64>) -> Vec<u64> {
        ks.sort_by_key(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1009);
        ks
    }

    fn inputs(sets: &[(Endpoint, Dataset)]) -> BTreeMap<Endpoint, BTreeMap<String, Vec<u8>>> {
        sets.iter()
            .map(|(e, d)| {
                (
                    e.clone(),
                    BTreeMap::from([("data".to_owned(), d.to_bytes().expect("bytes"))]),
                )
            })
            .collect()
    }

    const TWO: &str = "  guest: [a]\n  host: [b]\n";
    const THREE: &str = "  guest: [a]\n  host: [b, c]\n";

    fn check_aligned(out: &Dataset, scale: f64) {
        for (id, v) in out.ids.iter().zip(&out.columns[0]) {
            let k: f64 = id[1..].parse().expect("numeric id");
            assert_eq!(*v, k * scale, "row of {id} carries its own features");
        }
    }

    #[test]
    fn two_parties_agree_on_the_intersection_in_the_same_order() {
        let g: Vec<u64> = scramble((0..300).collect());
        let h: Vec<u64> = scramble((200..450).collect());
        let task = plan(TWO, "    component: psi\n    params: {chunk: 37}\n");
        let (ga, hb) = (ep(Role::Guest, "a"), ep(Role::Host, "b"));
        let results = run(
            &task,
            &inputs(&[
                (ga.clone(), dataset(&g, 1.0, true)),
                (hb.clone(), dataset(&h, 2.0, false)),
            ]),
        );
        for r in &results {
            assert_eq!(r.result, Ok(()), "{}: {:?}", r.endpoint, r.log);
            assert_eq!(
                r.metrics,
                vec![("psi".into(), "intersection_size".into(), vec![(0.0, 100.0)])]
            );
        }
        let go = output_dataset(result_of(&results, &ga), "data");
        let ho = output_dataset(result_of(&results, &hb), "data");
        let expected: Vec<String> = g
            .iter()
            .filter(|k| (200..300).contains(*k))
            .map(|k| format!("u{k}"))
            .collect();
        assert_eq!(go.ids, expected, "guest keeps its own order");
        assert_eq!(ho.ids, expected, "host has the same order");
        check_aligned(&go, 1.0);
        check_aligned(&ho, 2.0);
        assert!(go.labels.is_some() && ho.labels.is_none());
    }

    #[test]
    fn three_parties_get_the_common_rows_of_all() {
        let g: Vec<u64> = scramble((0..120).collect());
        let h1: Vec<u64> = scramble((30..150).collect());
        let h2: Vec<u64> = scramble((0..60).chain(100..130).collect());
        let task = plan(THREE, "    component: psi\n");
        let (ga, hb, hc) = (
            ep(Role::Guest, "a"),
            ep(Role::Host, "b"),
            ep(Role::Host, "c"),
        );
        let results = run(
            &task,
            &inputs(&[
                (ga.clone(), dataset(&g, 1.0, true)),
                (hb.clone(), dataset(&h1, 2.0, false)),
                (hc.clone(), dataset(&h2, 3.0, false)),
            ]),
        );
        assert!(results.iter().all(|r| r.result.is_ok()), "{results:?}");
        let want: BTreeSet<u64> = (30..60).chain(100..120).collect();
        let expected: Vec<String> = g
            .iter()
            .filter(|k| want.contains(k))
            .map(|k| format!("u{k}"))
            .collect();
        for (e, scale) in [(&ga, 1.0), (&hb, 2.0), (&hc, 3.0)] {
            let out = output_dataset(result_of(&results, e), "data");
            assert_eq!(out.ids, expected, "{e}");
            check_aligned(&out, scale);
            assert_eq!(
                result_of(&results, e).metrics[0].2,
                vec![(0.0, want.len() as f64)]
            );
        }
    }

    #[test]
    fn empty_intersection_gives_empty_datasets() {
        let task = plan(TWO, "    component: psi\n");
        let (ga, hb) = (ep(Role::Guest, "a"), ep(Role::Host, "b"));
        let results = run(
            &task,
            &inputs(&[
                (ga.clone(), dataset(&[1, 2, 3], 1.0, true)),
                (hb.clone(), dataset(&[4, 5], 1.0, false)),
            ]),
        );
        for e in [&ga, &hb] {
            let r = result_of(&results, e);
            assert_eq!(r.result, Ok(()), "{e}: {:?}", r.log);
            let out = output_dataset(r, "data");
            assert_eq!(out.rows(), 0);
            assert_eq!(out.feature_names, vec!["f".to_owned()]);
        }
    }

    /// A host that sends 33-byte "points" and garbage instead of a valid stream.
    fn bad_host(ctx: &dyn TaskContext) -> Result<(), TaskError> {
        if ctx.me().role != Role::Host {
            return psi(ctx);
        }
        let guest = Target::Role(Role::Guest);
        send_stream(ctx, &guest, "psi.b", 33, &[7u8; 66], 10)?;
        Ok(())
    }

    /// A host whose points have the right length but are not on the curve.
    fn off_curve_host(ctx: &dyn TaskContext) -> Result<(), TaskError> {
        if ctx.me().role != Role::Host {
            return psi(ctx);
        }
        send_stream(
            ctx,
            &Target::Role(Role::Guest),
            "psi.b",
            32,
            &[0xffu8; 64],
            10,
        )?;
        Ok(())
    }

    #[test]
    fn malformed_peer_bytes_fail_clearly() {
        let task = plan(TWO, "    component: psi\n");
        let ga = ep(Role::Guest, "a");
        let ins = inputs(&[
            (ga.clone(), dataset(&[1, 2, 3], 1.0, true)),
            (ep(Role::Host, "b"), dataset(&[2, 3], 1.0, false)),
        ]);
        let results = run_with(&task, bad_host, &ins);
        let err = result_of(&results, &ga)
            .result
            .clone()
            .expect_err("must fail");
        assert!(
            err.to_string().contains("not a positive multiple of 32"),
            "{err}"
        );
        let results = run_with(&task, off_curve_host, &ins);
        let err = result_of(&results, &ga)
            .result
            .clone()
            .expect_err("must fail");
        assert!(err.to_string().contains("not a ristretto point"), "{err}");
        // Direct: reblind refuses a wrong length.
        assert!(BlindKey::random().reblind(&[0u8; 31]).is_err());
    }

    #[test]
    fn missing_input_is_an_error() {
        let task = plan(TWO, "    component: psi\n");
        let results = run(&task, &BTreeMap::new());
        for r in &results {
            let err = r.result.clone().expect_err("fails");
            assert!(err.to_string().contains("input 'data'"), "{err}");
        }
    }

    #[test]
    fn blinding_commutes() {
        let (a, b) = (BlindKey::random(), BlindKey::random());
        let ids = vec!["x".to_owned(), "y".to_owned()];
        let ab = b.reblind(&a.hash_and_blind(&ids)).expect("points");
        let ba = a.reblind(&b.hash_and_blind(&ids)).expect("points");
        assert_eq!(ab, ba);
        assert_ne!(ab[..32], ab[32..]);
        assert_ne!(a.hash_and_blind(&ids), b.hash_and_blind(&ids));
    }
}
