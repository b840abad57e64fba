//! `consort security`: what this daemon exposes, and to whom, for an operator's audit.
//!
//! Read-only and local. The policy comes from the configuration the daemon started with (not
//! the file as edited since), the tables from the table store, the file modes from the daemon's
//! own `stat` of its files: the daemon reports on itself, because a CLI run by another user
//! could not even see the key. Nothing here touches the network.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use consort_protocol::control::{
    DataDirScan, FileReport, OperatorReport, PartnerReport, PolicyReport, SecurityReport,
    TableExposure, TableRule,
};
use consort_protocol::{ControlError, ErrorCode, Response};

use consort_actors::network_actor::partners::{ListenAddrs, PartnerChanges};
use consort_actors::table_keeper::ListTables;

use crate::config::{Config, Settings};
use crate::paths;
use crate::server::ServerState;

/// Entries of the data directory examined at most, so that a huge model store cannot make the
/// request run for minutes.
const MAX_SCAN_ENTRIES: u64 = 50_000;
/// Paths of exposed entries quoted in the report.
const MAX_EXAMPLES: usize = 5;

/// The configuration file `consortd run` started with, and its text at that moment.
struct StartConfig {
    path: PathBuf,
    text: String,
}

static START_CONFIG: OnceLock<StartConfig> = OnceLock::new();

/// Remembers the configuration `consortd run` is about to start with, so that `consort
/// security` reports the policy in force even after someone edits the file.
///
/// Called by `consortd run` just before the daemon loads the same file. When the daemon is
/// started another way (a library caller of `daemon_main`), the report reads the data
/// directory's `consort.toml` at request time instead.
pub(crate) fn remember_start_config(path: &Path) {
    let path = paths::absolute(path);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let _ = START_CONFIG.set(StartConfig { path, text });
    }
}

fn internal(e: impl std::fmt::Display) -> ControlError {
    ControlError::new(ErrorCode::Internal, e.to_string())
}

/// Handler for `Request::Security`.
pub(crate) async fn handle(state: &ServerState) -> Result<Response, ControlError> {
    let actors = &state.actors;
    let listening = match actors.network.send(ListenAddrs).await {
        Ok(Ok(addrs)) => addrs.iter().map(|a| a.to_string()).collect(),
        _ => state.status.listen.clone(),
    };
    let tables = actors
        .tables
        .send(ListTables)
        .await
        .map_err(|e| internal(format!("cannot list tables: {e}")))?
        .map_err(|e| internal(format!("cannot list tables: {e}")))?;
    let changes = actors
        .network
        .send(PartnerChanges)
        .await
        .map_err(|e| internal(format!("cannot read partners: {e}")))?
        .map_err(|e| internal(format!("cannot read partners: {e}")))?;
    let (party, peer_id) = (state.status.party.clone(), state.status.peer_id.clone());
    let data_dir = PathBuf::from(&state.status.data_dir);
    let socket = PathBuf::from(&state.status.socket);
    let work = move || -> Result<SecurityReport, ControlError> {
        let mut warnings = Vec::new();
        let settings = config_in_force(&data_dir, &mut warnings)?;
        let config = &settings.config;
        let uploaded: Vec<String> = tables.into_iter().map(|t| t.name).collect();
        let partners: Vec<PartnerReport> = crate::network::partners_with(&settings, changes)
            .map_err(|e| internal(format!("cannot read partners: {e:#}")))?
            .into_iter()
            .map(|p| PartnerReport {
                party: p.party.to_string(),
                peer_id: p.peer_id.to_base58(),
                addrs: p.addrs.iter().map(|a| a.to_string()).collect(),
                source: p.source.to_owned(),
            })
            .collect();
        let policy = PolicyReport {
            accept_from: config.policy.accept_from.clone(),
            components: config.policy.components.clone(),
            manual_approval: config.policy.manual_approval,
            share_logs_with: config.policy.share_logs_with.clone(),
            tables: config.policy.tables.clone(),
        };
        policy_warnings(&policy, &partners, &mut warnings);

        let files = FileChecker::new();
        let key_path = data_dir.join(paths::IDENTITY_FILE);
        let report_files = [
            files.check(&socket, Kind::Socket),
            files.check(&key_path, Kind::IdentityKey),
            files.check(&data_dir, Kind::DataDir),
            files.check(&settings.config_path, Kind::Config),
        ];
        warnings.extend(report_files.iter().filter_map(|f| f.warning.clone()));
        let [socket, identity_key, data_dir_report, config_file] = report_files;
        let scan = scan_data_dir(&data_dir);
        if scan.exposed > 0 {
            warnings.push(format!(
                "{}{} {} under {} accessible to group or others (e.g. {}); \
                 fix with `chmod -R go-rwx {}`",
                scan.exposed,
                if scan.truncated { "+" } else { "" },
                if scan.exposed == 1 {
                    "entry is"
                } else {
                    "entries are"
                },
                data_dir.display(),
                scan.examples.join(", "),
                data_dir.display()
            ));
        }

        Ok(SecurityReport {
            party,
            peer_id,
            config_path: settings.config_path.display().to_string(),
            tables: table_exposure(&policy.tables, &uploaded),
            policy,
            operators: config
                .operators
                .iter()
                .map(|(name, op)| OperatorReport {
                    name: name.clone(),
                    command: op.command.clone(),
                    env: op.env.keys().cloned().collect(),
                    timeout_s: op.timeout_s,
                })
                .collect(),
            partners,
            socket,
            identity_key,
            data_dir: data_dir_report,
            config_file,
            data_dir_scan: scan,
            listen: config.listen.clone(),
            listening,
            warnings,
        })
    };
    let report = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| internal(format!("security report failed: {e}")))??;
    Ok(Response::Security {
        report: Box::new(report),
    })
}

