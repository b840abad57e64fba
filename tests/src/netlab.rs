//! Real networks in network namespaces, for the NAT and link-quality tests: a public relay R on
//! a "WAN" router, and parties A and B each behind its own NAT router (iptables masquerading,
//! unsolicited traffic from the WAN dropped, as home and office routers do). A and B cannot dial
//! each other; both can dial R. Everything is removed on drop.
//!
//! ```text
//!   A 10.N.11.2 ── natA (10.N.11.1 | 10.N.2.2) ──┐
//!                                                  wan (10.N.1.1, .2.1, .3.1) ── R 10.N.1.2
//!   B 10.N.12.2 ── natB (10.N.12.1 | 10.N.3.2) ──┘
//! ```
//!
//! `wan` routes only the three public /24s, so a packet for a private address dies there with
//! "network unreachable", as on the internet.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{BREAST_LR_JOB, Daemon, Federation, Party, assert_succeeds, submit, wait_for};

/// How the two NAT routers map ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    /// Keeps the source port when it can, one mapping per inside address and port
    /// (endpoint-independent mapping): hole punching works.
    Cone,
    /// A fresh random port per destination (`--random-fully`): what a partner observed is not
    /// what the other partner must dial, so hole punching fails.
    Symmetric,
}

/// The lab: namespaces `wan`, `r`, `nat-a`, `nat-b`, `a`, `b` (suffixed by a unique id).
pub struct NatLab {
    id: u32,
    ns: Vec<String>,
}

