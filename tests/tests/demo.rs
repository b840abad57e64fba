//! The README's first command, `consort demo`, on the real binaries.

#![allow(clippy::unwrap_used)]

use consort_tests::consort;

#[test]
fn demo_runs_end_to_end_and_cleans_up() {
    let out = consort(&["--json", "demo"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json();
    assert_eq!(v["status"]["party"], "demo-a");
    assert!(
        v["status"]["peer_id"]
            .as_str()
            .unwrap()
            .starts_with("12D3KooW")
    );
    assert_eq!(v["kept"], false);
    // The daemon it started is gone: its pid no longer runs consortd.
    let pid = v["status"]["pid"].as_u64().unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !cmdline.contains("consortd"),
        "demo daemon {pid} still running"
    );

    let human = consort(&["demo"]);
    assert_eq!(human.code, Some(0), "{human:?}");
    assert!(human.stdout.contains("clean shutdown"), "{}", human.stdout);
}
