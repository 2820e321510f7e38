//! Scale-out on Citus (docs/SCALE-OUT.md): `setup` makes the key-bearing
//! and lifecycle tables Citus reference tables, so that every node holds
//! them and the functions Citus pushes down to a worker find the keys
//! there; `audit` verifies every node's audit chain, `status` asks every
//! node for its master key status (`nodes`: what both share). What the
//! lower floors do about Citus is in `platform::citus` and
//! `platform::cluster`.
//!
//! May call: every area but the worker.
pub mod audit;
pub mod nodes;
pub mod setup;
pub mod status;