/// The settings the daemon started with; warns when the file has changed since.
fn config_in_force(data_dir: &Path, warnings: &mut Vec<String>) -> Result<Settings, ControlError> {
    let unreadable = |e: &dyn std::fmt::Display| internal(format!("cannot read the config: {e}"));
    let Some(start) = START_CONFIG.get() else {
        let path = data_dir.join(paths::CONFIG_FILE);
        return Config::load(&path).map_err(|e| unreadable(&e));
    };
    match std::fs::read_to_string(&start.path) {
        Ok(now) if now != start.text => warnings.push(format!(
            "{} has changed since the daemon started; this report shows the configuration in \
             force (restart consortd to apply the file)",
            start.path.display()
        )),
        Ok(_) => {}
        Err(e) => warnings.push(format!("cannot read {}: {e}", start.path.display())),
    }
    Config::parse(&start.text, &start.path).map_err(|e| unreadable(&e))
}

/// Who may read each table: every uploaded table, then each `[policy.tables]` entry naming a
/// table that is not uploaded. Mirrors the scheduler's rule: a table's own entry, else the
/// `"*"` entry, else no partner (the entries are not merged).
fn table_exposure(
    policy: &BTreeMap<String, Vec<String>>,
    uploaded: &[String],
) -> Vec<TableExposure> {
    let mut out: Vec<TableExposure> = uploaded
        .iter()
        .map(|name| {
            let (readers, rule) = match (policy.get(name), policy.get("*")) {
                (Some(r), _) => (r.clone(), TableRule::Named),
                (None, Some(r)) => (r.clone(), TableRule::Wildcard),
                (None, None) => (Vec::new(), TableRule::Default),
            };
            TableExposure {
                name: name.clone(),
                uploaded: true,
                readers,
                rule,
            }
        })
        .collect();
    for (name, readers) in policy {
        if name != "*" && !uploaded.contains(name) {
            out.push(TableExposure {
                name: name.clone(),
                uploaded: false,
                readers: readers.clone(),
                rule: TableRule::Named,
            });
        }
    }
    out
}

/// Flags policy entries naming a party that is not a partner: usually a typo, so the policy
/// does not do what its author meant.
fn policy_warnings(policy: &PolicyReport, partners: &[PartnerReport], warnings: &mut Vec<String>) {
    let known: BTreeSet<&str> = partners.iter().map(|p| p.party.as_str()).collect();
    let mut check = |key: String, parties: &[String]| {
        for p in parties {
            if p != "*" && !known.contains(p.as_str()) {
                warnings.push(format!("{key} names '{p}', which is not a partner"));
            }
        }
    };
    check("policy.accept_from".into(), &policy.accept_from);
    check("policy.share_logs_with".into(), &policy.share_logs_with);
    for (table, parties) in &policy.tables {
        check(format!("policy.tables.{table}"), parties);
    }
}

/// What a checked file is, which decides the mode it should have.
#[derive(Clone, Copy)]
enum Kind {
    Socket,
    IdentityKey,
    DataDir,
    Config,
}

/// Stats the daemon's files and says what is wrong with them.
struct FileChecker {
    euid: u32,
    users: HashMap<u32, String>,
}

impl FileChecker {
    fn new() -> Self {
        Self {
            euid: rustix::process::geteuid().as_raw(),
            users: read_users(),
        }
    }

