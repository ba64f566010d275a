//! End-to-end suites (`tests/e2e`, `tests/cri`), the `demo` and `demo_pod`
//! binaries behind `make demo` and `make demo-pod`, the `bench` harness
//! behind `make bench`, and [`cri`], the CRI environment the CRI tier and
//! the pod demo share; [`critest`] is the critest tier
//! (`scripts/critest.sh`); [`soak`] is `make soak` (containerd-stress
//! through our shim and the Go shim). Shared helpers live in the
//! `test-support` crate.

pub mod bench;
pub mod cri;
pub mod critest;
pub mod soak;
