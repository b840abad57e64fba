//! Wall-clock time and unique (not secret) numbers, in one place for every crate.

use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A number that differs between calls and processes: the time hashed with a fresh
/// `RandomState` (randomly keyed per process and per call). For ids that must not collide —
/// job ids, transaction ids — never for secrets.
pub fn unique_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_numbers_differ_and_time_moves_forward() {
        let a: std::collections::BTreeSet<u64> = (0..1000).map(|_| unique_u64()).collect();
        assert_eq!(a.len(), 1000);
        let t = now_ms();
        assert!(t > 1_700_000_000_000, "{t}");
        assert!(now_ms() >= t);
    }
}
