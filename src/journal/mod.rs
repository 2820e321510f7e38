//! What happened, written down in the transaction that did it: the
//! lifecycle event log and its NOTIFYs (`events`), the hash-chained audit
//! trail's appends (`chain`), the per-minute counters of operations and
//! failures in shared memory and their alerts (`monitor`), and the latency
//! histograms and key cache counts (`latency`).
//!
//! May call: platform.
pub mod chain;
pub mod events;
pub mod latency;
pub mod monitor;

/// The counters' end-of-transaction hook and, while preloading, their
/// shared memory; from `_PG_init`.
pub fn init(preloading: bool) {
    crate::platform::xact::at_end(|committed| {
        monitor::end_of_transaction();
        monitor::flush_committed(committed);
        latency::end_of_transaction();
        chain::end_of_transaction();
    });
    if preloading {
        monitor::init_shared_memory();
        latency::init_shared_memory();
    }
}