    fn check(&self, path: &Path, kind: Kind) -> FileReport {
        let shown = path.display();
        let mut report = FileReport {
            path: shown.to_string(),
            ..FileReport::default()
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                report.warning = Some(format!("cannot examine {shown}: {e}"));
                return report;
            }
        };
        let mode = meta.mode() & 0o7777;
        report.mode = Some(mode);
        report.owner_uid = Some(meta.uid());
        report.owner = self.users.get(&meta.uid()).cloned();
        let loose = mode & 0o077 != 0;
        report.warning = match kind {
            Kind::Socket if !meta.file_type().is_socket() => {
                Some(format!("{shown} is not a socket"))
            }
            Kind::Socket if loose => Some(format!(
                "control socket {shown} has mode {mode:04o}, not 0600: other local users may \
                 drive this daemon"
            )),
            Kind::IdentityKey if loose => Some(format!(
                "identity key {shown} has mode {mode:04o}, not 0600: other local users may read \
                 it and speak as this party (chmod 600 {shown})"
            )),
            Kind::DataDir if loose => Some(format!(
                "data directory {shown} has mode {mode:04o}, not 0700: other local users may \
                 reach tables, models and the database (chmod 700 {shown})"
            )),
            Kind::Config if mode & 0o022 != 0 => Some(format!(
                "config {shown} has mode {mode:04o}: group or others may change the policy \
                 applied at the next start (chmod 600 {shown})"
            )),
            _ if meta.uid() != self.euid => Some(format!(
                "{shown} is owned by uid {}, not by the daemon's user (uid {})",
                meta.uid(),
                self.euid
            )),
            _ => None,
        };
        report
    }
}

/// uid → user name from /etc/passwd (empty when it cannot be read: names are a courtesy).
fn read_users() -> HashMap<u32, String> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            Some((uid, name.to_owned()))
        })
        .collect()
}

/// Walks the data directory (without following symlinks) for entries with any group or other
/// permission bit.
fn scan_data_dir(dir: &Path) -> DataDirScan {
    let mut scan = DataDirScan::default();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            if scan.scanned >= MAX_SCAN_ENTRIES {
                scan.truncated = true;
                return scan;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            scan.scanned += 1;
            // A symlink's own mode is always 0777 and means nothing.
            if meta.file_type().is_symlink() {
                continue;
            }
            if meta.mode() & 0o077 != 0 {
                scan.exposed += 1;
                if scan.examples.len() < MAX_EXAMPLES {
                    scan.examples.push(format!(
                        "{} ({:04o})",
                        path.display(),
                        meta.mode() & 0o7777
                    ));
                }
            }
            if meta.is_dir() {
                pending.push(path);
            }
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn rules(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(t, ps)| (t.to_string(), ps.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    #[test]
    fn a_table_entry_wins_over_the_wildcard_and_absent_tables_are_listed() {
        let policy = rules(&[("t", &["insurer-b"]), ("*", &["*"]), ("ghost", &[])]);
        let got = table_exposure(&policy, &["t".into(), "u".into()]);
        let view: Vec<_> = got
            .iter()
            .map(|t| (t.name.as_str(), t.uploaded, t.readers.clone(), t.rule))
            .collect();
        assert_eq!(
            view,
            vec![
                ("t", true, vec!["insurer-b".to_owned()], TableRule::Named),
                ("u", true, vec!["*".to_owned()], TableRule::Wildcard),
                ("ghost", false, vec![], TableRule::Named),
            ]
        );
        let none = table_exposure(&BTreeMap::new(), &["t".into()]);
        assert_eq!(
            (none[0].readers.len(), none[0].rule),
            (0, TableRule::Default)
        );
    }

    #[test]
    fn policy_naming_a_stranger_is_flagged() {
        let policy = PolicyReport {
            accept_from: vec!["*".into(), "insurer-b".into()],
            share_logs_with: vec!["insurer-x".into()],
            tables: rules(&[("t", &["bank-z"])]),
            ..PolicyReport::default()
        };
        let partners = [PartnerReport {
            party: "insurer-b".into(),
            peer_id: "p".into(),
            addrs: vec![],
            source: "config".into(),
        }];
        let mut warnings = Vec::new();
        policy_warnings(&policy, &partners, &mut warnings);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("share_logs_with") && warnings[0].contains("insurer-x"));
        assert!(warnings[1].contains("policy.tables.t") && warnings[1].contains("bank-z"));
    }

    #[test]
    fn open_modes_are_flagged_and_private_ones_are_not() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let key = tmp.path().join("identity.key");
        std::fs::write(&key, b"k").expect("write");
        let chmod = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
        };
        let files = FileChecker::new();
        chmod(&key, 0o600);
        chmod(tmp.path(), 0o700);
        let r = files.check(&key, Kind::IdentityKey);
        assert_eq!((r.mode, r.warning.as_deref()), (Some(0o600), None));
        assert_eq!(scan_data_dir(tmp.path()).exposed, 0);

        chmod(&key, 0o644);
        let r = files.check(&key, Kind::IdentityKey);
        assert!(r.warning.expect("warned").contains("0644"));
        let scan = scan_data_dir(tmp.path());
        assert_eq!((scan.scanned, scan.exposed), (1, 1));
        assert!(files.check(&key, Kind::Socket).warning.is_some());
        let missing = files.check(&tmp.path().join("nope"), Kind::Config);
        assert!(missing.mode.is_none() && missing.warning.is_some());
    }
}
