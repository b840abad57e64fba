//! Building a service's state: every version loaded from the model store, checked for who may
//! ask, and this party's feature source indexed. Shared by the guest's prepare, a host's
//! prepare and the restore at start; the running state is not touched until the switch.

use std::collections::BTreeMap;
use std::sync::Arc;

use consort_components::serving::FeatureTable;
use consort_protocol::PartyName;
use consort_protocol::serving::{ServingOptions, valid_service_name};

use super::adapter::Adapter;
use super::rpc::{MAX_VERSIONS, WireState};
use super::state::{Loaded, Role, Service, Source, load_part, needed, with_role};
use super::{ServingDeps, SourceKind};
use crate::model_manager::LoadForServing;

/// Who asks for a state.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Asker<'a> {
    /// This party coordinates the change (it must be the guest, or serve a homo model).
    Here,
    /// A partner asks this party (it must be the guest of the model, and this party a host).
    Partner(&'a PartyName),
    /// The state was committed before the restart: reloaded as it was.
    Restore,
}

/// Builds the state `wire` describes for service `name`, reusing what `current` has loaded.
pub(crate) async fn prepare(
    deps: &ServingDeps,
    current: Option<&Service>,
    name: &str,
    wire: &WireState,
    options: &ServingOptions,
    asker: Asker<'_>,
) -> Result<Service, String> {
    let me = deps.me.as_str();
    check_shape(name, wire)?;
    let mut versions = BTreeMap::new();
    let mut roles = Vec::new();
    for v in &wire.versions {
        let reuse = current
            .filter(|c| c.model_id == wire.model_id)
            .and_then(|c| c.versions.get(v).map(|l| (c.role, l.clone())));
        let (role, loaded) = match reuse {
            Some(found) => found,
            None => {
                let model = deps
                    .models
                    .send(LoadForServing {
                        model_id: wire.model_id.clone(),
                        rev: v.clone(),
                    })
                    .await
                    .map_err(|e| format!("{me}: the model manager is unavailable: {e}"))?
                    .map_err(|e| format!("{me}: {e}"))?;
                if model.version != *v {
                    return Err(format!(
                        "{me}: {}@{v} is version {} here, not {v}",
                        wire.model_id, model.version
                    ));
                }
                load_part(me, &model)?
            }
        };
        roles.push((role, loaded.parties.clone()));
        versions.insert(v.clone(), loaded);
    }
    let (role, parties) = roles
        .first()
        .cloned()
        .ok_or_else(|| format!("service {name} names no version"))?;
    if roles.iter().any(|(r, p)| *r != role || *p != parties) {
        return Err(format!(
            "{me}: the versions of service {name} were not trained by the same parties in the \
             same roles; serve them as separate services"
        ));
    }
    let (guest, hosts) = match role {
        Role::Local => (deps.me.clone(), Vec::new()),
        _ => {
            let guests = with_role(&parties, "guest");
            let [guest] = guests.as_slice() else {
                return Err(format!(
                    "model {} has {} guests; serving needs one",
                    wire.model_id,
                    guests.len()
                ));
            };
            let party = |p: &str| PartyName::new(p).map_err(|e| format!("party {p}: {e}"));
            let hosts = with_role(&parties, "host")
                .iter()
                .map(|h| party(h))
                .collect::<Result<Vec<_>, _>>()?;
            (party(guest)?, hosts)
        }
    };
    match (asker, role) {
        (Asker::Restore, _) | (Asker::Here, Role::Guest | Role::Local) => {}
        (Asker::Here, Role::Host) => {
            return Err(format!(
                "{me} is a host of model {}: deploy it from its guest, {guest}",
                wire.model_id
            ));
        }
        (Asker::Partner(p), Role::Host) if *p == guest => {}
        (Asker::Partner(p), _) => {
            return Err(format!(
                "{p} is not the guest of model {} at {me}; only {guest} deploys it",
                wire.model_id
            ));
        }
    }
    let source = source(deps, current, name, role, &versions).await?;
    Ok(Service {
        name: name.to_owned(),
        model_id: wire.model_id.clone(),
        role,
        guest,
        hosts,
        versions,
        split: wire.split.clone(),
        previous: wire.previous.clone(),
        options: options.clone(),
        source,
        changed_at_ms: consort_protocol::clock::now_ms(),
    })
}