/// Whether this process can build labs (root, `ip`, `iptables`).
pub fn available() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ok = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    root && ok("ip", "-V") && ok("iptables", "--version") && ok("tc", "-V")
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh lab id (10..250, unique among this process's labs) and its namespaces
/// `PREFIX<id>-<name>`, created with loopback up.
fn namespaces(prefix: &str, names: &[&str]) -> (u32, Vec<String>) {
    assert!(
        available(),
        "network labs need root, iproute2, iptables and tc"
    );
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let id = ((std::process::id() % 1000) * 8 + n) % 240 + 10;
    let ns: Vec<String> = names.iter().map(|x| format!("{prefix}{id}-{x}")).collect();
    for ns in &ns {
        run("ip", &["netns", "add", ns]);
        run("ip", &["-n", ns, "link", "set", "lo", "up"]);
    }
    (id, ns)
}

fn delete_namespaces(ns: &[String]) {
    for ns in ns {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
    }
}

/// Sets `/proc/sys/KEY` to `value` inside namespace `ns` (no `sysctl` program needed).
fn sysctl(ns: &str, key: &str, value: &str) {
    let script = format!("echo {value} > /proc/sys/{key}");
    run("ip", &["netns", "exec", ns, "sh", "-c", &script]);
}

impl NatLab {
    /// Builds the lab.
    pub fn create(kind: NatKind) -> Self {
        let (id, ns) = namespaces("cn", &["wan", "r", "nat-a", "nat-b", "a", "b"]);
        let lab = Self { id, ns };
        for ns in &lab.ns {
            sysctl(ns, "net/ipv4/ip_forward", "1");
        }
        // (left namespace, left address, right namespace, right address)
        let links = [
            (1usize, "1.2", 0usize, "1.1"), // R — wan
            (2, "2.2", 0, "2.1"),           // natA — wan
            (3, "3.2", 0, "3.1"),           // natB — wan
            (4, "11.2", 2, "11.1"),         // A — natA
            (5, "12.2", 3, "12.1"),         // B — natB
        ];
        for (k, (l, la, r, ra)) in links.into_iter().enumerate() {
            let (lv, rv) = (format!("cn{id}l{k}"), format!("cn{id}r{k}"));
            run(
                "ip",
                &["link", "add", &lv, "type", "veth", "peer", "name", &rv],
            );
            for (ns, dev, addr) in [(l, &lv, la), (r, &rv, ra)] {
                run("ip", &["link", "set", dev, "netns", &lab.ns[ns]]);
                let cidr = format!("10.{id}.{addr}/24");
                lab.exec(&lab.ns[ns], &["ip", "addr", "add", &cidr, "dev", dev]);
                lab.exec(&lab.ns[ns], &["ip", "link", "set", dev, "up"]);
            }
        }
        // Default routes: towards the WAN router, or towards each NAT router.
        for (ns, via) in [(1, "1.1"), (2, "2.1"), (3, "3.1"), (4, "11.1"), (5, "12.1")] {
            let gw = format!("10.{id}.{via}");
            lab.exec(&lab.ns[ns], &["ip", "route", "add", "default", "via", &gw]);
        }
        for (nat, wan_dev) in [(2, format!("cn{id}l1")), (3, format!("cn{id}l2"))] {
            let ns = &lab.ns[nat];
            let mut masq = vec![
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                &wan_dev,
                "-j",
                "MASQUERADE",
            ];
            if kind == NatKind::Symmetric {
                masq.push("--random-fully");
            }
            lab.exec(ns, &masq);
            // Nothing from the WAN gets in unless it belongs to a connection from inside.
            for chain in ["INPUT", "FORWARD"] {
                lab.exec(
                    ns,
                    &[
                        "iptables",
                        "-A",
                        chain,
                        "-i",
                        &wan_dev,
                        "-m",
                        "conntrack",
                        "--ctstate",
                        "ESTABLISHED,RELATED",
                        "-j",
                        "ACCEPT",
                    ],
                );
                lab.exec(ns, &["iptables", "-A", chain, "-i", &wan_dev, "-j", "DROP"]);
            }
        }
        lab
    }

    /// Drops TCP between the two NAT routers on the WAN (each still reaches the relay), so a
    /// hole can only be punched over UDP (QUIC).
    pub fn block_tcp_between_nats(&self) {
        let (a, b) = (self.nat_ip(Host::A), self.nat_ip(Host::B));
        for (src, dst) in [(&a, &b), (&b, &a)] {
            let args = [
                "iptables", "-A", "FORWARD", "-p", "tcp", "-s", src, "-d", dst, "-j", "DROP",
            ];
            self.exec(&self.ns[0], &args);
        }
    }

    /// Runs `args` inside namespace `ns`, asserting success.
    pub fn exec(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["netns", "exec", ns];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// The namespace of the relay, A or B.
    pub fn ns(&self, who: Host) -> &str {
        &self.ns[who as usize]
    }

    /// The address of the relay, A or B (A's and B's are private, behind their NAT).
    pub fn ip(&self, who: Host) -> String {
        let host = match who {
            Host::R => "1.2",
            Host::A => "11.2",
            Host::B => "12.2",
        };
        format!("10.{}.{host}", self.id)
    }

    /// The public address of A's or B's NAT router (where partners observe them).
    pub fn nat_ip(&self, who: Host) -> String {
        match who {
            Host::A => format!("10.{}.2.2", self.id),
            Host::B => format!("10.{}.3.2", self.id),
            Host::R => self.ip(Host::R),
        }
    }
}

/// A host of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The public relay.
    R = 1,
    /// Behind NAT A.
    A = 4,
    /// Behind NAT B.
    B = 5,
}

impl Drop for NatLab {
    fn drop(&mut self) {
        delete_namespaces(&self.ns);
    }
}

/// Two hosts, A and B, joined through a router (A 10.N.21.2 — router — 10.N.22.2 B) whose
/// forwarding can add delay and loss in each direction: by `tc netem` on the router's two
/// interfaces where the kernel has it, otherwise by the `delay_line` program (a TUN device the
/// router's policy routing sends every forwarded packet through). Removed on drop.
pub struct SlowLink {
    id: u32,
    ns: Vec<String>,
    line: Option<std::process::Child>,
    netem: bool,
}

impl SlowLink {
    /// Builds the link, clean.
    pub fn create() -> Self {
        let (id, ns) = namespaces("cs", &["a", "mid", "b"]);
        let link = Self {
            id,
            ns,
            line: None,
            netem: false,
        };
        for (k, host) in [(1usize, 0usize), (2, 2)] {
            let (hv, mv) = (format!("cs{id}h{k}"), link.router_dev(k));
            run(
                "ip",
                &["link", "add", &hv, "type", "veth", "peer", "name", &mv],
            );
            let net = 20 + k;
            for (ns, dev, addr) in [(host, &hv, 2), (1, &mv, 1)] {
                run("ip", &["link", "set", dev, "netns", &link.ns[ns]]);
                let cidr = format!("10.{id}.{net}.{addr}/24");
                run(
                    "ip",
                    &["-n", &link.ns[ns], "addr", "add", &cidr, "dev", dev],
                );
                run("ip", &["-n", &link.ns[ns], "link", "set", dev, "up"]);
            }
            let gw = format!("10.{id}.{net}.1");
            run(
                "ip",
                &["-n", &link.ns[host], "route", "add", "default", "via", &gw],
            );
        }
        let mid = &link.ns[1];
        sysctl(mid, "net/ipv4/ip_forward", "1");
        sysctl(mid, "net/ipv4/conf/all/rp_filter", "0");
        sysctl(mid, "net/ipv4/conf/default/rp_filter", "0");
        link
    }

    fn router_dev(&self, k: usize) -> String {
        format!("cs{}m{k}", self.id)
    }

    /// Namespace of A (0) or B (1).
    pub fn ns(&self, i: usize) -> &str {
        &self.ns[if i == 0 { 0 } else { 2 }]
    }

    /// Address of A (0) or B (1).
    pub fn ip(&self, i: usize) -> String {
        format!("10.{}.{}.2", self.id, 21 + i)
    }

    /// Adds `delay_ms` and `loss_pct` in each direction; returns how (`tc netem` or
    /// `delay_line`). `delay_line` is the path of that program (`CARGO_BIN_EXE_delay_line`).
    pub fn impair(&mut self, delay_ms: u32, loss_pct: f64, delay_line: &str) -> &'static str {
        let (delay, loss) = (format!("{delay_ms}ms"), format!("{loss_pct}%"));
        let mid = self.ns[1].clone();
        let devs = [self.router_dev(1), self.router_dev(2)];
        let netem = |dev: &str| {
            Command::new("ip")
                .args([
                    "netns", "exec", &mid, "tc", "qdisc", "add", "dev", dev, "root",
                ])
                .args(["netem", "delay", &delay, "loss", &loss])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if netem(&devs[0]) {
            assert!(netem(&devs[1]), "tc netem on one interface only");
            self.netem = true;
            return "tc netem";
        }
        let tun = format!("cs{}t", self.id);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &mid, delay_line, &tun])
            .args([delay_ms.to_string(), loss_pct.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start delay_line");
        let mut ready = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready)
            .expect("delay_line output");
        assert_eq!(ready.trim(), "ready", "delay_line did not start");
        self.line = Some(child);
        run("ip", &["-n", &mid, "link", "set", &tun, "up"]);
        sysctl(&mid, &format!("net/ipv4/conf/{tun}/rp_filter"), "0");
        run(
            "ip",
            &[
                "-n", &mid, "route", "add", "default", "dev", &tun, "table", "100",
            ],
        );
        for dev in &devs {
            run(
                "ip",
                &["-n", &mid, "rule", "add", "iif", dev, "lookup", "100"],
            );
        }
        "delay_line"
    }

    /// Removes the delay and loss.
    pub fn clear(&mut self) {
        let mid = self.ns[1].clone();
        for k in [1, 2] {
            let dev = self.router_dev(k);
            if self.netem {
                run(
                    "ip",
                    &[
                        "netns", "exec", &mid, "tc", "qdisc", "del", "dev", &dev, "root",
                    ],
                );
            } else if self.line.is_some() {
                run(
                    "ip",
                    &["-n", &mid, "rule", "del", "iif", &dev, "lookup", "100"],
                );
            }
        }
        self.netem = false;
        self.stop_line();
    }

    fn stop_line(&mut self) {
        if let Some(mut child) = self.line.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.stop_line();
        delete_namespaces(&self.ns);
    }
}

