-- CNSA 2.0 suites (0.11.0): ML-KEM-1024 and ML-DSA-87 tenants, a suite
-- change by rotation, raw keys of every suite. docs/FORMAT.md §3.4, §5.

-- Every suite this build serves.
SELECT name, kind, standard, category, cnsa2, public_key_bytes, secret_key_bytes, output_bytes, envelope_bytes, envelope_kinds
  FROM pq_algorithms() ORDER BY kind, name;
SELECT count(*) FILTER (WHERE backend LIKE '%ml-kem%' OR backend LIKE '%ml-dsa%') AS with_backend FROM pq_algorithms();

-- A CNSA 2.0 tenant.
SELECT tenant, version, length(kid) FROM pq.create_tenant('cnsa', kem => 'ml-kem-1024', signature => 'ml-dsa-87');
SELECT try($$ SELECT pq.create_tenant('bad-sig', signature => 'ml-dsa-44') $$);
SELECT try($$ SELECT pq.create_tenant('bad-sig', kem => 'ML-KEM-1024') $$);
SELECT count(*) AS created FROM pq.tenants WHERE name = 'bad-sig';
SELECT name, kem, signature FROM pq.tenants WHERE name = 'cnsa';
SELECT version, kem, signature, length(public_key) AS pk, length(verifying_key) AS vk
  FROM pq.tenant_keys WHERE tenant = 'cnsa';
SELECT substr(sealed_dek, 2, 1) AS dek_kind FROM pq.tenant_key_versions WHERE tenant = 'cnsa';
SELECT pq.grant_tenant('cnsa', 'regress_app_a');
SET ROLE regress_app_a;
-- Sealed ('L'), keyed ('K', unchanged: the DEK is suite-independent), signed ('H').
SELECT substr(e, 2, 1) AS kind, length(e) - 1614 AS plaintext_len, pq_unseal_text(e, 'api_key') AS opened
  FROM pq_seal(pq.tenant_public_key('cnsa'), 'cnsa secret', 'api_key') e;
