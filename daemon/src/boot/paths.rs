//! Where things live in a data directory.

pub use consort_protocol::layout::{
    CONFIG_FILE, IDENTITY_FILE, LOCK_FILE, SOCKET_FILE, absolute, default_data_dir,
};

/// sled database directory inside the data directory.
pub const DB_DIR: &str = "db";
/// The board's login token (mode 0600), made at the first start with `[board] listen`.
pub const BOARD_TOKEN_FILE: &str = "board.token";
