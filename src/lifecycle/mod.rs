//! Keys over time: rotation, version states and rewrap (`rotation`),
//! tracked columns (`tracking`), re-encryption jobs (`jobs`), rotation
//! policies (`policy`).
//!
//! May call: platform, journal, keys, data.
pub mod jobs;
pub mod policy;
pub mod rotation;
pub mod tracking;
