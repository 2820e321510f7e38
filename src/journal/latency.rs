//! Latency histograms per operation and tenant (`pq.stat_latency`) and key
//! cache counts per tenant (`pq.stat_cache`), in shared memory.
//!
//! Like the operation counters (`monitor`), each backend keeps its counts in
//! a local buffer and adds them to shared memory at the end of every
//! transaction, committed or aborted; the views read shared memory, so they
//! work on a hot standby and write nothing. Counts are cumulative since the
//! server started or since `pq.stat_reset()`.
//!
//! Timing costs two clock reads (about 66 ns together on the machine of
//! docs/PERFORMANCE.md), several per cent of a per-row call, so with
//! `apg_pqcrypto.track_latency = sampled` (the default) the per-row
//! operations (encrypt, decrypt, seal, unseal, sign, verify) time one call
//! in `SAMPLE_EVERY` of each backend and count every call; key unwraps,
//! provider calls and job batches are rare and always timed. `all` times
//! every call, `off` counts nothing. Percentiles come from the timed calls,
//! in quarter-octave buckets: a reported percentile is the upper bound of
//! its bucket, at most 25 % above the true value (and never above the
//! largest duration seen). The first `SLOTS` (tenant, operation) pairs and
//! `SLOTS` tenants are kept; calls of more are not counted until a reset.
use crate::platform::{errors::PqResult, gucs};
use pgrx::lwlock::PgLwLock;
use pgrx::pg_shmem_init;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use std::cell::{Cell, RefCell};
use std::time::Instant;

/// What is timed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    Encrypt = 0,
    Decrypt = 1,
    Seal = 2,
    Unseal = 3,
    Sign = 4,
    Verify = 5,
    KeyUnwrap = 6,
    ProviderCall = 7,
    JobBatch = 8,
}

impl Op {
    const ALL: [Op; 9] =
        [Op::Encrypt, Op::Decrypt, Op::Seal, Op::Unseal, Op::Sign, Op::Verify, Op::KeyUnwrap, Op::ProviderCall, Op::JobBatch];

    fn name(self) -> &'static str {
        match self {
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::Seal => "seal",
            Op::Unseal => "unseal",
            Op::Sign => "sign",
            Op::Verify => "verify",
            Op::KeyUnwrap => "key_unwrap",
            Op::ProviderCall => "provider_call",
            Op::JobBatch => "job_batch",
        }
    }

    /// Per-row operations are sampled; the rest are always timed.
    fn per_row(self) -> bool {
        (self as u8) <= (Op::Verify as u8)
    }
}

/// One per-row call in this many is timed under `sampled`.
pub const SAMPLE_EVERY: u32 = 16;
/// Quarter-octave buckets of nanoseconds: bucket b holds durations up to
/// 2^(b/4) ns; the last one everything above 2^42 ns (73 minutes).
const BUCKETS: usize = 4 * 42 + 1;
const TENANT_BYTES: usize = pqcore::tenant::MAX_NAME_LEN;
/// Distinct (tenant, operation) histograms; more are counted as dropped.
const SLOTS: usize = 256;

/// The bucket of a duration.
fn bucket(ns: u64) -> usize {
    if ns < 4 {
        return ns as usize;
    }
    let e = 63 - ns.leading_zeros() as usize; // floor(log2(ns)) >= 2
    let quarter = ((ns >> (e - 2)) & 3) as usize;
    (4 * e + quarter + 1).min(BUCKETS - 1)
}

/// The upper bound, in nanoseconds, of bucket `b`.
fn upper_bound(b: usize) -> f64 {
    if b < 4 {
        return b as f64;
    }
    let (e, quarter) = ((b - 1) / 4, (b - 1) % 4);
    2f64.powi(e as i32) * (1.0 + (quarter as f64 + 1.0) / 4.0)
}

#[derive(Copy, Clone)]
struct Hist {
    op: u8,
    tenant_len: u8,
    tenant: [u8; TENANT_BYTES],
    calls: u64,
    timed: u64,
    sum_ns: u64,
    max_ns: u64,
    buckets: [u64; BUCKETS],
}

impl Hist {
    const EMPTY: Hist =
        Hist { op: 0, tenant_len: 0, tenant: [0; TENANT_BYTES], calls: 0, timed: 0, sum_ns: 0, max_ns: 0, buckets: [0; BUCKETS] };

    fn tenant(&self) -> &[u8] {
        &self.tenant[..usize::from(self.tenant_len)]
    }