// ---- daemons in the labs ----------------------------------------------------------------

/// Every interface of the namespace, TCP and QUIC on one port.
pub const LISTEN: &str = "listen = [\"/ip4/0.0.0.0/tcp/4750\", \"/ip4/0.0.0.0/udp/4750/quic-v1\"]";

/// `consort --json peers` entry of `partner` at `party`.
pub fn peer(party: &Party, partner: &str) -> Value {
    let out = party.cli(&["--json", "peers"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["party"] == partner)
        .cloned()
        .unwrap_or(Value::Null)
}

/// `consort --json status` reachability of `party`.
pub fn reach(party: &Party) -> Value {
    let out = party.cli(&["--json", "status"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    out.json()["reachability"].clone()
}

/// The first `n` parties let every table be used in jobs with every partner.
pub fn share_tables(fed: &Federation, n: usize) {
    for i in 0..n {
        fed.edit_config(i, "# \"*\" = [\"*\"]", "\"*\" = [\"*\"]");
    }
}

pub fn add_partner(fed: &Federation, i: usize, j: usize, addrs: &[String]) {
    let p = &fed.parties[j];
    let addrs = addrs
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    fed.append_config(
        i,
        &format!(
            "\n[[partners]]\nparty = \"{}\"\npeer_id = \"{}\"\naddrs = [{addrs}]\n",
            p.name, p.peer_id
        ),
    );
}

/// bank-a behind NAT A, insurer-b behind NAT B, relay-r public with `relay = true`. A and B know
/// each other by name and key only, and the relay by its address.
pub fn lab_federation(lab: &NatLab) -> Federation {
    let fed = Federation::init(&["bank-a", "insurer-b", "relay-r"]);
    for i in 0..3 {
        fed.edit_config(i, &format!("listen = [\"{}\"]", fed.addr(i)), LISTEN);
    }
    fed.edit_config(2, "relay = false", "relay = true");
    share_tables(&fed, 2);
    // The relay's TCP and QUIC addresses.
    let ip = lab.ip(Host::R);
    let r = [
        format!("/ip4/{ip}/tcp/4750"),
        format!("/ip4/{ip}/udp/4750/quic-v1"),
    ];
    for (i, j, addrs) in [
        (0, 2, &r[..]),
        (1, 2, &r[..]),
        (0, 1, &[][..]),
        (1, 0, &[][..]),
        (2, 0, &[][..]),
        (2, 1, &[][..]),
    ] {
        add_partner(&fed, i, j, addrs);
    }
    fed
}

pub fn start_lab(lab: &NatLab, fed: &Federation) -> Vec<Daemon> {
    let r = fed.parties[2].start_in(lab.ns(Host::R));
    let a = fed.parties[0].start_in(lab.ns(Host::A));
    let b = fed.parties[1].start_in(lab.ns(Host::B));
    vec![a, b, r]
}

/// Waits until `party` is private by AutoNAT and holds a slot at relay-r.
pub fn wait_slot(party: &Party) -> Value {
    wait_for(
        &format!("{} private with a slot at relay-r", party.name),
        Duration::from_secs(60),
        || {
            let r = reach(party);
            let reserved = r["relay_slots"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["relay"] == "relay-r" && s["state"] == "reserved")
            });
            (r["nat"] == "private" && r["nat_source"] == "autonat" && reserved).then_some(r)
        },
    )
}

pub fn run_breast_job(fed: &Federation) -> Duration {
    let job = fed.job_file("breast.yaml", BREAST_LR_JOB);
    let started = Instant::now();
    let id = submit(&fed.parties[0], &job);
    assert_succeeds(&fed.parties[..2], &id, Duration::from_secs(300));
    started.elapsed()
}
