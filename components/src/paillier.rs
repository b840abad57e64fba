//! Paillier's additively homomorphic cryptosystem, in pure Rust on num-bigint, made fast for
//! federated learning (hetero LR's `Xᵀ·[[d]]`).
//!
//! # Scheme
//! N = p·q with p, q random primes of `key_bits/2` bits and gcd(N, (p−1)(q−1)) = 1; g = N + 1,
//! so `Enc(m) = (1 + m·N) · ρ mod N²` where ρ is a random N-th residue. Decryption uses the CRT
//! (exponentiations mod p² and q², recombined mod N).
//!
//! # Speed
//! - **Randomness.** Instead of `r^N` for a fresh full-size `r` (one 2048-bit exponentiation mod
//!   N² per encryption), every [`Encryptor`] draws one `h = r₀^N mod N²` and uses `ρ = h^k` for a
//!   fresh random `k` of 2× the key's security level in bits (160 bits for 1024-bit keys, 224 for
//!   2048), computed with a fixed-base table of 8-bit windows: 20–28 products per encryption.
//!   (This is the short-exponent variant of the "precomputed randomness" optimisation; ρ is
//!   drawn from the subgroup ⟨h⟩ of N-th residues, which is indistinguishable from a uniform one
//!   under the DCR assumption plus the short-exponent assumption.)
//! - **Montgomery form.** A [`Ciphertext`] lives in Montgomery form mod N² (see `mont`), so a
//!   homomorphic addition is one CIOS product with no division and no checks. Checks (range,
//!   gcd) happen only when ciphertexts come from a peer ([`PublicKey::decode_ciphertexts`]).
//! - **Multi-exponentiation.** [`PublicKey::matvec`] computes `Π_i c_i^{x_ij}` for every column
//!   j at once: rows are split in blocks (one rayon task each), each block's bases in chunks of
//!   k whose 2^k subset products are tabulated once and shared by all columns and all bit
//!   positions; negative scalars are handled by an offset per column and one modular inverse
//!   per call (`x − min_j ≥ 0`, then multiply by `(Π c_i)^{min_j}`), never by full-size
//!   exponents `N − |x|`.
//!
//! # Fixed-point encoding of floats
//! A float `x` is encoded at `f` fractional bits as the integer `v = round(x · 2^f)`, stored mod
//! N: `v` if `v ≥ 0`, `N − |v|` if negative. Decoding maps a residue `r` to `r` if `r ≤ N/2`,
//! else `r − N`, then divides by `2^f`.
//! - *Range*: any `|v| < N/2` decodes correctly, so with a 1024-bit key a value at scale `2^f`
//!   may reach about 2^(1022−f); encoding refuses non-finite values and `|v| ≥ 2^126` (far
//!   beyond any feature or weight, far below N/2 for every allowed key).
//! - *Precision*: absolute error ≤ 2^−(f+1) per encoded value.
//! - *Products*: `Enc(a at scale 2^f) ^ (b at scale 2^g)` holds `a·b` at scale 2^(f+g); the
//!   decoder must use the summed scale. Rounding errors add up: a sum of n products carries at
//!   most `n·(|a|max·2^−(g+1) + |b|max·2^−(f+1))` absolute error. Scalars for
//!   [`PublicKey::matvec`] are plain `i64` (use [`to_fixed_i64`], |v| < 2^62), so the exponent
//!   size — and the cost — grows with their scale: keep their `f` modest (hetero LR uses 16
//!   bits for features and weights' products, 32 bits inside ciphertexts).
//! - Sums wrap around mod N if their magnitude passes N/2: the caller keeps scale·|value| well
//!   below that (hetero LR stays under 2^120 with every key size it allows).

mod mont;
mod multiexp;
mod prime;

use std::sync::Arc;

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};
use rand::Rng;
use rayon::prelude::*;

use mont::{Limbs, Mont};

/// Smallest and largest accepted modulus sizes, in bits.
pub const MIN_KEY_BITS: u64 = 256;
/// See [`MIN_KEY_BITS`].
pub const MAX_KEY_BITS: u64 = 8192;

