//! Which daemon to talk to: `--socket`, or the socket named by `--dir`'s consort.toml.

use std::path::{Path, PathBuf};

use consort_protocol::layout;

use crate::args::Cli;
use crate::client::Client;
use crate::failure::Failure;

/// The daemon a command talks to.
pub(crate) struct Target {
    pub(crate) socket: PathBuf,
    dir: Option<PathBuf>,
}

/// The two keys of `consort.toml` that say where the socket is. The daemon validates the whole
/// file; the CLI only needs these (and falls back to the default socket when it cannot read them).
#[derive(serde::Deserialize)]
struct SocketConfig {
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    socket: Option<PathBuf>,
}

/// The socket `config` names, resolved as `consortd` resolves it: relative to the data
/// directory, itself relative to the file's directory.
fn configured_socket(config: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).ok()?;
    let c: SocketConfig = toml::from_str(&text).ok()?;
    let base = layout::absolute(config.parent().unwrap_or(Path::new(".")));
    let data_dir = match &c.data_dir {
        Some(d) => layout::absolute(&base.join(d)),
        None => base,
    };
    Some(match &c.socket {
        Some(s) => layout::absolute(&data_dir.join(s)),
        None => data_dir.join(layout::SOCKET_FILE),
    })
}

impl Target {
    /// From `--socket`, or `--dir` (default `~/.consort`) and its consort.toml.
    pub(crate) fn resolve(cli: &Cli) -> Self {
        if let Some(socket) = &cli.socket {
            return Self {
                socket: layout::absolute(socket),
                dir: cli.dir.as_deref().map(layout::absolute),
            };
        }
        let dir = layout::absolute(&cli.dir.clone().unwrap_or_else(layout::default_data_dir));
        let socket = configured_socket(&dir.join(layout::CONFIG_FILE))
            .unwrap_or_else(|| dir.join(layout::SOCKET_FILE));
        Self {
            socket,
            dir: Some(dir),
        }
    }

    /// Connects and greets; a missing daemon fails with exit 2 and how to start one.
    pub(crate) async fn connect(&self) -> Result<Client, Failure> {
        Client::connect(&self.socket).await.map_err(|e| {
            let mut f = Failure::from(e);
            if f.exit == 2 {
                let dir = self.dir.as_deref().unwrap_or(Path::new("DIR"));
                f.message = format!(
                    "{}. Start one with `consortd run --dir {}`",
                    f.message,
                    dir.display()
                );
            }
            f
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_resolved_like_the_daemon() {
        let dir = std::env::temp_dir().join(format!("consort-cli-target-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let config = dir.join(layout::CONFIG_FILE);
        std::fs::write(
            &config,
            "party = \"a\"\ndata_dir = \"data\"\nsocket = \"s.sock\"\n",
        )
        .expect("write");
        assert_eq!(
            configured_socket(&config),
            Some(dir.join("data").join("s.sock"))
        );
        std::fs::write(&config, "party = \"a\"\n[log]\nlevel = \"info\"\n").expect("write");
        assert_eq!(
            configured_socket(&config),
            Some(dir.join(layout::SOCKET_FILE))
        );
        std::fs::write(&config, "not toml [").expect("write");
        assert_eq!(configured_socket(&config), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
