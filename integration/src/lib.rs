//! End-to-end suites (`tests/e2e`), the `demo` binary behind `make demo` and
//! the `bench` harness behind `make bench`. Shared helpers live in the
//! `test-support` crate.

pub mod bench;
