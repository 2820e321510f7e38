//! Keys over time: rotation, version states and rewrap (`rotation`),
//! tracked columns (`tracking`), re-encryption and migration jobs (`jobs`)
//! and what one batch of them touches in a table (`batch`), a local job's
//! batches (`local_jobs`; re-encryption of a plain table range by range,
//! in one UPDATE each: `in_place`), the same jobs on Citus
//! distributed tables, shard by shard on the nodes (`shard_jobs`),
//! rotation policies (`policy`),
//! the blind index columns of tracked columns (`blind_column`, their
//! definitions and triggers; `blind_index`, what the trigger and batches do),
//! enforced encryption of tracked columns (`enforcement`), what those row
//! triggers share (`row_trigger`), crypto-shredding
//! of a whole tenant (`shred`).
//!
//! May call: platform, journal, keys, data.
pub mod batch;
pub mod blind_column;
pub mod blind_index;
pub mod enforcement;
pub mod in_place;
pub mod jobs;
pub mod local_jobs;
pub mod policy;
pub mod rotation;
pub mod row_trigger;
pub mod shard_jobs;
pub mod shred;
pub mod tracking;
