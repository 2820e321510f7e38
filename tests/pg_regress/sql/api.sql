-- The extension's surface, from pg_depend: a change here is a change to the API.
SELECT pg_describe_object(classid, objid, objsubid) AS object
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apg_pqcrypto')
   AND deptype = 'e'
 ORDER BY 1;
-- Volatility, strictness and parallel safety of every function.
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict, p.proparallel, p.prosecdef
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apg_pqcrypto') AND d.deptype = 'e'
 ORDER BY p.oid::regprocedure::text;
-- Who may execute what.
SELECT p.oid::regprocedure AS function, has_function_privilege('regress_nobody', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'apg_pqcrypto') AND d.deptype = 'e'
 ORDER BY p.oid::regprocedure::text;
