//! End-to-end tests: a private containerd 1.6 per test, our shim first on its
//! PATH, a busybox image built locally, everything run under the real runsc.
//! Every test ends with `stop_and_check`, which fails if a shim, runsc
//! process, mount or `/run/containerd/s` socket of that test remains.
#![allow(clippy::unwrap_used)]

mod control;
mod direct;
mod events;
mod exec;
mod faults;
mod grpc;
mod network;
mod options;
mod pod;
mod run;
mod snapshot;

pub use test_support::containerd::{Containerd, OutputExt, RUNTIME};
pub use test_support::image::IMAGE_REF;
