#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, one after another,
# starting from the committed seeds; prints libFuzzer's last status line.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
for target in $(ls fuzz_targets | sed 's/\.rs$//'); do
  mkdir -p "corpus/$target"
  cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=4096 >"logs-$target.txt" 2>&1 || { echo "$target: FAILED (see fuzz/logs-$target.txt)"; continue; }
  echo "$target: $(grep -E '^#[0-9]+' "logs-$target.txt" | tail -1)"
done
