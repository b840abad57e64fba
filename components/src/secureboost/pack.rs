//! How a row's g, h and a count of one travel in one Paillier plaintext, and how several bins'
//! sums share one ciphertext.
//!
//! A slot is `g_fx · 2^(wh+wc) + h_fx · 2^wc + 1`, with each field wide enough for the sum over
//! every row (so sums never carry into the next field). The guest encrypts one slot per row;
//! a host adds a bin's rows, then packs `per_cipher` bins into one ciphertext with Horner's rule
//! (`[[Σ_j 2^(j·w)·v_j]]`, `w` squarings per bin, [`PublicKey::shift`]) and re-randomizes it, so
//! the guest decrypts once per `per_cipher` bins and cannot tell which of its own ciphertexts
//! were added.

use num_bigint::BigUint;
use num_traits::{One, ToPrimitive, Zero};
use serde::{Deserialize, Serialize};

use super::tree::{GradFx, Grads, Sums};
use crate::paillier::{Ciphertext, Encryptor, PublicKey};

/// Field widths of one tree's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Bits of the offset g sum, the h sum and the count.
    pub wg: u32,
    pub wh: u32,
    pub wc: u32,
    /// Slots in one ciphertext.
    pub per_cipher: u32,
}

fn bits(x: u64) -> u32 {
    64 - x.leading_zeros()
}

impl Layout {
    /// The layout for `grads` of `rows` rows under a key of `key_bits`; None if one slot does
    /// not fit (the key is too small for this many rows).
    pub fn new(grads: &Grads, key_bits: u64) -> Option<Layout> {
        let rows = grads.rows.len() as u64;
        let max_g = grads.rows.iter().map(|r| r.g).max().unwrap_or(0);
        let max_h = grads.rows.iter().map(|r| r.h).max().unwrap_or(0);
        let wc = bits(rows).max(1);
        let wg = bits(max_g) + wc;
        let wh = bits(max_h) + wc;
        let slot = wg + wh + wc;
        if slot > 127 {
            return None;
        }
        let per_cipher = u32::try_from(key_bits.saturating_sub(2)).ok()? / slot;
        (per_cipher >= 1).then_some(Layout {
            wg,
            wh,
            wc,
            per_cipher,
        })
    }

    /// Bits of one slot.
    pub fn slot_bits(&self) -> u32 {
        self.wg + self.wh + self.wc
    }

    /// Whether the widths are sane for `rows` rows under `pk` (checked by a host before use).
    pub fn fits(&self, pk: &PublicKey) -> bool {
        let slot = self.slot_bits();
        self.wc >= 1
            && slot <= 127
            && self.per_cipher >= 1
            && u64::from(slot) * u64::from(self.per_cipher) + 2 <= pk.bits()
    }

    /// One row's slot.
    pub fn encode(&self, r: GradFx) -> BigUint {
        ((BigUint::from(r.g) << (self.wh + self.wc)) | (BigUint::from(r.h) << self.wc)) + 1u32
    }

    /// The first `count` slots of a decrypted plaintext.
    pub fn unpack(&self, m: &BigUint, count: usize) -> Vec<Sums> {
        let w = self.slot_bits();
        let mask = (BigUint::one() << w) - 1u32;
        (0..count)
            .map(|j| {
                let slot = ((m >> (j as u32 * w)) & &mask).to_u128().unwrap_or(0);
                let n_mask = (1u128 << self.wc) - 1;
                let h_mask = (1u128 << self.wh) - 1;
                Sums {
                    n: (slot & n_mask) as u64,
                    h: (slot >> self.wc) & h_mask,
                    g: slot >> (self.wc + self.wh),
                }
            })
            .collect()
    }
}

/// The guest's encryption of every row's slot.
pub fn encrypt_rows(layout: &Layout, grads: &Grads, enc: &Encryptor) -> Vec<Ciphertext> {
    use rayon::prelude::*;
    grads
        .rows
        .par_iter()
        .map(|r| enc.encrypt(&layout.encode(*r)))
        .collect()
}

/// A host's packing of bin sums `bins` (in order) into ⌈len / per_cipher⌉ ciphertexts, each
/// re-randomized with a fresh encryption of zero.
pub fn pack(
    layout: &Layout,
    pk: &PublicKey,
    enc: &Encryptor,
    bins: &[Ciphertext],
) -> Vec<Ciphertext> {
    let w = layout.slot_bits();
    bins.chunks(layout.per_cipher as usize)
        .map(|group| {
            let mut acc = group[group.len() - 1].clone();
            for c in group[..group.len() - 1].iter().rev() {
                acc = pk.add(&pk.shift(&acc, w), c);
            }
            pk.add(&acc, &enc.encrypt(&BigUint::zero()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paillier::generate_keypair;
    use crate::secureboost::tree::quantize;

    #[test]
    fn packed_sums_decrypt_to_the_plain_sums() {
        let (pk, sk) = generate_keypair(512).expect("keys");
        let enc = pk.encryptor();
        let g: Vec<f64> = (0..40).map(|i| (f64::from(i) / 40.0) - 0.5).collect();
        let h: Vec<f64> = (0..40).map(|i| 0.01 + f64::from(i) / 200.0).collect();
        let grads = quantize(&g, &h);
        let layout = Layout::new(&grads, 512).expect("fits");
        assert!(layout.fits(&pk) && layout.per_cipher >= 3, "{layout:?}");
        let cs = encrypt_rows(&layout, &grads, &enc);
        // Bins of 7 rows each (the last shorter), summed under encryption and in the clear.
        let mut plain = Vec::new();
        let mut sums = Vec::new();
        for chunk in (0..40).collect::<Vec<usize>>().chunks(7) {
            let mut s = Sums::default();
            let mut c = cs[chunk[0]].clone();
            for &i in chunk {
                s.add(grads.rows[i]);
            }
            for &i in &chunk[1..] {
                c = pk.add(&c, &cs[i]);
            }
            plain.push(s);
            sums.push(c);
        }
        let packed = pack(&layout, &pk, &enc, &sums);
        assert_eq!(
            packed.len(),
            sums.len().div_ceil(layout.per_cipher as usize)
        );
        let mut opened = Vec::new();
        for (i, c) in packed.iter().enumerate() {
            let left = sums.len() - i * layout.per_cipher as usize;
            opened.extend(layout.unpack(&sk.decrypt(c), left.min(layout.per_cipher as usize)));
        }
        assert_eq!(opened, plain);
    }
}
