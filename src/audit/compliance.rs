//! `pq.compliance_report(tenant, period_days)`: one jsonb document built
//! from the tables the rest of the extension keeps (counts, lifecycle
//! events, grants, policies, classical ciphertexts, the audit chain).
//! Never a value or a key: names, counts, versions, times.
use crate::{
    audit::checkpoint,
    keys::access,
    lifecycle::tracking,
    migration::column,
    platform::{catalog, errors::PqResult, gucs},
};
use pgrx::prelude::*;
use serde_json::{json, Value};

/// Everything but the two checks done in Rust, in one query ($1 tenant, $2 days).
const REPORT_SQL: &str = "
WITH period AS (SELECT now() - pg_catalog.make_interval(days => $2) AS since, now() AS until),
usage AS (
    SELECT operation, role_name, sum(count)::bigint AS n FROM pq.usage_counts, period
     WHERE tenant = $1 AND minute >= period.since GROUP BY operation, role_name),
security AS (
    SELECT kind, role_name, minute, count, alerted FROM pq.security_counts, period
     WHERE tenant = $1 AND minute >= period.since)
SELECT jsonb_build_object(
  'period', (SELECT jsonb_build_object('days', $2, 'from', since, 'to', until) FROM period),
  'encryption_stats', jsonb_build_object(
      'encrypt', (SELECT coalesce(sum(n), 0) FROM usage WHERE operation = 'encrypt'),
      'decrypt', (SELECT coalesce(sum(n), 0) FROM usage WHERE operation = 'decrypt'),
      'sign', (SELECT coalesce(sum(n), 0) FROM usage WHERE operation = 'sign'),
      'verify', (SELECT coalesce(sum(n), 0) FROM usage WHERE operation = 'verify'),
      'config_changes', (SELECT count(*) FROM pq.config_records, period WHERE tenant = $1 AND ts >= period.since),
      'config_keys', (SELECT count(DISTINCT key) FROM pq.config_records WHERE tenant = $1)),
  'key_rotation_events', (
      SELECT coalesce(jsonb_agg(jsonb_build_object('at', at, 'event', event, 'version', version, 'actor', actor,
                                                   'reason', reason) ORDER BY id), '[]')
        FROM pq.key_events, period
       WHERE tenant = $1 AND at >= period.since
         AND event IN ('tenant_created', 'key_rotated', 'version_disabled', 'version_enabled', 'version_destroyed',
                       'policy_set', 'rotation_notified', 'master_key_rotated', 'tenant_shredded')),
  'access_patterns', jsonb_build_object(
      'by_role', (SELECT coalesce(jsonb_agg(jsonb_build_object('role', role_name, 'operation', operation, 'count', n)
                                           ORDER BY role_name, operation), '[]') FROM usage WHERE role_name <> ''),
      'granted_roles', (SELECT coalesce(jsonb_agg(role_name::text ORDER BY role_name), '[]')
                          FROM pq.tenant_grants WHERE tenant = $1)),
  'security_incidents', jsonb_build_object(
      'failed_decrypts', (SELECT coalesce(sum(count), 0) FROM security WHERE kind = 'failed_decrypt'),
      'failed_verifies', (SELECT coalesce(sum(count), 0) FROM security WHERE kind = 'failed_verify'),
      'unusual_access_minutes', (SELECT count(*) FROM security WHERE kind = 'unusual_access'),
      'alerts', (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('minute', minute)), '[]')
                   FROM security WHERE alerted)),
  'compliance_status', jsonb_build_object(
      'keys_past_max_age', (
          SELECT coalesce(jsonb_agg(v.version ORDER BY v.version), '[]')
            FROM pq.tenant_key_versions v JOIN pq.tenant_policies p ON p.tenant = v.tenant
           WHERE v.tenant = $1 AND v.state IN ('active', 'retired') AND p.max_key_age IS NOT NULL
             AND v.activated_at + pg_catalog.make_interval(secs => p.max_key_age) < now()),
      'key_versions', (SELECT jsonb_object_agg(state, n) FROM (SELECT state, count(*) AS n FROM pq.tenant_key_versions
                                                             WHERE tenant = $1 GROUP BY state) s),
      'algorithms_in_use', (SELECT coalesce(jsonb_agg(DISTINCT CASE length(public_key) WHEN 1216 THEN 'X-Wing'
                                  WHEN 1568 THEN 'ML-KEM-1024' ELSE 'ML-KEM-768' END), '[]')
                              FROM pq.tenant_key_versions WHERE tenant = $1 AND state <> 'destroyed')
          || (SELECT coalesce(jsonb_agg(DISTINCT CASE length(verifying_key) WHEN 2592 THEN 'ML-DSA-87' ELSE 'ML-DSA-65' END), '[]')
                FROM pq.tenant_key_versions WHERE tenant = $1 AND state <> 'destroyed')
          || jsonb_build_array('ChaCha20-Poly1305', 'HKDF-SHA256')
          || CASE WHEN EXISTS (SELECT 1 FROM pq.classical_keys WHERE tenant = $1)
                  THEN (SELECT jsonb_agg(DISTINCT 'pgcrypto ' || kind) FROM pq.classical_keys WHERE tenant = $1)
                  ELSE '[]'::jsonb END,
      'migration', coalesce((SELECT status FROM pq.tenant_migrations WHERE tenant = $1), 'not_started'),
      'policy', (SELECT to_jsonb(p) - 'tenant' FROM pq.tenant_policies p WHERE p.tenant = $1),
      'required_suite', (SELECT to_jsonb(p)->'require_suite' FROM pq.tenant_policies p WHERE p.tenant = $1),
      'versions_outside_required_suite', (
          SELECT coalesce(jsonb_agg(jsonb_build_object('version', v.version, 'state', v.state,
                     'kem', CASE length(v.public_key) WHEN 1216 THEN 'x-wing' WHEN 1568 THEN 'ml-kem-1024' ELSE 'ml-kem-768' END,
                     'signature', CASE length(v.verifying_key) WHEN 2592 THEN 'ml-dsa-87' ELSE 'ml-dsa-65' END)
                     ORDER BY v.version), '[]')
            FROM pq.tenant_key_versions v JOIN pq.tenant_policies p ON p.tenant = v.tenant
           WHERE v.tenant = $1 AND v.state <> 'destroyed' AND (to_jsonb(p)->>'require_suite') = 'cnsa2'
             AND (length(v.public_key) <> 1568 OR length(v.verifying_key) <> 2592))))";

