//! The README's first command, `consort demo`, on the real binaries.

#![allow(clippy::unwrap_used)]

use consort_tests::consort;

#[test]
fn demo_trains_across_two_daemons_and_cleans_up() {
    let out = consort(&["--json", "demo"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json();
    assert_eq!(v["status"], "success", "{v}");
    assert!(v["auc"].as_f64().unwrap() >= 0.99, "{v}");
    assert_eq!(v["intersection"], 569.0);
    assert!(
        v["model_id"]
            .as_str()
            .unwrap()
            .starts_with("breast-hetero-lr."),
        "{v}"
    );
    assert_eq!(v["model_version"], v["job_id"]);
    // Then deployed online at both parties, and every id of the guest's file scored through
    // the serving path.
    assert_eq!(v["online"]["service"], "demo", "{v}");
    assert_eq!(v["online"]["scored"], 569, "{v}");
    assert_eq!(v["kept"], false);
    // The daemons it started are gone, and so are their data directories: no process on this
    // machine runs with one of them, and the pids it reported are real, distinct daemons' pids
    // that no longer run consortd.
    let pids: Vec<u64> = v["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{v}");
    assert!(pids.iter().all(|p| *p > 1) && pids[0] != pids[1], "{v}");
    let dirs: Vec<&str> = v["dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(dirs.len(), 2, "{v}");
    for dir in &dirs {
        assert!(!std::path::Path::new(dir).exists(), "{dir} left behind");
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !dirs.iter().any(|d| cmdline.contains(d)),
            "process {pid} still runs on a demo directory: {cmdline}"
        );
        if pids.contains(&pid) {
            assert!(
                !cmdline.contains("consortd"),
                "demo daemon {pid} still running"
            );
        }
    }
}

#[test]
fn demo_with_three_parties_shows_progress_and_the_auc() {
    let human = consort(&["demo", "--parties", "3", "--key-bits", "512"]);
    assert_eq!(human.code, Some(0), "{human:?}");
    for needle in [
        "arbiter clinic-c",
        "psi",
        "hetero_lr",
        "AUC 0.99",
        "model breast-hetero-lr.",
        "online as service 'demo'",
        "569 ids in",
    ] {
        assert!(human.stdout.contains(needle), "{needle}: {}", human.stdout);
    }
}

#[test]
fn demo_explains_what_it_needs_for_a_larger_data_set() {
    let out = consort(&["demo", "--data", "default_credit"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("needs --data-dir"), "{}", out.stderr);
}
