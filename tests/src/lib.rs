//! Harness for end-to-end tests: real `consortd` processes on this machine, driven through the
//! real `consort` CLI, each in its own temporary data directory.
//!
//! Every wait polls an observable condition with a deadline; every daemon is killed when its
//! handle drops, so a failing test leaves no process behind.

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod board;
pub mod browser;
pub mod hostile;
pub mod netlab;
pub mod serving;

/// Directory holding the built `consortd` and `consort` binaries (built once per test process).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_owned();
        // Build the binaries of the current profile (a no-op when they are fresh).
        let release = cfg!(not(debug_assertions));
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(&workspace).args([
            "build",
            "--quiet",
            "-p",
            "consort-daemon",
            "-p",
            "consort-cli",
            "--bins",
        ]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building consortd/consort failed");
        // target dir: the test executable lives in <target>/<profile>/deps/.
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().to_owned()
    })
}

/// CPU seconds (user + system) used so far by `pid`.
pub fn cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// Path of one of our binaries.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Polls `f` every 10 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `consort` invocation's result.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// stdout as JSON (panics with the whole output when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs `consort` with `args` (no `CONSORT_DIR` inherited).
pub fn consort(args: &[&str]) -> CliOutput {
    let out = Command::new(bin("consort"))
        .args(args)
        .env_remove("CONSORT_DIR")
        .env_remove("CONSORT_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run consort");
    CliOutput::from(out)
}

/// Runs `consortd` with `args` to completion.
pub fn consortd(args: &[&str]) -> CliOutput {
    let out = Command::new(bin("consortd"))
        .args(args)
        .env_remove("CONSORT_DIR")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run consortd");
    CliOutput::from(out)
}

/// One party's data directory, initialised with `consortd init`.
pub struct Party {
    _tmp: Option<tempfile::TempDir>,
    pub dir: PathBuf,
    pub name: String,
    pub peer_id: String,
}

impl Party {
    /// Initialises a party in a fresh temporary directory, listening on a loopback port.
    pub fn init(name: &str) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("consort-e2e")
            .tempdir()
            .unwrap();
        let mut party = init_party(&tmp.path().join(name), name, "/ip4/127.0.0.1/tcp/0");
        party._tmp = Some(tmp);
        party
    }

    pub fn dir_str(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("consortd.sock")
    }

    /// `consort --dir DIR ARGS...`
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let mut all = vec!["--dir", self.dir_str()];
        all.extend_from_slice(args);
        consort(&all)
    }

    /// Starts `consortd run` without waiting for it.
    pub fn spawn(&self) -> Daemon {
        self.launch(None)
    }

    /// Starts the daemon and waits until `consort status` answers.
    pub fn start(&self) -> Daemon {
        self.wait_ready(self.launch(None))
    }

    /// Like [`Party::start`], inside network namespace `netns` (the control socket is a file,
    /// so the CLI reaches it from the host namespace).
    pub fn start_in(&self, netns: &str) -> Daemon {
        self.wait_ready(self.launch(Some(netns)))
    }

    fn launch(&self, netns: Option<&str>) -> Daemon {
        let log = self
            .dir
            .parent()
            .unwrap()
            .join(format!("{}.log", self.name));
        let logfile = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin("consortd"));
                c
            }
            None => Command::new(bin("consortd")),
        };
        let child = cmd
            .args(["run", "--dir", self.dir_str()])
            .env_remove("CONSORT_DIR")
            // `CONSORT_TEST_LOG` (a `RUST_LOG` filter) lets a benchmark run be looked into.
            .env(
                "RUST_LOG",
                std::env::var("CONSORT_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logfile)
            .spawn()
            .expect("spawn consortd");
        Daemon {
            child: Some(child),
            log,
        }
    }

    fn wait_ready(&self, mut daemon: Daemon) -> Daemon {
        wait_for("consortd to answer", Duration::from_secs(20), || {
            if let Some(status) = daemon.try_exit() {
                panic!(
                    "consortd exited early with {status}; log:\n{}",
                    daemon.log()
                );
            }
            (self.cli(&["--json", "status"]).code == Some(0)).then_some(())
        });
        daemon
    }
}

