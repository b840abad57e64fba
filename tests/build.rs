//! Decides, once per build, whether this machine can run the tests that need network
//! namespaces (root and iproute2's `ip`). Those tests are compiled as ignored, with the reason,
//! where it cannot: `cargo test` then lists them as ignored instead of passing them silently.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(consort_netns)");
    println!("cargo::rustc-check-cfg=cfg(consort_netlab)");
    // Re-decide when the user or the PATH changes (e.g. a CI job running as root).
    println!("cargo::rerun-if-env-changed=USER");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=CONSORT_NETNS");
    println!("cargo::rerun-if-changed=build.rs");
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    let have_ip = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .is_ok_and(|o| o.status.success());
    let forced = std::env::var("CONSORT_NETNS").ok();
    let enabled = match forced.as_deref() {
        Some("0") => false,
        Some(_) => true,
        None => root && have_ip,
    };
    // The NAT tests also need iptables (and tc, from iproute2).
    let have = |cmd: &str| {
        std::process::Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let lab = match forced.as_deref() {
        Some("0") => false,
        Some(_) => true,
        None => enabled && have("iptables"),
    };
    if lab {
        println!("cargo::rustc-cfg=consort_netlab");
    } else if enabled {
        println!(
            "cargo::warning=NAT tests are ignored (they need iptables; `apt-get install iptables`)"
        );
    }
    if enabled {
        println!("cargo::rustc-cfg=consort_netns");
    } else {
        let why = if forced.is_some() {
            "CONSORT_NETNS=0".to_owned()
        } else {
            format!("they need root and iproute2; root: {root}, ip: {have_ip}")
        };
        println!("cargo::warning=network-namespace tests (mDNS) are ignored ({why})");
    }
}
