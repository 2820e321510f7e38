//! Locked, undumpable memory for cached keys.
//!
//! The extension's global allocator sends every Rust allocation made inside
//! [`scope`] (unwrapping and caching a key: the parsed ML-KEM key, the
//! expanded ML-DSA key, the HMAC states keyed by a DEK or the MDK, and
//! whatever the crypto crates allocate for them) to one arena of this
//! process. The arena's pages are excluded from core dumps
//! (`MADV_DONTDUMP`) and locked into RAM (`mlock`) as they come into use,
//! so cached keys never reach swap, where RLIMIT_MEMLOCK allows; when it
//! does not, the keys stay usable and the backend says so once with a
//! WARNING. Every block is wiped when it is freed, wherever it is freed.
//! Everything else goes to the system allocator, as before.
//!
//! The arena is a single reserved address range (so "is this pointer
//! ours?" is two comparisons) carved into power-of-two blocks with one free
//! list per size. Backends are single-threaded; a spin lock keeps the
//! allocator sound should a library ever start a thread.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Reserved address space; only the pages in use cost memory.
const REGION_LEN: usize = 32 << 20;
const PAGE: usize = 4096;
const MIN_BLOCK_SHIFT: u32 = 4;
const MAX_BLOCK_SHIFT: u32 = 20;
const CLASSES: usize = (MAX_BLOCK_SHIFT - MIN_BLOCK_SHIFT + 1) as usize;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f` with every allocation it makes taken from the locked arena.
pub fn scope<R>(f: impl FnOnce() -> R) -> R {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    DEPTH.with(|d| d.set(d.get() + 1));
    let _guard = Guard;
    f()
}

/// Leaves every scope: for the end of a transaction, after an ERROR that
/// skipped a guard's drop.
pub fn reset_scope() {
    DEPTH.with(|d| d.set(0));
}

/// What went wrong with the arena since the last call, once per problem:
/// the caller reports it (a WARNING) from ordinary code, since the
/// allocator itself must not call into PostgreSQL.
pub fn take_warning() -> Option<&'static str> {
    if LOCK_FAILED.load(Ordering::Relaxed) && !LOCK_WARNED.swap(true, Ordering::Relaxed) {
        return Some(
            "apg_pqcrypto could not lock its cached keys in memory (RLIMIT_MEMLOCK is too low); they may be written to swap",
        );
    }
    if OVERFLOWED.load(Ordering::Relaxed) && !OVERFLOW_WARNED.swap(true, Ordering::Relaxed) {
        return Some("apg_pqcrypto's locked key memory is full; further cached keys are neither locked nor excluded from core dumps");
    }
    None
}

/// Bytes of the arena in use and locked (for tests).
#[cfg(any(test, feature = "pg_test"))]
pub fn stats() -> (usize, usize) {
    with_arena(|a| (a.used, a.locked_to))
}

/// True if `p` points into the arena.
pub fn contains(p: *const u8) -> bool {
    let base = BASE.load(Ordering::Acquire);
    base != 0 && (p as usize) >= base && (p as usize) < base + REGION_LEN
}

static BASE: AtomicUsize = AtomicUsize::new(0);
static LOCK_FAILED: AtomicBool = AtomicBool::new(false);
static LOCK_WARNED: AtomicBool = AtomicBool::new(false);
static OVERFLOWED: AtomicBool = AtomicBool::new(false);
static OVERFLOW_WARNED: AtomicBool = AtomicBool::new(false);

struct Arena {
    /// Bytes handed out by the bump pointer (from BASE).
    used: usize,
    /// Bytes from BASE that are mlocked (page multiple).
    locked_to: usize,
    /// Heads of the free lists, one per block size; the next pointer is
    /// kept in a freed block's first word.
    free: [usize; CLASSES],
}

struct Locked {
    busy: AtomicBool,
    arena: UnsafeCell<Arena>,
}

// SAFETY: `arena` is only reached through `with_arena`, which holds `busy`.
unsafe impl Sync for Locked {}

static ARENA: Locked = Locked {
    busy: AtomicBool::new(false),
    arena: UnsafeCell::new(Arena { used: 0, locked_to: 0, free: [0; CLASSES] }),
};

fn with_arena<R>(f: impl FnOnce(&mut Arena) -> R) -> R {
    while ARENA.busy.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::hint::spin_loop();
    }
    // SAFETY: `busy` is held, so this is the only reference to the arena.
    let result = f(unsafe { &mut *ARENA.arena.get() });
    ARENA.busy.store(false, Ordering::Release);
    result
}

/// Maps the region on first use; false if the system refused.
fn ensure_mapped() -> bool {
    if BASE.load(Ordering::Acquire) != 0 {
        return true;
    }
    // SAFETY: an anonymous private mapping of fresh pages; nothing else
    // refers to it. MAP_NORESERVE: only touched pages are committed.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            REGION_LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: advice on the mapping just created. A failure only means
    // the pages may appear in a core dump; nothing to undo.
    unsafe { libc::madvise(p, REGION_LEN, libc::MADV_DONTDUMP) };
    BASE.store(p as usize, Ordering::Release);
    true
}

fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_BLOCK_SHIFT);
    if layout.align() > PAGE || size > (1 << MAX_BLOCK_SHIFT) {
        return None;
    }
    let shift = size.next_power_of_two().trailing_zeros();
    Some((shift - MIN_BLOCK_SHIFT) as usize)
}

fn block_len(class: usize) -> usize {
    1 << (class as u32 + MIN_BLOCK_SHIFT)
}

impl Arena {
    fn alloc(&mut self, class: usize) -> Option<*mut u8> {
        let base = BASE.load(Ordering::Acquire);
        let head = self.free[class];
        if head != 0 {
            // SAFETY: `head` is a freed block of this class inside the
            // region; its first word holds the next free block.
            unsafe {
                self.free[class] = ptr::read(head as *const usize);
                ptr::write(head as *mut usize, 0);
            }
            return Some(head as *mut u8);
        }
        let len = block_len(class);
        let start = self.used.next_multiple_of(len.min(PAGE));
        let end = start.checked_add(len)?;
        if end > REGION_LEN {
            return None;
        }
        self.used = end;
        if end > self.locked_to && !LOCK_FAILED.load(Ordering::Relaxed) {
            let to = end.next_multiple_of(PAGE);
            // SAFETY: locks pages of our own mapping; failure is reported.
            let rc = unsafe { libc::mlock((base + self.locked_to) as *const libc::c_void, to - self.locked_to) };
            if rc == 0 {
                self.locked_to = to;
            } else {
                LOCK_FAILED.store(true, Ordering::Relaxed);
            }
        }
        Some((base + start) as *mut u8)
    }

    fn free(&mut self, p: *mut u8, class: usize) {
        let len = block_len(class);
        // SAFETY: `p` is a block of `len` bytes of the region that the
        // caller owned; volatile writes so the wipe is not optimised away.
        unsafe {
            for i in 0..len {
                ptr::write_volatile(p.add(i), 0);
            }
            ptr::write(p as *mut usize, self.free[class]);
        }
        self.free[class] = p as usize;
    }
}

/// The extension's global allocator: the system allocator, except inside
/// [`scope`] and for blocks that already live in the arena.
pub struct Router;

impl Router {
    fn arena_alloc(layout: Layout) -> Option<*mut u8> {
        let class = class_of(layout)?;
        if !ensure_mapped() {
            return None;
        }
        let p = with_arena(|a| a.alloc(class));
        if p.is_none() {
            OVERFLOWED.store(true, Ordering::Relaxed);
        }
        p
    }
}

// SAFETY: every block comes either from System (and goes back to it) or
// from the arena (and goes back to it): `contains` tells them apart, and
// arena blocks are at least as large and as aligned as their layout asks.
unsafe impl GlobalAlloc for Router {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if DEPTH.with(Cell::get) > 0 {
            if let Some(p) = Self::arena_alloc(layout) {
                return p;
            }
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if contains(p) {
            if let Some(class) = class_of(layout) {
                with_arena(|a| a.free(p, class));
            }
            return;
        }
        // SAFETY: not ours, so System's, with the layout it was made with.
        unsafe { System.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let in_arena = contains(p);
        if !in_arena && DEPTH.with(Cell::get) == 0 {
            // SAFETY: a System block, resized by System.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        // Secrets stay in the arena when they grow; a growing block made in
        // a scope moves into it.
        // SAFETY: the new layout has the old alignment and a nonzero size
        // (GlobalAlloc's contract for realloc).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let q = Self::arena_alloc(new_layout).unwrap_or_else(|| {
            // SAFETY: as in `alloc`.
            unsafe { System.alloc(new_layout) }
        });
        if q.is_null() {
            return q;
        }
        // SAFETY: both blocks are at least min(old, new) bytes and distinct.
        unsafe {
            ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
            self.dealloc(p, layout);
        }
        q
    }
}
