//! The CRI tier: containerd's CRI plugin driven as the kubelet drives it
//! (RuntimeService over gRPC), handler `runsc` → our shim, pods on a
//! private CNI bridge. Images are built locally (busybox, and a pause image
//! from it). Traffic goes only to the test's own bridge and to loopback.
#![allow(clippy::unwrap_used)]

mod lifecycle;
mod pods;
mod portforward;
mod resources;
mod security;
mod shims;
mod streaming;
