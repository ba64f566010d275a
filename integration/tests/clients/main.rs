//! The client tier: the call sequences of programs that drive containerd's
//! gRPC API (not `ctr`) run against our shim under the real runsc. `docker`
//! follows Docker's libcontainerd client; `agent` follows an agent-sandbox
//! containerd service (containers by label, exec with captured and streamed
//! output, snapshot commit and containers made from it, network and
//! timezone/resolv.conf mounts); `exec_spec` and `races` cover what such
//! clients can send that `ctr` never does.
#![allow(clippy::unwrap_used)]

mod agent;
mod docker;
mod exec_spec;
mod races;
mod support;
