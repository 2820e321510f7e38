//! Arguments whose pgrx types would fail with an internal error (XX000) on
//! input a caller can give: pgrx's `PgRelation` opens the relation while
//! unboxing (an OID no relation has: "could not open relation"), and its
//! `JsonB` parses the value with serde_json and panics on what serde_json
//! refuses but jsonb holds (numbers beyond f64, nesting deeper than 128).
//! These types unbox the datum as it is; the function asks for the checked
//! value and gets a documented SQLSTATE instead.
use crate::platform::errors::{PqError, PqResult};
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::prelude::*;

/// A `regclass` argument: the OID, not opened.
#[derive(Clone, Copy, Debug)]
pub struct RegClass(pub pg_sys::Oid);

impl RegClass {
    /// The OID, if a relation has it; else 42P01.
    pub fn existing(self) -> PqResult<pg_sys::Oid> {
        // SAFETY: a syscache probe by a plain OID; it reads the catalog
        // under the current snapshot and raises nothing for a missing row.
        let exists = unsafe {
            pg_sys::SearchSysCacheExists(
                pg_sys::SysCacheIdentifier::RELOID as i32,
                self.0.into(),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
            )
        };
        if exists {
            return Ok(self.0);
        }
        Err(PqError::Sql { code: b"42P01", message: format!("no relation has OID {}", self.0.to_u32()), hint: None })
    }
}

impl FromDatum for RegClass {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        // SAFETY: a regclass datum is an OID passed by value.
        (!is_null).then(|| RegClass(unsafe { pg_sys::Oid::from_datum(datum, false) }.unwrap_or(pg_sys::Oid::INVALID)))
    }
}

/// A `jsonb` argument, as jsonb's own text form until it is parsed.
#[derive(Clone, Debug)]
pub struct Json(String);

impl Json {
    /// The value as serde_json reads it; 22023 naming `what` if it cannot
    /// (a number beyond a double, nesting deeper than 128).
    pub fn parse(&self, what: &str) -> PqResult<serde_json::Value> {
        serde_json::from_str(&self.0)
            .map_err(|e| PqError::InvalidParameter(format!("{what} cannot be read: {}", e.to_string().split(" at line").next().unwrap_or_default())))
    }
}

impl FromDatum for Json {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: a jsonb datum; jsonb_out detoasts it and returns a
        // palloc'd C string, copied here and freed.
        unsafe {
            let text = pgrx::direct_function_call::<&core::ffi::CStr>(pg_sys::jsonb_out, &[Some(datum)])?;
            let owned = text.to_string_lossy().into_owned();
            pg_sys::pfree(text.as_ptr() as *mut core::ffi::c_void);
            Some(Json(owned))
        }
    }
}

macro_rules! argument {
    ($ty:ty, $sql:literal) => {
        // SAFETY: as pgrx's own by-FromDatum arguments. The panic cannot
        // be reached: these types are bare (not Option) parameters only of
        // STRICT functions, which PostgreSQL never calls with a NULL; the
        // functions that are not STRICT take Option<…> and say which
        // argument is missing (errors::required).
        unsafe impl<'fcx> ArgAbi<'fcx> for $ty {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| panic!("argument {index} must not be null"))
            }

            unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> pgrx::nullable::Nullable<Self> {
                unsafe { arg.unbox_arg_using_from_datum() }.into()
            }
        }
        pgrx::impl_sql_translatable!($ty, $sql);
    };
}
argument!(RegClass, "regclass");
argument!(Json, "jsonb");
