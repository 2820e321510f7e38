//! Result values built in place: a `bytea` or `text` datum allocated in
//! PostgreSQL memory before the cryptography runs, so that ciphertexts are
//! written and plaintexts decrypted straight into the value the function
//! returns. No Rust copy of a plaintext or secret key is left behind, and
//! the per-row path makes one allocation instead of two.
//!
//! The allocation is fallible (`MCXT_ALLOC_NO_OOM`): a value whose size the
//! caller chose and the server cannot hold is an ERROR, never an aborted
//! process. A buffer that is dropped without being returned (a failed
//! decryption) is wiped and freed.
use crate::platform::errors::{PqError, PqResult};
use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::pg_sys;
use pgrx::IntoDatum;
use std::ptr::NonNull;

/// Largest varlena payload (MaxAllocSize - VARHDRSZ).
pub const MAX_PAYLOAD: usize = 0x3fff_ffff - pg_sys::VARHDRSZ;

/// A palloc'd varlena of a fixed length, written in place, then returned.
pub struct Varlena {
    ptr: NonNull<pg_sys::varlena>,
    len: usize,
}

/// A `bytea` result.
pub struct PgBytea(Varlena);

/// A `text` result (checked against the database encoding before it is returned).
pub struct PgText(Varlena);

/// A one-dimensional `bytea[]` result whose elements are written in place
/// (`pq_seal_batch`): one allocation, no copy of the elements.
pub struct PgByteaArray(Varlena);

impl Varlena {
    fn new(len: usize) -> PqResult<Self> {
        if len > MAX_PAYLOAD {
            return Err(PqError::TooLarge);
        }
        let total = len + pg_sys::VARHDRSZ;
        // SAFETY: palloc_extended in the current memory context (the
        // function's, which PostgreSQL frees); NO_OOM returns null instead
        // of raising, which we turn into our own 53200.
        let raw = unsafe { pg_sys::palloc_extended(total, pg_sys::MCXT_ALLOC_NO_OOM as i32) };
        let ptr = NonNull::new(raw.cast::<pg_sys::varlena>()).ok_or(PqError::OutOfMemory)?;
        // SAFETY: `ptr` has `total` writable bytes; SET_VARSIZE writes the
        // 4-byte header of a plain (uncompressed, 4-byte-header) varlena.
        unsafe { pgrx::set_varsize_4b(ptr.as_ptr(), total as i32) };
        Ok(Self { ptr, len })
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the payload follows the header and is `len` bytes, all ours.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>().add(pg_sys::VARHDRSZ), self.len) }
    }

    /// A copy of `bytes`, to pass as a `bytea` or `text` argument to a
    /// function called through fmgr (`Varlena::datum`); wiped and freed
    /// when dropped, so a key passed to pgcrypto leaves no copy behind.
    pub fn argument(bytes: &[u8]) -> PqResult<Self> {
        let mut v = Self::new(bytes.len())?;
        v.as_mut_slice().copy_from_slice(bytes);
        Ok(v)
    }

    /// The datum of an argument; valid while `self` lives.
    pub fn datum(&self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.ptr.as_ptr())
    }

    /// Takes a varlena a called function returned (palloc'd, not an
    /// argument): its payload is copied into zeroizing memory, then the
    /// varlena is wiped and freed.
    ///
    /// # Safety
    /// `datum` points at a varlena in palloc'd memory owned by the caller.
    pub unsafe fn take_result(datum: pg_sys::Datum) -> PqResult<zeroize::Zeroizing<Vec<u8>>> {
        // SAFETY: the caller guarantees a varlena; detoasting copies it if
        // it is compressed or external (then both copies are ours).
        unsafe {
            let raw = datum.cast_mut_ptr::<pg_sys::varlena>();
            let plain = pg_sys::pg_detoast_datum(raw);
            let len = pgrx::varlena::varsize_any_exhdr(plain);
            let data = pgrx::varlena::vardata_any(plain) as *mut u8;
            let mut out = zeroize::Zeroizing::new(Vec::new());
            out.try_reserve_exact(len).map_err(|_| PqError::OutOfMemory)?;
            out.extend_from_slice(std::slice::from_raw_parts(data, len));
            zeroize::Zeroize::zeroize(std::slice::from_raw_parts_mut(data, len));
            if plain != raw {
                pg_sys::pfree(plain.cast());
            }
            pg_sys::pfree(raw.cast());
            Ok(out)
        }
    }

    fn into_datum(self) -> pg_sys::Datum {
        let datum = pg_sys::Datum::from(self.ptr.as_ptr());
        std::mem::forget(self);
        datum
    }
}

impl Drop for Varlena {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self.as_mut_slice());
        // SAFETY: allocated by palloc_extended above and never handed out.
        unsafe { pg_sys::pfree(self.ptr.as_ptr().cast()) };
    }
}

