# Monitoring with Prometheus: Debian's prometheus-postgres-exporter, on
# 127.0.0.1, with docs/monitoring/postgres_exporter.yml against a real
# cluster; /metrics is scraped over HTTP and each metric of the
# configuration is found with the value the workload makes plausible (exact
# counts where the workload fixes them). The exporter logs in as a role
# that is only in pq_monitor, which may administer nothing. The Grafana
# dashboard uses only metrics the configuration defines. The exporter is
# stopped at the end.
# checks: 14
dir="$base/monitoring"
port=$port_monitoring
exporter_port=$((port_monitoring + 1))
exporter=/usr/bin/prometheus-postgres-exporter
config="$root/docs/monitoring/postgres_exporter.yml"
cluster_start "$dir" "$port" "${quiet[@]}" "apg_pqcrypto.worker_naptime = 3600" || return 1
q "$port" -c "CREATE EXTENSION apg_pqcrypto" -c "SELECT pq.create_tenant('acme')" \
  -c "SELECT pq.rotate_tenant_key('acme', 'monitoring')" \
  -c "CREATE TABLE cfg (id int PRIMARY KEY, v bytea)" \
  -c "INSERT INTO cfg SELECT i, pq_encrypt('acme', 'value ' || i, i::text) FROM generate_series(1, 40) i" \
  -c "SELECT pq.track_column('cfg', 'v', 'acme')" -c "SELECT pq.audit_checkpoint()" \
  -c "CREATE ROLE exporter LOGIN IN ROLE pq_monitor" -c "GRANT SELECT ON cfg TO exporter" >/dev/null
q "$port" -c "SELECT pq.stat_reset()" -c "SELECT count(pq_decrypt_text(v, id::text)) FROM cfg" >/dev/null
for i in 1 2 3; do q "$port" -c "SELECT pq_decrypt_text(v, 'wrong') FROM cfg WHERE id = $i" >/dev/null; done
# A job that stays paused (queued and paused in one transaction), and the counters flushed.
q "$port" -c "BEGIN" -c "SELECT pq.pause_job(pq.reencrypt('cfg', 'v'))" -c "COMMIT" -c "SELECT pq.flush_counters()" >/dev/null
check "the exporter's configuration dumps as valid maps" "0" "$(code "$exporter" --extend.query-path="$config" --dumpmaps)"

check "the exporter's role may not reset statistics, shred a tenant, read the key tables or decrypt" "42501|42501|42501|42501" \
  "$(sqlstate "$port" "SELECT pq.stat_reset()" exporter)|$(sqlstate "$port" "SELECT pq.shred_tenant('acme', 'acme')" exporter)|$(sqlstate "$port" "SELECT count(*) FROM pq.tenant_key_versions" exporter)|$(sqlstate "$port" "SELECT pq_decrypt_text(v, id::text) FROM cfg" exporter)"
DATA_SOURCE_NAME="postgresql://exporter@127.0.0.1:$port/postgres?sslmode=disable" \
  "$exporter" --web.listen-address="127.0.0.1:$exporter_port" --extend.query-path="$config" \
  --disable-default-metrics --disable-settings-metrics --log.level=warn >"$base/exporter.log" 2>&1 &
exporter_pid=$!
metrics=""
for _ in $(seq 1 50); do
  metrics=$(curl -s "http://127.0.0.1:$exporter_port/metrics" 2>/dev/null) && [[ "$metrics" == *pq_provider_up* ]] && break
  sleep 0.2