    fn is(&self, op: u8, tenant: &[u8]) -> bool {
        self.calls > 0 && self.op == op && self.tenant() == tenant
    }

    /// The duration below which a fraction `q` of the timed calls fell
    /// (the upper bound of its bucket), in milliseconds.
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.timed == 0 {
            return None;
        }
        let rank = (q * self.timed as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some((upper_bound(b) / 1e6).min(self.max_ns as f64 / 1e6));
            }
        }
        Some(self.max_ns as f64 / 1e6)
    }
}

/// Key cache counts of one tenant.
#[derive(Copy, Clone)]
struct CacheSlot {
    tenant_len: u8,
    tenant: [u8; TENANT_BYTES],
    used: bool,
    counts: [u64; 4],
}

impl CacheSlot {
    const EMPTY: CacheSlot = CacheSlot { tenant_len: 0, tenant: [0; TENANT_BYTES], used: false, counts: [0; 4] };
}

/// What the key cache counts: a lookup served from the cache, one that
/// read the key tables, an entry dropped (expired, invalidated, wiped), a
/// version's seeds unwrapped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CacheEvent {
    Hit = 0,
    Miss = 1,
    Eviction = 2,
    Unwrap = 3,
}

#[derive(Copy, Clone)]
pub struct Stats {
    hists: [Hist; SLOTS],
    cache: [CacheSlot; SLOTS],
    /// When the counts started (PostgreSQL timestamp), 0 before the first.
    since: i64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { hists: [Hist::EMPTY; SLOTS], cache: [CacheSlot::EMPTY; SLOTS], since: 0 }
    }
}

// SAFETY: plain integers and byte arrays, no pointers.
unsafe impl PGRXSharedMemory for Stats {}

// SAFETY: a named shared-memory lock, initialised once by pg_shmem_init! while preloading.
static STATS: PgLwLock<Stats> = unsafe { PgLwLock::new(c"apg_pqcrypto_latency") };

/// From _PG_init while preloading.
pub fn init_shared_memory() {
    pg_shmem_init!(STATS);
}

thread_local! {
    static LOCAL: RefCell<Vec<Hist>> = const { RefCell::new(Vec::new()) };
    static LOCAL_CACHE: RefCell<Vec<(String, [u64; 4])>> = const { RefCell::new(Vec::new()) };
    static CALLS: Cell<u32> = const { Cell::new(0) };
    /// The index in `LOCAL` of the last call's entry.
    static LAST: Cell<usize> = const { Cell::new(0) };
    /// The index in `LOCAL_CACHE` of the last event's tenant.
    static LAST_CACHE: Cell<usize> = const { Cell::new(0) };
}

/// A started timing (or none: not sampled, or tracking off).
#[derive(Clone, Copy)]
pub struct Timer {
    start: Option<Instant>,
    on: bool,
}

/// Starts timing an `op` call, if this call is one to time.
#[inline]
pub fn start(op: Op) -> Timer {
    let mode = gucs::track_latency();
    if mode == gucs::TrackLatency::Off {
        return Timer { start: None, on: false };
    }
    let timed = if op.per_row() && mode == gucs::TrackLatency::Sampled {
        let n = CALLS.get().wrapping_add(1);
        CALLS.set(n);
        n % SAMPLE_EVERY == 1
    } else {
        true
    };
    Timer { start: timed.then(Instant::now), on: true }
}

/// Ends an `op` call of `tenant` ('' for none) started with [`start`]:
/// counts it, with its duration if it was timed.
#[inline]
pub fn finish(op: Op, tenant: &str, timer: Timer) {
    if !timer.on {
        return;
    }
    let ns = timer.start.map(|s| u64::try_from(s.elapsed().as_nanos()).unwrap_or(u64::MAX));
    let tenant = &tenant.as_bytes()[..tenant.len().min(TENANT_BYTES)];
    LOCAL.with_borrow_mut(|local| {
        // The entry of the last call first: a statement calls one
        // operation of one tenant row after row.
        let last = LAST.get();
        let hit = local.get(last).is_some_and(|h| h.op == op as u8 && h.tenant() == tenant);
        let i = match if hit { Some(last) } else { local.iter().rposition(|h| h.op == op as u8 && h.tenant() == tenant) } {
            Some(i) => i,
            None => {
                let mut h = Hist { op: op as u8, tenant_len: tenant.len() as u8, ..Hist::EMPTY };
                h.tenant[..tenant.len()].copy_from_slice(tenant);
                local.push(h);
                local.len() - 1
            }
        };
        LAST.set(i);
        let h = &mut local[i];
        h.calls += 1;
        if let Some(ns) = ns {
            h.timed += 1;
            h.sum_ns = h.sum_ns.saturating_add(ns);
            h.max_ns = h.max_ns.max(ns);
            h.buckets[bucket(ns)] += 1;
        }
    });
}

