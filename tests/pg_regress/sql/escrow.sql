-- Key escrow and disaster-recovery backups (0.7.0; signed approvals 0.8.0):
-- docs/RECOVERY.md, docs/FORMAT.md §14.1, §14.2 and §15. The custodians,
-- the approvers and the recovery officer are played here in SQL
-- (pq_generate_keypair, pq_open, pq_seal, pq_sign_with, pq_verify_with)
-- from FORMAT.md's text, as an outside implementation would; the real
-- command line, a lost key file and 10,000 rows are in
-- tests/integration/recovery.sh.
SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_approver_1, regress_approver_2;
RESET client_min_messages;
CREATE ROLE regress_approver_1 NOLOGIN IN ROLE pq_admin;
CREATE ROLE regress_approver_2 NOLOGIN IN ROLE pq_admin;
CREATE TEMP TABLE approver_keys AS
  SELECT 'a' || i AS name, k.public_key, k.secret_key
    FROM generate_series(1, 3) i, LATERAL pq_generate_keypair(CASE WHEN i > 0 THEN 'ml-dsa-65' END) k;
GRANT SELECT ON approver_keys TO PUBLIC;
CREATE TEMP TABLE custodian_keys AS
  SELECT 'c' || i AS name, k.public_key, k.secret_key
    FROM generate_series(1, 5) i, LATERAL pq_generate_keypair(CASE WHEN i = 5 THEN 'x-wing' ELSE 'ml-kem-768' END) k;

-- Custodians: a kid is SHA-256(public key)[0..16).
SELECT name, pq.escrow_add_custodian(name, public_key) = substr(sha256(public_key), 1, 16) AS kid_ok
  FROM custodian_keys ORDER BY name;
SELECT try($$ SELECT pq.escrow_add_custodian('c1', (SELECT public_key FROM pq_generate_keypair())) $$);
SELECT try($$ SELECT pq.escrow_add_custodian('again', (SELECT public_key FROM custodian_keys WHERE name = 'c2')) $$);
SELECT try($$ SELECT pq.escrow_add_custodian('short', '\x0102') $$);
SELECT try($$ SELECT pq.escrow_add_custodian('', (SELECT public_key FROM pq_generate_keypair())) $$);
SET ROLE regress_app_a;
SELECT try($$ SELECT pq.escrow_add_custodian('app', (SELECT public_key FROM pq_generate_keypair())) $$);
SELECT try($$ SELECT * FROM pq.escrow_custodians $$);
RESET ROLE;

-- Approvers: ML-DSA-65 keys (a3 is never registered: an outsider).
SELECT name, pq.escrow_add_approver(name, public_key) = substr(sha256(public_key), 1, 16) AS kid_ok
  FROM approver_keys WHERE name <> 'a3' ORDER BY name;
SELECT try($$ SELECT pq.escrow_add_approver('a1', (SELECT public_key FROM approver_keys WHERE name = 'a3')) $$) AS name_taken;
SELECT try($$ SELECT pq.escrow_add_approver('again', (SELECT public_key FROM approver_keys WHERE name = 'a2')) $$) AS key_taken;
SELECT try($$ SELECT pq.escrow_add_approver('kem', (SELECT public_key FROM custodian_keys WHERE name = 'c1')) $$) AS not_ml_dsa;
SET ROLE regress_app_a;
SELECT try($$ SELECT pq.escrow_add_approver('app', (SELECT public_key FROM approver_keys WHERE name = 'a3')) $$) AS app_role;
RESET ROLE;

