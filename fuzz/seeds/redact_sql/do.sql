DO $$ BEGIN EXECUTE 'SELECT pq_seal(''a'', ''b'')'; END $$
