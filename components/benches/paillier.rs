//! Paillier speed: key generation, encryption, decryption, homomorphic add and scalar
//! multiplication, and `Xᵀ·[[d]]` for a 300×20 matrix, at 1024 and 2048 bits, each beside a
//! naive baseline measured in the same run (textbook `r^N` with a full-size random `r`;
//! one full exponentiation per matrix element, negatives as `N − |x|`).
//!
//! `Xᵀ·[[d]]` and its naive baseline are both measured in full, on the same 300×20 matrix and
//! on one thread each (a one-thread rayon pool for the multi-exponentiation, whose parallel
//! time on every thread is printed beside it). The naive 2048-bit product takes about a minute.
//!
//! `cargo bench -p consort-components --bench paillier`

#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Instant;

use consort_components::paillier::{generate_keypair, to_fixed_i64};
use num_bigint::BigUint;

fn rate(count: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    count as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let threads = rayon::current_num_threads();
    println!(
        "Paillier benchmark ({threads} rayon threads; per-second rates use all of them unless marked 1 core)"
    );
    println!(
        "| key bits | keygen s | encrypt/s (1 core) | naive encrypt/s (1 core) | ratio | encrypt/s ({threads} thr) | decrypt/s (1 core) | add/s (1 core) | scalar-mul/s (1 core, 16-bit) | Xᵀ[[d]] 300×20 s (1 thread) | naive Xᵀ[[d]] 300×20 s (1 thread) | ratio | Xᵀ[[d]] 300×20 s ({threads} thr) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for bits in [1024u64, 2048] {
        let t = Instant::now();
        let (pk, sk) = generate_keypair(bits).unwrap();
        let keygen = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let enc = pk.encryptor();
        let table_s = t.elapsed().as_secs_f64();

        let ms: Vec<BigUint> = (0..2000u64)
            .map(|i| pk.encode(i as f64 * 0.37 - 300.0, 32).unwrap())
            .collect();
        let n_enc = if bits == 1024 { 2000 } else { 1000 };
        let enc_rate = rate(n_enc, || {
            for m in &ms[..n_enc] {
                std::hint::black_box(enc.encrypt(m));
            }
        });
        let n_naive = if bits == 1024 { 100 } else { 30 };
        let naive_rate = rate(n_naive, || {
            for m in &ms[..n_naive] {
                std::hint::black_box(pk.encrypt_naive(m));
            }
        });
        let par_rate = rate(ms.len(), || {
            std::hint::black_box(enc.encrypt_many(&ms));
        });
        let cs = enc.encrypt_many(&ms);
        let n_dec = if bits == 1024 { 500 } else { 150 };
        let dec_rate = rate(n_dec, || {
            for c in &cs[..n_dec] {
                std::hint::black_box(sk.decrypt(c));
            }
        });
        let add_rate = rate(cs.len() * 50, || {
            let mut acc = cs[0].clone();
            for _ in 0..50 {
                for c in &cs {
                    pk.add_assign(&mut acc, c);
                }
            }
            std::hint::black_box(acc);
        });
        let mul_rate = rate(cs.len(), || {
            for (i, c) in cs.iter().enumerate() {
                let k = (i as i64 * 7919 % 65536) - 32768;
                std::hint::black_box(pk.mul_scalar(c, k).unwrap());
            }
        });

        // Xᵀ·[[d]]: 300 rows, 20 columns of features scaled at 2^16 (|x| < 4).
        let d = &cs[..300];
        let cols: Vec<Vec<i64>> = (0..20)
            .map(|j| {
                (0..300)
                    .map(|i| {
                        to_fixed_i64(((i * 31 + j * 17) % 200) as f64 / 25.0 - 4.0, 16).unwrap()
                    })
                    .collect()
            })
            .collect();
        // Both sides on one thread, in full.
        let (fast, mv) = one_thread.install(|| {
            let t = Instant::now();
            let fast = pk.matvec(d, &cols).unwrap();
            (fast, t.elapsed().as_secs_f64())
        });
        let t = Instant::now();
        let naive = pk.matvec_naive(d, &cols);
        let naive_mv = t.elapsed().as_secs_f64();
        assert_eq!(sk.decrypt_many(&fast), sk.decrypt_many(&naive));
        // And the multi-exponentiation on every thread, as hetero_lr runs it.
        let t = Instant::now();
        std::hint::black_box(pk.matvec(d, &cols).unwrap());
        let mv_par = t.elapsed().as_secs_f64();
        println!(
            "| {bits} | {keygen:.2} | {enc_rate:.0} | {naive_rate:.1} | {:.0}× | {par_rate:.0} | {dec_rate:.0} | {add_rate:.0} | {mul_rate:.0} | {mv:.3} | {naive_mv:.1} | {:.0}× | {mv_par:.3} |",
            enc_rate / naive_rate,
            naive_mv / mv
        );
        println!(
            "  (fixed-base table for {bits} bits built in {table_s:.3} s, once per encryptor)"
        );
    }
}
