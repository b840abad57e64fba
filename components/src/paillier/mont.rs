//! Montgomery arithmetic modulo an odd modulus (N² for Paillier), on little-endian `u64` limbs.
//!
//! num-bigint's `(a * b) % m` divides on every product; inside Paillier's loops (encryption,
//! homomorphic sums, multi-exponentiation) every operand stays in Montgomery form instead and a
//! product costs one CIOS pass (2·s² limb multiplications for s limbs) with no division.

use num_bigint::BigUint;
use num_traits::{One, Zero};

/// A number in Montgomery form (`x·R mod m`, R = 2^(64·s)), exactly `s` limbs.
pub(crate) type Limbs = Vec<u64>;

/// Montgomery context for one odd modulus.
#[derive(Debug, Clone)]
pub(crate) struct Mont {
    /// The modulus.
    pub m: BigUint,
    /// Its limbs.
    n: Vec<u64>,
    /// −m⁻¹ mod 2^64.
    n0inv: u64,
    /// R² mod m (to enter Montgomery form with one product).
    r2: Limbs,
    /// R mod m (one, in Montgomery form).
    one: Limbs,
}

impl Mont {
    /// Context for odd `m` > 1.
    pub fn new(m: &BigUint) -> Self {
        let n = m.to_u64_digits();
        let s = n.len();
        // Newton iteration for m⁻¹ mod 2^64 (m odd).
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(n[0].wrapping_mul(inv)));
        }
        let r = BigUint::one() << (64 * s);
        let one = pad(&(&r % m), s);
        let r2 = pad(&((&r * &r) % m), s);
        Self {
            m: m.clone(),
            n,
            n0inv: inv.wrapping_neg(),
            r2,
            one,
        }
    }

    /// Number of limbs.
    pub fn limbs(&self) -> usize {
        self.n.len()
    }

    /// One in Montgomery form.
    pub fn one(&self) -> Limbs {
        self.one.clone()
    }

    /// `x` (any size; reduced first if ≥ m) into Montgomery form.
    pub fn to_mont(&self, x: &BigUint) -> Limbs {
        let x = if x >= &self.m {
            pad(&(x % &self.m), self.limbs())
        } else {
            pad(x, self.limbs())
        };
        self.mul(&x, &self.r2)
    }

    /// Back from Montgomery form.
    pub fn leave_mont(&self, a: &[u64]) -> BigUint {
        let mut one = vec![0u64; self.limbs()];
        one[0] = 1;
        let r = self.mul(a, &one);
        BigUint::from_slice(&to_u32(&r))
    }

    /// a·b·R⁻¹ mod m.
    pub fn mul(&self, a: &[u64], b: &[u64]) -> Limbs {
        let mut out = vec![0u64; self.limbs()];
        self.mul_into(a, b, &mut out);
        out
    }

    /// `a = a·b·R⁻¹ mod m`.
    pub fn mul_assign(&self, a: &mut Limbs, b: &[u64]) {
        let mut out = vec![0u64; self.limbs()];
        self.mul_into(a, b, &mut out);
        *a = out;
    }

    /// CIOS Montgomery product into `out`; `a`, `b` < m, `s` limbs each.
    pub fn mul_into(&self, a: &[u64], b: &[u64], out: &mut [u64]) {
        let s = self.n.len();
        let n = &self.n[..s];
        let a = &a[..s];
        let b = &b[..s];
        let mut t = [0u64; 130];
        // Moduli up to 8192 bits use the stack buffer; larger ones a heap one.
        let mut heap;
        let t: &mut [u64] = if s + 2 <= t.len() {
            &mut t[..s + 2]
        } else {
            heap = vec![0u64; s + 2];
            &mut heap[..]
        };
        for &bi in b {
            let mut c: u64 = 0;
            for (tj, &aj) in t[..s].iter_mut().zip(a) {
                let v = (*tj as u128) + (aj as u128) * (bi as u128) + (c as u128);
                *tj = v as u64;
                c = (v >> 64) as u64;
            }
            let v = (t[s] as u128) + (c as u128);
            t[s] = v as u64;
            t[s + 1] = (v >> 64) as u64;
            let mq = t[0].wrapping_mul(self.n0inv);
            let v = (t[0] as u128) + (mq as u128) * (n[0] as u128);
            let mut c = (v >> 64) as u64;
            for j in 1..s {
                let v = (t[j] as u128) + (mq as u128) * (n[j] as u128) + (c as u128);
                t[j - 1] = v as u64;
                c = (v >> 64) as u64;
            }
            let v = (t[s] as u128) + (c as u128);
            t[s - 1] = v as u64;
            t[s] = t[s + 1] + ((v >> 64) as u64);
        }
        // Final conditional subtraction: t < 2m here.
        let ge = t[s] != 0 || !lt(&t[..s], n);
        if ge {
            let mut borrow = 0u64;
            for (o, (&tj, &nj)) in out.iter_mut().zip(t[..s].iter().zip(n)) {
                let (d1, b1) = tj.overflowing_sub(nj);
                let (d2, b2) = d1.overflowing_sub(borrow);
                *o = d2;
                borrow = (b1 | b2) as u64;
            }
        } else {
            out[..s].copy_from_slice(&t[..s]);
        }
    }

    /// `base^e` for a machine-word exponent (left-to-right square and multiply).
    pub fn pow_u64(&self, base: &[u64], e: u64) -> Limbs {
        if e == 0 {
            return self.one();
        }
        let mut acc = base.to_vec();
        let mut tmp = vec![0u64; self.limbs()];
        for bit in (0..63 - e.leading_zeros()).rev() {
            self.mul_into(&acc, &acc, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
            if (e >> bit) & 1 == 1 {
                self.mul_into(&acc, base, &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        acc
    }

    /// Inverse of a Montgomery-form value, if it exists.
    pub fn inv(&self, a: &[u64]) -> Option<Limbs> {
        let x = self.leave_mont(a);
        if x.is_zero() {
            return None;
        }
        x.modinv(&self.m).map(|i| self.to_mont(&i))
    }
}

/// `a < b` for equal-length little-endian limbs.
fn lt(a: &[u64], b: &[u64]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `x` as exactly `s` limbs (x < 2^(64·s)).
pub(crate) fn pad(x: &BigUint, s: usize) -> Limbs {
    let mut d = x.to_u64_digits();
    d.resize(s, 0);
    d
}

fn to_u32(a: &[u64]) -> Vec<u32> {
    a.iter()
        .flat_map(|&l| [l as u32, (l >> 32) as u32])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn montgomery_product_matches_bigint() {
        let m = (BigUint::one() << 521u32) - BigUint::one(); // a Mersenne prime, odd
        let ctx = Mont::new(&m);
        let a = BigUint::from(0x1234_5678_9abc_def0u64).pow(7) % &m;
        let b = (&m - BigUint::from(12345u32)) % &m;
        let am = ctx.to_mont(&a);
        let bm = ctx.to_mont(&b);
        assert_eq!(ctx.leave_mont(&ctx.mul(&am, &bm)), (&a * &b) % &m);
        assert_eq!(
            ctx.leave_mont(&ctx.pow_u64(&am, 65537)),
            a.modpow(&65537u32.into(), &m)
        );
        let ai = ctx.inv(&am).expect("invertible");
        assert_eq!(ctx.leave_mont(&ctx.mul(&ai, &am)), BigUint::one());
    }
}