/// Why a Paillier operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PaillierError {
    /// A key size outside the accepted range, or not even.
    #[error("key size {0} bits: must be even and between {MIN_KEY_BITS} and {MAX_KEY_BITS}")]
    KeySize(u64),
    /// Public key bytes that cannot be a Paillier modulus.
    #[error("bad public key: {0}")]
    BadPublicKey(String),
    /// Ciphertext bytes from a peer that are not valid ciphertexts.
    #[error("bad ciphertext: {0}")]
    BadCiphertext(String),
    /// A value that cannot be encoded (not finite, or too large).
    #[error("cannot encode {0}: not finite or too large for fixed point")]
    Encode(f64),
    /// Operands of different shapes.
    #[error("shape mismatch: {0}")]
    Shape(String),
}

/// A ciphertext, in Montgomery form mod N² (opaque; only meaningful with its key).
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext(Limbs);

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ciphertext({} limbs)", self.0.len())
    }
}

/// A Paillier public key: N (and N², its Montgomery context).
#[derive(Clone, Debug)]
pub struct PublicKey {
    n: BigUint,
    half_n: BigUint,
    nn: Arc<Mont>,
    cipher_width: usize,
}

/// A Paillier private key, with the CRT constants for decryption.
#[derive(Clone, Debug)]
pub struct PrivateKey {
    pk: PublicKey,
    p: BigUint,
    q: BigUint,
    pp: BigUint,
    qq: BigUint,
    p1: BigUint,
    q1: BigUint,
    hp: BigUint,
    hq: BigUint,
    q_inv_p: BigUint,
}

/// Security level in bits of a modulus of `bits` bits (NIST SP 800-57 equivalences).
fn security_bits(bits: u64) -> u64 {
    match bits {
        0..=1024 => 80,
        1025..=2048 => 112,
        2049..=3072 => 128,
        _ => 192,
    }
}

/// Generates a key pair with an N of `key_bits` bits.
pub fn generate_keypair(key_bits: u64) -> Result<(PublicKey, PrivateKey), PaillierError> {
    if !key_bits.is_multiple_of(2) || !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&key_bits) {
        return Err(PaillierError::KeySize(key_bits));
    }
    loop {
        // The two primes in parallel: keygen is dominated by Miller–Rabin.
        let (p, q) = rayon::join(
            || prime::random_prime(&mut rand::rng(), key_bits / 2),
            || prime::random_prime(&mut rand::rng(), key_bits / 2),
        );
        if p == q {
            continue;
        }
        let n = &p * &q;
        let phi = (&p - 1u32) * (&q - 1u32);
        if !n.gcd(&phi).is_one() || n.bits() != key_bits {
            continue;
        }
        return PrivateKey::from_primes(p, q).map(|sk| (sk.pk.clone(), sk));
    }
}

