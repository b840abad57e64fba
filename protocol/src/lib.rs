//! Consort's shared vocabulary: identifiers, the control-socket protocol and its framing.
//!
//! This crate does no I/O. Everything that crosses a process boundary (the control socket now,
//! the peer protocols later) is defined here once, so the daemon, the CLI and the tests agree on
//! it by construction. Every message is MessagePack with named fields (`rmp_serde::to_vec_named`),
//! so adding a field never breaks an older reader.

pub mod audience;
pub mod call;
pub mod clock;
pub mod control;
pub mod data;
pub mod frame;
pub mod ids;
pub mod job;
pub mod jobs;
pub mod json_text;
pub mod layout;
pub mod models;
pub mod names;
pub mod peer;
pub mod serving;

pub use control::{
    BoardInfo, CONTROL_PROTOCOL, CONTROL_PROTOCOL_VERSION, ClientMessage, ControlError, ErrorCode,
    JobInfo, LogLineInfo, MetricInfo, ModelInfo, ModelPartInfo, PartyRunInfo, PeerInfo, PingReport,
    ReachabilityInfo, RecordInfo, RelayServiceInfo, RelaySlotInfo, Request, Response,
    ServerMessage, StatusInfo, TableInfo, TaskInfo, TaskPart,
};
pub use frame::{DEFAULT_MAX_FRAME_BYTES, FrameCodec, FrameError};
pub use ids::{InvalidName, PartyName};
