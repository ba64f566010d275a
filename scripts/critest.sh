#!/usr/bin/env bash
# The critest tier: cri-tools' critest (v1.37.0) against containerd 2.3's CRI
# plugin with handler `runsc` = our shim from SHIM_DIR, runsc 0.0~20240729,
# pods on a private CNI bridge with gVisor's network stack in their
# namespace, images built locally and pulled from a registry on 127.0.0.1.
# Fails on any failure not in integration/critest/expected-failures.txt
# (specs that fail for gVisor's reasons) and on anything left behind; prints
# the pass/fail counts. critest's JSON report and log go to target/critest.
#
# Usage: scripts/critest.sh SHIM_DIR [--focus REGEX] [--limit SECONDS] [--handler runsc|runc]
#   CRITEST_TIER_LIMIT: seconds the whole tier may take (default 720)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/critest.sh SHIM_DIR [--focus REGEX] [--limit SECONDS]" >&2; exit 2; }
shim_dir=$(cd "$1" && pwd)
shift
[ -x "$shim_dir/containerd-shim-runsc-v1" ] || { echo "critest: no containerd-shim-runsc-v1 in $shim_dir" >&2; exit 2; }

declare -A dir
while read -r name d; do dir[$name]=$d; done < <(./scripts/versions.sh)
for n in containerd-2.3 runsc-2024 cri-tools busybox-dynamic; do
  [ -n "${dir[$n]:-}" ] || { echo "critest: scripts/versions.sh gave no $n" >&2; exit 1; }
done

cargo build --locked -q -p integration --bin critest
bin=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/critest

# --foreground: a timeout signals the tier alone, which then interrupts
# critest and tears down what it started (containerd, pods, network).
PATH="${dir[containerd-2.3]}:${dir[runsc-2024]}:$PATH" RUNSC_SHIM_DIR="$shim_dir" \
  CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 \
  CRITEST_DYNAMIC_BUSYBOX="${dir[busybox-dynamic]}/busybox" \
  timeout --foreground -k 60 "${CRITEST_TIER_LIMIT:-720}" \
  "$bin" --critest "${dir[cri-tools]}/critest" --out target/critest "$@"
