//! Proof of what happened: checkpoints of the audit chain and its
//! verification (`checkpoint`), the signed configuration store (`config`) and its checks
//! (`config_verify`),
//! the compliance report (`compliance`), and key-relevant DDL in the audit
//! chain (`ddl`, a ProcessUtility hook; `ddl_triggers`, the event triggers).
//!
//! May call: every area but the worker.
pub mod checkpoint;
pub mod compliance;
pub mod config;
pub mod config_verify;
pub mod ddl;
pub mod ddl_triggers;

/// The checkpoints' end-of-transaction hook (their log lines at commit)
/// and the DDL audit's ProcessUtility hook; from `_PG_init`.
pub fn init() {
    crate::platform::xact::at_end(checkpoint::end_of_transaction);
    ddl::install_hook();
}