done
echo "$metrics" >"$base/metrics.txt"
# value METRIC [LABEL=VALUE...]: the value of the sample with those labels ("" if absent).
value() {
  local lines m=$1; shift
  lines=$(echo "$metrics" | grep -E "^$m\{")
  for l in "$@"; do lines=$(echo "$lines" | grep -F "$l"); done
  echo "$lines" | head -1 | awk '{print $NF}'
}
check "decrypt calls of acme: exactly the 40 that succeeded" "40" "$(value pq_latency_calls 'operation="decrypt"' 'tenant="acme"')"
check "decrypt latency: 0 < p50 <= p99 <= max, milliseconds under a second" "t" \
  "$(awk -v a="$(value pq_latency_p50_ms 'operation="decrypt"' 'tenant="acme"')" -v b="$(value pq_latency_p99_ms 'operation="decrypt"' 'tenant="acme"')" \
        -v c="$(value pq_latency_max_ms 'operation="decrypt"' 'tenant="acme"')" 'BEGIN { print (a > 0 && a <= b && b <= c && c < 1000) ? "t" : "f" }')"
check "key unwraps and provider calls were timed" "t|t" \
  "$([ "$(value pq_latency_calls 'operation="key_unwrap"' 'tenant="acme"')" -ge 1 ] 2>/dev/null && echo t)|$(echo "$metrics" | grep -q '^pq_latency_calls{.*operation="provider_call"' && echo t)"
check "the key cache: 43 lookups of acme (40 decryptions, 3 failed), hits among them" "43|t" \
  "$(( $(value pq_cache_hits 'tenant="acme"') + $(value pq_cache_misses 'tenant="acme"') ))|$([ "$(value pq_cache_hits 'tenant="acme"')" -gt 30 ] && echo t)"
check "failed decryptions of acme: the 3 made" "3" "$(value pq_security_events 'kind="failed_decrypt"' 'tenant="acme"')"
check "the active key: version 2, activated seconds ago" "2|t" \
  "$(value pq_key_version 'tenant="acme"')|$(awk -v a="$(value pq_key_age_seconds 'tenant="acme"')" 'BEGIN { print (a >= 0 && a < 600) ? "t" : "f" }')"
check "the paused job, none of its rows done yet" "1|0" \
  "$(echo "$metrics" | grep -c '^pq_job_rows_done{.*kind="reencrypt".*state="paused"')|$(value pq_job_rows_done 'state="paused"')"
check "the audit chain verifies, with a checkpoint" "1|t" \
  "$(value pq_audit_chain_ok)|$(awk -v a="$(value pq_audit_chain_checkpoint_age_seconds)" 'BEGIN { print (a >= 0) ? "t" : "f" }')"
check "the master key provider answers" "1" "$(value pq_provider_up 'provider="file"')"
check "every metric the configuration defines is exported" "" \
  "$(python3 - "$config" "$base/metrics.txt" <<'PY'
import re, sys
config, scraped = open(sys.argv[1]).read(), open(sys.argv[2]).read()
defined = {q.group(1) + "_" + c
           for q in re.finditer(r"^(\w+):\n(?:.*\n)*?  metrics:\n((?:    .*\n)+)", config, re.M)
           for c in re.findall(r"^    - (\w+):\n        usage: \"(?:COUNTER|GAUGE)\"", q.group(2), re.M)}
missing = sorted(m for m in defined if not re.search(r"^" + m + r"\{", scraped, re.M))
print(" ".join(missing) if len(defined) > 20 else "only %d metrics defined" % len(defined))
PY
)"
check "the exporter logged no error running the queries" "" "$(grep -i 'error' "$base/exporter.log" | head -3)"
kill "$exporter_pid" 2>/dev/null; wait "$exporter_pid" 2>/dev/null
check "every metric of the Grafana dashboard is one the configuration defines" "" \
  "$(python3 - "$config" "$root/docs/monitoring/grafana-dashboard.json" <<'PY'
import json, re, sys
config, dashboard = open(sys.argv[1]).read(), json.load(open(sys.argv[2]))
defined = set()
for query in re.finditer(r"^(\w+):\n(?:.*\n)*?  metrics:\n((?:    .*\n)+)", config, re.M):
    for column in re.findall(r"^    - (\w+):\n        usage: \"(?:COUNTER|GAUGE)\"", query.group(2), re.M):
        defined.add(query.group(1) + "_" + column)
used = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"\bpq_\w+", t["expr"])}
print(" ".join(sorted(used - defined)) if defined else "no metric defined")
PY
)"
cluster_stop "$dir"
