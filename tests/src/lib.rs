//! Shared test support for the workspace's test suites.
//!
//! - [`abort`]: cleanups that also run when a binary built to abort on
//!   panic (`make demo`, `make bench`) panics.
//! - [`cgroup`]: a process's host cgroup files (limits), on either cgroup version.
//! - [`bundle`]: OCI bundles with a busybox rootfs, for driving runsc directly.
//! - [`image`]: an OCI image tarball built from busybox, for `ctr images import`.
//! - [`containerd`]: a private containerd (own config, root, state and socket)
//!   started per test run and stopped on drop; optionally with the CRI plugin.
//! - [`cri`]: the CRI plugin's configuration for our shim.
//! - [`configured`]: a private containerd of a given version with a given
//!   configuration (documented config files under test).
//! - [`host`]: processes and mounts on the host, for leak checks.
//! - [`cni`]: a private CNI bridge network for CRI tests, removed on drop.
//! - [`netns`]: a network namespace with a veth pair, removed on drop.
//! - [`registry`]: a read-only image registry on 127.0.0.1 serving one
//!   image, for clients that pull (containerd-stress).
//! - [`docker`]: a private dockerd (own daemon.json, data and exec roots,
//!   socket, bridge and cgroup parent) whose runtime `runsc` is our shim,
//!   stopped with leak checks.
//!
//! Tests here need root, runsc and containerd (installed by `make deps`); they
//! fail loudly rather than skip when something is missing.
#![allow(clippy::unwrap_used)]

pub mod abort;
pub mod bundle;
pub mod cgroup;
pub mod cni;
pub mod configured;
pub mod containerd;
pub mod cri;
pub mod docker;
pub mod host;
pub mod image;
pub mod netns;
pub mod registry;