fn report(tenant: &str, period_days: i32) -> PqResult<Value> {
    crate::platform::roles::require_admin("read compliance reports")?;
    access::require_visible(tenant)?;
    if !(1..=36_500).contains(&period_days) {
        return Err(crate::platform::errors::PqError::InvalidParameter("period_days must be between 1 and 36500".into()));
    }
    let classical: i64 = column::counts(Some(tenant))?.iter().map(|r| r.3).sum();
    catalog::as_owner(|| {
        let mut out = catalog::one::<pgrx::JsonB>(REPORT_SQL, &[tenant.into(), period_days.into()])?
            .map(|j| j.0)
            .unwrap_or_else(|| json!({}));
        let chain = checkpoint::verify_chain()?;
        out["tenant"] = json!(tenant);
        out["generated_at_unix_micros"] = json!(crate::platform::clock::now_unix_micros());
        out["encryption_stats"]["audit_level"] = json!(format!("{:?}", gucs::audit_level()).to_lowercase());
        let status = &mut out["compliance_status"];
        status["ciphertexts_under_classical_crypto"] = json!(classical);
        // Ciphertexts in tracked columns under versions the required suite
        // does not cover (each tracked column is scanned).
        let outside: Vec<Vec<u8>> = catalog::rows(
            "SELECT v.kid FROM pq.tenant_key_versions v JOIN pq.tenant_policies p ON p.tenant = v.tenant
              WHERE v.tenant = $1 AND v.state <> 'destroyed' AND (to_jsonb(p)->>'require_suite') = 'cnsa2'
                AND (length(v.public_key) <> 1568 OR length(v.verifying_key) <> 2592)",
            &[tenant.into()],
            |row| Ok(row.get::<Vec<u8>>(1)?.unwrap_or_default()),
        )?;
        let (count, columns) = if outside.is_empty() { (0, 0) } else { tracking::usage_of(tenant, &outside)? };
        status["ciphertexts_outside_required_suite"] = json!({ "ciphertexts": count, "columns": columns });
        status["audit_chain_verified"] = json!(chain.ok);
        status["audit_rows_checked"] = json!(chain.rows_checked);
        if let Some(problem) = chain.problem {
            status["audit_chain_problem"] = json!(problem);
        }
        status["last_checkpoint"] = match checkpoint::seconds_since_checkpoint()? {
            Some(secs) => json!({ "seconds_ago": secs.round() }),
            None => Value::Null,
        };
        Ok(out)
    })
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// A compliance report of one tenant over the last `period_days` days.
    #[pg_extern(stable, strict, parallel_restricted)]
    pub fn compliance_report(tenant: &str, period_days: default!(i32, 30)) -> pgrx::JsonB {
        pgrx::JsonB(report(tenant, period_days).or_raise())
    }
}
