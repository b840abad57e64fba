//! `consortd init`: create a data directory, an identity and a commented configuration.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use consort_protocol::PartyName;
use serde::Serialize;

use crate::config::{self, Config};
use crate::{identity, paths};

/// What `init` created.
#[derive(Debug, Serialize)]
pub struct InitOutcome {
    /// The party name.
    pub party: String,
    /// The new PeerId.
    pub peer_id: String,
    /// Path of the configuration written.
    pub config: String,
}

/// Creates `dir` (mode 0700), `identity.key` (0600) and `consort.toml`.
///
/// Refuses when the directory already holds an identity or a configuration; nothing is
/// changed then.
pub fn init(dir: &Path, party: &str, listen: &[String]) -> anyhow::Result<InitOutcome> {
    let party = PartyName::new(party)?;
    let listen = if listen.is_empty() {
        config::default_listen_addrs()
    } else {
        listen.to_vec()
    };
    for addr in &listen {
        addr.parse::<multiaddr::Multiaddr>().with_context(|| {
            format!("--listen '{addr}' is not a multiaddr (example: /ip4/0.0.0.0/tcp/4750)")
        })?;
    }
    let dir = paths::absolute(dir);
    let key_path = dir.join(paths::IDENTITY_FILE);
    let config_path = dir.join(paths::CONFIG_FILE);
    for existing in [&key_path, &config_path] {
        if existing.exists() {
            bail!(
                "{} already exists; refusing to overwrite an initialised data directory \
                 (its identity is this party's PeerId). Use another --dir.",
                existing.display()
            );
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set mode 0700 on {}", dir.display()))?;

    let key = identity::create(&key_path)?;
    let peer_id = identity::peer_id(&key).to_base58();
    let text = config::render_template(&party, &peer_id, &listen);
    // The template must be something `run` accepts; check before writing it.
    Config::parse(&text, &config_path).context("internal error: generated config is invalid")?;
    write_new(&config_path, text.as_bytes())?;
    Ok(InitOutcome {
        party: party.to_string(),
        peer_id,
        config: config_path.display().to_string(),
    })
}

fn write_new(path: &PathBuf, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_private_dir_key_and_config_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a");
        let out = init(&dir, "bank-a", &[]).expect("init");
        assert_eq!(out.party, "bank-a");
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let settings = Config::load(&dir.join(paths::CONFIG_FILE)).expect("config loads");
        assert_eq!(settings.config.listen, config::default_listen_addrs());
        let err = init(&dir, "bank-a", &[]).expect_err("second init");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        let key = identity::load(&dir.join(paths::IDENTITY_FILE)).expect("key");
        assert_eq!(identity::peer_id(&key).to_base58(), out.peer_id);
    }

    #[test]
    fn bad_input_creates_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a");
        assert!(init(&dir, "Bank A", &[]).is_err());
        assert!(init(&dir, "bank-a", &["not-an-addr".into()]).is_err());
        assert!(!dir.exists());
    }
}
