#!/usr/bin/env bash
# Runs the end-to-end tiers against the other containerd x runsc pairs users
# run (fetched or built by scripts/versions.sh into caches, never
# installed). `make integration` ran every tier on containerd 2.3 (the LTS)
# with runsc 0.0~20240729; here:
#   - containerd 2.3 + runsc 0.0~20221219: the e2e, CRI and client tiers;
#   - containerd 2.3 with direct sandbox control forced off (every call
#     through the runsc CLI): the e2e tier on each runsc, the client tier
#     with runsc 0.0~20221219;
#   - containerd 2.4 (current) + runsc 0.0~20240729: the e2e, CRI and
#     client tiers (`make integration`'s install tier runs its documented
#     config too);
#   - containerd 2.0 (LTS), 2.4 and 1.7 (Debian 13's), each with either
#     runsc (but 2.4's full row): an e2e smoke subset, a CRI pod, and the
#     client tier;
#   - containerd 1.6 (Debian 12's) and 2.1: the e2e smoke subset.
# Prints each row's time and a table; fails if any row did.
#
# Usage: scripts/matrix.sh SHIM_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
shim_dir=$(cd "$1" && pwd)

declare -A dir
while read -r name d; do dir[$name]=$d; done < <(./scripts/versions.sh)
dir[containerd-1.6]=$(dirname "$(command -v containerd)")
dir[runsc-2022]=$(dirname "$(command -v runsc)")

smoke=(run:: exec:: events::run_and_exec pod::two_containers snapshot:: network:: faults::ids_that_prefix direct::)
# One CRI pod with two members (and how many shim starts it took).
cri_smoke=(shims::)
results=()
failed=0

# row LABEL CONTAINERD RUNSC CARGO-TEST-ARGS...
row() {
  local label=$1 ct=$2 rs=$3
  shift 3
  echo "matrix: $label"
  local start=$SECONDS status=ok
  # Bounded (ROW_LIMIT seconds), so a hang fails its row, not the CI run.
  if ! PATH="${dir[$ct]}:${dir[$rs]}:$PATH" RUNSC_SHIM_DIR="$shim_dir" \
    CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1 timeout -k 30 "${ROW_LIMIT:-900}" \
    cargo test --locked -q -p integration "$@"; then
    status=FAILED
    failed=1
  fi
  results+=("$(printf '%-7s %4ss  %s' "$status" $((SECONDS - start)) "$label")")
}

row "containerd 2.3 + runsc 2022: e2e, CRI and client tiers" containerd-2.3 runsc-2022 \
  --no-fail-fast --test e2e --test cri --test clients -- --test-threads=2
# The tests that count runsc processes are about the direct path itself.
skip_direct=(--skip direct::calls_on_a_running_sandbox --skip direct::a_pod_member_keeps_no_runsc)
RUNSC_SHIM_SANDBOX_CONTROL=cli row "containerd 2.3 + runsc 2022, sandbox control through the CLI: e2e and client tiers" \
  containerd-2.3 runsc-2022 --no-fail-fast --test e2e --test clients -- --test-threads=2 "${skip_direct[@]}"
RUNSC_SHIM_SANDBOX_CONTROL=cli row "containerd 2.3 + runsc 2024, sandbox control through the CLI: e2e tier" \
  containerd-2.3 runsc-2024 --no-fail-fast --test e2e -- --test-threads=2 "${skip_direct[@]}"
row "containerd 2.4 + runsc 2024: e2e, CRI and client tiers" containerd-2.4 runsc-2024 \
  --no-fail-fast --test e2e --test cri --test clients -- --test-threads=2
for ct in containerd-2.0 containerd-2.4 containerd-1.7; do
  for rs in runsc-2022 runsc-2024; do
    [ "$ct $rs" = "containerd-2.4 runsc-2024" ] && continue
    name="${ct/-/ } + ${rs/-/ }"
    row "$name: e2e smoke" "$ct" "$rs" --test e2e -- --test-threads=2 "${smoke[@]}"
    row "$name: CRI pod" "$ct" "$rs" --test cri -- --test-threads=2 "${cri_smoke[@]}"
    row "$name: client tier" "$ct" "$rs" --test clients -- --test-threads=2
  done
done
row "containerd 1.6 + runsc 2022: e2e smoke" containerd-1.6 runsc-2022 --test e2e -- --test-threads=2 "${smoke[@]}"
row "containerd 2.1 + runsc 2024: e2e smoke" containerd-2.1 runsc-2024 --test e2e -- --test-threads=2 "${smoke[@]}"

echo
echo "version matrix (make integration ran every tier on containerd 2.3 + runsc 2024):"
printf '  %s\n' "${results[@]}"
exit "$failed"