-- Configuration: the seed's escrow_config.
SELECT try($$ SELECT pq.escrow_split() $$);
SELECT try($$ SELECT pq.configure_key_escrow('{"threshold": 3, "trustees": ["c1", "c2"], "total_shares": 5}') $$);
SELECT try($$ SELECT pq.configure_key_escrow('{"threshold": 1, "trustees": ["c1", "c2"]}') $$);
SELECT try($$ SELECT pq.configure_key_escrow('{"threshold": 2, "trustees": ["c1", "nobody"]}') $$);
SELECT try($$ SELECT pq.configure_key_escrow('{"threshold": 2, "trustees": ["c1", "c1"]}') $$);
SELECT try($$ SELECT pq.configure_key_escrow('{"threshold": 2, "trustees": ["c1", "c2"], "shares": 2}') $$);
SELECT try($$ SELECT pq.configure_key_escrow('{"threshold": 2, "trustees": ["c1", "c2"], "recovery_policy": {"audit_log": false}}') $$);
SELECT try($$ SELECT pq.configure_key_escrow('{"threshold": 2, "trustees": ["c1", "c2"], "recovery_policy": {"approvers_required": 0}}') $$);
SELECT try($$ SELECT pq.configure_key_escrow('{"threshold": 2, "trustees": ["c1", "c2"], "recovery_policy": {"min_approval_time": "soon"}}') $$);
SELECT pq.configure_key_escrow('{"enabled": false, "threshold": 3, "total_shares": 5, "trustees": ["c1", "c2", "c3", "c4", "c5"],
                                 "recovery_policy": {"min_approval_time": "0 seconds", "approvers_required": 2, "audit_log": true}}');
SELECT try($$ SELECT pq.escrow_split() $$);
SELECT pq.configure_key_escrow('{"enabled": true, "threshold": 3, "total_shares": 5, "trustees": ["c1", "c2", "c3", "c4", "c5"],
                                 "recovery_policy": {"min_approval_time": 0, "approvers_required": 2}}');

-- Splitting: one 'E' record per trustee (53-byte header, then an 'S' or
-- 'X' envelope of the 32-byte share); the table holds them as returned.
CREATE TEMP TABLE split AS SELECT * FROM pq.escrow_split();
SELECT share_index, custodian, length(record), substr(record, 1, 2) AS version_kind,
       substr(record, 3, 16) = custodian_kid AS kid_in_header, get_byte(record, 34) AS index_byte,
       get_byte(record, 35) AS threshold, get_byte(record, 36) AS total,
       substr(record, 38, 16) = (SELECT id FROM pq.master_keys WHERE state = 'active') AS mdk_id_in_header,
       substr(record, 55, 1) AS envelope_kind
  FROM split ORDER BY share_index;
SELECT count(*) AS stored FROM pq.escrow_shares s JOIN split USING (escrow_id, share_index) WHERE s.record = split.record;
-- A custodian opens its own share (FORMAT.md §14.1: AAD = label ‖ header); no one else can.
SELECT s.share_index, length(pq_open(k.secret_key, substr(s.record, 54), 'apg-pq v1 escrow share'::bytea || substr(s.record, 1, 53))) AS share_len
  FROM split s JOIN custodian_keys k ON k.name = s.custodian ORDER BY s.share_index;
SELECT try($$ SELECT pq_open((SELECT secret_key FROM custodian_keys WHERE name = 'c2'),
                             substr(record, 54), 'apg-pq v1 escrow share'::bytea || substr(record, 1, 53))
                FROM split WHERE share_index = 1 $$);
SELECT try($$ SELECT pq_open((SELECT secret_key FROM custodian_keys WHERE name = 'c1'),
                             substr(record, 54), 'apg-pq v1 escrow share'::bytea || overlay(substr(record, 1, 53) PLACING '\x02' FROM 35 FOR 1))
                FROM split WHERE share_index = 1 $$);
SELECT stale, enabled, threshold, total_shares, trustees, recovery_policy, latest_escrow->>'threshold' AS split_threshold,
       latest_escrow->>'mdk_id' = active_mdk_id AS of_active_key, jsonb_array_length(custodians) AS custodians
  FROM jsonb_to_record(pq.escrow_status()) AS s(stale bool, enabled bool, threshold int, total_shares int, trustees jsonb,
                                                recovery_policy jsonb, latest_escrow jsonb, active_mdk_id text, custodians jsonb);

-- Recovery. A custodian's offline reseal (apg-pq escrow reseal), from FORMAT.md §14.1.
CREATE FUNCTION reseal(record bytea, secret bytea, request_pk bytea) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
    header bytea := overlay(overlay(substr(record, 1, 53) PLACING '\x52' FROM 2 FOR 1)
                            PLACING substr(sha256(request_pk), 1, 16) FROM 3 FOR 16);
BEGIN
    RETURN header || pq_seal(request_pk,
                             pq_open(secret, substr(record, 54), 'apg-pq v1 escrow share'::bytea || substr(record, 1, 53)),
                             'apg-pq v1 escrow reseal'::bytea || header);
