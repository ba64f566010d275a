#!/usr/bin/env bash
# Runs busybox under gVisor through our shim in a private containerd
# (`demo`), or a CRI pod serving HTTP on its pod IP (`demo_pod`).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUNSC_SHIM_DIR="$(realpath "${1:-target/release}")"
cargo run --locked --release -q -p integration --bin "${2:-demo}"