impl PrivateKey {
    /// A private key from its two primes (assumed prime and distinct).
    pub fn from_primes(p: BigUint, q: BigUint) -> Result<Self, PaillierError> {
        let n = &p * &q;
        let pk = PublicKey::from_modulus(n.clone())?;
        let pp = &p * &p;
        let qq = &q * &q;
        let p1 = &p - 1u32;
        let q1 = &q - 1u32;
        let g = &n + 1u32;
        let lp = l_func(&g.modpow(&p1, &pp), &p);
        let lq = l_func(&g.modpow(&q1, &qq), &q);
        let bad = || PaillierError::BadPublicKey("primes do not give an invertible key".into());
        let hp = lp.modinv(&p).ok_or_else(bad)?;
        let hq = lq.modinv(&q).ok_or_else(bad)?;
        let q_inv_p = q.modinv(&p).ok_or_else(bad)?;
        Ok(Self {
            pk,
            p,
            q,
            pp,
            qq,
            p1,
            q1,
            hp,
            hq,
            q_inv_p,
        })
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// Decrypts to the plaintext residue mod N (CRT: mod p² and q²).
    pub fn decrypt(&self, c: &Ciphertext) -> BigUint {
        let c = self.pk.nn.leave_mont(&c.0);
        let mp =
            (l_func(&(&c % &self.pp).modpow(&self.p1, &self.pp), &self.p) * &self.hp) % &self.p;
        let mq =
            (l_func(&(&c % &self.qq).modpow(&self.q1, &self.qq), &self.q) * &self.hq) % &self.q;
        // m = mq + q·((mp − mq)·q⁻¹ mod p)
        let diff = (&mp + &self.p - (&mq % &self.p)) % &self.p;
        let h = (diff * &self.q_inv_p) % &self.p;
        mq + &self.q * h
    }

    /// Decrypts many ciphertexts in parallel.
    pub fn decrypt_many(&self, cs: &[Ciphertext]) -> Vec<BigUint> {
        cs.par_iter().map(|c| self.decrypt(c)).collect()
    }

    /// Decrypts and decodes a fixed-point value at `frac_bits`.
    pub fn decrypt_f64(&self, c: &Ciphertext, frac_bits: u32) -> f64 {
        self.pk.decode(&self.decrypt(c), frac_bits)
    }
}

/// L(x) = (x − 1) / d.
fn l_func(x: &BigUint, d: &BigUint) -> BigUint {
    (x - 1u32) / d
}

impl PublicKey {
    fn from_modulus(n: BigUint) -> Result<Self, PaillierError> {
        let bits = n.bits();
        if !(MIN_KEY_BITS - 8..=MAX_KEY_BITS).contains(&bits) {
            return Err(PaillierError::BadPublicKey(format!(
                "modulus of {bits} bits (accepted: {MIN_KEY_BITS}..={MAX_KEY_BITS})"
            )));
        }
        if n.is_even() {
            return Err(PaillierError::BadPublicKey("even modulus".into()));
        }
        let nn = &n * &n;
        let cipher_width = nn.bits().div_ceil(8) as usize;
        Ok(Self {
            half_n: &n >> 1u32,
            nn: Arc::new(Mont::new(&nn)),
            n,
            cipher_width,
        })
    }

    /// N.
    pub fn n(&self) -> &BigUint {
        &self.n
    }

    /// Size of N in bits.
    pub fn bits(&self) -> u64 {
        self.n.bits()
    }

    /// N as big-endian bytes (the public key's wire form).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.n.to_bytes_be()
    }

