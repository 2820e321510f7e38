use core::fmt;

/// Everything that can go wrong in the core. Messages name no secret and no
/// plaintext, and a failed authentication never says which check failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a well-formed v1 envelope.
    Malformed(Malformed),
    /// Key bytes of the wrong length, or an encoding that fails validation.
    InvalidKey,
    /// A FIPS 204 context string longer than 255 bytes.
    ContextTooLong,
    /// Wrong key, wrong AAD or modified data: deliberately one opaque error.
    DecryptionFailed,
    /// The operating system's random source failed.
    RandomUnavailable,
    /// Memory for a value of the caller's size could not be allocated.
    OutOfMemory,
    /// An output buffer of the wrong length was passed (a bug in the caller).
    OutputLength,
    /// The signing implementation gave up (a bounded rejection loop; negligible).
    SigningFailed,
}

/// What is structurally wrong with an envelope (lengths and tags only; these
/// are public facts of the bytes, not results of any cryptographic check).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than the smallest envelope of its kind.
    Truncated,
    /// Version byte other than 0x01.
    UnknownVersion(u8),
    /// Kind byte other than 'S', 'X', 'B', 'W', 'K', 'G'.
    UnknownKind(u8),
    /// A fixed-size envelope of the wrong length, or an envelope of an
    /// unexpected kind where one kind is required.
    WrongLength,
    /// A well-formed envelope of a kind the operation does not take.
    WrongKind,
    /// A batch item whose index is not below its count (a count of 0
    /// included): no batch has such an item.
    BatchPosition,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(m) => write!(f, "malformed envelope: {m}"),
            Error::InvalidKey => f.write_str("invalid key: wrong length or encoding"),
            Error::ContextTooLong => f.write_str("context string longer than 255 bytes"),
            Error::DecryptionFailed => f.write_str("decryption failed"),
            Error::RandomUnavailable => f.write_str("random number generator unavailable"),
            Error::OutOfMemory => f.write_str("out of memory"),
            Error::OutputLength => f.write_str("output buffer of the wrong length"),
            Error::SigningFailed => f.write_str("signing failed; try again"),
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Truncated => f.write_str("truncated"),
            Malformed::UnknownVersion(v) => write!(f, "unknown version 0x{v:02x}"),
            Malformed::UnknownKind(k) => write!(f, "unknown kind 0x{k:02x}"),
            Malformed::WrongLength => f.write_str("wrong length"),
            Malformed::WrongKind => f.write_str("wrong kind for this operation"),
            Malformed::BatchPosition => f.write_str("batch item index not below its count"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Malformed> for Error {
    fn from(m: Malformed) -> Self {
        Error::Malformed(m)
    }
}
