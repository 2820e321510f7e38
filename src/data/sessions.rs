//! Forward-secure sessions: `pq.session_begin`, `pq_session_open`,
//! `pq.session_end` and the `pq.sessions` view (through `pq.session_list`).
//!
//! A session is an ephemeral KEM key pair of its tenant's suite whose
//! secret seed lives only in this extension's shared memory: never in a
//! table, so never in WAL, a dump, a standby or a backup, and never in a
//! log. Clients seal to the session's public key with `pq_seal` (or
//! `pq_seal_batch`, or any ML-KEM/X-Wing library); `pq_session_open`
//! opens those envelopes in any backend while the session lives. At expiry
//! (swept by every session call and by the worker at each wake-up) or at
//! `pq.session_end` the slot is overwritten with zeros: no key of the
//! tenant or the master key can open those envelopes again. A server
//! restart ends every session the same way.
//!
//! Slots are fixed (`SLOTS`), in shared memory created while preloading;
//! without `shared_preload_libraries` every function here is 55000.
use crate::{
    journal::monitor,
    keys::{access, versions},
    platform::{datum::PgBytea, errors::{OrRaise, PqError, PqResult}, secure_mem},
};
use pgrx::lwlock::PgLwLock;
use pgrx::pg_shmem_init;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pqcore::{format::KEM1024_PUBLIC_KEY_LEN, sealed, Envelope, Kid, RecipientSecret, Suite};

/// Room for the longest public key of any suite (ML-KEM-1024's).
const MAX_PUBLIC_KEY_LEN: usize = KEM1024_PUBLIC_KEY_LEN;
const _: () = assert!(MAX_PUBLIC_KEY_LEN >= pqcore::format::XWING_PUBLIC_KEY_LEN);
use zeroize::Zeroize;

/// Live sessions at once, across the cluster.
pub const SLOTS: usize = 64;
/// Longest lifetime a session may ask for (7 days).
const MAX_LIFETIME_MICROS: i128 = 7 * 24 * 3600 * 1_000_000;
const TENANT_BYTES: usize = pqcore::tenant::MAX_NAME_LEN;

/// One session. `repr(C)` with `kid` just before `seed`: the integration
/// test (tests/integration/sessions.sh) finds a live secret in the
/// server's memory by its kid, to grep the data directory and WAL for it.
#[repr(C)]
#[derive(Copy, Clone)]
struct Slot {
    in_use: bool,
    suite: u8,
    seed_len: u8,
    tenant_len: u8,
    id: [u8; 16],
    created: i64,
    expires: i64,
    opened: u64,
    kid: [u8; 16],
    seed: [u8; 64],
    public_key: [u8; MAX_PUBLIC_KEY_LEN],
    tenant: [u8; TENANT_BYTES],
}

impl Slot {
    const EMPTY: Slot = Slot {
        in_use: false,
        suite: 0,
        seed_len: 0,
        tenant_len: 0,
        id: [0; 16],
        created: 0,
        expires: 0,
        opened: 0,
        kid: [0; 16],
        seed: [0; 64],
        public_key: [0; MAX_PUBLIC_KEY_LEN],
        tenant: [0; TENANT_BYTES],
    };

    fn tenant(&self) -> String {
        String::from_utf8_lossy(&self.tenant[..usize::from(self.tenant_len)]).into_owned()
    }

    fn suite(&self) -> Suite {
        // The index of the suite in Suite::ALL.
        Suite::ALL.get(usize::from(self.suite)).copied().unwrap_or(Suite::MlKem768)
    }

    fn public_key(&self) -> &[u8] {
        &self.public_key[..self.suite().public_key_len()]
    }

    /// Overwrites everything, the seed first.
    fn wipe(&mut self) {
        self.seed.zeroize();
        *self = Slot::EMPTY;
    }
}

#[derive(Copy, Clone)]
pub struct Sessions {
    slots: [Slot; SLOTS],
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions { slots: [Slot::EMPTY; SLOTS] }
    }
}

// SAFETY: plain integers and byte arrays, no pointers.
unsafe impl PGRXSharedMemory for Sessions {}

// SAFETY: a named shared-memory lock, initialised once by pg_shmem_init! while preloading.
static SESSIONS: PgLwLock<Sessions> = unsafe { PgLwLock::new(c"apg_pqcrypto_sessions") };

