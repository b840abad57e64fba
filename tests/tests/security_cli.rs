//! `consort security`: a daemon reports its own exposure; everything it creates is owner-only.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use consort_tests::{Federation, wait_for};

const T: Duration = Duration::from_secs(20);

fn data(name: &str) -> String {
    format!("{}/../examples/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every entry under `dir`, depth first (symlinks not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                pending.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

#[test]
fn security_reports_policy_tables_operators_partners_and_private_modes() {
    let fed = Federation::init(&["bank-a", "insurer-b"]);
    fed.configure_partner(0, 1, true);
    fed.edit_config(
        0,
        "# breast_guest = [\"insurer-b\"]",
        "breast_guest = [\"insurer-b\"]",
    );
    fed.append_config(0, "\n[operators.prep]\ncommand = [\"true\"]\n");
    let a = &fed.parties[0];

    // The control socket is owner-only from the moment it exists, under its temporary name
    // as under its final one: watch both while the daemon starts.
    let socket = a.socket();
    let staging = a.dir.join("consortd.sock.new");
    let mut daemon = a.spawn();
    let mut seen = Vec::new();
    let deadline = Instant::now() + T;
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "no socket; log:\n{}",
            daemon.log()
        );
        assert!(daemon.try_exit().is_none(), "log:\n{}", daemon.log());
        if let Ok(m) = std::fs::symlink_metadata(&staging) {
            seen.push(("staging", m.permissions().mode() & 0o777));
        }
    }
    seen.push(("socket", mode(&socket) & 0o777));
    // Owner-only from the moment it exists (a socket bound under umask 077 is 0700 until it
    // is set to 0600): never reachable by group or others.
    assert!(seen.iter().all(|(_, m)| *m & 0o077 == 0), "{seen:?}");
    assert_eq!(mode(&socket) & 0o777, 0o600);
    wait_for("consortd to answer", T, || {
        (a.cli(&["--json", "status"]).code == Some(0)).then_some(())
    });

    let out = a.cli(&[
        "data",
        "upload",
        &data("breast_hetero_guest.csv"),
        "--name",
        "breast_guest",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = a.cli(&[
        "data",
        "upload",
        &data("breast_hetero_host.csv"),
        "--name",
        "scratch",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");

    let out = a.cli(&["--json", "security"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json();
    assert_eq!(v["party"], "bank-a");
    assert_eq!(v["peer_id"], a.peer_id.as_str());
    assert_eq!(v["socket"]["path"], socket.to_str().unwrap());
    assert_eq!(v["socket"]["mode"], 0o600, "{v}");
    assert_eq!(v["identity_key"]["mode"], 0o600, "{v}");
    assert_eq!(v["data_dir"]["mode"], 0o700, "{v}");
    assert_eq!(v["config_file"]["mode"], 0o600, "{v}");
    assert_eq!(v["data_dir_scan"]["exposed"], 0, "{v}");
    assert!(v["data_dir_scan"]["scanned"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");

    let policy = &v["policy"];
    assert_eq!(policy["accept_from"], serde_json::json!(["*"]));
    assert_eq!(policy["manual_approval"], false);
    assert_eq!(
        policy["tables"],
        serde_json::json!({"breast_guest": ["insurer-b"]})
    );
    let tables = v["tables"].as_array().unwrap();
    let table = |name: &str| tables.iter().find(|t| t["name"] == name).unwrap().clone();
    assert_eq!(
        table("breast_guest"),
        serde_json::json!({"name": "breast_guest", "uploaded": true, "readers": ["insurer-b"], "rule": "named"})
    );
    assert_eq!(
        table("scratch"),
        serde_json::json!({"name": "scratch", "uploaded": true, "readers": [], "rule": "default"})
    );
    assert_eq!(tables.len(), 2, "{v}");
    assert_eq!(
        v["operators"],
        serde_json::json!([{"name": "prep", "command": ["true"], "env": [], "timeout_s": null}])
    );
    let partners = v["partners"].as_array().unwrap();
    assert_eq!(partners.len(), 1, "{v}");
    assert_eq!(partners[0]["party"], "insurer-b");
    assert_eq!(partners[0]["peer_id"], fed.parties[1].peer_id.as_str());
    assert_eq!(partners[0]["addrs"], serde_json::json!([fed.addr(1)]));
    assert_eq!(partners[0]["source"], "config");
    assert_eq!(v["listen"], serde_json::json!([fed.addr(0)]));
    assert_eq!(v["listening"], serde_json::json!([fed.addr(0)]));

    // The human form names the same things.
    let human = a.cli(&["security"]);
    assert_eq!(human.code, Some(0), "{human:?}");
    let text = &human.stdout;
    for needle in [
        "breast_guest",
        "insurer-b",
        "(default: no partner)",
        "0600",
        "0700",
        "prep",
        socket.to_str().unwrap(),
        &a.peer_id,
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
    assert!(!text.contains("  ! "), "unexpected warning in:\n{text}");

    // Everything the daemon created (the database above all) is owner-only.
    let db = a.dir.join("db");
    let entries = walk(&a.dir);
    assert!(entries.iter().any(|p| p.starts_with(&db) && p.is_file()));
    let open: Vec<_> = entries
        .iter()
        .filter(|p| !p.is_symlink() && mode(p) & 0o077 != 0)
        .map(|p| format!("{} {:o}", p.display(), mode(p)))
        .collect();
    assert!(open.is_empty(), "{open:?}");

    // Loosened files and an edited config are flagged, in both forms.
    std::fs::set_permissions(a.dir.join("identity.key"), PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&a.dir, PermissionsExt::from_mode(0o755)).unwrap();
    fed.append_config(0, "\n# edited\n");
    let v = a.cli(&["--json", "security"]).json();
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("identity key") && warnings.contains("0644"),
        "{warnings}"
    );
    assert!(
        warnings.contains("data directory") && warnings.contains("0755"),
        "{warnings}"
    );
    assert!(warnings.contains("has changed since"), "{warnings}");
    assert_eq!(v["identity_key"]["mode"], 0o644);
    let text = a.cli(&["security"]).stdout;
    assert!(text.contains("! identity key"), "{text}");
    drop(daemon);
}
