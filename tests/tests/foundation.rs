//! Foundation: one daemon's life cycle, driven through the real binaries.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use consort_protocol::frame::{decode_body, encode_frame};
use consort_protocol::{
    CONTROL_PROTOCOL, CONTROL_PROTOCOL_VERSION, ClientMessage, ErrorCode, Request, ServerMessage,
};
use consort_tests::{Party, consort, consortd, wait_for};

const T: Duration = Duration::from_secs(20);

#[test]
fn init_run_status_json() {
    let party = Party::init("bank-a");
    let launched = std::time::Instant::now();
    let _d = party.start();
    let out = party.cli(&["--json", "status"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v = out.json();
    let asked = launched.elapsed().as_secs_f64();
    assert_eq!(v["party"], "bank-a");
    assert_eq!(v["peer_id"], party.peer_id.as_str());
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    // Uptime counts from this daemon's start: no more than the time since we launched it, and
    // it grows.
    let uptime = v["uptime_s"].as_f64().unwrap();
    assert!(
        uptime > 0.0 && uptime <= asked,
        "uptime {uptime} s, launched {asked} s ago"
    );
    wait_for("uptime to grow", T, || {
        let later = party.cli(&["--json", "status"]).json()["uptime_s"].as_f64();
        later.is_some_and(|u| u > uptime).then_some(())
    });
    // The configured /tcp/0 is reported as the port actually bound.
    let listen = v["listen"][0].as_str().unwrap();
    let port: u16 = listen
        .strip_prefix("/ip4/127.0.0.1/tcp/")
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(port, 0, "{listen}");
    assert_eq!(v["data_dir"], party.dir_str());
    let actors: Vec<&str> = v["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["actor"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        [
            "scheduler",
            "executor",
            "tracker",
            "model_manager",
            "serving"
        ]
    );

    // Human output names the same things.
    let human = party.cli(&["status"]);
    assert_eq!(human.code, Some(0));
    assert!(human.stdout.contains(&party.peer_id), "{}", human.stdout);

    // The data directory and the key are private; the socket is owner-only.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&party.dir), 0o700);
    assert_eq!(mode(&party.dir.join("identity.key")), 0o600);
    let sock = std::fs::symlink_metadata(party.socket()).unwrap();
    assert!(sock.file_type().is_socket());
    assert_eq!(sock.permissions().mode() & 0o777, 0o600);
}

#[test]
fn second_daemon_on_same_dir_is_refused() {
    let party = Party::init("bank-a");
    let _first = party.start();
    let second = consortd(&["run", "--dir", party.dir_str()]);
    assert_eq!(second.code, Some(1), "{second:?}");
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );
    // The first one is unharmed and still owns its socket.
    let out = party.cli(&["--json", "status"]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn shutdown_exits_zero_and_removes_socket() {
    let party = Party::init("bank-a");
    let mut daemon = party.start();
    let out = party.cli(&["--json", "shutdown"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.json()["stopped"], true);
    let status = daemon.wait_exit(T);
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.log());
    assert!(!party.socket().exists());
    assert!(daemon.log().contains("consortd stopped"));
}

#[test]
fn sigterm_and_sigint_stop_gracefully() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let party = Party::init("bank-a");
        let mut daemon = party.start();
        daemon.signal(signal);
        let status = daemon.wait_exit(T);
        assert_eq!(
            status.code(),
            Some(0),
            "signal {signal}; log:\n{}",
            daemon.log()
        );
        assert!(!party.socket().exists());
        // A clean stop is remembered: the next start does not report a crash.
        let mut again = party.start();
        assert!(
            !again.log().contains("did not stop cleanly"),
            "{}",
            again.log()
        );
        again.signal(libc::SIGTERM);
        assert_eq!(again.wait_exit(T).code(), Some(0));
    }
}

#[test]
fn restart_after_kill9_keeps_identity_and_replaces_stale_socket() {
    let party = Party::init("bank-a");
    let mut daemon = party.start();
    daemon.kill9();
    assert!(
        party.socket().exists(),
        "a killed daemon leaves its socket behind"
    );
    let second = party.start();
    let v = party.cli(&["--json", "status"]).json();
    assert_eq!(v["peer_id"], party.peer_id.as_str());
    assert_eq!(v["pid"], second.pid());
    let log = second.log();
    assert!(log.contains("removing stale socket"), "{log}");
    assert!(log.contains("did not stop cleanly"), "{log}");
}