/// From _PG_init while preloading.
pub fn init_shared_memory() {
    pg_shmem_init!(SESSIONS);
}

fn require_preloaded() -> PqResult<()> {
    if crate::platform::shmem::preloaded() {
        Ok(())
    } else {
        Err(PqError::Sql {
            code: b"55000",
            message: "forward-secure sessions need apg_pqcrypto in shared_preload_libraries: their keys live in shared memory".into(),
            hint: Some("add apg_pqcrypto to shared_preload_libraries and restart the server".into()),
        })
    }
}

/// The clock sessions expire by: wall time, not the statement's start.
fn now() -> i64 {
    // SAFETY: reads the system clock.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// Wipes every expired slot; returns how many. Called by every session
/// function and by the worker at each wake-up.
pub fn sweep() -> usize {
    if !crate::platform::shmem::preloaded() {
        return 0;
    }
    let now = now();
    let mut sessions = SESSIONS.exclusive();
    let mut wiped = 0;
    for slot in sessions.slots.iter_mut().filter(|s| s.in_use && s.expires <= now) {
        slot.wipe();
        wiped += 1;
    }
    wiped
}

/// Wipes every live session of `tenant` (a crypto-shred: its envelopes
/// can never be opened again); returns how many. Not transactional: a
/// session ended here stays ended even if the caller's transaction aborts.
pub fn end_tenant(tenant: &str) -> usize {
    if !crate::platform::shmem::preloaded() {
        return 0;
    }
    let mut sessions = SESSIONS.exclusive();
    let mut wiped = 0;
    for slot in sessions.slots.iter_mut().filter(|s| s.in_use && s.tenant[..usize::from(s.tenant_len)] == *tenant.as_bytes()) {
        slot.wipe();
        wiped += 1;
    }
    wiped
}

/// Time until the next live session expires (an hour when there is none).
pub fn until_next_expiry() -> std::time::Duration {
    let idle = std::time::Duration::from_secs(3600);
    if !crate::platform::shmem::preloaded() {
        return idle;
    }
    let now = now();
    let next = SESSIONS.share().slots.iter().filter(|s| s.in_use).map(|s| s.expires).min();
    next.map_or(idle, |t| std::time::Duration::from_micros(u64::try_from(t - now).unwrap_or(0) + 1000))
}

fn ended() -> PqError {
    PqError::KeyState(
        "the session has expired or ended (or never existed): its ephemeral key is gone and its envelopes can never be opened"
            .into(),
    )
}

fn begin(tenant: &str, lifetime: &Interval) -> PqResult<(pgrx::Uuid, Vec<u8>, Vec<u8>, TimestampWithTimeZone)> {
    require_preloaded()?;
    access::require_usable(tenant)?;
    let micros = lifetime.as_micros();
    if micros <= 0 || micros > MAX_LIFETIME_MICROS {
        return Err(PqError::InvalidParameter("lifetime must be positive and at most 7 days".into()));
    }
    let (suite, cnsa2) =
        crate::platform::catalog::as_owner(|| Ok((versions::tenant_suites(tenant, false)?.0, versions::requires_cnsa2(tenant, false)?)))?;
    if cnsa2 && suite != Suite::MlKem1024 {
        return Err(PqError::KeyStateHint(
            format!("tenant \"{}\" uses {}, and its policy requires the CNSA 2.0 suites", crate::platform::errors::echo(tenant), suite.name()),
            "rotate it (the rotation takes ML-KEM-1024 and ML-DSA-87): SELECT * FROM pq.rotate_tenant_key(tenant, reason)",
        ));
    }
    sweep();
    let (seed, key) = secure_mem::scope(|| RecipientSecret::generate(suite))?;
    let mut id = pqcore::rng::random_id()?;
    id[6] = (id[6] & 0x0F) | 0x40; // RFC 9562 version 4
    id[8] = (id[8] & 0x3F) | 0x80;
    let public = key.public_key().as_bytes().to_vec();
    let kid = key.kid();
    let created = now();
    let expires = created + micros as i64;
    {
        let mut sessions = SESSIONS.exclusive();
        let cap = crate::platform::gucs::max_sessions_per_tenant();
        let held = sessions.slots.iter().filter(|s| s.in_use && s.tenant[..usize::from(s.tenant_len)] == *tenant.as_bytes()).count();
        if held >= cap {
            return Err(PqError::Sql {
                code: b"53400",
                message: format!("tenant \"{}\" holds {held} live sessions, its limit", crate::platform::errors::echo(tenant)),
                hint: Some("end sessions with pq.session_end, or raise apg_pqcrypto.max_sessions_per_tenant".into()),
            });
        }
        let Some(slot) = sessions.slots.iter_mut().find(|s| !s.in_use) else {
            return Err(PqError::Sql {
                code: b"53400",
                message: format!("all {SLOTS} session slots are in use"),
                hint: Some("end sessions with pq.session_end, or wait for them to expire".into()),
            });
        };
        slot.wipe();
        slot.in_use = true;
        slot.suite = Suite::ALL.iter().position(|s| *s == suite).unwrap_or(0) as u8;
        slot.id = id;
        slot.created = created;
        slot.expires = expires;
        slot.kid = *kid.as_bytes();
        slot.seed_len = seed.expose().len() as u8;
        slot.seed[..seed.expose().len()].copy_from_slice(seed.expose());
        slot.public_key[..public.len()].copy_from_slice(&public);
        slot.tenant_len = tenant.len() as u8;
        slot.tenant[..tenant.len()].copy_from_slice(tenant.as_bytes());
    }
    // The worker sleeps until the next expiry it knows of: tell it of this one.
    crate::platform::latch::wake_now();
    let expires_at = TimestampWithTimeZone::try_from(expires).map_err(|_| PqError::InvalidParameter("lifetime out of range".into()))?;
    Ok((pgrx::Uuid::from_bytes(id), public, kid.as_bytes().to_vec(), expires_at))
}

/// The slot's tenant and a copy of its seed, if the session lives.
fn lookup(id: &pgrx::Uuid) -> PqResult<(String, Suite, Kid, zeroize::Zeroizing<Vec<u8>>)> {
    // The copy of the seed is made in the caller's secure_mem scope.
    require_preloaded()?;
    let now = now();
    let mut sessions = SESSIONS.exclusive();
    let slot = sessions.slots.iter_mut().find(|s| s.in_use && s.id == *id.as_bytes()).ok_or_else(ended)?;
    if slot.expires <= now {
        slot.wipe();
        return Err(ended());
    }
    slot.opened += 1;
    let seed = zeroize::Zeroizing::new(slot.seed[..usize::from(slot.seed_len)].to_vec());
    Ok((slot.tenant(), slot.suite(), Kid(slot.kid), seed))
}

/// The tenant of a live session, if any (no counting, no secret).
fn tenant_of(id: &pgrx::Uuid) -> Option<String> {
    let sessions = SESSIONS.share();
    sessions.slots.iter().find(|s| s.in_use && s.id == *id.as_bytes()).map(Slot::tenant)
}

fn open(id: &pgrx::Uuid, envelope: &[u8], aad: &[u8]) -> PqResult<PgBytea> {
    let env = Envelope::parse(envelope)?.into_sealed()?;
    require_preloaded()?;
    // The caller's right to the tenant first: a role without it learns nothing more.
    require_session_tenant(id)?;
    // The secret in this backend exists only inside this call, in locked,
    // undumpable memory (secure_mem), and is wiped when it returns.
    let (tenant, opened) = secure_mem::scope(|| {
        let (tenant, suite, kid, seed) = lookup(id)?;
        if env.kid() != kid {
            return Err(PqError::UnknownKid);
        }
        let key = RecipientSecret::from_seed(suite, &seed)?;
        drop(seed);
        let opened = PgBytea::build(env.plaintext_len(), |out| Ok(sealed::open_to(&key, &env, aad, out)?));
        Ok((tenant, opened))
    })?;
    monitor::decryption(opened, &tenant)
}

/// Ok if the calling role may use the tenant of live session `id`: PQ003
/// if there is no such session, and 42501 naming no tenant (the caller
/// named a session, not the tenant) if it may not.
fn require_session_tenant(id: &pgrx::Uuid) -> PqResult<()> {
    let tenant = tenant_of(id).ok_or_else(ended)?;
    access::require_usable(&tenant).map_err(|e| match e {
        PqError::PermissionDenied(_) | PqError::UnknownTenant(_) => {
            PqError::PermissionDenied("permission denied for the keys of this session's tenant".into())
        }
        other => other,
    })
}

fn end(id: &pgrx::Uuid) -> PqResult<bool> {
    require_preloaded()?;
    if tenant_of(id).is_none() {
        return Ok(false);
    }
    require_session_tenant(id)?;
    let mut sessions = SESSIONS.exclusive();
    let mut found = false;
    for slot in sessions.slots.iter_mut().filter(|s| s.in_use && s.id == *id.as_bytes()) {
        slot.wipe();
        found = true;
    }
    Ok(found)
}

type SessionRow = (pgrx::Uuid, String, String, Vec<u8>, Vec<u8>, TimestampWithTimeZone, TimestampWithTimeZone, i64);

fn list() -> PqResult<Vec<SessionRow>> {
    require_preloaded()?;
    sweep();
    let rows: Vec<_> = {
        let sessions = SESSIONS.share();
        sessions
            .slots
            .iter()
            .filter(|s| s.in_use)
            .map(|s| (s.id, s.tenant(), s.suite(), s.kid, s.public_key().to_vec(), s.created, s.expires, s.opened))
            .collect()
    };
    let mut out = Vec::new();
    for (id, tenant, suite, kid, public, created, expires, opened) in rows {
        if !access::visible(&tenant)? {
            continue;
        }
        let ts = |t: i64| TimestampWithTimeZone::try_from(t).map_err(|_| PqError::internal("a session time is out of range", String::new()));
        out.push((pgrx::Uuid::from_bytes(id), tenant, suite.name().to_owned(), kid.to_vec(), public, ts(created)?, ts(expires)?, opened as i64));
    }
    Ok(out)
}

/// Opens an envelope sealed to a live session's ephemeral public key.
/// PQ003 once the session has expired or ended.
#[pg_extern(volatile, strict, parallel_restricted)]
pub fn pq_session_open(session_id: pgrx::Uuid, envelope: &[u8], aad: default!(&[u8], "''")) -> PgBytea {
    open(&session_id, envelope, aad).or_raise()
}

/// As `pq_session_open`, for text in the database encoding.
#[pg_extern(volatile, strict, parallel_restricted)]
pub fn pq_session_open_text(session_id: pgrx::Uuid, envelope: &[u8], aad: default!(&str, "''")) -> crate::platform::datum::PgText {
    open(&session_id, envelope, aad.as_bytes()).and_then(PgBytea::into_text).or_raise()
}

#[pg_schema]
mod pq {
    use super::*;

    /// Starts a forward-secure session for `tenant`: a fresh ephemeral key
    /// pair of the tenant's suite, its secret only in shared memory until
    /// `lifetime` passes or `pq.session_end`.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn session_begin(
        tenant: &str,
        lifetime: default!(Interval, "'1 hour'"),
    ) -> TableIterator<
        'static,
        (
            name!(session_id, pgrx::Uuid),
            name!(public_key, Vec<u8>),
            name!(kid, Vec<u8>),
            name!(expires_at, TimestampWithTimeZone),
        ),
    > {
        TableIterator::once(begin(tenant, &lifetime).or_raise())
    }

    /// Ends a session now, wiping its key. True if it was live.
    #[pg_extern(volatile, strict, parallel_unsafe)]
    pub fn session_end(session_id: pgrx::Uuid) -> bool {
        end(&session_id).or_raise()
    }

    /// Live sessions of the tenants the caller sees (behind `pq.sessions`). No secrets.
    #[pg_extern(volatile, parallel_restricted)]
    pub fn session_list() -> TableIterator<
        'static,
        (
            name!(session_id, pgrx::Uuid),
            name!(tenant, String),
            name!(kem, String),
            name!(kid, Vec<u8>),
            name!(public_key, Vec<u8>),
            name!(created_at, TimestampWithTimeZone),
            name!(expires_at, TimestampWithTimeZone),
            name!(opened, i64),
        ),
    > {
        TableIterator::new(list().or_raise())
    }
}
