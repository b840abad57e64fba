//! `consortd run`: start the daemon and serve until told to stop.
//!
//! Boot happens in visible, logged steps: configuration, lock, identity, store, actors, socket.
//! Shutdown (SIGTERM, SIGINT or `consort shutdown`) runs them backwards: stop accepting, answer
//! in-flight requests, flush sled and mark the stop as clean, remove the socket, release the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use consort_actors::executor::OperatorSpec;
use consort_actors::network;
use consort_actors::scheduler::Policy;
use consort_actors::{Actors, JobDeps};
use consort_protocol::{BoardInfo, StatusInfo};
use consort_storage::{
    DaemonMeta, Mailbox, Models, PartnerOverrides, RecordStore, Store, StoreOptions, Tables,
    Tracking,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Config, LogFormat, Settings};
use crate::network as net;
use crate::server::{self, ServerState};
use crate::{identity, logging, paths};

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to find the configuration.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// `DIR/consort.toml`.
    Dir(PathBuf),
    /// An explicit file.
    File(PathBuf),
}

/// Runs the daemon until shutdown. Returns once everything is flushed and the socket removed.
pub fn daemon_main(source: ConfigSource, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    // Two rustls crypto providers are linked (ring, ours; aws-lc-rs, which libp2p's QUIC
    // requires), so rustls cannot pick a process default by itself: anything that asks for it
    // (tonic's TLS for the gRPC API) gets ring, as our own configurations do. `Err` only means
    // one was installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config_path = match &source {
        ConfigSource::Dir(dir) => {
            let path = dir.join(paths::CONFIG_FILE);
            if !path.exists() {
                bail!(
                    "no {} in {}; create it with `consortd init --dir {} --party NAME`",
                    paths::CONFIG_FILE,
                    dir.display(),
                    dir.display()
                );
            }
            path
        }
        ConfigSource::File(path) => path.clone(),
    };
    let settings = Config::load(&config_path)?;
    let format = log_format.unwrap_or(settings.config.log.format);
    logging::init(format, &settings.config.log.level);
    let started = Instant::now();
    info!(party = %settings.config.party, config = %settings.config_path.display(), "starting consortd");

    let lock = DirLock::acquire(&settings.data_dir)?;
    let key = identity::load(&settings.data_dir.join(paths::IDENTITY_FILE))?;
    let peer_id = identity::peer_id(&key);
    info!(%peer_id, "identity loaded");

    let store_opts = StoreOptions {
        cache_capacity: settings.config.storage.cache_mb * 1024 * 1024,
    };
    let db_path = settings.data_dir.join(paths::DB_DIR);
    let store = Store::open(&db_path, &store_opts)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let previous = DaemonMeta::record_start(&store, now)?;
    if previous.starts > 0 && !previous.clean_shutdown {
        warn!(
            previous_start = previous.last_start_unix,
            "the previous run did not stop cleanly; recovering"
        );
    }
    info!(path = %db_path.display(), "store opened");

    let overrides = PartnerOverrides::open(&store)?;
    let records = RecordStore::open(&store)?;
    let partners = net::effective_partners(&settings, &overrides)?;
    let network = network::start(
        net::network_config(&settings, key)?,
        partners,
        records.clone(),
    )?;
    info!(partners = settings.config.partners.len(), "network started");

    let status = StatusInfo {
        party: settings.config.party.to_string(),
        peer_id: peer_id.to_base58(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_s: 0.0,
        listen: settings.config.listen.clone(),
        data_dir: settings.data_dir.display().to_string(),
        socket: settings.socket.display().to_string(),
        pid: std::process::id(),
        stores: Vec::new(),
        reachability: None,
    };

    let network::Network {
        client,
        events,
        thread,
    } = network;
    let shared = Shared {
        client: client.clone(),
        records,
        overrides,
    };
    let system = actix_rt::System::new();
    let served = system.block_on(serve(&settings, &store, status, started, shared, events));
    system.block_on(client.shutdown());
    if thread.join().is_err() {
        warn!("the network thread panicked");
    }

    // Whatever happened while serving, leave the store consistent and say whether we did.
    let flushed = store
        .flush()
        .and_then(|_| DaemonMeta::record_clean_shutdown(&store))
        .context("flushing the store at shutdown");
    remove_socket(&settings.socket);
    drop(lock);
    served?;
    flushed?;
    info!("consortd stopped");
    Ok(())
}

/// Handles the daemon's parts share.
struct Shared {
    client: network::NetworkClient,
    records: RecordStore,
    overrides: PartnerOverrides,
}

