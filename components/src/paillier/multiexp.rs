//! Multi-exponentiation for `Xᵀ·[[d]]`: `out_j = Π_i c_i^{x_ij}` for all columns j at once.
//!
//! Rows are cut into blocks (one rayon task each). Inside a block the bases are grouped in
//! chunks of k; each chunk's 2^k subset products are tabulated once and serve every column and
//! every bit position (Straus' method with shared tables). A column then costs, per bit, one
//! squaring plus one product per chunk whose k bits are not all zero. k minimises
//! `(2^k + columns·bits) / k` per base. Negative scalars: column j is shifted by `min_j < 0`,
//! and the result multiplied by `(Π c_i)^{min_j}` — one modular inverse per call.

use rayon::prelude::*;

use super::mont::{Limbs, Mont};
use super::{Ciphertext, PaillierError};

/// `Π_i bases_i^{cols[j][i]}` for every column j.
pub(crate) fn matvec(
    mont: &Mont,
    bases: &[Ciphertext],
    cols: &[Vec<i64>],
) -> Result<Vec<Ciphertext>, PaillierError> {
    let n = bases.len();
    if let Some(bad) = cols.iter().position(|c| c.len() != n) {
        return Err(PaillierError::Shape(format!(
            "column {bad} has {} scalars for {n} ciphertexts",
            cols[bad].len()
        )));
    }
    if cols.is_empty() {
        return Ok(Vec::new());
    }
    // Shift every column to non-negative scalars.
    let offsets: Vec<u64> = cols
        .iter()
        .map(|c| c.iter().copied().min().unwrap_or(0).min(0).unsigned_abs())
        .collect();
    let shifted: Vec<Vec<u64>> = cols
        .iter()
        .zip(&offsets)
        .map(|(c, &off)| {
            c.iter()
                .map(|&x| x.wrapping_add_unsigned(off) as u64)
                .collect()
        })
        .collect();

    let threads = rayon::current_num_threads().max(1);
    let block = n.div_ceil(2 * threads).clamp(64, 1024);
    let partials: Vec<Vec<Option<Limbs>>> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let lo = b * block;
            let hi = (lo + block).min(n);
            let cols: Vec<&[u64]> = shifted.iter().map(|c| &c[lo..hi]).collect();
            block_products(mont, &bases[lo..hi], &cols)
        })
        .collect();

    let mut out: Vec<Limbs> = vec![mont.one(); cols.len()];
    for part in partials {
        for (o, p) in out.iter_mut().zip(part) {
            if let Some(p) = p {
                mont.mul_assign(o, &p);
            }
        }
    }

    if offsets.iter().any(|&o| o != 0) {
        let mut total = mont.one();
        for c in bases {
            mont.mul_assign(&mut total, &c.0);
        }
        let inv = mont
            .inv(&total)
            .ok_or_else(|| PaillierError::BadCiphertext("not invertible mod N²".into()))?;
        out.par_iter_mut().zip(&offsets).for_each(|(o, &off)| {
            if off != 0 {
                let corr = mont.pow_u64(&inv, off);
                mont.mul_assign(o, &corr);
            }
        });
    }
    Ok(out.into_iter().map(Ciphertext).collect())
}

/// The chunk size minimising table building plus per-column work.
fn best_k(rows: usize, columns: usize, bits: usize) -> usize {
    let work = columns * bits;
    (1..=10usize)
        .min_by_key(|&k| rows.div_ceil(k) * ((1usize << k) + work))
        .unwrap_or(4)
}

/// One block's products per column (`None` when every scalar of the column is zero).
fn block_products(mont: &Mont, bases: &[Ciphertext], cols: &[&[u64]]) -> Vec<Option<Limbs>> {
    let s = mont.limbs();
    let n = bases.len();
    let bits: Vec<usize> = cols
        .iter()
        .map(|c| 64 - c.iter().fold(0u64, |a, &x| a | x).leading_zeros() as usize)
        .collect();
    let avg_bits = bits.iter().sum::<usize>().div_ceil(bits.len().max(1));
    let k = best_k(n, cols.len(), avg_bits.max(1));

    // tables[c][idx] = Π_{t ∈ idx} bases[c·k + t], flat per chunk.
    let tables: Vec<Vec<u64>> = bases
        .chunks(k)
        .map(|chunk| {
            let size = 1usize << chunk.len();
            let mut t = vec![0u64; size * s];
            t[..s].copy_from_slice(&mont.one());
            for idx in 1..size {
                let top = usize::BITS as usize - 1 - idx.leading_zeros() as usize;
                let rest = idx ^ (1 << top);
                let (done, todo) = t.split_at_mut(idx * s);
                if rest == 0 {
                    todo[..s].copy_from_slice(&chunk[top].0);
                } else {
                    mont.mul_into(
                        &done[rest * s..(rest + 1) * s],
                        &chunk[top].0,
                        &mut todo[..s],
                    );
                }
            }
            t
        })
        .collect();

    let mut tmp = vec![0u64; s];
    cols.iter()
        .zip(&bits)
        .map(|(col, &nbits)| {
            let mut acc: Option<Limbs> = None;
            for bit in (0..nbits).rev() {
                if let Some(a) = &mut acc {
                    mont.mul_into(a, a, &mut tmp);
                    std::mem::swap(a, &mut tmp);
                }
                for (c, table) in tables.iter().enumerate() {
                    let lo = c * k;
                    let hi = (lo + k).min(col.len());
                    let mut idx = 0usize;
                    for (t, &x) in col[lo..hi].iter().enumerate() {
                        idx |= (((x >> bit) & 1) as usize) << t;
                    }
                    if idx == 0 {
                        continue;
                    }
                    let entry = &table[idx * s..(idx + 1) * s];
                    match &mut acc {
                        None => acc = Some(entry.to_vec()),
                        Some(a) => {
                            mont.mul_into(a, entry, &mut tmp);
                            std::mem::swap(a, &mut tmp);
                        }
                    }
                }
            }
            acc
        })
        .collect()
}