/// Counts a key cache event of `tenant`.
pub fn cache(tenant: &str, event: CacheEvent) {
    if gucs::track_latency() == gucs::TrackLatency::Off {
        return;
    }
    LOCAL_CACHE.with_borrow_mut(|local| {
        let last = LAST_CACHE.get();
        let i = if local.get(last).is_some_and(|(t, _)| t == tenant) { Some(last) } else { local.iter().position(|(t, _)| t == tenant) };
        match i {
            Some(i) => {
                LAST_CACHE.set(i);
                local[i].1[event as usize] += 1;
            }
            None => {
                let mut counts = [0; 4];
                counts[event as usize] = 1;
                local.push((tenant.to_owned(), counts));
                LAST_CACHE.set(local.len() - 1);
            }
        }
    });
}

/// End of a transaction (commit or abort): the local counts go to shared
/// memory. Never raises.
pub fn end_of_transaction() {
    let local = LOCAL.with_borrow_mut(std::mem::take);
    let local_cache = LOCAL_CACHE.with_borrow_mut(std::mem::take);
    if (local.is_empty() && local_cache.is_empty()) || !crate::platform::shmem::preloaded() {
        return;
    }
    let mut shared = STATS.exclusive();
    let shared = &mut *shared;
    if shared.since == 0 {
        // SAFETY: a clock read; never raises.
        shared.since = unsafe { pg_sys::GetCurrentTimestamp() };
    }
    for h in local {
        let slot = match shared.hists.iter().position(|s| s.is(h.op, h.tenant())) {
            Some(i) => Some(i),
            None => shared.hists.iter().position(|s| s.calls == 0),
        };
        let Some(i) = slot else { continue };
        let s = &mut shared.hists[i];
        if s.calls == 0 {
            *s = Hist { op: h.op, tenant_len: h.tenant_len, tenant: h.tenant, ..Hist::EMPTY };
        }
        s.calls += h.calls;
        s.timed += h.timed;
        s.sum_ns = s.sum_ns.saturating_add(h.sum_ns);
        s.max_ns = s.max_ns.max(h.max_ns);
        for (a, b) in s.buckets.iter_mut().zip(h.buckets.iter()) {
            *a += b;
        }
    }
    for (tenant, counts) in local_cache {
        let t = &tenant.as_bytes()[..tenant.len().min(TENANT_BYTES)];
        let slot = shared
            .cache
            .iter()
            .position(|s| s.used && &s.tenant[..usize::from(s.tenant_len)] == t)
            .or_else(|| shared.cache.iter().position(|s| !s.used));
        let Some(i) = slot else { continue };
        let s = &mut shared.cache[i];
        if !s.used {
            *s = CacheSlot { used: true, tenant_len: t.len() as u8, ..CacheSlot::EMPTY };
            s.tenant[..t.len()].copy_from_slice(t);
        }
        for (a, b) in s.counts.iter_mut().zip(counts.iter()) {
            *a += b;
        }
    }
}

/// One row of `pq.stat_latency`.
type LatencyRow =
    (String, String, i64, i64, Option<f64>, Option<f64>, Option<f64>, Option<f64>, Option<f64>, Option<f64>, Option<TimestampWithTimeZone>);

fn minutes_since(since: i64) -> f64 {
    // SAFETY: a clock read; never raises.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    ((now - since) as f64 / 60e6).max(1.0 / 60.0)
}

fn since_ts(since: i64) -> PqResult<Option<TimestampWithTimeZone>> {
    if since == 0 {
        return Ok(None);
    }
    Ok(Some(crate::platform::clock::timestamptz(since + crate::platform::clock::PG_EPOCH_UNIX_MICROS)?))
}

