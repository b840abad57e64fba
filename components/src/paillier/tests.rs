use std::sync::OnceLock;

use super::*;

/// One 512-bit key shared by the tests (keygen is the slow part in debug builds).
fn keys() -> &'static (PublicKey, PrivateKey) {
    static KEYS: OnceLock<(PublicKey, PrivateKey)> = OnceLock::new();
    KEYS.get_or_init(|| generate_keypair(512).expect("keygen"))
}

#[test]
fn keygen_gives_the_requested_size_and_rejects_bad_sizes() {
    let (pk, _) = keys();
    assert_eq!(pk.bits(), 512);
    assert!(matches!(
        generate_keypair(511),
        Err(PaillierError::KeySize(511))
    ));
    assert!(matches!(
        generate_keypair(128),
        Err(PaillierError::KeySize(128))
    ));
}

#[test]
fn encrypt_decrypt_round_trips_including_negatives() {
    let (pk, sk) = keys();
    let enc = pk.encryptor();
    for x in [0.0, 1.0, -1.0, 3.25, -1234.5678, 1e9, -1e-6, 0.5] {
        let c = enc.encrypt_f64(x, 32).expect("encode");
        let back = sk.decrypt_f64(&c, 32);
        assert!((back - x).abs() <= 2f64.powi(-32), "{x} -> {back}");
    }
    // The residue itself round-trips, and the naive encryption agrees.
    let m = BigUint::from(123_456_789u64);
    assert_eq!(sk.decrypt(&enc.encrypt(&m)), m);
    assert_eq!(sk.decrypt(&pk.encrypt_naive(&m)), m);
    // Two encryptions of the same value differ (fresh randomness).
    assert_ne!(enc.encrypt(&m), enc.encrypt(&m));
    assert!(matches!(
        pk.encode(f64::NAN, 16),
        Err(PaillierError::Encode(_))
    ));
    assert!(matches!(
        pk.encode(1e300, 16),
        Err(PaillierError::Encode(_))
    ));
}

#[test]
fn homomorphic_add_plain_add_and_scalar_mul() {
    let (pk, sk) = keys();
    let enc = pk.encryptor();
    let a = enc.encrypt_f64(2.5, 20).expect("a");
    let b = enc.encrypt_f64(-4.0, 20).expect("b");
    assert_eq!(sk.decrypt_f64(&pk.add(&a, &b), 20), -1.5);
    let mut acc = a.clone();
    pk.add_assign(&mut acc, &b);
    assert_eq!(sk.decrypt_f64(&acc, 20), -1.5);
    let plain = pk.encode(10.0, 20).expect("m");
    assert_eq!(sk.decrypt_f64(&pk.add_plain(&b, &plain), 20), 6.0);
    // 2.5 · (−3 at scale 2^4) = −7.5 at scale 2^24.
    let k = to_fixed_i64(-3.0, 4).expect("k");
    assert_eq!(
        sk.decrypt_f64(&pk.mul_scalar(&a, k).expect("mul"), 24),
        -7.5
    );
    assert_eq!(sk.decrypt_f64(&pk.mul_scalar(&a, 0).expect("mul"), 20), 0.0);
    assert_eq!(
        sk.decrypt_f64(&pk.mul_big(&b, &BigUint::from(3u32)), 20),
        -12.0
    );
    let s = pk.sum(&[a.clone(), b.clone(), a.clone()]);
    assert_eq!(sk.decrypt_f64(&s, 20), 1.0);
    // Masking and unmasking mod N.
    let r = pk.random_residue();
    let masked = sk.decrypt(&pk.add_plain(&b, &r));
    assert_eq!(pk.decode(&pk.sub_mod(&masked, &r), 20), -4.0);
}

#[test]
fn multi_exponentiation_equals_the_naive_result() {
    let (pk, sk) = keys();
    let enc = pk.encryptor();
    let n = 150;
    let ds: Vec<f64> = (0..n)
        .map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0)
        .collect();
    let cs = enc.encrypt_many_f64(&ds, 24).expect("enc");
    let cols: Vec<Vec<i64>> = vec![
        (0..n as i64).map(|i| (i * 7919 % 1000) - 500).collect(),
        (0..n as i64).map(|i| i * 3).collect(),
        vec![0; n],
        (0..n as i64).map(|i| -(i % 5) * 100_000).collect(),
        (0..n as i64)
            .map(|i| if i == 17 { -1 } else { 0 })
            .collect(),
    ];
    let fast = pk.matvec(&cs, &cols).expect("matvec");
    let naive = pk.matvec_naive(&cs, &cols);
    assert_eq!(fast.len(), cols.len());
    for (j, (f, s)) in fast.iter().zip(&naive).enumerate() {
        let (a, b) = (sk.decrypt(f), sk.decrypt(s));
        assert_eq!(a, b, "column {j}");
        let want: f64 = ds.iter().zip(&cols[j]).map(|(d, &x)| d * x as f64).sum();
        let got = pk.decode(&a, 24);
        assert!(
            (got - want).abs() < 1e-3 * want.abs().max(1.0),
            "column {j}: {got} vs {want}"
        );
    }
    assert!(matches!(
        pk.matvec(&cs, &[vec![1; 3]]),
        Err(PaillierError::Shape(_))
    ));
    // A large block count (more rows than one block) agrees too.
    let many = enc.encrypt_many_f64(&vec![1.0; 1500], 0).expect("enc");
    let col: Vec<i64> = (0..1500).map(|i| (i % 7) - 3).collect();
    let out = pk
        .matvec(&many, std::slice::from_ref(&col))
        .expect("matvec");
    assert_eq!(
        pk.decode(&sk.decrypt(&out[0]), 0),
        col.iter().sum::<i64>() as f64
    );
}

#[test]
fn ciphertexts_and_public_keys_serialize_and_bad_bytes_are_rejected() {
    let (pk, sk) = keys();
    let enc = pk.encryptor();
    let cs = enc.encrypt_many_f64(&[1.0, -2.0, 3.5], 16).expect("enc");
    let bytes = pk.encode_ciphertexts(&cs);
    assert_eq!(bytes.len(), 3 * pk.ciphertext_width());
    let back = pk.decode_ciphertexts(&bytes).expect("decode");
    assert_eq!(back, cs);
    assert_eq!(sk.decrypt_f64(&back[1], 16), -2.0);

    let pk2 = PublicKey::from_bytes(&pk.to_bytes()).expect("pk");
    assert_eq!(pk2.n(), pk.n());
    assert!(PublicKey::from_bytes(&[0x10; 64]).is_err(), "even modulus");
    assert!(PublicKey::from_bytes(&[1, 2, 3]).is_err(), "tiny modulus");

    let w = pk.ciphertext_width();
    assert!(matches!(
        pk.decode_ciphertexts(&bytes[..w + 1]),
        Err(PaillierError::BadCiphertext(_))
    ));
    let zero = vec![0u8; w];
    assert!(pk.decode_ciphertexts(&zero).is_err(), "zero");
    let too_big = vec![0xff; w];
    assert!(pk.decode_ciphertexts(&too_big).is_err(), "≥ N²");
    // A multiple of N is in range but not a unit mod N.
    let mut not_unit = vec![0u8; w];
    let nb = (pk.n() * 5u32).to_bytes_be();
    not_unit[w - nb.len()..].copy_from_slice(&nb);
    let mut blob = bytes.clone();
    blob.extend_from_slice(&not_unit);
    assert!(matches!(
        pk.decode_ciphertexts(&blob),
        Err(PaillierError::BadCiphertext(m)) if m.contains("factor")
    ));
}