impl PgBytea {
    /// `len` bytes to be filled by `fill`, which writes every byte. If
    /// `fill` fails, the bytes are wiped and freed.
    pub fn build(len: usize, fill: impl FnOnce(&mut [u8]) -> PqResult<()>) -> PqResult<Self> {
        let mut v = Varlena::new(len)?;
        fill(v.as_mut_slice())?;
        Ok(Self(v))
    }

    /// A copy of `bytes` (for secret keys held in zeroizing Rust memory).
    pub fn copy_of(bytes: &[u8]) -> PqResult<Self> {
        Self::build(bytes.len(), |out| {
            out.copy_from_slice(bytes);
            Ok(())
        })
    }

    /// The same bytes as `text`, if they are valid in the database
    /// encoding (which also excludes NUL); otherwise 22021, and the bytes
    /// are wiped.
    pub fn into_text(self) -> PqResult<PgText> {
        let PgBytea(mut v) = self;
        let bytes = v.as_mut_slice();
        // SAFETY: pg_verifymbstr reads `len` bytes and, with noError, returns
        // false instead of raising.
        let valid = unsafe { pg_sys::pg_verifymbstr(bytes.as_ptr().cast(), bytes.len() as i32, true) };
        if !valid {
            return Err(PqError::NotText);
        }
        Ok(PgText(v))
    }
}

impl PgByteaArray {
    /// An array of `lens.len()` elements (None: NULL), element `i` of
    /// `lens[i]` bytes written by `fill(i, bytes)`. The layout is
    /// PostgreSQL's (utils/array.h): header, dims, lower bounds, the null
    /// bitmap when there are NULLs, then each element as a 4-byte-header
    /// varlena at int alignment (bytea's typalign).
    pub fn build(lens: &[Option<usize>], mut fill: impl FnMut(usize, &mut [u8]) -> PqResult<()>) -> PqResult<Self> {
        const HEADER: usize = 16; // vl_len_, ndim, dataoffset, elemtype
        let maxalign = |n: usize| (n + 7) & !7;
        let intalign = |n: usize| (n + 3) & !3;
        let n = lens.len();
        let has_nulls = lens.iter().any(Option::is_none);
        let ndim = usize::from(n > 0);
        let overhead = if has_nulls { maxalign(HEADER + 8 * ndim + n.div_ceil(8)) } else { maxalign(HEADER + 8 * ndim) };
        let mut total = overhead;
        for len in lens.iter().flatten() {
            total = intalign(total).checked_add(pg_sys::VARHDRSZ + len).ok_or(PqError::TooLarge)?;
        }
        let v = Varlena::new(total - pg_sys::VARHDRSZ)?;
        // The whole buffer, varlena header included (Varlena::new set it).
        // SAFETY: `total` bytes were allocated at ptr.
        let buf = unsafe { std::slice::from_raw_parts_mut(v.ptr.as_ptr().cast::<u8>(), total) };
        buf[4..].fill(0);
        let put = |buf: &mut [u8], at: usize, x: i32| buf[at..at + 4].copy_from_slice(&x.to_ne_bytes());
        put(buf, 4, ndim as i32);
        put(buf, 8, if has_nulls { overhead as i32 } else { 0 });
        put(buf, 12, u32::from(pg_sys::BYTEAOID) as i32);
        if n > 0 {
            put(buf, 16, n as i32); // dims[0]
            put(buf, 20, 1); // lbound[0]
        }
        let mut at = overhead;
        for (i, len) in lens.iter().enumerate() {
            let Some(len) = *len else { continue };
            if has_nulls {
                buf[HEADER + 8 + i / 8] |= 1 << (i % 8); // set: not NULL
            }
            at = intalign(at);
            let size = pg_sys::VARHDRSZ + len;
            // SAFETY: `at..at + size` is inside the buffer (sized above).
            unsafe { pgrx::set_varsize_4b(buf.as_mut_ptr().add(at).cast(), size as i32) };
            fill(i, &mut buf[at + pg_sys::VARHDRSZ..at + size])?;
            at += size;
        }
        Ok(Self(v))
    }
}

macro_rules! returned_varlena {
    ($ty:ty, $sql:literal, $oid:expr) => {
        impl IntoDatum for $ty {
            fn into_datum(self) -> Option<pg_sys::Datum> {
                Some(self.0.into_datum())
            }
            fn type_oid() -> pg_sys::Oid {
                $oid
            }
        }

        // SAFETY: returns the datum of a varlena palloc'd in the function's
        // memory context, as PostgreSQL expects of a by-reference result.
        unsafe impl BoxRet for $ty {
            unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
                // SAFETY: a valid datum of the function's declared type.
                unsafe { fcinfo.return_raw_datum(self.0.into_datum()) }
            }
        }

        pgrx::impl_sql_translatable!($ty, $sql);
    };
}

returned_varlena!(PgBytea, "bytea", pg_sys::BYTEAOID);
returned_varlena!(PgText, "text", pg_sys::TEXTOID);
returned_varlena!(PgByteaArray, "bytea[]", pg_sys::BYTEAARRAYOID);
