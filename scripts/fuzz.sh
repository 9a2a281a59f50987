#!/usr/bin/env bash
# Runs edge-node's cargo-fuzz targets (fuzz/) and prints executions and findings per target.
#
#   scripts/fuzz.sh [--runs N | --time SECONDS] [--minimize] [--node] [TARGET...]
#
# --runs N      executions per target (default 10000000, issue 13's figure)
# --time S      seconds per target instead (libFuzzer -max_total_time)
# --minimize    merge each corpus down to the inputs that add coverage afterwards (cargo fuzz cmin)
# --node        also run node_config, which links edge-node (wgpu, gstreamer, ort: a long build)
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New coverage lands in
# fuzz/corpus/<target>/ (kept in git); a crash is written to fuzz/artifacts/<target>/ and makes
# the script exit 1: copy the reproducer into fuzz/corpus/<target>/ once fixed, so that
# `cargo test --manifest-path fuzz/Cargo.toml --lib` (stable) keeps replaying it.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
runs=10000000
time_s=""
minimize=0
node=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --time) time_s="$2"; shift 2 ;;
    --minimize) minimize=1; shift ;;
    --node) node=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  targets=(annexb sei viewer_control url_query zoom jwt campaign_toml campaign_yaml
           mec_user_list mec_subscription mec_notification hang_catalog hang_frame
           http_request_head)
  [ "$node" = 1 ] && targets+=(node_config)
fi
features=()
for t in "${targets[@]}"; do
  [ "$t" = node_config ] && features=(--features node)
done

limit=(-runs="$runs")
[ -n "$time_s" ] && limit=(-max_total_time="$time_s")
logs=$(mktemp -d)
status=0
rows=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  start=$(date +%s)
  # -max_len 65536: campaign and config files are longer than libFuzzer's 4 KiB default.
  if cargo +nightly fuzz run "${features[@]}" "$t" "corpus/$t" -- \
      "${limit[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$logs/$t.log" 2>&1; then
    result="ok"
  else
    result="CRASH (see fuzz/artifacts/$t/, log $logs/$t.log)"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  if [ -z "$execs" ]; then
    execs=$(grep -o '^#[0-9]*' "$logs/$t.log" | tail -1 | tr -d '#')
  fi
  if [ "$minimize" = 1 ] && [ "$result" = ok ]; then
    cargo +nightly fuzz cmin "${features[@]}" "$t" "corpus/$t" -- -max_len=65536 >>"$logs/$t.log" 2>&1 || true
  fi
  rows+=("$(printf '%-18s %12s %8ss %6s  %s' "$t" "${execs:-?}" "$(( $(date +%s) - start ))" \
    "$(find "corpus/$t" -type f | wc -l)" "$result")")
done

printf '%-18s %12s %9s %6s  %s\n' target executions time corpus result
printf '%s\n' "${rows[@]}"
exit $status
