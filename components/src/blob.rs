//! `blob`: moves a large payload through the data channel and checks it end to end. The
//! guest writes `size_mb` MiB of seeded pseudo-random bytes to a scratch file (never holding
//! more than a block in memory), streams it to every other endpoint with `remote_file`, then
//! sends its SHA-256; each receiver takes the file with `get_file`, hashes it as it reads and
//! compares. Metrics: `blob`/`bytes` and `blob`/`mib_per_s` (as seen by the receiver, from the
//! start of its run to the last byte hashed).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use consort_protocol::job::Role;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use crate::context::{Target, TaskContext, TaskError};

const BLOCK: usize = 1 << 20;

fn io_err(what: &str, path: &Path, e: std::io::Error) -> TaskError {
    TaskError::Failed(format!("blob: cannot {what} {}: {e}", path.display()))
}

/// Hex SHA-256 of a file, read a block at a time.
fn hash_file(path: &Path) -> Result<(String, u64), TaskError> {
    let mut f = std::fs::File::open(path).map_err(|e| io_err("open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err("read", path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&h.finalize()), total))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `blob` component (see the module docs).
pub fn blob(ctx: &dyn TaskContext) -> Result<(), TaskError> {
    let started = Instant::now();
    let size_mb = ctx
        .params()
        .get("size_mb")
        .and_then(|v| v.as_u64())
        .filter(|s| *s <= 1 << 20)
        .ok_or_else(|| TaskError::Param("size_mb".into(), "a whole number of MiB".into()))?;
    let seed = ctx
        .params()
        .get("seed")
        .and_then(|v| v.as_u64())
        .unwrap_or(7);
    let dir = ctx.scratch_dir()?;
    let guest = ctx
        .endpoints()
        .iter()
        .find(|e| e.role == Role::Guest)
        .cloned()
        .ok_or_else(|| TaskError::Failed("blob: the task has no guest to send".into()))?;
    if *ctx.me() == guest {
        let path = dir.join("blob.bin");
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(&path).map_err(|e| io_err("create", &path, e))?,
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; BLOCK];
        for _ in 0..size_mb {
            rng.fill_bytes(&mut buf);
            h.update(&buf);
            f.write_all(&buf).map_err(|e| io_err("write", &path, e))?;
            if ctx.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
        }
        f.flush().map_err(|e| io_err("write", &path, e))?;
        drop(f);
        let digest = hex(&h.finalize());
        let receivers: Vec<_> = ctx
            .endpoints()
            .iter()
            .filter(|e| **e != guest)
            .cloned()
            .collect();
        let sending = Instant::now();
        for r in &receivers {
            ctx.remote_file(&Target::One(r.clone()), "blob", &path)?;
            ctx.remote(&Target::One(r.clone()), "blob.sha256", digest.as_bytes())?;
        }
        ctx.log(&format!(
            "blob: sent {size_mb} MiB to {} endpoint(s) in {:.2} s (sha256 {digest})",
            receivers.len(),
            sending.elapsed().as_secs_f64()
        ));
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    let from = Target::One(guest);
    let files = ctx.get_file(&from, "blob", &dir)?;
    let mut sums = ctx.get(&from, "blob.sha256")?;
    let (Some((_, path)), Some((_, expected))) = (files.first(), sums.pop()) else {
        return Err(TaskError::Failed("blob: nothing received".into()));
    };
    let (digest, len) = hash_file(path)?;
    let _ = std::fs::remove_file(path);
    if digest.as_bytes() != expected.as_slice() || len != size_mb << 20 {
        return Err(TaskError::Failed(format!(
            "blob: received {len} bytes with sha256 {digest}; the guest sent {} bytes with {}",
            size_mb << 20,
            String::from_utf8_lossy(&expected)
        )));
    }
    let secs = started.elapsed().as_secs_f64();
    ctx.log_metric("blob", "bytes", &[(0.0, len as f64)])?;
    ctx.log_metric(
        "blob",
        "mib_per_s",
        &[(0.0, size_mb as f64 / secs.max(1e-9))],
    )?;
    ctx.log(&format!(
        "blob: {size_mb} MiB received and verified in {secs:.2} s"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use consort_protocol::job::{JobSpec, validate};

    use crate::harness::run_task;
    use crate::registry::schema;

    #[test]
    fn blob_arrives_intact_at_every_receiver() {
        let text = "name: t\nparties:\n  guest: [bank-a]\n  host: [insurer-b, clinic-c]\ntasks:\n  t:\n    component: blob\n    params: {size_mb: 3}\n";
        let spec = JobSpec::parse(text).expect("parses");
        let mut plan = validate(&spec, &schema).expect("valid");
        let task = plan.tasks.remove(0);
        let results = run_task(
            "job-blob",
            &task,
            super::blob,
            &BTreeMap::new(),
            &Arc::new(AtomicBool::new(false)),
        );
        assert_eq!(results.len(), 3);
        for r in &results {
            assert_eq!(r.result, Ok(()), "{}: {:?}", r.endpoint, r.log);
            if r.endpoint.role.as_str() == "host" {
                assert!(
                    r.metrics.iter().any(|(ns, n, p)| ns == "blob"
                        && n == "bytes"
                        && p == &vec![(0.0, 3.0 * 1048576.0)]),
                    "{:?}",
                    r.metrics
                );
            }
            // The run's scratch files went with it.
            let scratch = crate::context::default_scratch_dir("job-blob", &task.name, &r.endpoint);
            assert!(!scratch.exists(), "{} is left", scratch.display());
        }
    }
}
