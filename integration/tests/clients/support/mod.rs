//! gRPC plumbing shared by the client tier: what a program that drives
//! containerd's API itself (Docker's libcontainerd, an agent service) does,
//! without `ctr` in between.
//!
//! - [`rt`]: a multi-threaded tokio runtime, so FIFO readers and event
//!   subscriptions make progress while a test waits on something else.
//! - [`Client`]: one gRPC channel to a private [`Containerd`], every request
//!   carrying its namespace ([`Client::req`]), and the task calls a client
//!   makes (create with its own FIFOs, start, exec, kill, wait, pids, ...).
//! - [`create_container`]: the container record, made with `ctr containers
//!   create` (image, snapshot, spec and runtime in one step).
//! - [`Fifos`] and [`Output`]: stdio FIFOs in a temporary directory, as the
//!   client creates them (`mkfifo`), and a reader collecting one of them.
//! - [`EventLog`]: an `Events.Subscribe` stream collected in the background,
//!   decoded into [`Event`]s (topic, container, exec id, pid, exit status).
//! - [`Stats`], [`ProcessDetails`]: decoders for the `Any` payloads of
//!   `Metrics` (cgroups v1 or v2) and `ListPids` (runc's ProcessDetails).
//!
//! One file each: `client.rs`, `fifos.rs`, `events.rs`, `payloads.rs`;
//! this one keeps the runtime, the container record and [`DEADLINE`].
//!
//! Every wait here has a deadline ([`DEADLINE`]) and panics with what it saw
//! when it passes; nothing here asserts on how long something took.
// Shared by the tier's modules; none uses every helper.
#![allow(dead_code)]

use std::time::Duration;

mod client;
mod events;
mod fifos;
mod payloads;

pub use client::Client;
pub use events::{Event, EventLog};
pub use fifos::{Fifos, Output};
pub use payloads::{ProcessDetails, Stats};
pub use test_support::containerd::{Containerd, OutputExt, RUNTIME};
pub use test_support::image::IMAGE_REF;

/// How long any wait in this tier may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A runtime with two workers: background readers keep reading while the
/// test's own future blocks on a `ctr` call.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `ctr containers create --runtime io.containerd.runsc.v1 <extra...>
/// busybox <id> <cmd...>`: the container record (spec, snapshot, runtime)
/// a client then creates a task for. `extra` takes `ctr`'s flags, e.g.
/// `--label k=v`, `--memory-limit N`, `-t`, `--env K=V`.
pub fn create_container(c: &Containerd, id: &str, extra: &[&str], cmd: &[&str]) {
    let mut args = vec!["containers", "create", "--runtime", RUNTIME];
    args.extend_from_slice(extra);
    args.push(IMAGE_REF);
    args.push(id);
    // Without `--`, ctr 1.6 takes a `-c` of the command for its `--config`;
    // later ctr versions stop at the id and would run `--` itself.
    if ctr_reorders_flags(c) {
        args.push("--");
    }
    args.extend_from_slice(cmd);
    c.ctr_ok(&args);
}

/// Whether this `ctr` parses flags after positional arguments (1.6's
/// urfave/cli v1 does; 1.7 and 2.x stop at the first argument).
fn ctr_reorders_flags(c: &Containerd) -> bool {
    static REORDERS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REORDERS.get_or_init(|| {
        let v = c.ctr_ok(&["--version"]).out();
        v.contains(" v1.6.") || v.contains(" 1.6.")
    })
}
