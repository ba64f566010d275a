//! `containerd-shim-runsc-v1`: a containerd runtime v2 shim (task API v2,
//! and v3 for containerd 2.3 and later) that runs every container in
//! gVisor's `runsc` sandbox.
//!
//! Layers, top to bottom (each uses only those below it):
//!
//! ```text
//!  bootstrap, server        the shim verbs (start, delete, serve) and the ttrpc server
//!  service                  the task service: one file per group of methods
//!  container, process       what the shim knows of containers and processes
//!  rewrite, spec, client,   what a Create decides: spec changes, runsc flags,
//!  sandbox_root, cgroup     the sandbox's root and host cgroup
//!  runsc (crate)            every runsc interaction: CLI, control socket, pid files
//!  shim-io (crate)          stdio: FIFOs, log URIs, pty, null IO
//!  process-monitor (crate)  the one seam every child is spawned and reaped through
//! ```
//!
//! Modules:
//! - [`cli`]: what the binary answers itself: `-v`, `-info`.
//! - [`bootstrap`]: the shim verbs, `start`, `delete` and serve.
//! - [`handshake`]: what containerd sends `start` and reads back, by version.
//! - [`server`]: the ttrpc server (task API v2 and v3) and its lifetime.
//! - [`service`]: the ttrpc task service; Create as a staged transaction,
//!   and what happens when a process exits, each in one place.
//! - [`process`]: a process and its state machine (named transitions).
//! - [`container`]: a container, its [`container::Role`] in its sandbox,
//!   its exec table and the OOM ledger.
//! - [`bundle`]: the bundle directory's file names.
//! - [`options`]: runtime options (`runtimeoptions.v1.Options` -> TOML).
//! - [`spec`]: what the OCI spec tells the shim (pod grouping, network).
//! - [`executable`]: finding `process.args[0]` in the rootfs at Create.
//! - [`rewrite`]: what the shim changes in a spec before runsc reads it.
//! - [`client`]: the runsc client a container uses and its flags.
//! - [`sandbox_root`]: a sandbox's runsc root, its removal and its mark.
//! - [`cleanup`]: a sandbox's last cleanup, in a process that outlives the
//!   shim (`-runsc-shim-cleanup`).
//! - [`reaper`]: the subreaper's monitor every child is spawned through.
//! - [`portforward`]: `kubectl port-forward` into a gVisor pod.
//! - [`host`]: host processes seen through `/proc`; the shim's OOM score.
//! - [`blocking`]: the one way blocking work leaves the runtime thread.
//! - [`events`], [`convert`], [`cgroup`], [`mount`], [`state`]: events, protobuf
//!   conversions, the sandbox's host cgroup (its limits through systemd when
//!   it is a systemd unit), rootfs mounts, persisted state.
//! - [`logging`]: the log FIFO plus the optional `log_path` file.
//! - [`error`]: the error type and its one mapping to ttrpc codes.
//! - [`fuzz`]: entry points for the fuzz targets in `fuzz/`, one per kind
//!   of input from outside.
//!
//! It ports gVisor's Go shim (`pkg/shim/v1`) and fixes what that shim gets
//! wrong (see the project README).
#![deny(missing_docs)]

pub mod blocking;
pub mod bootstrap;
pub mod bundle;
pub mod cgroup;
pub mod cleanup;
pub mod cli;
pub mod client;
pub mod container;
pub mod convert;
pub mod error;
pub mod events;
pub mod executable;
pub mod fuzz;
pub mod handshake;
pub mod host;
pub mod logging;
pub mod mount;
pub mod options;
pub mod portforward;
pub mod process;
pub mod reaper;
pub mod rewrite;
pub mod sandbox_root;
pub mod server;
pub mod service;
pub mod spec;
pub mod state;

pub use error::{Error, Result};

/// The runtime name containerd knows this shim by.
pub const RUNTIME_NAME: &str = "io.containerd.runsc.v1";

/// The binary containerd runs for [`RUNTIME_NAME`].
pub const BINARY_NAME: &str = "containerd-shim-runsc-v1";