END
$$;
-- escrow_recover inside a subtransaction that is rolled back: 'recovered' or the error.
CREATE FUNCTION try_recover(request uuid, shares bytea[]) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM pq.escrow_recover(request, shares);
        RAISE EXCEPTION 'undo' USING ERRCODE = 'P0009';
    EXCEPTION WHEN SQLSTATE 'P0009' THEN
        RETURN 'recovered';
    END;
EXCEPTION WHEN OTHERS THEN
    RETURN regexp_replace(SQLSTATE || ': ' || SQLERRM, '[0-9a-f]{8}-[0-9a-f-]{27}', '<request>');
END
$$;
SELECT try($$ SELECT pq.escrow_request_recovery(' ') $$);
CREATE TEMP TABLE req AS SELECT * FROM pq.escrow_request_recovery('regress: the KEK is lost');
GRANT SELECT ON req TO PUBLIC;
SELECT length(request_public_key) AS request_key_len,
       (SELECT purpose || ' ' || provider || ' ' || (wrapped_key IS NOT NULL) || ' ' || (wrapped_seed IS NOT NULL)
          FROM pq.recovery_keys WHERE kid = substr(sha256(request_public_key), 1, 16)) AS stored_key
  FROM req;
-- The statement the approvers sign (FORMAT.md §14.2): 83 bytes naming the
-- request, its key, the escrow, the MDK, its times and approvals needed.
SELECT length(statement) AS statement_len, substr(statement, 1, 2) AS version_kind,
       substr(statement, 3, 16) = uuid_send(request_id) AS request_id_ok,
       substr(statement, 19, 16) = substr(sha256(request_public_key), 1, 16) AS request_kid_ok,
       substr(statement, 35, 16) = (SELECT escrow_id FROM split LIMIT 1) AS escrow_id_ok,
       substr(statement, 51, 16) = (SELECT id FROM pq.master_keys WHERE state = 'active') AS mdk_id_ok,
       get_byte(statement, 82) AS approvers_required
  FROM req;
-- What a custodian checks before it re-seals (apg-pq escrow reseal), from
-- FORMAT.md §14.2: the approved statement names this request key and this
-- share's escrow and MDK, and `needed` of the pinned approver keys signed it.
CREATE FUNCTION statement_ok(approved bytea, request_pk bytea, share_record bytea, pinned bytea[], needed int)
RETURNS boolean LANGUAGE sql AS $$
  SELECT substr(approved, 1, 2) = '\x0141'
     AND substr(approved, 19, 16) = substr(sha256(request_pk), 1, 16)
     AND substr(approved, 35, 16) = substr(share_record, 19, 16)
     AND substr(approved, 51, 16) = substr(share_record, 38, 16)
     AND length(approved) = 84 + get_byte(approved, 83) * 3325
     AND (SELECT count(DISTINCT p) FROM generate_series(0, get_byte(approved, 83) - 1) i, unnest(pinned) p
           WHERE substr(approved, 85 + i * 3325, 16) = substr(sha256(p), 1, 16)
             AND pq_verify_with(p, substr(approved, 1, 83), substr(approved, 101 + i * 3325, 3309),
                                'apg-pq escrow-approval v1'::bytea)) >= needed
$$;
CREATE FUNCTION approval(approver text, statement bytea) RETURNS bytea LANGUAGE sql AS
$$ SELECT pq_sign_with(secret_key, statement, 'apg-pq escrow-approval v1'::bytea) FROM approver_keys WHERE name = approver $$;
GRANT EXECUTE ON FUNCTION approval(text, bytea) TO PUBLIC;
CREATE TEMP TABLE resealed AS
  SELECT s.share_index, reseal(s.record, k.secret_key, (SELECT request_public_key FROM req)) AS r
    FROM split s JOIN custodian_keys k ON k.name = s.custodian;
SELECT share_index, substr(r, 1, 2) AS version_kind, length(r) FROM resealed ORDER BY share_index;
-- Approvals: by approvers_required distinct roles other than the requester,
-- each with a registered approver's signature over the statement.
SELECT try_recover((SELECT request_id FROM req), (SELECT array_agg(r ORDER BY share_index) FROM resealed WHERE share_index <= 3));
SELECT regexp_replace(try(format('SELECT pq.escrow_statement(%L)', (SELECT request_id FROM req))),
                      '[0-9a-f]{8}-[0-9a-f-]{27}', '<request>') AS statement_before_approvals;