SELECT pq_inspect(pq_seal(pq.tenant_public_key('cnsa'), 'x', 'k')) - 'kid' AS inspect_l;
SELECT pq_decrypt_text(pq_encrypt('cnsa', 'keyed under ML-KEM-1024', 'k'), 'k');
SELECT substr(s, 2, 1) AS kind, length(s), pq_verify('cnsa', 'm', s) AS valid,
       pq_verify('cnsa', 'other', s) AS other_message,
       pq_verify('cnsa', 'm', set_byte(s, 100, get_byte(s, 100) # 1)) AS flipped
  FROM pq_sign('cnsa', 'm') s;
SELECT pq_inspect(pq_sign('cnsa', 'm')) - 'kid' AS inspect_h;
-- A batch of ML-KEM-1024 items ('M').
SELECT ord, substr(item, 2, 1) AS kind, length(item), pq_unseal_text(item, 'r' || ord) AS opened
  FROM unnest(pq_seal_batch(pq.tenant_public_key('cnsa'), ARRAY['one', 'two']::bytea[], ARRAY['r1', 'r2']::bytea[]))
       WITH ORDINALITY AS b(item, ord);
-- Relabelled or truncated envelopes are refused.
SELECT try($$ SELECT pq_unseal(overlay(pq_seal(pq.tenant_public_key('cnsa'), 'x') PLACING 'S' FROM 2 FOR 1)) $$);
SELECT try($$ SELECT pq_unseal(overlay(pq_seal(pq.tenant_public_key('acme'), 'x') PLACING 'L' FROM 2 FOR 1)) $$);
SELECT try($$ SELECT pq_unseal(substr(pq_seal(pq.tenant_public_key('cnsa'), 'x'), 1, 1613)) $$);
SELECT try($$ SELECT pq_verify('cnsa', 'm', overlay(pq_sign('cnsa', 'm') PLACING 'G' FROM 2 FOR 1)) $$);
RESET ROLE;

-- A suite change by rotation: old versions keep their suite and keep
-- decrypting and verifying; the new version and later ones use the new one.
SELECT tenant FROM pq.create_tenant('moving');
CREATE TABLE moving_values AS
SELECT pq_seal(pq.tenant_public_key('moving'), 'sealed under 768', 'row') AS sealed,
       pq_encrypt('moving', 'keyed under v1', 'row') AS keyed,
       pq_sign('moving', 'signed by v1') AS signature;
SELECT substr(sealed, 2, 1) AS sealed_kind, substr(signature, 2, 1) AS signature_kind FROM moving_values;
SELECT try($$ SELECT pq.rotate_tenant_key('moving', 'cnsa', kem => 'kyber-1024') $$);
SELECT try($$ SELECT pq.rotate_tenant_key('moving', 'cnsa', signature => 'ml-dsa-44') $$);
SELECT count(*) AS versions FROM pq.tenant_key_versions WHERE tenant = 'moving';
SELECT new_version FROM pq.rotate_tenant_key('moving', 'to CNSA 2.0', kem => 'ml-kem-1024', signature => 'ml-dsa-87');
SELECT name, kem, signature FROM pq.tenants WHERE name = 'moving';
SELECT pq_unseal_text(sealed, 'row') AS sealed, pq_decrypt_text(keyed, 'row') AS keyed,
       pq_verify('moving', 'signed by v1', signature) AS v1_signature FROM moving_values;
SELECT substr(pq_seal(pq.tenant_public_key('moving'), 'x'), 2, 1) AS new_sealed_kind,
       substr(pq_sign('moving', 'x'), 2, 1) AS new_signature_kind,
       pq_verify('moving', 'x', pq_sign('moving', 'x')) AS v2_signature;
-- pq.rewrap carries an 'S' envelope of version 1 to the active ML-KEM-1024 version.
SELECT substr(r, 2, 1) AS kind, pq_unseal_text(r, 'row') AS opened,
       (pq_inspect(r)->>'key_version')::int AS key_version
  FROM (SELECT pq.rewrap(sealed, 'row') AS r FROM moving_values) w;
-- A rotation without a suite keeps the tenant's; another moves it again.
SELECT new_version FROM pq.rotate_tenant_key('moving', 'scheduled');
SELECT new_version FROM pq.rotate_tenant_key('moving', 'hybrid', kem => 'x-wing');
SELECT version, state, kem, signature FROM pq.tenant_keys WHERE tenant = 'moving' ORDER BY version;
SELECT version, details->'suite_changed_from' AS changed_from, details->>'kem' AS kem, details->>'signature' AS signature
  FROM pq.key_events WHERE tenant = 'moving' AND event = 'key_rotated' ORDER BY id;
SELECT pq_unseal_text(sealed, 'row') AS sealed, pq_decrypt_text(keyed, 'row') AS keyed,
       pq_verify('moving', 'signed by v1', signature) AS v1_signature FROM moving_values;
SELECT count(*) AS checked FROM pq.verify_keys('moving') WHERE problem IS NULL;

-- Raw keys of every suite.
CREATE TABLE raw_keys AS SELECT a, k.* FROM unnest(ARRAY['ml-kem-768', 'ml-kem-1024', 'x-wing', 'ml-dsa-65', 'ml-dsa-87', 'slh-dsa-sha2-128s']) a,
                                              LATERAL pq_generate_keypair(a) k;
SELECT a, length(public_key), length(secret_key), kid = substr(sha256(public_key), 1, 16) AS kid_ok FROM raw_keys ORDER BY a;
SELECT a, substr(e, 2, 1) AS kind, convert_from(pq_open(secret_key, e), 'UTF8') AS opened
  FROM raw_keys, pq_seal(public_key, 'raw ' || a) e WHERE a LIKE 'ml-kem%' OR a = 'x-wing' ORDER BY a;
SELECT a, length(s), pq_verify_with(public_key, 'm', s) AS valid, pq_verify_with(public_key, 'n', s) AS other
  FROM raw_keys, pq_sign_with(secret_key, 'm', '', a) s WHERE a LIKE '%dsa%' ORDER BY a;
-- SLH-DSA (FIPS 205) signatures are raw: hedged, with a context like ML-DSA's.
SELECT pq_verify_with(public_key, 'm', pq_sign_with(secret_key, 'm', 'ctx', 'slh-dsa-sha2-128s'), 'ctx') AS with_context,
       pq_verify_with(public_key, 'm', pq_sign_with(secret_key, 'm', 'ctx', 'slh-dsa-sha2-128s'), 'other') AS other_context,
       pq_sign_with(secret_key, 'm', '', 'slh-dsa-sha2-128s') <> pq_sign_with(secret_key, 'm', '', 'slh-dsa-sha2-128s') AS hedged
  FROM raw_keys WHERE a = 'slh-dsa-sha2-128s';
SELECT try($$ SELECT pq_sign_with(secret_key, 'm', '', 'slh-dsa-sha2-128s') FROM raw_keys WHERE a = 'ml-dsa-65' $$);
-- A 64-byte seed opens an 'L' envelope only as an ML-KEM-1024 key; an
-- ML-DSA-87 seed signs as ML-DSA-65 only when asked to.
SELECT try($$ SELECT pq_open(k.secret_key, pq_seal(l.public_key, 'x'::text)) FROM raw_keys k, raw_keys l
               WHERE k.a = 'ml-kem-768' AND l.a = 'ml-kem-1024' $$);
SELECT try($$ SELECT pq_open(k.secret_key, pq_seal(l.public_key, 'x'::text)) FROM raw_keys k, raw_keys l
               WHERE k.a = 'x-wing' AND l.a = 'ml-kem-1024' $$);
SELECT pq_verify_with(public_key, 'm', pq_sign_with(secret_key, 'm')) AS as_65 FROM raw_keys WHERE a = 'ml-dsa-87';
SELECT try($$ SELECT pq_sign_with(secret_key, 'm', '', 'ml-dsa-44') FROM raw_keys WHERE a = 'ml-dsa-87' $$);
-- Formats not yet defined for ML-KEM-1024 recipients refuse its keys with
-- 22023: escrow custodians (§14.1), key backups (§15), exported blind
-- index keys (§16.5).
SELECT try($$ SELECT pq.escrow_add_custodian('c1024', public_key) FROM raw_keys WHERE a = 'ml-kem-1024' $$) AS custodian,
       try($$ SELECT pq.export_key_backup(recipient_public_key => public_key) FROM raw_keys WHERE a = 'ml-kem-1024' $$) AS backup,
       try($$ SELECT pq.export_index_key('cnsa', 'email', public_key) FROM raw_keys WHERE a = 'ml-kem-1024' $$) AS index_key;
-- ... and ML-DSA-87 keys where a format is defined for ML-DSA-65 only:
-- escrow approvers (§14.2), config signers (§11.3).
SELECT try($$ SELECT pq.escrow_add_approver('a87', public_key) FROM raw_keys WHERE a = 'ml-dsa-87' $$) AS approver,
       try($$ SELECT pq.config_register_signer('cnsa', 's87', public_key) FROM raw_keys WHERE a = 'ml-dsa-87' $$) AS signer;
DROP TABLE raw_keys, moving_values;

-- A policy that requires CNSA 2.0 (require_suite).
SELECT tenant FROM pq.create_tenant('gov');
CREATE TABLE gov_cfg (id int PRIMARY KEY, value bytea);
SELECT pq.track_column('gov_cfg', 'value', tenant => 'gov') > 0 AS tracked;
INSERT INTO gov_cfg SELECT i, pq_encrypt('gov', 'v' || i) FROM generate_series(1, 3) i;
SELECT try($$ SELECT pq.set_policy('gov', '{"require_suite": "fips"}') $$);
SELECT pq.set_policy('gov', '{"require_suite": "cnsa2"}')->'require_suite' AS required;
SELECT tenant, require_suite FROM pq.policies WHERE tenant = 'gov';
-- The active ML-KEM-768 version now encrypts and signs nothing, and no
-- session of its suite begins; it still decrypts and verifies.
SELECT try($$ SELECT pq_encrypt('gov', 'x') $$);
SELECT try($$ SELECT pq_sign('gov', 'x') $$);
SELECT count(*) AS still_decrypting FROM gov_cfg WHERE pq_decrypt_text(value) LIKE 'v%';
-- The compliance report flags the version and counts its ciphertexts.
SELECT r->'compliance_status'->'required_suite' AS required,
       r->'compliance_status'->'versions_outside_required_suite' AS outside,
       r->'compliance_status'->'ciphertexts_outside_required_suite' AS ciphertexts,
       r->'compliance_status'->'algorithms_in_use' AS algorithms
  FROM pq.compliance_report('gov') r;
-- A rotation naming other suites is refused; a suite it does not name
-- comes from the policy (ML-DSA-87 here), and one naming none takes CNSA 2.0.
SELECT try($$ SELECT pq.rotate_tenant_key('gov', 'r', kem => 'x-wing') $$);
SELECT try($$ SELECT pq.rotate_tenant_key('gov', 'r', kem => 'ml-kem-1024') $$);
SELECT new_version FROM pq.rotate_tenant_key('gov', 'to CNSA 2.0');
SELECT version, state, kem, signature FROM pq.tenant_keys WHERE tenant = 'gov' ORDER BY version;
SELECT pq_decrypt_text(pq_encrypt('gov', 'compliant'), '') AS encrypts, substr(pq_sign('gov', 'x'), 2, 1) AS signature_kind;
-- After re-encryption no ciphertext is left outside the required suite ...
UPDATE gov_cfg SET value = pq.rewrap(value);
SELECT r->'compliance_status'->'versions_outside_required_suite' AS outside,
       r->'compliance_status'->'ciphertexts_outside_required_suite' AS ciphertexts
  FROM pq.compliance_report('gov') r;
-- ... but version 1 is still there: disabled and destroyed, it is not.
SELECT pq.disable_key_version('gov', 1), pq.destroy_key_version('gov', 1, 'destroy gov v1');
SELECT r->'compliance_status'->'versions_outside_required_suite' AS outside,
       r->'compliance_status'->'algorithms_in_use' AS algorithms
  FROM pq.compliance_report('gov') r;
-- Lifting the requirement lets other suites back.
SELECT pq.set_policy('gov', '{"require_suite": null}')->'require_suite' AS required;
SELECT new_version FROM pq.rotate_tenant_key('gov', 'back', kem => 'ml-kem-768', signature => 'ml-dsa-65');
SELECT pq.untrack_column('gov_cfg', 'value');
DROP TABLE gov_cfg;
