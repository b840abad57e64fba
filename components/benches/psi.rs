//! PSI throughput: two parties in one process (in-memory harness), synthetic ids with 50%
//! overlap. Run with `cargo bench -p consort-components --bench psi`.
//! Optional argument: sizes per side, e.g. `-- 100000 1000000`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use consort_components::psi::BlindKey;
use consort_components::{Endpoint, component, harness::run_task, schema};
use consort_protocol::PartyName;
use consort_protocol::data::Dataset;
use consort_protocol::job::{JobSpec, Role, validate};

fn dataset(range: std::ops::Range<u64>) -> Dataset {
    let ids: Vec<String> = range.clone().map(|k| format!("customer-{k:012}")).collect();
    let col: Vec<f64> = range.map(|k| k as f64).collect();
    Dataset::new(ids, vec!["f".into()], vec![col], None).expect("dataset")
}

fn ep(role: Role, party: &str) -> Endpoint {
    Endpoint {
        role,
        party: PartyName::new(party).expect("name"),
    }
}

/// CPU seconds this process has used (user + system), from /proc (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn run_psi(n: u64) -> (f64, f64, usize) {
    let text = "name: b\nparties:\n  guest: [a]\n  host: [b]\ntasks:\n  t:\n    component: psi\n";
    let spec = JobSpec::parse(text).expect("job");
    let task = validate(&spec, &schema).expect("valid").tasks.remove(0);
    let g = dataset(0..n);
    let h = dataset(n / 2..n / 2 + n);
    let inputs = BTreeMap::from([
        (
            ep(Role::Guest, "a"),
            BTreeMap::from([("data".to_owned(), g.to_bytes().expect("bytes"))]),
        ),
        (
            ep(Role::Host, "b"),
            BTreeMap::from([("data".to_owned(), h.to_bytes().expect("bytes"))]),
        ),
    ]);
    let f = component("psi").expect("psi");
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let results = run_task(
        "bench",
        &task,
        f,
        &inputs,
        &Arc::new(AtomicBool::new(false)),
    );
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let mut size = 0;
    for r in &results {
        assert!(r.result.is_ok(), "{}: {:?}", r.endpoint, r.result);
        let out = Dataset::from_bytes(&r.outputs["data"]).expect("output");
        size = out.rows();
        for line in &r.log {
            println!("    [{}] {line}", r.endpoint);
        }
    }
    assert_eq!(size as u64, n / 2, "50% overlap");
    (wall, cpu, size)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if args.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        args
    };
    let cores = rayon::current_num_threads();

    // Primitive rates on one thread.
    let ids: Vec<String> = (0..20_000u64)
        .map(|k| format!("customer-{k:012}"))
        .collect();
    let key = BlindKey::random();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let c0 = cpu_seconds();
    let (t_hash, blinded) = pool.install(|| {
        let t = Instant::now();
        let b = key.hash_and_blind(&ids);
        (t.elapsed().as_secs_f64(), b)
    });
    let c1 = cpu_seconds();
    let t_re = pool.install(|| {
        let t = Instant::now();
        let _ = key.reblind(&blinded).expect("points");
        t.elapsed().as_secs_f64()
    });
    let c2 = cpu_seconds();
    let n = ids.len() as f64;
    println!(
        "one thread, wall: hash+blind+compress {:.0} ids/s; decompress+blind+compress {:.0} ids/s; both {:.0} ids/s",
        n / t_hash,
        n / t_re,
        n / (t_hash + t_re)
    );
    println!(
        "one thread, per CPU-second: hash+blind+compress {:.0}; decompress+blind+compress {:.0}; both (= PSI ids per core-second) {:.0}",
        n / (c1 - c0),
        n / (c2 - c1),
        n / (c2 - c0)
    );
    println!();
    println!(
        "| ids per side | overlap | wall s | ids/s (both sides) | cores | ids/s per core (wall) | CPU s | ids per CPU-second |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let (wall, cpu, size) = run_psi(n);
        let total = 2.0 * n as f64;
        println!(
            "| {n} | {size} | {wall:.2} | {:.0} | {cores} | {:.0} | {cpu:.1} | {:.0} |",
            total / wall,
            total / wall / cores as f64,
            total / cpu
        );
    }
}
