#!/usr/bin/env bash
# The Docker tier: Debian 13's Docker Engine 26.1.5 (dockerd, CLI,
# docker-proxy, tini as docker-init) with its containerd 1.7, our shim from
# SHIM_DIR as the runtime `runsc`, runsc 0.0~20240729; all fetched by
# scripts/versions.sh into caches, never installed. Each test starts a
# private dockerd (its own bridge, no iptables changes) and runs its
# commands with --runtime runsc and, as the control, --runtime runc.
# Prints the tier's time; extra arguments go to the test harness (a filter
# such as `network::` or `runsc`, `--skip NAME`).
#
# Usage: scripts/docker-tier.sh SHIM_DIR [TEST-HARNESS-ARGS...]
#   DOCKER_TIER_LIMIT: seconds the whole tier may take (default 900)
#   DOCKER_TIER_RUNSC: runsc-2024 (default) or runsc-2022 (Debian 12's /usr/bin/runsc)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/docker-tier.sh SHIM_DIR [TEST-HARNESS-ARGS...]" >&2; exit 2; }
shim_dir=$(cd "$1" && pwd)
shift
[ -x "$shim_dir/containerd-shim-runsc-v1" ] || { echo "docker tier: no containerd-shim-runsc-v1 in $shim_dir" >&2; exit 2; }

declare -A dir
while read -r name d; do dir[$name]=$d; done < <(./scripts/versions.sh)
dir[runsc-2022]=$(dirname "$(command -v runsc)")
runsc=${DOCKER_TIER_RUNSC:-runsc-2024}
for n in docker-26 containerd-1.7 "$runsc"; do
  [ -n "${dir[$n]:-}" ] || { echo "docker tier: scripts/versions.sh gave no $n" >&2; exit 1; }
done

start=$SECONDS
status=0
# dockerd starts the first `containerd` on its PATH (the tests put the
# shim's directory before all of these) and runs the first `runsc`;
# Docker's directory still comes before the system's (a `docker` elsewhere
# is another release). Two tests at a time: each has its own dockerd,
# bridge and subnets.
PATH="${dir[containerd-1.7]}:${dir[$runsc]}:${dir[docker-26]}:$PATH" RUNSC_SHIM_DIR="$shim_dir" \
  timeout -k 30 "${DOCKER_TIER_LIMIT:-900}" \
  cargo test --locked -p integration --features docker-tier --test docker -- --test-threads=2 "$@" || status=$?
echo "docker tier ($runsc): $((SECONDS - start)) s, $([ "$status" = 0 ] && echo passed || echo "FAILED ($status)")"
exit "$status"
