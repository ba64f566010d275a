//! `containerd-shim-runsc-v1`: a containerd runtime v2 shim (task API v2,
//! and v3 for containerd 2.3 and later) that runs every container in
//! gVisor's `runsc` sandbox.
//!
//! Layout:
//! - [`cli`]: what the binary answers itself: `-v`, `-info`.
//! - [`bootstrap`]: the shim verbs, `start`, `delete` and serve.
//! - [`handshake`]: what containerd sends `start` and reads back, by version.
//! - [`server`]: the ttrpc server (task API v2 and v3) and its lifetime.
//! - [`service`]: the ttrpc task service, one file per group of methods.
//! - [`container`]: containers and processes with their lifecycle state.
//! - [`options`]: runtime options (`runtimeoptions.v1.Options` -> TOML).
//! - [`spec`]: what the OCI spec tells the shim (pod grouping, network).
//! - [`executable`]: finding `process.args[0]` in the rootfs at Create.
//! - [`rewrite`]: what the shim changes in a spec before runsc reads it.
//! - [`runtime`]: building the runsc client and its flags.
//! - [`reaper`]: the monitor every child is spawned through.
//! - [`events`], [`convert`], [`cgroup`], [`mount`], [`state`]: events, protobuf
//!   conversions, the sandbox's host cgroup (its limits through systemd when
//!   it is a systemd unit), rootfs mounts, persisted state.
//! - [`logging`]: the log FIFO plus the optional `log_path` file.
//! - [`error`]: the error type and its one mapping to ttrpc codes.
//!
//! It ports gVisor's Go shim (`pkg/shim/v1`) and fixes what that shim gets
//! wrong (see the project README).
#![deny(missing_docs)]

pub mod bootstrap;
pub mod cgroup;
pub mod cli;
pub mod container;
pub mod convert;
pub mod error;
pub mod events;
pub mod executable;
pub mod handshake;
pub mod logging;
pub mod mount;
pub mod options;
pub mod reaper;
pub mod rewrite;
pub mod runtime;
pub mod server;
pub mod service;
pub mod spec;
pub mod state;

pub use error::{Error, Result};

/// The runtime name containerd knows this shim by.
pub const RUNTIME_NAME: &str = "io.containerd.runsc.v1";