    /// A public key from [`PublicKey::to_bytes`], checked (odd, size in range, no tiny factor).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PaillierError> {
        let n = BigUint::from_bytes_be(bytes);
        for p in [3u32, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
            if (&n % p).is_zero() {
                return Err(PaillierError::BadPublicKey(format!("divisible by {p}")));
            }
        }
        Self::from_modulus(n)
    }

    /// Width in bytes of one serialized ciphertext.
    pub fn ciphertext_width(&self) -> usize {
        self.cipher_width
    }

    // ---- fixed point ----

    /// Encodes `x` at `frac_bits` fractional bits as a residue mod N (see the module docs).
    pub fn encode(&self, x: f64, frac_bits: u32) -> Result<BigUint, PaillierError> {
        let v = scaled(x, frac_bits)?;
        let mag = BigUint::from(v.unsigned_abs());
        Ok(if v < 0 { &self.n - mag } else { mag })
    }

    /// Decodes a residue mod N at `frac_bits` (residues above N/2 are negative).
    pub fn decode(&self, m: &BigUint, frac_bits: u32) -> f64 {
        let scale = (-(frac_bits as f64)).exp2();
        if m > &self.half_n {
            -((&self.n - m).to_f64().unwrap_or(f64::INFINITY)) * scale
        } else {
            m.to_f64().unwrap_or(f64::INFINITY) * scale
        }
    }

    /// `a − b mod N` for residues (unmasking).
    pub fn sub_mod(&self, a: &BigUint, b: &BigUint) -> BigUint {
        ((a % &self.n) + &self.n - (b % &self.n)) % &self.n
    }

    /// A uniformly random residue in [1, N) (a mask).
    pub fn random_residue(&self) -> BigUint {
        prime::random_below(&mut rand::rng(), &self.n)
    }

    // ---- homomorphic operations (no checks: operands are trusted) ----

    /// `[[a + b]]`.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        Ciphertext(self.nn.mul(&a.0, &b.0))
    }

    /// `a ← [[a + b]]`.
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) {
        self.nn.mul_assign(&mut a.0, &b.0);
    }

    /// `[[a + m]]` for a plaintext residue `m` (no fresh randomness: `a`'s is kept).
    pub fn add_plain(&self, a: &Ciphertext, m: &BigUint) -> Ciphertext {
        Ciphertext(self.nn.mul(&a.0, &self.plain_factor(m)))
    }

    /// (1 + m·N) mod N² in Montgomery form.
    fn plain_factor(&self, m: &BigUint) -> Limbs {
        let x = (m % &self.n) * &self.n + 1u32;
        self.nn.to_mont(&x)
    }

    /// `[[2^bits · a]]`: `bits` Montgomery squarings. Packs several values into one plaintext
    /// (`Σ_j 2^(j·w) · v_j`, by Horner's rule), so one decryption opens them all.
    pub fn shift(&self, a: &Ciphertext, bits: u32) -> Ciphertext {
        let mut x = a.0.clone();
        let mut out = vec![0u64; x.len()];
        for _ in 0..bits {
            self.nn.mul_into(&x, &x, &mut out);
            std::mem::swap(&mut x, &mut out);
        }
        Ciphertext(x)
    }

    /// `[[k · a]]` for a machine integer `k` (negative: one inverse).
    pub fn mul_scalar(&self, a: &Ciphertext, k: i64) -> Result<Ciphertext, PaillierError> {
        let base = if k < 0 {
            self.nn
                .inv(&a.0)
                .ok_or_else(|| PaillierError::BadCiphertext("not invertible mod N²".into()))?
        } else {
            a.0.clone()
        };
        Ok(Ciphertext(self.nn.pow_u64(&base, k.unsigned_abs())))
    }

    /// `[[k · a]]` for a big plaintext `k` (full exponentiation; slow, for residues mod N).
    pub fn mul_big(&self, a: &Ciphertext, k: &BigUint) -> Ciphertext {
        let c = self.nn.leave_mont(&a.0).modpow(k, &self.nn.m);
        Ciphertext(self.nn.to_mont(&c))
    }

    /// `[[Σ cs]]` (an encryption of zero with no randomness for an empty slice).
    pub fn sum(&self, cs: &[Ciphertext]) -> Ciphertext {
        let total = cs
            .par_chunks(64)
            .map(|chunk| {
                let mut acc = self.nn.one();
                for c in chunk {
                    self.nn.mul_assign(&mut acc, &c.0);
                }
                acc
            })
            .reduce(|| self.nn.one(), |a, b| self.nn.mul(&a, &b));
        Ciphertext(total)
    }

    /// `[[Σ_i x_ij · c_i]]` for every column j of `cols` (each as long as `bases`): the
    /// homomorphic `Xᵀ·[[d]]`. See the module docs for the method.
    pub fn matvec(
        &self,
        bases: &[Ciphertext],
        cols: &[Vec<i64>],
    ) -> Result<Vec<Ciphertext>, PaillierError> {
        multiexp::matvec(&self.nn, bases, cols)
    }

    /// Straightforward `Xᵀ·[[d]]` (one full exponentiation per element, negatives as `N − |x|`):
    /// the baseline for benchmarks and tests.
    pub fn matvec_naive(&self, bases: &[Ciphertext], cols: &[Vec<i64>]) -> Vec<Ciphertext> {
        let nn = &self.nn.m;
        let plain: Vec<BigUint> = bases.iter().map(|c| self.nn.leave_mont(&c.0)).collect();
        cols.iter()
            .map(|col| {
                let mut acc = BigUint::one();
                for (c, &x) in plain.iter().zip(col) {
                    let e = if x < 0 {
                        &self.n - BigUint::from(x.unsigned_abs())
                    } else {
                        BigUint::from(x as u64)
                    };
                    acc = (acc * c.modpow(&e, nn)) % nn;
                }
                Ciphertext(self.nn.to_mont(&acc))
            })
            .collect()
    }

    /// An encryptor with its own fixed-base randomness table (build once, encrypt many).
    pub fn encryptor(&self) -> Encryptor {
        Encryptor::new(self.clone())
    }

    /// Encryption with a fresh full-size `r` and `r^N mod N²` (the slow textbook way; the
    /// benchmark baseline).
    pub fn encrypt_naive(&self, m: &BigUint) -> Ciphertext {
        let r = prime::random_below(&mut rand::rng(), &self.n);
        let rn = r.modpow(&self.n, &self.nn.m);
        let x = ((m % &self.n) * &self.n + 1u32) % &self.nn.m;
        Ciphertext(self.nn.to_mont(&((x * rn) % &self.nn.m)))
    }

    // ---- wire ----

    /// Ciphertexts as one blob of fixed-width big-endian values.
    pub fn encode_ciphertexts(&self, cs: &[Ciphertext]) -> Vec<u8> {
        let w = self.cipher_width;
        let mut out = vec![0u8; w * cs.len()];
        let plain: Vec<Vec<u8>> = cs
            .par_iter()
            .map(|c| self.nn.leave_mont(&c.0).to_bytes_be())
            .collect();
        for (slot, b) in out.chunks_mut(w).zip(plain) {
            slot[w - b.len()..].copy_from_slice(&b);
        }
        out
    }

    /// Ciphertexts from a peer's blob, checked: whole number of values, each 0 < c < N², and
    /// every one a unit mod N (one gcd for the whole batch: gcd(Π c mod N, N) = 1).
    pub fn decode_ciphertexts(&self, bytes: &[u8]) -> Result<Vec<Ciphertext>, PaillierError> {
        let w = self.cipher_width;
        if !bytes.len().is_multiple_of(w) {
            return Err(PaillierError::BadCiphertext(format!(
                "{} bytes is not a multiple of the ciphertext width {w}",
                bytes.len()
            )));
        }
        let values: Vec<BigUint> = bytes.chunks(w).map(BigUint::from_bytes_be).collect();
        for (i, c) in values.iter().enumerate() {
            if c.is_zero() || c >= &self.nn.m {
                return Err(PaillierError::BadCiphertext(format!(
                    "value {i} is outside (0, N²)"
                )));
            }
        }
        let prod = values
            .par_chunks(64)
            .map(|ch| ch.iter().fold(BigUint::one(), |a, c| (a * c) % &self.n))
            .reduce(BigUint::one, |a, b| (a * b) % &self.n);
        if !values.is_empty() && !prod.gcd(&self.n).is_one() {
            return Err(PaillierError::BadCiphertext(
                "a value shares a factor with N".into(),
            ));
        }
        Ok(values
            .par_iter()
            .map(|c| Ciphertext(self.nn.to_mont(c)))
            .collect())
    }
}

