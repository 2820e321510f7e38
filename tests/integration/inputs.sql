-- Hostile input for every SQL function of the extension, generated from
-- the catalog (tests/integration/inputs.sh runs it): a function added
-- later is called without editing this file. For each function, each
-- argument in turn gets every hostile value of its type while the others
-- keep a valid value; each call runs in its own subtransaction, which is
-- rolled back even when the call succeeds, so every case starts from the
-- same database. fz.outcome keeps each call's SQLSTATE ('ok' on success).
CREATE SCHEMA fz;
CREATE TABLE fz.outcome (fn regprocedure, arg text, label text, sqlstate text, message text, who text DEFAULT current_user);
CREATE TABLE fz.t (id int PRIMARY KEY, v bytea, tenant text, a text, term bytea);
CREATE VIEW fz.v AS SELECT * FROM fz.t;

-- Valid material every base value and every envelope variant comes from.
SELECT 1 FROM pq.create_tenant('fz');
SELECT 1 FROM pq.config_set('fz', 'k1', 'fz-canary-value', 'fz');
CREATE TABLE fz.fixture AS
SELECT pq_encrypt('fz', 'fz-canary-keyed'::bytea) AS keyed,
       pq_seal(pq.tenant_public_key('fz'), 'fz-canary-sealed'::bytea) AS sealed,
       pq_sign('fz', 'm'::bytea) AS signature,
       (pq_seal_batch(pq.tenant_public_key('fz'), ARRAY['fz-canary-batch'::bytea], NULL))[1] AS batch_item,
       pq.tenant_public_key('fz') AS public_key,
       pq.tenant_verifying_key('fz') AS verifying_key,
       (SELECT secret_key FROM pq_generate_keypair('ml-kem-768')) AS kem_secret,
       (SELECT session_id FROM pq.session_begin('fz', '1 hour')) AS session_id;
ALTER TABLE fz.fixture ADD COLUMN session_envelope bytea;
UPDATE fz.fixture SET session_envelope = pq_seal(s.public_key, 'fz-canary-session'::bytea)
  FROM pq.session_list() s WHERE s.session_id = fixture.session_id;
INSERT INTO fz.t SELECT i, pq_encrypt('fz', 'fz-canary-row'), 'fz', 'a' FROM generate_series(1, 3) i;

-- fz.f(column): a fixture value, as an expression.
CREATE FUNCTION fz.f(col text) RETURNS text LANGUAGE sql AS
  $$ SELECT format('(SELECT %I FROM fz.fixture)', col) $$;

-- A valid value for an argument, by its name first, else by its type.
CREATE FUNCTION fz.base(argname text, t regtype) RETURNS text LANGUAGE sql AS $$
SELECT CASE
  WHEN argname IN ('tenant', 'target_tenant') THEN '''fz'''
  WHEN argname IN ('key', 'config_key') THEN '''k1'''
  WHEN argname = 'table' THEN '''fz.t''::regclass'
  WHEN argname = 'column' THEN '''v'''
  WHEN argname IN ('kem', 'algorithm') THEN '''ml-kem-768'''
  WHEN argname = 'provider' THEN '''file'''
  WHEN argname = 'role' THEN '''postgres'''
  WHEN argname = 'confirm' THEN '''no'''
  WHEN argname = 'context' AND t = 'text'::regtype THEN '''email'''
  WHEN argname IN ('envelope', 'value') AND t = 'bytea'::regtype THEN fz.f('keyed')
  WHEN argname = 'signature' THEN fz.f('signature')
  WHEN argname IN ('public_key', 'recipient_public_key') THEN fz.f('public_key')
  WHEN argname = 'secret_key' THEN fz.f('kem_secret')
  WHEN argname = 'session_id' THEN fz.f('session_id')
  WHEN argname IN ('version', 'period_days', 'key_id', 'job') THEN '1'
  WHEN argname = 'batch_size' THEN '100'
  WHEN argname = 'bits' THEN '16'
  WHEN t = 'text'::regtype THEN '''x'''
  WHEN t = 'bytea'::regtype THEN '''m''::bytea'
  WHEN t IN ('integer'::regtype, 'bigint'::regtype) THEN '1'
  WHEN t = 'boolean'::regtype THEN 'false'
  WHEN t = 'jsonb'::regtype THEN '''{}''::jsonb'
  WHEN t = 'uuid'::regtype THEN '''5a7e0000-0000-4000-8000-000000000001''::uuid'
  WHEN t = 'interval'::regtype THEN '''1 hour''::interval'
  WHEN t = 'timestamp with time zone'::regtype THEN 'pg_catalog.now()'
  WHEN t = 'regclass'::regtype THEN '''fz.t''::regclass'
  WHEN t = 'bytea[]'::regtype THEN 'ARRAY[''m''::bytea]'
  END