/// A running `consortd` process; killed (SIGKILL) on drop.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Exit status if the process has ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().unwrap().try_wait().unwrap()
    }

    /// Waits for the process to end.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_for("consortd to exit", timeout, || self.try_exit())
    }

    /// Sends `signal` (a libc signal number).
    pub fn signal(&self, signal: i32) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on a child we spawned and have not reaped; no memory is involved.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let child = self.child.as_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failing test shows what its daemons said.
        if std::thread::panicking() {
            eprintln!("----- {} -----\n{}", self.log.display(), self.log());
        }
    }
}

/// A free TCP port on 127.0.0.1 for a daemon's fixed listen address.
///
/// Taken below Linux's ephemeral range (32768+), so that no outgoing connection or port-0
/// listener of a concurrently running test is handed the same port between this check and the
/// daemon's bind; spread by process id so that test binaries run side by side do not collide.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (start.wrapping_add(n * 13) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Parties sharing one temporary directory, each listening on its own loopback port.
pub struct Federation {
    _tmp: tempfile::TempDir,
    pub parties: Vec<Party>,
    pub ports: Vec<u16>,
}

impl Federation {
    /// Initialises `names`, each with a fixed loopback port, and no partners yet.
    pub fn init(names: &[&str]) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("consort-fed")
            .tempdir()
            .unwrap();
        let mut parties = Vec::new();
        let mut ports = Vec::new();
        for name in names {
            let port = free_port();
            let listen = format!("/ip4/127.0.0.1/tcp/{port}");
            parties.push(init_party(&tmp.path().join(name), name, &listen));
            ports.push(port);
        }
        Self {
            _tmp: tmp,
            parties,
            ports,
        }
    }

    pub fn addr(&self, i: usize) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.ports[i])
    }

    /// Lists party `j` as a partner in party `i`'s consort.toml (with or without its address).
    pub fn configure_partner(&self, i: usize, j: usize, with_addr: bool) {
        let p = &self.parties[j];
        let addrs = if with_addr {
            format!("\"{}\"", self.addr(j))
        } else {
            String::new()
        };
        self.append_config(
            i,
            &format!(
                "\n[[partners]]\nparty = \"{}\"\npeer_id = \"{}\"\naddrs = [{addrs}]\n",
                p.name, p.peer_id
            ),
        );
    }

    /// Appends raw TOML to party `i`'s config.
    pub fn append_config(&self, i: usize, text: &str) {
        let path = self.parties[i].dir.join("consort.toml");
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
}

/// `consort --json peers` of `party`, as (party → connected).
pub fn connected_peers(party: &Party) -> Vec<(String, bool)> {
    let out = party.cli(&["--json", "peers"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["party"].as_str().unwrap().to_owned(),
                p["connected"].as_bool().unwrap(),
            )
        })
        .collect()
}

impl Federation {
    /// Replaces `from` by `to` in party `i`'s config (panics when `from` is absent).
    pub fn edit_config(&self, i: usize, from: &str, to: &str) {
        let path = self.parties[i].dir.join("consort.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from:?} not in config");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }
}

/// Two network namespaces joined by a veth pair: a private two-host LAN for tests that need
/// real interfaces (mDNS ignores loopback). Removed on drop.
pub struct TwoHostLan {
    pub ns: [String; 2],
}

impl TwoHostLan {
    /// Creates the LAN, or returns `None` when this process may not (not root, no `ip`).
    pub fn create() -> Option<Self> {
        #[allow(unsafe_code)]
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let have_ip = Command::new("ip")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !root || !have_ip {
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = (std::process::id() % 10_000) * 10 + n;
        let ns = [format!("consort-{id}-a"), format!("consort-{id}-b")];
        let veth = [format!("cva{id}"), format!("cvb{id}")];
        let subnet = 1 + (id % 250);
        let lan = Self { ns: ns.clone() };
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &ns[0]]);
        ip(&["netns", "add", &ns[1]]);
        ip(&[
            "link", "add", &veth[0], "type", "veth", "peer", "name", &veth[1],
        ]);
        for i in 0..2 {
            ip(&["link", "set", &veth[i], "netns", &ns[i]]);
            let addr = format!("10.251.{subnet}.{}/24", i + 1);
            ip(&["-n", &ns[i], "addr", "add", &addr, "dev", &veth[i]]);
            ip(&[
                "-n",
                &ns[i],
                "link",
                "set",
                &veth[i],
                "up",
                "multicast",
                "on",
            ]);
            ip(&["-n", &ns[i], "link", "set", "lo", "up"]);
        }
        Some(lan)
    }
}