/// `round(x · 2^frac_bits)`, refusing non-finite values and magnitudes ≥ 2^126.
fn scaled(x: f64, frac_bits: u32) -> Result<i128, PaillierError> {
    let v = (x * (frac_bits as f64).exp2()).round();
    if !v.is_finite() || v.abs() >= 2f64.powi(126) {
        return Err(PaillierError::Encode(x));
    }
    Ok(v as i128)
}

/// `round(x · 2^frac_bits)` as an `i64` scalar for [`PublicKey::matvec`] (|v| < 2^62).
pub fn to_fixed_i64(x: f64, frac_bits: u32) -> Result<i64, PaillierError> {
    let v = (x * (frac_bits as f64).exp2()).round();
    if !v.is_finite() || v.abs() >= 2f64.powi(62) {
        return Err(PaillierError::Encode(x));
    }
    Ok(v as i64)
}

/// Window of the fixed-base table, in bits.
const WINDOW: u32 = 8;

/// Encrypts with precomputed randomness: `ρ = h^k` for a short random `k`, by table lookup.
#[derive(Clone, Debug)]
pub struct Encryptor {
    pk: PublicKey,
    /// `table[i][j] = h^(j · 2^(8i))` in Montgomery form, flat: `(i·256 + j)·s` limbs.
    table: Vec<u64>,
    windows: usize,
}

