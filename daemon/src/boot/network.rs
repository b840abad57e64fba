//! Wiring of the partner network into the daemon: effective partner list and network settings
//! (the control-socket requests about partners and records are in `peers.rs`).

use std::time::Duration;

use consort_actors::network::{
    NatMode, NetworkConfig, Partner, RelayLimits, parse_multiaddr, parse_peer_id,
};
use consort_protocol::PartyName;
use consort_storage::{PartnerEntry, PartnerOverrides};
use libp2p_identity::Keypair;

use crate::config::{NatSetting, Settings};

/// Network settings from the configuration.
pub fn network_config(settings: &Settings, key: Keypair) -> anyhow::Result<NetworkConfig> {
    let c = &settings.config;
    let listen = c
        .listen
        .iter()
        .map(|a| parse_multiaddr(a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NetworkConfig {
        party: c.party.clone(),
        key,
        listen,
        federation: c.network.federation.clone(),
        mdns: c.network.mdns,
        kademlia: c.network.kademlia,
        max_message_bytes: c.network.max_message_bytes,
        request_timeout: Duration::from_secs(c.network.request_timeout_s),
        redial_max: Duration::from_secs(c.network.redial_max_s),
        antientropy: Duration::from_secs(c.network.antientropy_s),
        records_per_partner: c.network.records_per_partner,
        record_bytes_per_partner: c.network.record_bytes_per_partner,
        relay: c.network.relay.then(|| RelayLimits {
            max_circuits: c.network.relay_max_circuits as usize,
            max_circuits_per_peer: (c.network.relay_max_circuits as usize).min(8),
            max_circuit_bytes: c.network.relay_max_circuit_mb << 20,
            max_circuit_duration: Duration::from_secs(c.network.relay_max_circuit_s),
        }),
        nat: match c.network.nat {
            NatSetting::Auto => NatMode::Auto,
            NatSetting::Public => NatMode::Public,
            NatSetting::Private => NatMode::Private,
        },
    })
}

/// The config's `[[partners]]` with the run-time overrides applied.
pub fn effective_partners(
    settings: &Settings,
    overrides: &PartnerOverrides,
) -> anyhow::Result<Vec<Partner>> {
    partners_with(settings, overrides.all()?)
}

/// The config's `[[partners]]` with `changes` (the run-time overrides) applied.
pub(crate) fn partners_with(
    settings: &Settings,
    changes: Vec<(String, PartnerEntry)>,
) -> anyhow::Result<Vec<Partner>> {
    let mut out: Vec<Partner> = Vec::new();
    for p in &settings.config.partners {
        out.push(Partner {
            party: p.party.clone(),
            peer_id: parse_peer_id(&p.peer_id)?,
            addrs: p
                .addrs
                .iter()
                .map(|a| parse_multiaddr(a))
                .collect::<Result<_, _>>()?,
            source: "config",
        });
    }
    for (party, entry) in changes {
        out.retain(|p| p.party.as_str() != party);
        if let PartnerEntry::Added { peer_id, addrs } = entry {
            out.push(Partner {
                party: PartyName::new(&party)?,
                peer_id: parse_peer_id(&peer_id)?,
                addrs: addrs
                    .iter()
                    .map(|a| parse_multiaddr(a))
                    .collect::<Result<_, _>>()?,
                source: "cli",
            });
        }
    }
    Ok(out)
}
