//! The control socket: the server (framing, hello, dispatch) and one module per subsystem.
//! Each subsystem's handler translates a request into a message to the actor that owns the
//! concern and its reply into a response; none touches storage or the network itself.

pub(crate) mod data;
pub(crate) mod failure;
pub(crate) mod jobs;
pub(crate) mod models;
pub(crate) mod peers;
pub(crate) mod security;
pub(crate) mod serve;
pub(crate) mod server;
