//! `consort status`, `shutdown` and `security`: the daemon itself.

use std::fs::{OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use consort_protocol::call;
use consort_protocol::control::{FileReport, SecurityReport, TableRule};
use consort_protocol::{StatusInfo, layout};
use serde_json::json;

use crate::failure::{Failure, fail};
use crate::output::{format_duration, print_json};
use crate::target::Target;

/// `consort status`.
pub(crate) async fn status(target: &Target, json: bool) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let s = client.call(call::Status {}).await?;
    print_status(&s, json);
    Ok(())
}

/// `consort security`.
pub(crate) async fn security(target: &Target, json: bool) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let report = client.call(call::Security {}).await?;
    if json {
        print_json(&report);
    } else {
        print_security(&report);
    }
    Ok(())
}

/// `consort board`: the board's URL with its login token; `--open` hands it to the desktop's
/// browser.
pub(crate) async fn board(target: &Target, open: bool, json: bool) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let info = client.call(call::Board {}).await?;
    let Some(url) = &info.url else {
        return Err(fail(
            "not_configured",
            "this daemon serves no board: add `[board]\nlisten = \"127.0.0.1:8480\"` to its \
             consort.toml and restart it"
                .into(),
        ));
    };
    if json {
        print_json(&info);
    } else {
        println!("{url}");
        if info.read_only {
            println!("(read-only: [board] read_only = true)");
        }
    }
    if open {
        let browser = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".into());
        std::process::Command::new(&browser)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| {
                fail(
                    "io",
                    format!("cannot run {browser}: {e} (open the URL yourself)"),
                )
            })?;
    }
    Ok(())
}

/// `consort shutdown`: asks, then (unless `no_wait`) waits for the daemon to be gone.
pub(crate) async fn shutdown(
    target: &Target,
    no_wait: bool,
    timeout: u64,
    json: bool,
) -> Result<(), Failure> {
    let mut client = target.connect().await?;
    let status = client.call(call::Status {}).await?;
    client.call(call::Shutdown {}).await?;
    drop(client);
    let stopped = if no_wait {
        false
    } else {
        wait_stopped(
            &target.socket,
            Path::new(&status.data_dir),
            Duration::from_secs(timeout),
        )
        .await?;
        true
    };
    if json {
        println!(
            "{}",
            json!({"party": status.party, "pid": status.pid, "stopped": stopped})
        );
    } else if stopped {
        println!(
            "consortd of party {} (pid {}) stopped",
            status.party, status.pid
        );
    } else {
        println!(
            "consortd of party {} (pid {}) is shutting down",
            status.party, status.pid
        );
    }
    Ok(())
}

/// Waits until the socket is gone and the data directory's lock is released.
async fn wait_stopped(socket: &Path, data_dir: &Path, timeout: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    let lock = data_dir.join(layout::LOCK_FILE);
    loop {
        if !socket.exists() && lock_is_free(&lock) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure {
                code: "timeout",
                message: format!("consortd did not stop within {}s", timeout.as_secs()),
                exit: 1,
                reported: false,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn lock_is_free(path: &Path) -> bool {
    match OpenOptions::new().read(true).open(path) {
        Err(_) => true,
        Ok(f) => match f.try_lock_shared() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Error(_)) => true,
        },
    }
}

fn print_status(s: &StatusInfo, json: bool) {
    if json {
        match serde_json::to_string_pretty(s) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot render JSON: {e}"),
        }
        return;
    }
    let stores = s
        .stores
        .iter()
        .map(|c| format!("{} {}", c.actor, c.records))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = [
        ("party", s.party.clone()),
        ("peer id", s.peer_id.clone()),
        ("version", s.version.clone()),
        ("uptime", format_duration(s.uptime_s)),
        ("listen", s.listen.join(" ")),
        ("data dir", s.data_dir.clone()),
        ("socket", s.socket.clone()),
        ("pid", s.pid.to_string()),
        ("records", stores),
    ];
    for (k, v) in rows {
        println!("{k:<9} {v}");
    }
    if let Some(r) = &s.reachability {
        for line in super::network::reach_lines(r) {
            println!("{line}");
        }
    }
}

/// `*` as words; an empty list as `none`.
fn parties_or(list: &[String], none: &str) -> String {
    if list.is_empty() {
        none.to_owned()
    } else if list.iter().any(|p| p == "*") {
        "every partner (*)".to_owned()
    } else {
        list.join(", ")
    }
}

