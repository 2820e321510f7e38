//! #[pg_test]s live here.
