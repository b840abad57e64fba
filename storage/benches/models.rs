//! Model store benchmarks, printed as a Markdown table.
//!
//! `cargo bench -p consort-storage --bench models` (env `MODELS_BENCH_MB`, default 100, and
//! `MODELS_BENCH_COMMITS`, default 10000).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use consort_storage::{MAIN, ModelPart, ModelVersion, Models, Store, StoreOptions};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (apparent bytes, allocated bytes) of every file under `dir`.
fn disk_used(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return total;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            let (a, b) = disk_used(&e.path());
            total.0 += a;
            total.1 += b;
        } else {
            total.0 += meta.len();
            total.1 += meta.blocks() * 512;
        }
    }
    total
}

fn bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

fn version(id: &str, v: &str, parts: Vec<ModelPart>) -> ModelVersion {
    ModelVersion {
        model_id: id.into(),
        version: v.into(),
        name: "bench".into(),
        party: "a".into(),
        parties: vec!["guest:a".into(), "host:b".into()],
        created_at_ms: 0,
        parts,
        metrics: BTreeMap::from([("eval/auc".into(), 0.75), ("eval/ks".into(), 0.4)]),
    }
}

fn part(hash: String, len: usize) -> ModelPart {
    ModelPart {
        task: "hetero_lr_0".into(),
        component: "hetero_lr".into(),
        role: "guest".into(),
        artifact: hash,
        bytes: len as u64,
        params: serde_json::json!({"learning_rate": 0.15, "max_iter": 30, "batch_size": -1}),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Row(String, String, String, String);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mb = env("MODELS_BENCH_MB", 100);
    let n = env("MODELS_BENCH_COMMITS", 10_000);
    let mut rows = Vec::new();
    let tmp = tempfile::tempdir()?;
    let store = Store::open(&tmp.path().join("db"), &StoreOptions::default())?;
    let models = Models::open(&store, &tmp.path().join("models"))?;
    let data = bytes(mb << 20);

    // Baseline: the same bytes with std::fs::write + fsync of file and directory.
    let base_dir = tmp.path().join("baseline");
    std::fs::create_dir_all(&base_dir)?;
    let t = Instant::now();
    {
        let mut f = std::fs::File::create(base_dir.join("blob"))?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::File::open(&base_dir)?.sync_all()?;
    }
    let base_write = t.elapsed();
    let t = Instant::now();
    let _ = consort_storage::sha256_hex(&data);
    let hash_only = t.elapsed();

    let t = Instant::now();
    let h = models.put_artifact(&data)?;
    models.commit(
        &version("big.m", "j1", vec![part(h.clone(), data.len())]),
        MAIN,
        "1",
        "a",
    )?;
    let first = t.elapsed();
    let (apparent1, alloc1) = disk_used(&models.objects_dir());
    let t = Instant::now();
    let h2 = models.put_artifact(&data)?;
    models.commit(
        &version("big.m", "j2", vec![part(h2, data.len())]),
        MAIN,
        "2",
        "a",
    )?;
    let second = t.elapsed();
    let (apparent2, alloc2) = disk_used(&models.objects_dir());
    let ratio = |a: Duration, b: Duration| format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64());
    rows.push(Row(
        format!("commit of a {mb} MB artifact (hash, write+fsync, commit, flush)"),
        ms(first),
        format!("{} (fs::write + fsync)", ms(base_write)),
        ratio(first, base_write),
    ));
    rows.push(Row(
        format!("  of which SHA-256 of {mb} MB"),
        ms(hash_only),
        String::new(),
        String::new(),
    ));
    rows.push(Row(
        "disk used under objects/ after it".into(),
        format!(
            "{:.1} MiB ({:.1} MiB allocated)",
            apparent1 as f64 / 1048576.0,
            alloc1 as f64 / 1048576.0
        ),
        format!("{mb} MiB"),
        format!("{:.3}", apparent1 as f64 / data.len() as f64),
    ));
    rows.push(Row(
        "commit of the identical bytes again (new version)".into(),
        ms(second),
        format!("{} (first commit)", ms(first)),
        ratio(second, first),
    ));
    rows.push(Row(
        "new space under objects/ for it".into(),
        format!(
            "{} bytes ({} allocated)",
            apparent2 - apparent1,
            alloc2.saturating_sub(alloc1)
        ),
        "0".into(),
        String::new(),
    ));
    drop(data);

    // History of n commits (small shared artifact, as many versions of one model).
    let small = models.put_artifact(b"small model")?;
    let t = Instant::now();
    for i in 0..n {
        let mut v = version(
            "long.m",
            &format!("j{i:020x}"),
            vec![part(small.clone(), 11)],
        );
        v.created_at_ms = i as u64;
        models.commit(&v, MAIN, "training", "a")?;
    }
    let setup = t.elapsed();
    rows.push(Row(
        format!("commit (flushed), small artifact, mean of {n}"),
        format!("{:.2} ms", setup.as_secs_f64() * 1e3 / n as f64),
        String::new(),
        String::new(),
    ));
    let mut runs = Vec::new();
    let mut len = 0;
    for _ in 0..5 {
        let t = Instant::now();
        len = models.log("long.m", None, false)?.len();
        runs.push(t.elapsed());
    }
    let log_main = median(runs);
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        models.log("long.m", None, true)?;
        runs.push(t.elapsed());
    }
    let log_all = median(runs);

    // Baseline: 10,000 raw sled values of the same size, read by key and by scan.
    let (_, c) = models.resolve("long.m")?;
    let value_len = rmp_serde::to_vec_named(&c)?.len() + 8;
    let db = sled::Config::new().path(tmp.path().join("raw")).open()?;
    let raw = db.open_tree("raw")?;
    for i in 0..n {
        raw.insert(format!("k{i:08}"), vec![7u8; value_len])?;
    }
    raw.flush()?;
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut total = 0;
        for i in 0..n {
            total += raw.get(format!("k{i:08}"))?.map_or(0, |v| v.len());
        }
        assert!(total > 0);
        runs.push(t.elapsed());
    }
    let raw_get = median(runs);
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let count = raw.iter().filter_map(Result::ok).count();
        assert_eq!(count, n);
        runs.push(t.elapsed());
    }
    let raw_scan = median(runs);
    rows.push(Row(
        format!("log main over {len} commits (goal ≤ 100 ms)"),
        ms(log_main),
        format!("{} ({n} raw sled gets of {value_len} B)", ms(raw_get)),
        ratio(log_main, raw_get),
    ));
    rows.push(Row(
        format!("log --all over {n} commits"),
        ms(log_all),
        format!("{} (raw sled scan of {n})", ms(raw_scan)),
        ratio(log_all, raw_scan),
    ));

    println!("| measurement | result | baseline | ratio |");
    println!("|---|---|---|---|");
    for Row(a, b, c, d) in rows {
        println!("| {a} | {b} | {c} | {d} |");
    }
    Ok(())
}
