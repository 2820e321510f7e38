//! When keys are lost: key escrow of the master data key (`escrow`), the
//! recovery of a lost KEK from it (`request`), and disaster-recovery key
//! backups (`backup`).
//!
//! May call: platform, journal, keys, data.
pub mod backup;
pub mod escrow;
pub mod request;