async fn serve(
    settings: &Settings,
    store: &Store,
    status: StatusInfo,
    started: Instant,
    shared: Shared,
    events: tokio::sync::mpsc::Receiver<network::NetworkEvent>,
) -> anyhow::Result<()> {
    let config = &settings.config;
    let policy = Policy {
        accept_from: config.policy.accept_from.clone(),
        components: config.policy.components.clone(),
        manual_approval: config.policy.manual_approval,
        tables: config.policy.tables.clone(),
        operators: config.operators.keys().cloned().collect(),
    };
    let tracking = Tracking::open(store)?;
    let tables = Tables::open(store, &settings.data_dir.join("tables"))?;
    let models = Models::open(store, &settings.data_dir.join("models"))?;
    let deps = JobDeps {
        me: config.party.clone(),
        net: shared.client.clone(),
        events,
        records: shared.records.clone(),
        overrides: shared.overrides.clone(),
        peer_id: status.peer_id.clone(),
        mailbox: Mailbox::open(store, &settings.data_dir.join("mailbox"))?,
        tracking,
        policy,
        work_dir: settings.data_dir.join("jobs"),
        operators: config
            .operators
            .iter()
            .map(|(name, op)| {
                let spec = OperatorSpec {
                    command: op.command.clone(),
                    env: op.env.clone(),
                    timeout: op.timeout_s.map(Duration::from_secs),
                };
                (name.clone(), spec)
            })
            .collect(),
        socket: settings.socket.clone(),
        share_logs_with: config.policy.share_logs_with.clone(),
        tables: tables.clone(),
        models,
        serving_sources: config.serving.sources(),
    };
    let actors = Actors::start(store, deps);
    info!("actors started");

    let listener = bind_socket(&settings.socket)?;
    let shutdown = CancellationToken::new();
    let config_dir = settings
        .config_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let api = config.serving.api(&config_dir)?;
    let board_addr = config.board.listen.as_deref().and_then(|a| a.parse().ok());
    let listeners = crate::http::bind(&api, board_addr)?;
    let board_token = match listeners.bound.board {
        Some(_) => Some(crate::http::board::load_token(
            &settings.data_dir.join(paths::BOARD_TOKEN_FILE),
        )?),
        None => None,
    };
    let read_only = config.board.read_only;
    let board_info = BoardInfo {
        url: listeners
            .bound
            .board
            .zip(board_token.as_ref())
            .map(|(a, t)| format!("http://{a}/?token={t}")),
        read_only,
    };
    watch_signals(shutdown.clone())?;
    let state = Arc::new(ServerState {
        status,
        started,
        actors: actors.clone(),
        shutdown: shutdown.clone(),
        max_frame_bytes: settings.config.max_frame_bytes,
        board: board_info,
    });
    let board = listeners.bound.board.zip(board_token).map(|(a, token)| {
        crate::http::board::Board::new(state.clone(), token, read_only, a.port())
    });
    crate::http::start(listeners, &api, board, &actors, shutdown.clone())?;
    info!(
        socket = %settings.socket.display(),
        ready_ms = started.elapsed().as_millis() as u64,
        "ready"
    );

    let tasks = TaskTracker::new();
    server::serve(listener, state, tasks.clone()).await;
    // New clients now get "connection refused" rather than hanging.
    remove_socket(&settings.socket);
    tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        warn!(
            open = tasks.len(),
            "control connections still busy after 10 s; closing them"
        );
    }
    info!("stopping");
    Ok(())
}

fn watch_signals(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = shutdown.cancelled() => return,
        };
        info!(signal = name, "signal received; shutting down");
        shutdown.cancel();
    });
    Ok(())
}

/// Binds the control socket with mode 0600, replacing a stale socket left by a crashed daemon.
///
/// The socket is bound under a temporary name, restricted, then renamed into place, so the
/// final path never exists with wider permissions.
fn bind_socket(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            );
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => bail!(
                "another process is answering on {}; is a consortd with another data directory \
                 configured with the same socket?",
                path.display()
            ),
            Err(_) => {
                warn!(socket = %path.display(), "removing stale socket left by a previous run");
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
            }
        }
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp).with_context(|| {
        format!(
            "cannot bind the control socket {} (paths over ~100 bytes do not fit a Unix socket; \
             set `socket` in consort.toml to a shorter path)",
            path.display()
        )
    })?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot install the control socket at {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(listener)?)
}

fn remove_socket(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!(socket = %path.display(), error = %e, "cannot remove the control socket"),
    }
}

/// An exclusive lock on the data directory, held for the daemon's lifetime.
struct DirLock {
    _file: File,
}

impl DirLock {
    fn acquire(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(paths::LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                let who = if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                };
                bail!(
                    "another consortd{who} is already running on {}; stop it with \
                     `consort --dir {} shutdown` first",
                    dir.display(),
                    dir.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write lock file {}", path.display()))?;
        Ok(Self { _file: file })
    }
}