impl Encryptor {
    fn new(pk: PublicKey) -> Self {
        let mont = &pk.nn;
        let s = mont.limbs();
        let r0 = prime::random_below(&mut rand::rng(), &pk.n);
        let h = mont.to_mont(&r0.modpow(&pk.n, &mont.m));
        let exp_bits = 2 * security_bits(pk.bits()) as usize;
        let windows = exp_bits.div_ceil(WINDOW as usize);
        let per = 1usize << WINDOW;
        // Window bases h^(2^(8i)), sequentially; each window's row in parallel.
        let mut bases = Vec::with_capacity(windows);
        let mut b = h;
        for _ in 0..windows {
            let mut next = b.clone();
            for _ in 0..WINDOW {
                next = mont.mul(&next, &next);
            }
            bases.push(std::mem::replace(&mut b, next));
        }
        let rows: Vec<Vec<u64>> = bases
            .par_iter()
            .map(|base| {
                let mut row = vec![0u64; per * s];
                row[..s].copy_from_slice(&mont.one());
                for j in 1..per {
                    let (done, rest) = row.split_at_mut(j * s);
                    mont.mul_into(&done[(j - 1) * s..], base, &mut rest[..s]);
                }
                row
            })
            .collect();
        Self {
            pk,
            table: rows.concat(),
            windows,
        }
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// A fresh random N-th residue ρ (Montgomery form).
    fn randomness(&self) -> Limbs {
        let mont = &self.pk.nn;
        let s = mont.limbs();
        let per = 1usize << WINDOW;
        let mut k = vec![0u8; self.windows];
        rand::rng().fill_bytes(&mut k);
        let mut acc: Option<Limbs> = None;
        let mut tmp = vec![0u64; s];
        for (i, &byte) in k.iter().enumerate() {
            if byte == 0 {
                continue;
            }
            let off = (i * per + byte as usize) * s;
            let entry = &self.table[off..off + s];
            match &mut acc {
                None => acc = Some(entry.to_vec()),
                Some(a) => {
                    mont.mul_into(a, entry, &mut tmp);
                    std::mem::swap(a, &mut tmp);
                }
            }
        }
        acc.unwrap_or_else(|| mont.one())
    }

    /// `Enc(m)` for a residue `m` (reduced mod N).
    pub fn encrypt(&self, m: &BigUint) -> Ciphertext {
        let rho = self.randomness();
        Ciphertext(self.pk.nn.mul(&self.pk.plain_factor(m), &rho))
    }

    /// `Enc(encode(x, frac_bits))`.
    pub fn encrypt_f64(&self, x: f64, frac_bits: u32) -> Result<Ciphertext, PaillierError> {
        Ok(self.encrypt(&self.pk.encode(x, frac_bits)?))
    }

    /// Encrypts many values in parallel.
    pub fn encrypt_many_f64(
        &self,
        xs: &[f64],
        frac_bits: u32,
    ) -> Result<Vec<Ciphertext>, PaillierError> {
        xs.par_iter()
            .map(|&x| self.encrypt_f64(x, frac_bits))
            .collect()
    }

    /// Encrypts many residues in parallel.
    pub fn encrypt_many(&self, ms: &[BigUint]) -> Vec<Ciphertext> {
        ms.par_iter().map(|m| self.encrypt(m)).collect()
    }
}

#[cfg(test)]
mod tests;