impl Drop for TwoHostLan {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Federation {
    /// Lists every party as a partner of every other, with addresses.
    pub fn all_mutual(&self) {
        for i in 0..self.parties.len() {
            for j in 0..self.parties.len() {
                if i != j {
                    self.configure_partner(i, j, true);
                }
            }
        }
    }

    /// Starts every daemon and waits until each sees all its partners connected.
    pub fn start_connected(&self) -> Vec<Daemon> {
        let daemons: Vec<Daemon> = self.parties.iter().map(|p| p.start()).collect();
        let n = self.parties.len() - 1;
        for p in &self.parties {
            wait_for("partners connected", Duration::from_secs(60), || {
                let peers = connected_peers(p);
                (peers.iter().filter(|(_, c)| *c).count() == n).then_some(())
            });
        }
        daemons
    }

    /// Writes a job file into the federation's directory; returns its path.
    pub fn job_file(&self, name: &str, yaml: &str) -> String {
        let path = self._tmp.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

/// Path of one of the repository's example data files (`examples/data/NAME`).
pub fn example_data(name: &str) -> String {
    format!("{}/../examples/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Uploads the breast hetero split: the guest half at party 0 as `breast_guest`, the host
/// half at party 1 as `breast_host`.
/// The breast hetero LR job with FATE's example settings (bank-a guest and arbiter, insurer-b
/// host; tables `breast_guest` and `breast_host`): reader → psi → lr → eval.
pub const BREAST_LR_JOB: &str = "name: breast-lr
parties: {guest: [bank-a], host: [insurer-b], arbiter: [bank-a]}
tasks:
  reader:
    component: reader
    role_params: {guest: {table: breast_guest}, host: {table: breast_host}}
  psi:
    component: psi
    inputs: {data: reader.data}
  lr:
    component: hetero_lr
    inputs: {train_data: psi.data}
    params: {max_iter: 10, batch_size: 300, learning_rate: 0.1, alpha: 0.001, key_bits: 512}
  eval:
    component: evaluation
    roles: [guest]
    inputs: {data: lr.train_output}
";

pub fn upload_breast_hetero(fed: &Federation) {
    for (i, (file, name)) in [
        ("breast_hetero_guest.csv", "breast_guest"),
        ("breast_hetero_host.csv", "breast_host"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = fed.parties[i].cli(&["data", "upload", &example_data(file), "--name", name]);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
}

/// `consort --json job show ID` at `party`; `Value::Null` while the job is unknown there.
pub fn job_show(party: &Party, id: &str) -> Value {
    let out = party.cli(&["--json", "job", "show", id]);
    match out.code {
        Some(0) => out.json(),
        Some(1) if out.stderr.contains("no job") => Value::Null,
        _ => panic!("job show failed: {out:?}"),
    }
}

/// The task named `name` in a `job show` document (Null if absent).
pub fn task_of(job: &Value, name: &str) -> Value {
    job["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until `party` sees job `id` in one of `states`; returns the job.
pub fn wait_job_state(party: &Party, id: &str, states: &[&str], timeout: Duration) -> Value {
    wait_for(
        &format!("job {id} at {} to be {states:?}", party.name),
        timeout,
        || {
            let out = party.cli(&["--json", "job", "show", id]);
            if out.code != Some(0) {
                return None;
            }
            let v = out.json();
            states
                .contains(&v["status"].as_str().unwrap_or(""))
                .then_some(v)
        },
    )
}

/// Waits until every party sees job `id` end and asserts it succeeded there (a failure shows
/// that party's task log); returns each party's view of the job.
pub fn assert_succeeds(parties: &[Party], id: &str, timeout: Duration) -> Vec<Value> {
    let ended = ["success", "failed", "canceled", "rejected"];
    parties
        .iter()
        .map(|p| {
            let v = wait_job_state(p, id, &ended, timeout);
            assert_eq!(
                v["status"],
                "success",
                "{v}\n{:?}",
                p.cli(&["job", "log", id])
            );
            v
        })
        .collect()
}

/// Submits `file` at `party`; returns the job id.
pub fn submit(party: &Party, file: &str) -> String {
    let out = party.cli(&["--json", "job", "submit", file]);
    assert_eq!(out.code, Some(0), "{out:?}");
    out.json()["job_id"].as_str().unwrap().to_owned()
}

/// `consortd init` of party `name` in `dir`, listening on `listen`.
fn init_party(dir: &Path, name: &str, listen: &str) -> Party {
    let out = consortd(&[
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--party",
        name,
        "--listen",
        listen,
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "init failed: {out:?}");
    Party {
        _tmp: None,
        dir: dir.to_owned(),
        name: name.to_owned(),
        peer_id: out.json()["peer_id"].as_str().unwrap().to_owned(),
    }
}

impl Party {
    /// Like [`Party::start`], with `RUST_LOG` set to `filter` (e.g. to see one module's debug
    /// lines in the daemon's log).
    pub fn start_logging(&self, filter: &str) -> Daemon {
        let log = self
            .dir
            .parent()
            .unwrap()
            .join(format!("{}.log", self.name));
        let logfile = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(bin("consortd"))
            .args(["run", "--dir", self.dir_str()])
            .env_remove("CONSORT_DIR")
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logfile)
            .spawn()
            .expect("spawn consortd");
        self.wait_ready(Daemon {
            child: Some(child),
            log,
        })
    }
}

/// Every file under `dir`, recursively (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A raw control-socket connection (hello done), for benchmarks that must not pay a `consort`
/// process per request.
pub struct RawConn {
    s: std::os::unix::net::UnixStream,
    id: u64,
}

impl RawConn {
    /// Connects and says hello.
    pub fn open(path: &std::path::Path) -> Self {
        let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
        let hello = consort_protocol::ClientMessage::Hello {
            protocol: consort_protocol::CONTROL_PROTOCOL.into(),
            version: consort_protocol::CONTROL_PROTOCOL_VERSION,
            client: "bench".into(),
        };
        s.write_all(&consort_protocol::frame::encode_frame(&hello, 1 << 26).unwrap())
            .unwrap();
        let mut c = Self { s, id: 0 };
        assert!(matches!(
            c.read(),
            consort_protocol::ServerMessage::Welcome { .. }
        ));
        c
    }

    /// Reads one frame.
    pub fn read(&mut self) -> consort_protocol::ServerMessage {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut body).unwrap();
        consort_protocol::frame::decode_body(&body).unwrap()
    }

    /// One request; `None` when the daemon answered with an error.
    pub fn call(
        &mut self,
        request: consort_protocol::Request,
    ) -> Option<consort_protocol::Response> {
        self.id += 1;
        let msg = consort_protocol::ClientMessage::Request {
            id: self.id,
            request,
        };
        self.s
            .write_all(&consort_protocol::frame::encode_frame(&msg, 1 << 26).unwrap())
            .unwrap();
        match self.read() {
            consort_protocol::ServerMessage::Response { response, .. } => Some(response),
            // e.g. "no job here" while the job record is on its way
            consort_protocol::ServerMessage::Error { .. } => None,
            other => panic!("{other:?}"),
        }
    }

    /// Follows `job` with `job watch` (no polling once the job is known here) until it ends;
    /// panics after `limit`.
    pub fn watch_until_final(&mut self, job: &str, limit: Duration) -> consort_protocol::JobInfo {
        let t = std::time::Instant::now();
        let mut revision = 0;
        loop {
            assert!(
                t.elapsed() < limit,
                "job {job} did not end within {limit:?}"
            );
            let request = consort_protocol::Request::JobWatch {
                job: job.into(),
                revision,
                timeout_ms: 5_000,
                until_end: true,
            };
            match self.call(request) {
                Some(consort_protocol::Response::Job(info)) => {
                    if matches!(
                        info.status.as_str(),
                        "success" | "failed" | "canceled" | "rejected"
                    ) {
                        return info;
                    }
                    revision = info.revision;
                }
                // The job record is still on its way here.
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// `job show`, `None` while the job is unknown here.
    pub fn show(&mut self, job: &str) -> Option<consort_protocol::JobInfo> {
        match self.call(consort_protocol::Request::JobShow { job: job.into() }) {
            Some(consort_protocol::Response::Job(info)) => Some(info),
            _ => None,
        }
    }
}
