# Everything at once under faults (issue 27): scripts/chaos.sh runs the
# load, the key operations and the random faults on its own cluster for
# APG_PQ_CHAOS_SECONDS (default 180), then checks its invariants; its
# output is shown here. Campaigns: scripts/chaos.sh --seconds 3600.
# checks: 2
chaos_out=$(APG_PQ_CHAOS_PORT=$port_chaos "$root/scripts/chaos.sh" --seconds "${APG_PQ_CHAOS_SECONDS:-180}" 2>&1)
chaos_rc=$?
echo "$chaos_out" | grep -E '^(held|BROKEN|#|chaos:)' | sed 's/^\([^#]\)/# \1/'
check "scripts/chaos.sh exits 0: every invariant held" "0" "$chaos_rc"
check_contains "its last line sums up and says all held" "invariants checked: all held" "$(echo "$chaos_out" | tail -1)"