$$;

-- n random bytes (n a multiple of 16), as an expression; the run seeds
-- random() so that a failure can be repeated.
CREATE FUNCTION fz.random_bytes(n int) RETURNS text LANGUAGE sql AS $$
  SELECT format('(SELECT pg_catalog.string_agg(pg_catalog.decode(pg_catalog.md5(pg_catalog.random()::text), ''hex''), ''''::bytea)
                    FROM pg_catalog.generate_series(1, %s))', n / 16)
$$;

-- Every hostile value of a type: NULL, empty, extreme and random values,
-- and for bytea every kind of envelope whole, truncated and bit-flipped.
-- `big` is the size of the largest values (bytes, characters, elements).
CREATE FUNCTION fz.hostile(t regtype, big bigint) RETURNS TABLE (label text, expr text) LANGUAGE plpgsql AS $$
DECLARE
  kind text;
  whole text;
BEGIN
  RETURN QUERY SELECT 'NULL', format('NULL::%s', t);
  IF t = 'bytea'::regtype THEN
    RETURN QUERY VALUES ('empty', '''''::bytea'), ('one zero byte', '''\x00''::bytea'),
      ('64 random bytes', fz.random_bytes(64)),
      ('4096 random bytes', fz.random_bytes(4096)),
      ('big', format('pg_catalog.convert_to(pg_catalog.repeat(''a'', %s), ''SQL_ASCII'')', big)),
      ('envelope header alone', '''\x0101''::bytea');
    FOREACH kind IN ARRAY ARRAY['keyed', 'sealed', 'signature', 'batch_item', 'session_envelope', 'public_key', 'verifying_key', 'kem_secret'] LOOP
      whole := fz.f(kind);
      RETURN QUERY VALUES
        (kind, whole),
        (kind || ' truncated to half', format('pg_catalog.substr(%s, 1, pg_catalog.length(%s) / 2)', whole, whole)),
        (kind || ' without its last byte', format('pg_catalog.substr(%s, 1, pg_catalog.length(%s) - 1)', whole, whole)),
        (kind || ' with one more byte', format('%s || ''\x00''::bytea', whole)),
        (kind || ' byte 0 flipped', format('pg_catalog.set_byte(%s, 0, pg_catalog.get_byte(%s, 0) # 1)', whole, whole)),
        (kind || ' byte 1 flipped', format('pg_catalog.set_byte(%s, 1, pg_catalog.get_byte(%s, 1) # 1)', whole, whole)),
        (kind || ' byte 5 flipped', format('pg_catalog.set_byte(%s, 5, pg_catalog.get_byte(%s, 5) # 128)', whole, whole)),
        (kind || ' last byte flipped', format('pg_catalog.set_byte(%s, pg_catalog.length(%s) - 1, pg_catalog.get_byte(%s, pg_catalog.length(%s) - 1) # 1)', whole, whole, whole, whole));
    END LOOP;
  ELSIF t = 'text'::regtype THEN
    RETURN QUERY VALUES ('empty', ''''''), ('unknown name', '''fz-nope'''), ('other tenant''s name', '''fz2'''),
      ('quotes and escapes', 'E''a''''b\\"c\t%s%n'''), ('300 characters', 'pg_catalog.repeat(''n'', 300)'),
      ('non-ASCII', '''é🔑𝕏'''), ('a number', '''-1'''), ('a schema-qualified name', '''pg_catalog.pg_class'''),
      ('big', format('pg_catalog.repeat(''é'', %s)', big / 2));
  ELSIF t IN ('integer'::regtype, 'bigint'::regtype) THEN
    RETURN QUERY VALUES ('zero', '0'), ('minus one', '-1'), ('maximum', CASE WHEN t = 'integer'::regtype THEN '2147483647' ELSE '9223372036854775807' END),
      ('minimum', CASE WHEN t = 'integer'::regtype THEN '(-2147483648)::integer' ELSE '(-9223372036854775808)::bigint' END);
  ELSIF t = 'boolean'::regtype THEN
    RETURN QUERY VALUES ('true', 'true'), ('false', 'false');
  ELSIF t = 'jsonb'::regtype THEN
    RETURN QUERY VALUES ('empty object', '''{}''::jsonb'), ('array', '''[1, 2]''::jsonb'), ('json null', '''null''::jsonb'),
      ('string', '''"s"''::jsonb'), ('number', '''-1''::jsonb'),
      ('nested 1000 deep', '(pg_catalog.repeat(''['', 1000) || pg_catalog.repeat('']'', 1000))::jsonb'),
      ('wrong types', '''{"rotation_interval": "x", "threshold": -1, "custodians": 5, "approvers": {}, "auto_rotation": 1}''::jsonb'),
      ('huge numbers', '''{"rotation_interval": 1e400, "threshold": 99999999999999999999, "max_key_age": -1e10}''::jsonb'),
      ('big', format('(SELECT pg_catalog.jsonb_object_agg(''k'' || i, i) FROM pg_catalog.generate_series(1, %s) i)', big / 64));
  ELSIF t = 'uuid'::regtype THEN
    RETURN QUERY VALUES ('zero', '''00000000-0000-0000-0000-000000000000''::uuid'), ('random', 'pg_catalog.gen_random_uuid()');
  ELSIF t = 'interval'::regtype THEN
    RETURN QUERY VALUES ('zero', '''0''::interval'), ('negative', '''-1 day''::interval'), ('a microsecond', '''1 microsecond''::interval'),
      ('a million years', '''1000000 years''::interval');
  ELSIF t = 'timestamp with time zone'::regtype THEN
    RETURN QUERY VALUES ('infinity', '''infinity''::timestamptz'), ('-infinity', '''-infinity''::timestamptz'),
      ('earliest', '''4713-01-01 00:00:00+00 BC''::timestamptz'), ('latest', '''294276-12-31 00:00:00+00''::timestamptz');
  ELSIF t = 'regclass'::regtype THEN
    RETURN QUERY VALUES ('oid 0', '0::oid::regclass'), ('no such relation', '4000000000::oid::regclass'),
      ('a catalog', '''pg_catalog.pg_class''::regclass'), ('the extension''s key table', '''pq.tenant_keys''::regclass'),
      ('a view', '''fz.v''::regclass'), ('an index', '''fz.t_pkey''::regclass');
  ELSIF t = 'bytea[]'::regtype THEN
    RETURN QUERY VALUES ('empty', '''{}''::bytea[]'), ('one NULL', '''{NULL}''::bytea[]'), ('empty element', 'ARRAY[''''::bytea]'),
      ('two envelopes', format('ARRAY[%s, %s]', fz.f('keyed'), fz.f('sealed'))),
      ('a million elements', 'pg_catalog.array_fill(''m''::bytea, ARRAY[1000000])'),
      ('two dimensions', 'ARRAY[[''a''::bytea], [''b''::bytea]]'),
      ('lower bound 5', '''[5:5]={"\\x00"}''::bytea[]');
  ELSE
    RAISE EXCEPTION 'fz.hostile knows no values of type %', t;
  END IF;
END $$;

-- One call per (argument, hostile value) of function `fn`, in named
-- notation: the other arguments without a default get their base value,
-- those with one keep it. Returns how many calls it made.
CREATE FUNCTION fz.fuzz(fn regprocedure, big bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  p pg_catalog.pg_proc;
  names text[];
  types oid[];
  nargs int;
  first_default int;
  i int;
  j int;
  h record;
  args text[];
  call text;
  state text;
  msg text;
  calls bigint := 0;
BEGIN
  SELECT * INTO p FROM pg_catalog.pg_proc WHERE oid = fn;
  nargs := p.pronargs;
  names := p.proargnames[1:nargs];
  types := ARRAY(SELECT pg_catalog.unnest(p.proargtypes));
  first_default := nargs - p.pronargdefaults;
  FOR i IN 0 .. nargs - 1 LOOP
    FOR h IN SELECT * FROM fz.hostile(types[i + 1]::regtype, big) LOOP
      args := '{}';
      FOR j IN 0 .. nargs - 1 LOOP
        IF j = i THEN
          args := args || format('%I => %s', names[j + 1], h.expr);
        ELSIF j < first_default THEN
          args := args || format('%I => %s', names[j + 1], fz.base(names[j + 1], types[j + 1]::regtype));
        END IF;
      END LOOP;
      call := format('SELECT pg_catalog.count(*) FROM %I.%I(%s)', p.pronamespace::regnamespace, p.proname,
                     pg_catalog.array_to_string(args, ', '));
      BEGIN
        EXECUTE call;
        RAISE EXCEPTION USING ERRCODE = 'FZ000';  -- undo what the call did
      EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
      END;
      INSERT INTO fz.outcome (fn, arg, label, sqlstate, message) VALUES (fn, names[i + 1], h.label, CASE WHEN state = 'FZ000' THEN 'ok' ELSE state END,
                                     CASE WHEN state = 'FZ000' THEN NULL ELSE msg END);
      calls := calls + 1;
    END LOOP;
  END LOOP;
  IF nargs = 0 THEN
    BEGIN
      EXECUTE format('SELECT pg_catalog.count(*) FROM %I.%I()', p.pronamespace::regnamespace, p.proname);
      RAISE EXCEPTION USING ERRCODE = 'FZ000';
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    END;
    INSERT INTO fz.outcome (fn, arg, label, sqlstate, message) VALUES (fn, NULL, 'no arguments', CASE WHEN state = 'FZ000' THEN 'ok' ELSE state END,
                                   CASE WHEN state = 'FZ000' THEN NULL ELSE msg END);
    calls := 1;
  END IF;
  RETURN calls;
END $$;

-- The functions to call: every function of the extension but trigger and
-- event trigger functions (PostgreSQL refuses to call those directly).
CREATE VIEW fz.targets AS
SELECT p.oid::regprocedure AS fn
  FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.objid
 WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'apg_pqcrypto')
   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype);

-- The control: a function that fails the way no function of ours may (an
-- internal error) for one input. The run must report it.
CREATE FUNCTION fz.control(value bytea) RETURNS bytea LANGUAGE plpgsql AS $$
BEGIN
  IF pg_catalog.length(value) = 0 THEN
    RAISE EXCEPTION 'control' USING ERRCODE = 'XX000';
  END IF;
  RETURN value;
END $$;

-- A role with LOGIN and no grant runs the same calls: every refusal must
-- be a documented one too.
CREATE ROLE fz_nobody LOGIN;
GRANT USAGE ON SCHEMA fz TO fz_nobody;
GRANT SELECT ON fz.fixture, fz.targets TO fz_nobody;
GRANT INSERT ON fz.outcome TO fz_nobody;