SELECT try(format('SELECT pq.escrow_approve(%L, %L)', request_id, approval('a1', statement))) AS by_requester FROM req;
SET ROLE regress_app_a;
SELECT try(format('SELECT pq.escrow_approve(%L, %L)', request_id, approval('a1', statement))) AS by_app_role FROM req;
RESET ROLE;
SET SESSION AUTHORIZATION regress_approver_1;
SELECT try(format('SELECT pq.escrow_approve(%L, %L)', request_id, approval('a3', statement))) AS unregistered_key FROM req;
SELECT try(format('SELECT pq.escrow_approve(%L, %L)', request_id, approval('a1', 'another statement'))) AS other_message FROM req;
SELECT pq.escrow_approve(request_id, approval('a1', statement)) AS approvals FROM req;
SELECT pq.escrow_approve(request_id, approval('a1', statement)) AS approvals_after_repeat FROM req;
RESET SESSION AUTHORIZATION;
SELECT try_recover((SELECT request_id FROM req), (SELECT array_agg(r ORDER BY share_index) FROM resealed WHERE share_index <= 3));
SET SESSION AUTHORIZATION regress_approver_2;
SELECT try(format('SELECT pq.escrow_approve(%L, %L)', request_id, approval('a1', statement))) AS same_key_other_role FROM req;
SELECT pq.escrow_approve(request_id, approval('a2', statement)) AS approvals FROM req;
RESET SESSION AUTHORIZATION;
-- The approved statement: the statement, then both approvals; a custodian
-- who pinned a1 and a2 accepts it for the request's key, not for a key a
-- single administrator hands over, nor with a3 pinned instead.
CREATE TEMP TABLE approved AS SELECT pq.escrow_statement(request_id) AS a, request_public_key, statement FROM req;
SELECT length(a) AS approved_len, substr(a, 1, 83) = statement AS starts_with_statement, get_byte(a, 83) AS approvals FROM approved;
SELECT statement_ok(a, request_public_key, (SELECT record FROM split WHERE share_index = 1),
                    (SELECT array_agg(public_key) FROM approver_keys WHERE name IN ('a1', 'a2')), 2) AS custodian_accepts,
       statement_ok(a, (SELECT public_key FROM pq_generate_keypair()), (SELECT record FROM split WHERE share_index = 1),
                    (SELECT array_agg(public_key) FROM approver_keys WHERE name IN ('a1', 'a2')), 2) AS for_another_key,
       statement_ok(a, request_public_key, (SELECT record FROM split WHERE share_index = 1),
                    (SELECT array_agg(public_key) FROM approver_keys WHERE name IN ('a1', 'a3')), 2) AS other_pinned_keys,
       statement_ok(set_byte(a, 78, get_byte(a, 78) # 1), request_public_key, (SELECT record FROM split WHERE share_index = 1),
                    (SELECT array_agg(public_key) FROM approver_keys WHERE name IN ('a1', 'a2')), 2) AS ready_at_changed
  FROM approved;
-- Every 3 of the 5 shares recover (all 10 subsets), in any order; no 2 do.
SELECT a.share_index || ',' || b.share_index || ',' || c.share_index AS shares,
       try_recover((SELECT request_id FROM req), ARRAY[c.r, a.r, b.r]) AS outcome
  FROM resealed a JOIN resealed b ON b.share_index > a.share_index JOIN resealed c ON c.share_index > b.share_index
 ORDER BY 1;
SELECT a.share_index || ',' || b.share_index AS shares, try_recover((SELECT request_id FROM req), ARRAY[a.r, b.r]) AS outcome
  FROM resealed a JOIN resealed b ON b.share_index > a.share_index WHERE a.share_index IN (1, 4) ORDER BY 1;
-- Wrong, duplicate, tampered or foreign shares: the share is named, nothing changes.
SELECT try_recover((SELECT request_id FROM req), ARRAY[(SELECT r FROM resealed WHERE share_index = 1),
                   (SELECT r FROM resealed WHERE share_index = 1), (SELECT r FROM resealed WHERE share_index = 2)]) AS duplicate;
SELECT try_recover((SELECT request_id FROM req), ARRAY[(SELECT r FROM resealed WHERE share_index = 1),
                   (SELECT set_byte(r, length(r) - 1, get_byte(r, length(r) - 1) # 1) FROM resealed WHERE share_index = 4),
                   (SELECT r FROM resealed WHERE share_index = 2)]) AS tampered;
SELECT try_recover((SELECT request_id FROM req), ARRAY[(SELECT r FROM resealed WHERE share_index = 1),
                   (SELECT overlay(r PLACING '\x04' FROM 35 FOR 1) FROM resealed WHERE share_index = 3),
                   (SELECT r FROM resealed WHERE share_index = 2)]) AS index_changed;
SELECT try_recover((SELECT request_id FROM req), ARRAY[(SELECT r FROM resealed WHERE share_index = 1),
                   (SELECT record FROM split WHERE share_index = 3), (SELECT r FROM resealed WHERE share_index = 2)]) AS not_resealed;
SELECT try_recover((SELECT request_id FROM req), ARRAY[(SELECT r FROM resealed WHERE share_index = 1),
                   reseal((SELECT record FROM split WHERE share_index = 3), (SELECT secret_key FROM custodian_keys WHERE name = 'c3'),
                          (SELECT public_key FROM pq_generate_keypair())),
                   (SELECT r FROM resealed WHERE share_index = 2)]) AS sealed_to_another_key;
SELECT try_recover((SELECT request_id FROM req), ARRAY[(SELECT r FROM resealed WHERE share_index = 1), NULL,
                   (SELECT r FROM resealed WHERE share_index = 2)]) AS null_share;
SELECT try_recover((SELECT request_id FROM req), ARRAY['\x0152'::bytea]) AS garbage;
SELECT try_recover('00000000-0000-0000-0000-000000000000', ARRAY['\x'::bytea]) AS unknown_request;
SELECT state FROM pq.escrow_requests WHERE id = (SELECT request_id FROM req);
-- min_approval_time is the policy's when the request was made.
SELECT pq.configure_key_escrow('{"threshold": 3, "trustees": ["c1", "c2", "c3", "c4", "c5"],
                                 "recovery_policy": {"min_approval_time": "1 hour", "approvers_required": 1}}') IS NOT NULL AS configured;
CREATE TEMP TABLE req2 AS SELECT * FROM pq.escrow_request_recovery('regress: too early');
GRANT SELECT ON req2 TO PUBLIC;
SET SESSION AUTHORIZATION regress_approver_1;
SELECT pq.escrow_approve(request_id, approval('a1', statement)) AS approvals FROM req2;
RESET SESSION AUTHORIZATION;
SELECT regexp_replace(regexp_replace(try(format('SELECT pq.escrow_statement(%L)', (SELECT request_id FROM req2))),
                      'before .* \(', 'before <time> ('), '[0-9a-f]{8}-[0-9a-f-]{27}', '<request>') AS statement_too_early;
SELECT pq.configure_key_escrow('{"threshold": 3, "trustees": ["c1", "c2", "c3", "c4", "c5"],
                                 "recovery_policy": {"min_approval_time": 0, "approvers_required": 1}}') IS NOT NULL AS configured;
SELECT regexp_replace(try_recover((SELECT request_id FROM req2),
                      (SELECT array_agg(reseal(s.record, k.secret_key, (SELECT request_public_key FROM req2)))
                         FROM split s JOIN custodian_keys k ON k.name = s.custodian WHERE s.share_index >= 3)),
                      'from .* \(', 'from <time> (') AS too_early;
-- The recovery itself: the MDK is checked against its id and wrapped again.
SELECT p.mdk_id = (SELECT id FROM pq.master_keys WHERE state = 'active') AS same_mdk, p.provider
  FROM pq.escrow_recover((SELECT request_id FROM req), (SELECT array_agg(r) FROM resealed WHERE share_index IN (2, 4, 5))) p;
SELECT state, recovered_by FROM pq.escrow_requests WHERE id = (SELECT request_id FROM req);
SELECT used_at IS NOT NULL AS used, wrapped_key IS NULL AND wrapped_seed IS NULL AS secrets_dropped
  FROM pq.recovery_keys WHERE kid = (SELECT substr(sha256(request_public_key), 1, 16) FROM req);
SELECT try_recover((SELECT request_id FROM req), (SELECT array_agg(r) FROM resealed WHERE share_index IN (2, 4, 5))) AS again;
SELECT pq_decrypt_text(pq_encrypt('acme', 'still works')) AS after_recovery;
-- After a master key rotation the escrow is stale until the next split.
SELECT versions_rewrapped > 0 AS rotated FROM pq.rotate_master_key();
SELECT (pq.escrow_status())->'stale' AS stale;
SELECT try($$ SELECT pq.escrow_request_recovery('regress: stale') $$);
SELECT count(*) AS shares FROM pq.escrow_split();
SELECT (pq.escrow_status())->'stale' AS stale;
SELECT event, count(*) FROM pq.key_events WHERE event LIKE 'escrow%' GROUP BY event ORDER BY event;
SELECT jsonb_array_length((pq.escrow_status())->'requests') AS requests,
       (pq.escrow_status())->'requests'->0->'approvals'->0->>'approver' AS first_approver;

-- Disaster-recovery backups. The recovery officer's key pair:
CREATE TEMP TABLE officer_keys AS SELECT * FROM pq_generate_keypair();
CREATE TEMP TABLE officer AS SELECT public_key, kid FROM officer_keys;
GRANT SELECT ON officer TO PUBLIC;
SELECT try($$ SELECT pq.export_key_backup('acme') $$);
SELECT try($$ SELECT pq.export_key_backup('acme', '\x00') $$);
SELECT try($$ SELECT pq.export_key_backup('nope', (SELECT public_key FROM officer)) $$);
SET ROLE regress_admin;
SELECT length(pq.export_key_backup('globex', (SELECT public_key FROM officer))) > 0 AS admin_exports;
RESET ROLE;
SET ROLE regress_app_a;
SELECT try($$ SELECT pq.export_key_backup('acme', (SELECT public_key FROM officer)) $$);
SELECT try($$ SELECT pq.restore_begin() $$);
RESET ROLE;
CREATE TEMP TABLE bundle AS SELECT pq.export_key_backup('acme', (SELECT public_key FROM officer)) AS b;
SELECT substr(b, 1, 2) AS version_kind, substr(b, 3, 16) = (SELECT kid FROM officer) AS sealed_to_officer,
       substr(b, 43, 2) AS envelope FROM bundle;
-- The officer opens it (FORMAT.md §15): the document and the secrets.
CREATE TEMP TABLE opened AS
  SELECT pq_open((SELECT secret_key FROM officer_keys), substr(b, 43), 'apg-pq v1 key backup'::bytea || substr(b, 1, 42)) AS p FROM bundle;
CREATE TEMP TABLE doc AS
  SELECT convert_from(substr(p, 6, ('x' || encode(substr(p, 2, 4), 'hex'))::bit(32)::int), 'UTF8')::jsonb AS d,
         ('x' || encode(substr(p, 6 + ('x' || encode(substr(p, 2, 4), 'hex'))::bit(32)::int, 4), 'hex'))::bit(32)::int AS secrets
    FROM opened;
SELECT d->'format' AS format, d->'include_metadata' AS metadata, jsonb_array_length(d->'tenants') AS tenants,
       d->'tenants'->0->>'name' AS tenant, jsonb_array_length(d->'tenants'->0->'versions') AS versions,
       (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(d->'tenants'->0) k) AS tenant_fields,
       d->'tenants'->0->'grants' AS grants, secrets
  FROM doc;
-- The restore key; the officer re-seals the same payload to it (apg-pq backup reseal).
CREATE TEMP TABLE restore_key AS SELECT * FROM pq.restore_begin();
CREATE FUNCTION reseal_bundle(payload bytea, header bytea, to_pk bytea) RETURNS bytea LANGUAGE sql AS $$
    SELECT h || pq_seal(to_pk, payload, 'apg-pq v1 key backup'::bytea || h)
      FROM (SELECT overlay(header PLACING substr(sha256(to_pk), 1, 16) FROM 3 FOR 16) AS h) s
$$;
CREATE TEMP TABLE resealed_bundle AS
  SELECT reseal_bundle(p, substr(b, 1, 42), (SELECT restore_public_key FROM restore_key)) AS rb FROM opened, bundle;
-- Bad bundles: clear errors, nothing restored.
SELECT try($$ SELECT pq.restore_key_backup((SELECT b FROM bundle)) $$) AS sealed_to_the_officer;
SELECT try($$ SELECT pq.restore_key_backup(substr((SELECT rb FROM resealed_bundle), 1, 30)) $$) AS truncated;
SELECT try($$ SELECT pq.restore_key_backup(substr((SELECT rb FROM resealed_bundle), 1, 2000)) $$) AS cut;
SELECT try($$ SELECT pq.restore_key_backup('\x') $$) AS empty;
SELECT try($$ SELECT pq.restore_key_backup(overlay((SELECT rb FROM resealed_bundle) PLACING '\x02' FROM 1 FOR 1)) $$) AS newer_version;
SELECT try($$ SELECT pq.restore_key_backup(overlay((SELECT rb FROM resealed_bundle) PLACING '\x4b' FROM 2 FOR 1)) $$) AS other_kind;
SELECT try($$ SELECT pq.restore_key_backup((SELECT set_byte(rb, 29, get_byte(rb, 29) # 1) FROM resealed_bundle)) $$) AS tampered;
-- Into this cluster: the versions exist, so no overwrite without being told;
-- under another name, the key versions would live twice.
SELECT try($$ SELECT pq.restore_key_backup((SELECT rb FROM resealed_bundle)) $$) AS exists;
SELECT try($$ SELECT pq.restore_key_backup((SELECT set_byte(rb, length(rb) - 1, get_byte(rb, length(rb) - 1) # 1) FROM resealed_bundle)) $$) AS tampered_payload;
SELECT try($$ SELECT pq.restore_key_backup((SELECT rb FROM resealed_bundle), 'acme_copy') $$) AS renamed_here;
CREATE TEMP TABLE before AS SELECT pq_encrypt('acme', 'made before the restore', 'r') AS v;
SELECT * FROM pq.restore_key_backup((SELECT rb FROM resealed_bundle), overwrite => true);
SELECT pq_decrypt_text(v, 'r') FROM before;
SELECT version, state FROM pq.tenant_keys WHERE tenant = 'acme' ORDER BY version;
SELECT try($$ SELECT pq.restore_key_backup((SELECT rb FROM resealed_bundle), overwrite => true) $$) AS used_twice;
SELECT operation, tenants, include_metadata, versions, sealed_to = (SELECT kid FROM officer) AS to_officer
  FROM pq.backups ORDER BY id;
SELECT event, tenant, details->>'versions' AS versions FROM pq.key_events WHERE event LIKE '%backup%' OR event LIKE 'restore%' ORDER BY id;
-- A destroyed version's verifying key comes from the document alone (its
-- seeds are gone): the restore checks it against the version's signing kid,
-- so a bundle whose document swaps in another key does not restore, and a
-- signature by that key never verifies.
SELECT pq.create_tenant('shred') IS NOT NULL AS created;
CREATE TEMP TABLE shred_sig AS SELECT pq_sign('shred', 'signed by v1') AS s;
SELECT new_version FROM pq.rotate_tenant_key('shred', 'regress');
SELECT pq.destroy_key_version('shred', 1, confirm => 'destroy shred v1');
CREATE TEMP TABLE attacker AS SELECT * FROM pq_generate_keypair('ml-dsa-65');
CREATE TEMP TABLE shred_bundle AS SELECT pq.export_key_backup('shred', (SELECT public_key FROM officer)) AS b;
CREATE TEMP TABLE shred_opened AS
  SELECT b, pq_open((SELECT secret_key FROM officer_keys), substr(b, 43), 'apg-pq v1 key backup'::bytea || substr(b, 1, 42)) AS p
    FROM shred_bundle;
CREATE FUNCTION with_doc(p bytea, d jsonb) RETURNS bytea LANGUAGE sql AS $$
    SELECT '\x01'::bytea || int4send(octet_length(convert_to(d::text, 'UTF8'))) || convert_to(d::text, 'UTF8')
           || substr(p, 6 + ('x' || encode(substr(p, 2, 4), 'hex'))::bit(32)::int)
$$;
CREATE TEMP TABLE shred_doc AS
  SELECT convert_from(substr(p, 6, ('x' || encode(substr(p, 2, 4), 'hex'))::bit(32)::int), 'UTF8')::jsonb AS d FROM shred_opened;
SELECT d->'tenants'->0->'versions'->0->>'state' AS v1_state FROM shred_doc;
CREATE TEMP TABLE shred_restore AS SELECT * FROM pq.restore_begin();
SELECT try(format('SELECT pq.restore_key_backup(%L, overwrite => true)',
                  reseal_bundle(with_doc(p, jsonb_set((SELECT d FROM shred_doc), '{tenants,0,versions,0,verifying_key}',
                                                      to_jsonb(encode((SELECT public_key FROM attacker), 'hex')))),
                                substr(b, 1, 42), (SELECT restore_public_key FROM shred_restore)))) AS swapped_verifying_key
  FROM shred_opened;
SELECT pq_verify('shred', 'signed by v1', s) AS old_signature_verifies,
       pq_verify('shred', 'signed by the attacker',
                 '\x0147'::bytea || (SELECT signing_kid FROM pq.tenant_keys WHERE tenant = 'shred' AND version = 1) ||
                 pq_sign_with((SELECT secret_key FROM attacker), 'signed by the attacker')) AS attacker_signature_verifies
  FROM shred_sig;
SELECT * FROM pq.restore_key_backup((SELECT reseal_bundle(p, substr(b, 1, 42), (SELECT restore_public_key FROM shred_restore))
                                       FROM shred_opened), overwrite => true);
SELECT pq_verify('shred', 'signed by v1', s) AS old_signature_still_verifies FROM shred_sig;
-- A document with only the keys FORMAT.md §15 requires restores: absent
-- version times become the time of the restore (created, activated) or NULL.
CREATE TEMP TABLE shred_restore2 AS SELECT * FROM pq.restore_begin();
CREATE TEMP TABLE shred_minimal AS
  SELECT jsonb_build_object('format', 1, 'tenants', jsonb_build_array(jsonb_build_object(
           'name', t->'name', 'kem', t->'kem',
           'versions', (SELECT jsonb_agg(v - ARRAY['created_at', 'activated_at', 'retired_at', 'disabled_at', 'destroyed_at'])
                          FROM jsonb_array_elements(t->'versions') v)))) AS d
    FROM (SELECT d->'tenants'->0 AS t FROM shred_doc) x;
SELECT * FROM pq.restore_key_backup((SELECT reseal_bundle(with_doc(p, (SELECT d FROM shred_minimal)), substr(b, 1, 42),
                                                          (SELECT restore_public_key FROM shred_restore2))
                                       FROM shred_opened), overwrite => true);
SELECT version, state, created_at IS NOT NULL AND activated_at IS NOT NULL AS has_times, destroyed_at IS NULL AS no_destroyed_at
  FROM pq.tenant_keys WHERE tenant = 'shred' ORDER BY version;
SELECT pq_verify('shred', 'signed by v1', s) AS verifies_after_minimal_restore FROM shred_sig;

-- No secret table is readable by pq_admin roles or applications; nothing in
-- them opens without a custodian's, the officer's or the provider's key.
SET ROLE regress_admin;
SELECT try($$ SELECT * FROM pq.recovery_keys $$);
SELECT count(*) > 0 AS admin_reads_sealed_shares FROM pq.escrow_shares;
RESET ROLE;
SET ROLE regress_app_a;
SELECT try($$ SELECT * FROM pq.escrow_shares $$);
SELECT try($$ SELECT * FROM pq.backups $$);
SELECT try($$ SELECT pq.escrow_status() $$);
RESET ROLE;
-- Separation of duties (docs/RECOVERY.md): exports taken from pq_admin, given to one role.
REVOKE EXECUTE ON FUNCTION pq.export_key_backup(text, bytea, boolean) FROM pq_admin;
SET ROLE regress_admin;
SELECT try($$ SELECT pq.export_key_backup('acme', (SELECT public_key FROM officer)) $$) AS pq_admin_after_revoke;
RESET ROLE;
GRANT EXECUTE ON FUNCTION pq.export_key_backup(text, bytea, boolean) TO regress_approver_1;
SET ROLE regress_approver_1;
SELECT length(pq.export_key_backup('acme', (SELECT public_key FROM officer))) > 0 AS dr_officer_exports;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION pq.export_key_backup(text, bytea, boolean) FROM regress_approver_1;
GRANT EXECUTE ON FUNCTION pq.export_key_backup(text, bytea, boolean) TO pq_admin;
DROP FUNCTION reseal(bytea, bytea, bytea), try_recover(uuid, bytea[]), reseal_bundle(bytea, bytea, bytea);