/// Checks a state's names and sizes before anything is loaded (a partner's state is data).
fn check_shape(name: &str, wire: &WireState) -> Result<(), String> {
    if !valid_service_name(name) {
        return Err(format!(
            "'{name}' is not a service name ([a-z0-9][a-z0-9_-]{{0,63}})"
        ));
    }
    if wire.versions.is_empty() || wire.versions.len() > MAX_VERSIONS {
        return Err(format!(
            "a service keeps 1 to {MAX_VERSIONS} versions loaded, not {}",
            wire.versions.len()
        ));
    }
    if wire.versions != needed(&wire.split, &wire.previous) {
        return Err("the loaded versions are not those of the split and the previous split".into());
    }
    if wire.split.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
        return Err("the split gives no version any traffic".into());
    }
    let long = |s: &str| s.len() > 128 || s.is_empty();
    if long(&wire.model_id) || wire.versions.iter().any(|v| long(v)) {
        return Err("a model id or version is empty or longer than 128 bytes".into());
    }
    Ok(())
}

/// This party's feature source for `name`: required at a host, optional at a guest (requests
/// then carry the guest's features). Every feature a loaded version needs must be in a table
/// (an adapter is asked at request time).
async fn source(
    deps: &ServingDeps,
    current: Option<&Service>,
    name: &str,
    role: Role,
    versions: &BTreeMap<String, Loaded>,
) -> Result<Option<Source>, String> {
    let me = deps.me.as_str();
    let Some(config) = deps.sources.get(name) else {
        if role == Role::Host {
            return Err(format!(
                "{me} has no feature source for service {name}: add [serving.sources.{name}] \
                 with table = \"…\" (or command = [...]) to its consort.toml"
            ));
        }
        return Ok(None);
    };
    // An adapter keeps running across changes of the service's versions.
    let adapter = |timeout: &std::time::Duration,
                   start: &dyn Fn() -> Result<Arc<Adapter>, String>|
     -> Result<Option<Source>, String> {
        if role != Role::Host {
            return Err(format!(
                "{me}: a feature adapter serves a host's features; as {}, service {name} \
                 takes a table or the requests' features",
                role.as_str()
            ));
        }
        let a = match current.and_then(|c| c.source.clone()) {
            Some(Source::Command(a, _)) => a,
            _ => start()?,
        };
        Ok(Some(Source::Command(a, *timeout)))
    };
    let table_name = match &config.source {
        SourceKind::Table(t) => t.clone(),
        SourceKind::Command { command, timeout } => {
            return adapter(timeout, &|| Ok(Adapter::start(name, command.clone())));
        }
        SourceKind::Http { url, timeout } => return adapter(timeout, &|| Adapter::http(url)),
    };
    let table = match current.and_then(|c| c.source.clone()) {
        Some(Source::Table(t)) => t,
        _ => {
            let (tables, t) = (deps.tables.clone(), table_name.clone());
            let data = tokio::task::spawn_blocking(move || tables.get(&t))
                .await
                .map_err(|e| format!("{me}: loading table {table_name}: {e}"))?
                .map_err(|e| format!("{me}: table {table_name}: {e}"))?
                .ok_or_else(|| {
                    format!("{me} has no table {table_name} (the feature source of service {name})")
                })?;
            Arc::new(FeatureTable::new(data))
        }
    };
    for (v, l) in versions {
        if let Some(f) = l.part.features.iter().find(|f| !table.has_feature(f)) {
            return Err(format!(
                "{me}: table {table_name} lacks feature '{f}' that version {v} needs"
            ));
        }
    }
    Ok(Some(Source::Table(table)))
}
