//! Where things live in a data directory.

pub use consort_protocol::layout::{
    CONFIG_FILE, IDENTITY_FILE, LOCK_FILE, SOCKET_FILE, absolute, default_data_dir,
};

/// sled database directory inside the data directory.
pub const DB_DIR: &str = "db";
