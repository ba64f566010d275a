//! The Docker tier: a real dockerd (Debian 13's Docker Engine 26.1.5 and
//! its containerd 1.7) per test, driven through the `docker` CLI as people
//! drive it. Every test runs twice: `runsc` (our shim: `--runtime runsc`)
//! and `runc` (Docker's default runtime, the control), each on a dockerd
//! of its own, with the same commands and the same expected outcome.
//! Every test ends with `stop_and_check`, which fails if a shim, runsc,
//! docker-proxy or containerd process, mount, shim socket, runsc state,
//! cgroup or bridge of that dockerd remains. Traffic goes only to the
//! test's own bridges and to loopback; the host's iptables and sysctls are
//! left alone (`"iptables": false`).
//!
//! Run it through `scripts/docker-tier.sh SHIM_DIR`, which puts Docker,
//! containerd 1.7 and runsc 0.0~20240729 on `PATH`.
#![allow(clippy::unwrap_used)]

use std::{process::Output, time::Duration};

pub use test_support::{
    containerd::OutputExt,
    docker::{Dockerd, IMAGE},
};

// Before the modules: a macro is visible only to what follows it.
/// Defines a module `$name` holding two tests, `runc` and `runsc`, that
/// each run `$body` on a dockerd of their own with that runtime. Written
/// `runsc_ignored: "<why>", fn ...`, the runsc one is ignored for that
/// reason (a gVisor limit, not the shim's).
macro_rules! on_both_runtimes {
    (runsc_ignored: $why:literal, $(#[$meta:meta])* fn $name:ident($d:ident, $rt:ident) $body:block) => {
        on_both_runtimes!(@ [#[ignore = $why]] $(#[$meta])* fn $name($d, $rt) $body);
    };
    ($(#[$meta:meta])* fn $name:ident($d:ident, $rt:ident) $body:block) => {
        on_both_runtimes!(@ [] $(#[$meta])* fn $name($d, $rt) $body);
    };
    (@ [$(#[$runsc:meta])*] $(#[$meta:meta])* fn $name:ident($d:ident, $rt:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($d: &crate::Dockerd, $rt: crate::Runtime) $body

            #[test]
            fn runc() {
                crate::with_dockerd(crate::Runtime::Runc, body);
            }

            #[test]
            $(#[$runsc])*
            fn runsc() {
                crate::with_dockerd(crate::Runtime::Runsc, body);
            }
        }
    };
}

mod exec;
mod lifecycle;
mod network;
mod resources;
mod restore;
mod storage;

/// The runtime a test runs its containers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// Docker's default runtime: the control.
    Runc,
    /// Our shim under gVisor.
    Runsc,
}

impl Runtime {
    /// The name `--runtime` takes.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Runsc => "runsc",
        }
    }
}

/// Starts a dockerd, runs `body` with `rt` on it, then stops it and checks
/// that nothing of it is left.
pub fn with_dockerd(rt: Runtime, body: impl FnOnce(&Dockerd, Runtime)) {
    let d = Dockerd::start();
    body(&d, rt);
    d.stop_and_check();
}

/// `docker run --rm --runtime <rt> <args> busybox <cmd>`.
pub fn run(d: &Dockerd, rt: Runtime, args: &[&str], cmd: &[&str]) -> Output {
    let mut all = vec!["run", "--rm", "--runtime", rt.name()];
    all.extend_from_slice(args);
    all.push(IMAGE);
    all.extend_from_slice(cmd);
    d.docker(&all)
}

/// `docker run -d --name <name> --runtime <rt> <args> busybox <cmd>`,
/// panicking on failure; returns the container's full id.
pub fn run_detached(d: &Dockerd, rt: Runtime, name: &str, args: &[&str], cmd: &[&str]) -> String {
    let mut all = vec!["run", "-d", "--name", name, "--runtime", rt.name()];
    all.extend_from_slice(args);
    all.push(IMAGE);
    all.extend_from_slice(cmd);
    d.docker_text(&all)
}

/// A long-running container's command.
pub const SLEEP: &[&str] = &["sleep", "100000"];

/// Panics unless `out` succeeded, showing what it printed.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        out.out(),
        out.err()
    );
}

/// `.State.Status` of a container (running, paused, exited, ...).
pub fn status(d: &Dockerd, name: &str) -> String {
    d.inspect(name, "{{.State.Status}}")
}

/// Waits until a container's `.State.Status` is `want`.
pub fn wait_status(d: &Dockerd, name: &str, want: &str) {
    d.wait_until(
        &format!("container {name} in state {want}"),
        Duration::from_secs(30),
        || status(d, name) == want,
    );
}

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}