fn latency_rows() -> PqResult<Vec<LatencyRow>> {
    crate::platform::roles::require_monitor("read latency statistics")?;
    if !crate::platform::shmem::preloaded() {
        return Err(crate::platform::errors::PqError::NeedsPreload("latency statistics"));
    }
    let stats = STATS.share();
    let minutes = minutes_since(stats.since);
    let since = since_ts(stats.since)?;
    let mut rows: Vec<LatencyRow> = stats
        .hists
        .iter()
        .filter(|h| h.calls > 0)
        .filter_map(|h| {
            let op = *Op::ALL.get(usize::from(h.op))?;
            Some((
                String::from_utf8_lossy(h.tenant()).into_owned(),
                op.name().to_owned(),
                h.calls as i64,
                h.timed as i64,
                (h.timed > 0).then(|| h.sum_ns as f64 / h.timed as f64 / 1e6),
                h.quantile_ms(0.50),
                h.quantile_ms(0.95),
                h.quantile_ms(0.99),
                (h.timed > 0).then(|| h.max_ns as f64 / 1e6),
                Some(h.calls as f64 / minutes),
                since,
            ))
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(rows)
}

fn cache_rows() -> PqResult<Vec<(String, i64, i64, i64, i64, Option<f64>)>> {
    crate::platform::roles::require_monitor("read cache statistics")?;
    if !crate::platform::shmem::preloaded() {
        return Err(crate::platform::errors::PqError::NeedsPreload("cache statistics"));
    }
    let stats = STATS.share();
    let mut rows: Vec<_> = stats
        .cache
        .iter()
        .filter(|s| s.used)
        .map(|s| {
            let [hits, misses, evictions, unwraps] = s.counts.map(|c| c as i64);
            let ratio = (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64);
            (String::from_utf8_lossy(&s.tenant[..usize::from(s.tenant_len)]).into_owned(), hits, misses, evictions, unwraps, ratio)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(rows)
}

fn reset() -> PqResult<()> {
    crate::platform::roles::require_admin("reset statistics")?;
    if crate::platform::shmem::preloaded() {
        let mut shared = STATS.exclusive();
        shared.hists.iter_mut().for_each(|h| *h = Hist::EMPTY);
        shared.cache.iter_mut().for_each(|c| *c = CacheSlot::EMPTY);
        // SAFETY: a clock read; never raises.
        shared.since = unsafe { pg_sys::GetCurrentTimestamp() };
    }
    Ok(())
}

#[pg_schema]
pub mod pq {
    use super::*;
    use crate::platform::errors::OrRaise;

    /// The rows of the `pq.stat_latency` view: per tenant and operation,
    /// calls, timed calls, mean, p50, p95, p99 and max in milliseconds,
    /// calls per minute, and since when. pq_admin.
    #[pg_extern(volatile, parallel_restricted)]
    pub fn stat_latency_rows() -> TableIterator<
        'static,
        (
            name!(tenant, String),
            name!(operation, String),
            name!(calls, i64),
            name!(timed_calls, i64),
            name!(mean_ms, Option<f64>),
            name!(p50_ms, Option<f64>),
            name!(p95_ms, Option<f64>),
            name!(p99_ms, Option<f64>),
            name!(max_ms, Option<f64>),
            name!(calls_per_minute, Option<f64>),
            name!(since, Option<TimestampWithTimeZone>),
        ),
    > {
        TableIterator::new(latency_rows().or_raise())
    }

    /// The rows of the `pq.stat_cache` view: per tenant, key cache hits,
    /// misses, evictions, unwraps and the hit ratio. pq_admin.
    #[pg_extern(volatile, parallel_restricted)]
    pub fn stat_cache_rows() -> TableIterator<
        'static,
        (
            name!(tenant, String),
            name!(hits, i64),
            name!(misses, i64),
            name!(evictions, i64),
            name!(unwraps, i64),
            name!(hit_ratio, Option<f64>),
        ),
    > {
        TableIterator::new(cache_rows().or_raise())
    }

    /// Starts `pq.stat_latency` and `pq.stat_cache` afresh. pq_admin.
    #[pg_extern(volatile, parallel_unsafe)]
    pub fn stat_reset() {
        reset().or_raise()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_quarter_octaves_and_bounds_hold() {
        for ns in [0u64, 1, 3, 4, 5, 7, 8, 100, 999, 1000, 1_000_000, 123_456_789, u64::MAX / 2] {
            let b = bucket(ns);
            assert!(ns as f64 <= upper_bound(b) || b == BUCKETS - 1, "{ns} above bucket {b}");
            if b > 9 && b < BUCKETS - 1 {
                assert!(ns as f64 >= upper_bound(b - 1), "{ns} belongs below bucket {b}");
                assert!(upper_bound(b) <= 1.25 * ns as f64 + 1.0, "bucket {b} too wide for {ns}");
            }
        }
        let mut last = 0;
        for ns in 0..100_000u64 {
            let b = bucket(ns);
            assert!(b >= last);
            last = b;
        }
    }
}

