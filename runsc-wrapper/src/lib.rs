//! Typed async client for gVisor's `runsc` command line — a Rust port of
//! gVisor's Go `pkg/shim/runsccmd` package, used by
//! `containerd-shim-runsc-v1`.
//!
//! Layout:
//! - [`global`]: [`Runsc`] and its [`GlobalOpts`] builder (binary, `--root`,
//!   `--log`, extra `--key=value` flags, parent-death signal, monitor).
//! - [`opts`]: one options struct per subcommand and the container [`Stdio`].
//! - `commands` / `events`: the async subcommand methods on [`Runsc`], and
//!   the long-lived [`EventStream`].
//! - `binary`: what a runsc binary says of itself (version, flags,
//!   `update`), asked once per binary and cached.
//! - [`types`]: serde types for runsc's JSON output.
//! - [`error`]: the [`Error`] enum; runsc's own message is read from the
//!   call's JSON `--log` (a file per call with [`GlobalOpts::log_per_call`]),
//!   else from stderr.
//! - [`paths`]: `%ID%` templating of path flags and the shim log path.
//! - [`deadline`]: per-verb [`Timeouts`] and killing an overrunning call's
//!   whole process tree.
//! - [`netns`]: [`NetnsCheck`], the narrow workaround for runsc's root
//!   network namespace check on current kernels.
//! - [`control`]: the direct client for a running sandbox's control socket
//!   (exec, wait, signal, ps, stats, pause/resume without a runsc process).
//! - `exec_start`: [`Runsc::start_exec`], an exec over the control socket
//!   (its pty made and handed over here) with `runsc exec` as the fallback.
//! - [`pid_file`]: the pid files runsc writes.
//! - [`fuzz`]: entry points for the fuzz targets in `fuzz/`, one per
//!   kind of output runsc and its sandbox send back.
//! - `port`: [`Runsc::connect_port`], a stream to a port in the sandbox.
//! - `direct`: when [`Runsc`] calls the sandbox directly ([`SandboxControl`])
//!   and when it falls back to the CLI.
//! - [`ProcessMonitor`], [`LogMonitor`], [`DefaultMonitor`], [`Exit`],
//!   [`ExitReceiver`], [`describe`]: re-exported from crate
//!   `process-monitor`, the seam through which every child is spawned and
//!   reaped, so a subreaping shim never loses an exit.
//!
//! Rules the crate keeps: it never waits on a child itself (exits come from
//! the monitor), capture pipes are read concurrently with waiting, and
//! lifecycle commands (create/start/exec/run/restore) get the container's
//! stdio, never capture pipes, since the sandbox and gofer keep them open.
#![deny(missing_docs)]

mod binary;
pub use binary::release_date;
mod commands;
pub mod control;
pub mod deadline;
mod direct;
pub use direct::SandboxControl;
pub mod error;
mod events;
mod exec;
mod exec_start;
pub mod fuzz;
pub use exec_start::{ExecStart, StartedExec};
#[cfg(test)]
mod fake_tests;
pub mod global;
pub mod netns;
pub mod opts;
pub mod paths;
pub mod pid_file;
mod port;
pub mod types;

pub use deadline::Timeouts;
pub use error::{Error, Result};
pub use events::EventStream;
pub use global::{GlobalOpts, LogFormat, LogTarget, Runsc, DEFAULT_COMMAND};
pub use netns::NetnsCheck;
pub use opts::{
    CheckpointOpts, CreateOpts, DeleteOpts, EventsOpts, ExecOpts, KillOpts, RestoreOpts, StartOpts,
    Stdio, StdioSource, WaitOpts,
};
pub use paths::{emitted_paths, format_runsc_paths, format_shim_log_path, PATH_KEYS};
pub use process_monitor::{
    describe, DefaultMonitor, Exit, ExitReceiver, LogMonitor, ProcessMonitor,
};
pub use types::{
    Container, Cpu, CpuUsage, Event, Memory, MemoryEntry, Pids, Stats, StatsEvent, Status,
    Throttling, TopResults, WaitResult,
};