fn print_security(r: &SecurityReport) {
    println!("party     {}", r.party);
    println!("peer id   {}", r.peer_id);
    println!("config    {} (as in force)", r.config_path);

    println!("\nwarnings");
    if r.warnings.is_empty() {
        println!("  none");
    }
    for w in &r.warnings {
        println!("  ! {w}");
    }

    println!("\nfiles");
    let file = |what: &str, expected: &str, f: &FileReport| {
        let mode = f.mode.map_or("?".to_owned(), |m| format!("{m:04o}"));
        let owner = match (&f.owner, f.owner_uid) {
            (Some(name), _) => name.clone(),
            (None, Some(uid)) => format!("uid {uid}"),
            (None, None) => "?".to_owned(),
        };
        let flag = if f.warning.is_some() { "!" } else { " " };
        println!(
            "  {flag} {what:<14} {mode:<5} (want {expected:<4}) {owner:<10} {}",
            f.path
        );
    };
    file("control socket", "0600", &r.socket);
    file("identity key", "0600", &r.identity_key);
    file("data dir", "0700", &r.data_dir);
    file("config", "0600", &r.config_file);
    let s = &r.data_dir_scan;
    let more = if s.truncated { "+" } else { "" };
    if s.exposed == 0 {
        println!(
            "    data dir contents: {}{more} entries, none accessible to group or others",
            s.scanned
        );
    } else {
        println!(
            "  ! data dir contents: {}{more} of {}{more} entries accessible to group or others",
            s.exposed, s.scanned
        );
    }

    println!("\nnetwork");
    println!("  listen     {}", r.listen.join(" "));
    println!("  listening  {}", r.listening.join(" "));
    if r.partners.is_empty() {
        println!("  partners   none: no peer may connect");
    } else {
        println!("  partners (the only peers allowed to connect):");
        println!(
            "    {:<16} {:<54} {:<7} addrs",
            "party", "peer id", "source"
        );
        for p in &r.partners {
            let addrs = if p.addrs.is_empty() {
                "(discovered)".to_owned()
            } else {
                p.addrs.join(" ")
            };
            println!(
                "    {:<16} {:<54} {:<7} {addrs}",
                p.party, p.peer_id, p.source
            );
        }
    }

    let pol = &r.policy;
    println!("\npolicy");
    println!(
        "  accept jobs from   {}",
        parties_or(&pol.accept_from, "no partner")
    );
    let components = if pol.components.is_empty() {
        "every built-in component".to_owned()
    } else {
        pol.components.join(", ")
    };
    println!("  components         {components}");
    let approval = if pol.manual_approval {
        "yes: proposals wait for `consort job approve`"
    } else {
        "no: accepted proposals start at once"
    };
    println!("  manual approval    {approval}");
    println!(
        "  share logs with    {}",
        parties_or(&pol.share_logs_with, "no partner")
    );
    let other_tables = match pol.tables.get("*") {
        Some(readers) => format!(
            "{} (policy.tables.\"*\")",
            parties_or(readers, "no partner")
        ),
        None => "(default: no partner)".to_owned(),
    };
    println!("  other tables       {other_tables}");

    println!("\ntables (who may read them in jobs)");
    if r.tables.is_empty() {
        println!("  none uploaded");
    } else {
        println!(
            "  {:<24} {:<8} {:<32} rule",
            "table", "uploaded", "readable in jobs with"
        );
        for t in &r.tables {
            let readers = match t.rule {
                TableRule::Default => "(default: no partner)".to_owned(),
                _ => parties_or(&t.readers, "no partner"),
            };
            let rule = match t.rule {
                TableRule::Named => format!("policy.tables.{}", t.name),
                TableRule::Wildcard => "policy.tables.\"*\"".to_owned(),
                TableRule::Default => "not covered".to_owned(),
                _ => "?".to_owned(),
            };
            let uploaded = if t.uploaded { "yes" } else { "no" };
            println!("  {:<24} {uploaded:<8} {readers:<32} {rule}", t.name);
        }
    }

    println!("\nscript operators (jobs may run these here as script:NAME)");
    if r.operators.is_empty() {
        println!("  none");
    }
    for op in &r.operators {
        let mut extra = String::new();
        if !op.env.is_empty() {
            extra.push_str(&format!("  env: {}", op.env.join(", ")));
        }
        if let Some(t) = op.timeout_s {
            extra.push_str(&format!("  timeout: {t}s"));
        }
        println!("  {:<16} {:?}{extra}", op.name, op.command);
    }
}
