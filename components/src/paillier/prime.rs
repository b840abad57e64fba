//! Random primes for key generation: a small-prime sieve, then Miller–Rabin with random bases.

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};
use rand::Rng;

/// Odd primes below 2000, for trial division.
fn small_primes() -> Vec<u64> {
    let mut out = Vec::new();
    let mut n = 3u64;
    while n < 2000 {
        if (2..n)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
        {
            out.push(n);
        }
        n += 2;
    }
    out
}

/// A uniformly random number below 2^bits.
pub(crate) fn random_bits(rng: &mut impl Rng, bits: u64) -> BigUint {
    let bytes = bits.div_ceil(8) as usize;
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    let extra = (bytes as u64) * 8 - bits;
    if extra > 0 && !buf.is_empty() {
        let last = buf.len() - 1;
        buf[last] &= 0xffu8 >> extra;
    }
    BigUint::from_bytes_le(&buf)
}

/// A uniformly random number in `[1, n)`.
pub(crate) fn random_below(rng: &mut impl Rng, n: &BigUint) -> BigUint {
    loop {
        let x = random_bits(rng, n.bits());
        if !x.is_zero() && &x < n {
            return x;
        }
    }
}

/// Miller–Rabin with `rounds` random bases (after trial division).
pub(crate) fn is_probable_prime(rng: &mut impl Rng, n: &BigUint, rounds: usize) -> bool {
    let two = BigUint::from(2u32);
    if n < &two {
        return false;
    }
    for p in small_primes() {
        let pb = BigUint::from(p);
        if n == &pb {
            return true;
        }
        if (n % p).is_zero() {
            return false;
        }
    }
    if n.is_even() {
        return false;
    }
    let n1 = n - 1u32;
    let s = n1.trailing_zeros().unwrap_or(0);
    let d = &n1 >> s;
    'witness: for _ in 0..rounds {
        let a = random_below(rng, &(n - 3u32)) + 1u32; // in [2, n-2]
        let mut x = a.modpow(&d, n);
        if x.is_one() || x == n1 {
            continue;
        }
        for _ in 1..s {
            x = (&x * &x) % n;
            if x == n1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// A random prime of exactly `bits` bits with its top two bits set (so a product of two such
/// primes has exactly 2·bits bits).
pub(crate) fn random_prime(rng: &mut impl Rng, bits: u64) -> BigUint {
    let primes = small_primes();
    loop {
        let mut p = random_bits(rng, bits);
        p |= (BigUint::one() << (bits - 1)) | (BigUint::one() << (bits - 2)) | BigUint::one();
        // Incremental sieve: step by 2 until a candidate passes trial division.
        let residues: Vec<u64> = primes
            .iter()
            .map(|&q| (&p % q).to_u64().unwrap_or(0))
            .collect();
        for delta in (0..20_000u64).step_by(2) {
            if residues
                .iter()
                .zip(&primes)
                .any(|(&r, &q)| (r + delta) % q == 0)
            {
                continue;
            }
            let cand = &p + delta;
            if cand.bits() != bits {
                break;
            }
            if is_probable_prime(rng, &cand, 40) {
                return cand;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_primes_and_composites() {
        let mut rng = rand::rng();
        // 2^127 − 1 is prime; 2^128 + 1 is not (divisible by 59649589127497217).
        let m127 = (BigUint::one() << 127u32) - 1u32;
        assert!(is_probable_prime(&mut rng, &m127, 20));
        let f7 = (BigUint::one() << 128u32) + 1u32;
        assert!(!is_probable_prime(&mut rng, &f7, 20));
        let p = random_prime(&mut rng, 128);
        assert_eq!(p.bits(), 128);
        assert!(is_probable_prime(&mut rng, &p, 20));
    }
}