#[test]
fn cli_without_daemon_exits_2_with_hint() {
    let party = Party::init("bank-a");
    let out = party.cli(&["status"]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let sock = party.socket();
    assert!(
        out.stderr.contains(sock.to_str().unwrap()),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("consortd run --dir"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    // --json still gives one document on stdout.
    let out = party.cli(&["--json", "status"]);
    assert_eq!(out.code, Some(2));
    assert_eq!(out.json()["error"]["code"], "not_running");
    // --socket names the socket directly.
    let out = consort(&["--socket", "/nonexistent/consortd.sock", "status"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("/nonexistent/consortd.sock"),
        "{}",
        out.stderr
    );
}

#[test]
fn init_rejects_bad_input_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("x");
    let d = dir.to_str().unwrap();
    let out = consortd(&["init", "--dir", d, "--party", "Bank_A"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("invalid party name 'Bank_A'"),
        "{}",
        out.stderr
    );
    assert!(!dir.exists(), "nothing is created on error");
    let out = consortd(&["init", "--dir", d, "--party", "a", "--listen", "tcp/1"]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("not a multiaddr"), "{}", out.stderr);
    assert!(!dir.exists());

    let out = consortd(&["init", "--dir", d, "--party", "a", "--json"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let first = out.json();
    assert_eq!(first["party"], "a");
    let key = std::fs::read(dir.join("identity.key")).unwrap();
    let out = consortd(&["init", "--dir", d, "--party", "a"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("refusing to overwrite"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(dir.join("identity.key")).unwrap(), key);
}

#[test]
fn run_rejects_bad_config_with_the_key_named() {
    let party = Party::init("bank-a");
    let cfg = party.dir.join("consort.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("cache_mb = 16", "cache_mb = \"lots\"")).unwrap();
    let out = consortd(&["run", "--dir", party.dir_str()]);
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("cache_mb"), "{}", out.stderr);
    assert!(!party.socket().exists());
}

// ---- the control protocol against a live daemon, byte by byte -------------------------------

fn hello(version: u16) -> Vec<u8> {
    let msg = ClientMessage::Hello {
        protocol: CONTROL_PROTOCOL.into(),
        version,
        client: "e2e".into(),
    };
    encode_frame(&msg, 1 << 20).unwrap()
}

/// Reads one frame; `None` when the daemon closed the connection.
fn read_msg(s: &mut UnixStream) -> Option<ServerMessage> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(decode_body(&body).expect("valid server frame"))
}

fn connect(party: &Party) -> UnixStream {
    let s = UnixStream::connect(party.socket()).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s
}

fn expect_error_then_close(s: &mut UnixStream, code: ErrorCode) {
    match read_msg(s) {
        Some(ServerMessage::Error { error, .. }) => assert_eq!(error.code, code, "{error:?}"),
        other => panic!("expected a {code:?} error, got {other:?}"),
    }
    assert!(
        read_msg(s).is_none(),
        "connection must be closed after a protocol error"
    );
}

#[test]
fn bad_clients_get_errors_and_the_daemon_carries_on() {
    let party = Party::init("bank-a");
    let mut daemon = party.start();

    // Garbage instead of a frame body.
    let mut s = connect(&party);
    s.write_all(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]).unwrap();
    expect_error_then_close(&mut s, ErrorCode::BadFrame);

    // A frame over the 64 MiB limit is refused from its header alone.
    let mut s = connect(&party);
    s.write_all(&(100u32 << 20).to_be_bytes()).unwrap();
    expect_error_then_close(&mut s, ErrorCode::FrameTooLarge);

    // Wrong protocol version.
    let mut s = connect(&party);
    s.write_all(&hello(CONTROL_PROTOCOL_VERSION + 1)).unwrap();
    expect_error_then_close(&mut s, ErrorCode::VersionMismatch);

    // A request before the hello.
    let mut s = connect(&party);
    let req = ClientMessage::Request {
        id: 1,
        request: Request::Status,
    };
    s.write_all(&encode_frame(&req, 1 << 20).unwrap()).unwrap();
    expect_error_then_close(&mut s, ErrorCode::HelloRequired);

    // An unknown request kind (as a newer client would send).
    let mut s = connect(&party);
    s.write_all(&hello(CONTROL_PROTOCOL_VERSION)).unwrap();
    assert!(matches!(
        read_msg(&mut s),
        Some(ServerMessage::Welcome { .. })
    ));
    #[derive(serde::Serialize)]
    struct Future {
        r#type: &'static str,
        id: u64,
        request: Kind,
    }
    #[derive(serde::Serialize)]
    struct Kind {
        kind: &'static str,
    }
    let unknown = Future {
        r#type: "request",
        id: 7,
        request: Kind { kind: "teleport" },
    };
    s.write_all(&encode_frame(&unknown, 1 << 20).unwrap())
        .unwrap();
    expect_error_then_close(&mut s, ErrorCode::UnknownRequest);

    // A truncated frame followed by a hang-up.
    let mut s = connect(&party);
    s.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
    drop(s);

    // A good client on the same daemon still works, and the daemon never died.
    let mut s = connect(&party);
    s.write_all(&hello(CONTROL_PROTOCOL_VERSION)).unwrap();
    assert!(matches!(
        read_msg(&mut s),
        Some(ServerMessage::Welcome { .. })
    ));
    s.write_all(&encode_frame(&req, 1 << 20).unwrap()).unwrap();
    assert!(matches!(
        read_msg(&mut s),
        Some(ServerMessage::Response { id: 1, .. })
    ));
    assert!(
        daemon.try_exit().is_none(),
        "daemon died; log:\n{}",
        daemon.log()
    );
    wait_for("status", T, || {
        (party.cli(&["status"]).code == Some(0)).then_some(())
    });
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let party = Party::init("bank-a");
    let log = party.dir.parent().unwrap().join("json.log");
    let mut child = std::process::Command::new(consort_tests::bin("consortd"))
        .args(["run", "--dir", party.dir_str(), "--log-format", "json"])
        .env_remove("CONSORT_DIR")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for("consortd to answer", T, || {
        (party.cli(&["status"]).code == Some(0)).then_some(())
    });
    assert_eq!(party.cli(&["shutdown"]).code, Some(0));
    let status = wait_for("consortd to exit", T, || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{text}");
    for v in &lines {
        assert!(
            v["timestamp"].is_string() && v["level"].is_string() && v["target"].is_string(),
            "{v}"
        );
    }
    // Fields are keys of the object, not text inside the message.
    let started = lines
        .iter()
        .find(|v| v["peer_id"] == party.peer_id.as_str())
        .unwrap_or_else(|| panic!("no line with the peer_id field: {text}"));
    assert_eq!(started["level"], "INFO", "{started}");
    assert!(
        lines.iter().any(|v| v["message"] == "consortd stopped"),
        "{text}"
    );
}
