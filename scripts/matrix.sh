#!/usr/bin/env bash
# Runs the end-to-end tiers against every other containerd x runsc pair a
# Debian 12 user can have (fetched by scripts/versions.sh into a cache, never
# installed): the whole e2e and CRI tiers with runsc 0.0~20240729 on the
# system containerd, and a smoke subset on containerd 1.7 and 2.1 with
# either runsc, plus the client tier (Docker's and an agent service's gRPC
# sequences) on each. The system pair (containerd 1.6, runsc 0.0~20221219)
# gets the full tiers from `make integration`. With direct sandbox control
# forced off (every call through the runsc CLI), the e2e tier runs once more
# on each runsc with containerd 1.6, and the client tier with runsc
# 0.0~20221219. Prints a table; fails if any did.
#
# Usage: scripts/matrix.sh SHIM_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
shim_dir=$(cd "$1" && pwd)

declare -A dir
while read -r name d; do dir[$name]=$d; done < <(./scripts/versions.sh)

smoke=(run:: exec:: events::run_and_exec pod::two_containers snapshot:: network:: faults::ids_that_prefix direct::)
results=()
failed=0

run() {
  local label=$1 path=$2
  shift 2
  echo "matrix: $label"
  # Bounded (ROW_LIMIT seconds), so a hang fails its row, not the CI run.
  if PATH="$path$PATH" RUNSC_SHIM_DIR="$shim_dir" timeout -k 30 "${ROW_LIMIT:-900}" \
    cargo test --locked -q -p integration "$@"; then
    results+=("ok      $label")
  else
    results+=("FAILED  $label")
    failed=1
  fi
}

run "containerd 1.6 + runsc 2024: e2e, CRI and client tiers" "${dir[runsc-2024]}:" \
  --no-fail-fast --test e2e --test cri --test clients -- --test-threads=2
# The tests that count runsc processes are about the direct path itself.
RUNSC_SHIM_SANDBOX_CONTROL=cli run "containerd 1.6 + runsc 2022, sandbox control through the CLI: e2e and client tiers" "" \
  --no-fail-fast --test e2e --test clients -- --test-threads=2 \
  --skip direct::calls_on_a_running_sandbox --skip direct::a_pod_member_keeps_no_runsc
RUNSC_SHIM_SANDBOX_CONTROL=cli run "containerd 1.6 + runsc 2024, sandbox control through the CLI: e2e tier" "${dir[runsc-2024]}:" \
  --no-fail-fast --test e2e -- --test-threads=2 \
  --skip direct::calls_on_a_running_sandbox --skip direct::a_pod_member_keeps_no_runsc
for ct in containerd-1.7 containerd-2.1; do
  for rs in runsc-2022 runsc-2024; do
    path="${dir[$ct]}:"
    [ "$rs" = runsc-2024 ] && path="${dir[$ct]}:${dir[runsc-2024]}:"
    run "${ct/-/ } + ${rs/-/ }: e2e smoke" "$path" --test e2e -- --test-threads=2 "${smoke[@]}"
    run "${ct/-/ } + ${rs/-/ }: client tier" "$path" --test clients -- --test-threads=2
  done
done

echo
echo "version matrix (containerd $(containerd --version | awk '{print $3}') + runsc $(runsc --version | head -1 | awk '{print $3}') ran the full tiers in make integration):"
printf '  %s\n' "${results[@]}"
exit "$failed"
