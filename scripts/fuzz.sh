#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (libFuzzer, release with debug
# assertions, so an overflow is a finding) for SECONDS each, one after the
# other. The checked-in seeds in fuzz/corpus/<target> are read, never
# written: what libFuzzer keeps goes to the cache below and carries over
# from run to run on this machine. A finding (panic, hang past 10 s, more
# than 2 GiB) stops its target; its input is left in
# target/fuzz/artifacts/<target>/ and the script fails, naming it.
# Installs cargo-fuzz (a pinned version, from crates.io) and keeps its build
# in a cache that outlives clones (the whole dependency tree instrumented
# takes minutes; our crates alone rebuild in one). Builds on the nightly
# toolchain when rustup has one, else on stable with RUSTC_BOOTSTRAP
# (cargo-fuzz passes -Z flags). No AddressSanitizer: the parsers are safe
# Rust, and it would double the build and halve the runs.
#
# Usage: scripts/fuzz.sh SECONDS [TARGET...]   (default: every target)
#   RUNSC_SHIM_CACHE: the cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/runsc-shim)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift

version=0.13.2
cache=${RUNSC_SHIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/runsc-shim}
tools="$cache/tools/cargo-fuzz-$version"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  mkdir -p "$cache/tools"
  exec 9>"$tools.lock"
  flock 9
  [ -x "$tools/bin/cargo-fuzz" ] ||
    cargo install -q --locked --root "$tools" cargo-fuzz --version "$version"
  exec 9>&-
fi
export PATH="$tools/bin:$PATH"

toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi

out=$PWD/target/fuzz
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
build=(--release --debug-assertions --sanitizer none --target-dir "$cache/fuzz/build")

cd fuzz
mkdir -p "$out"
start=$SECONDS
cargo "${toolchain[@]}" fuzz build "${build[@]}" >"$out/build.log" 2>&1 || {
  tail -40 "$out/build.log"
  exit 1
}
echo "fuzz: targets built in $((SECONDS - start)) s"

failed=()
total_runs=0
for t in "${targets[@]}"; do
  corpus=$cache/fuzz/corpus/$t artifacts=$out/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  log=$out/$t.log
  start=$SECONDS
  if cargo "${toolchain[@]}" fuzz run "${build[@]}" "$t" "$corpus" "corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
      -max_len=65536 -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$t: $(ls -t "$artifacts" | head -1 | sed "s|^|$artifacts/|") (log $log)")
  fi
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  total_runs=$((total_runs + ${runs:-0}))
  printf 'fuzz %-20s %-6s %4s s  %9s runs  coverage %5s  corpus %5s inputs\n' \
    "$t" "$status" $((SECONDS - start)) "${runs:-?}" "${cov:-?}" "$(ls "$corpus" | wc -l)"
done
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, $total_runs runs in all"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'fuzz: finding in %s\n' "${failed[@]}"
  exit 1
fi
