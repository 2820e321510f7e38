//! Proof of what happened: checkpoints of the audit chain and its
//! verification (`checkpoint`), the signed configuration store (`config`) and its checks
//! (`config_verify`),
//! and the compliance report (`compliance`).
//!
//! May call: every area but the worker.
pub mod checkpoint;
pub mod compliance;
pub mod config;
pub mod config_verify;

/// The checkpoints' end-of-transaction hook (their log lines at commit);
/// from `_PG_init`.
pub fn init() {
    crate::platform::xact::at_end(checkpoint::end_of_transaction);
}
