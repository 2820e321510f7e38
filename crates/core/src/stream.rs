//! Streams ('T'): files of any size sealed to a public key, read and
//! written in chunks, so neither side holds the whole file in memory.
//! docs/FORMAT.md §12.
//!
//! ```text
//! prefix    = 0x01 'T' kid(16) u32be(chunk_size) u32be(len(key_envelope))   (26 bytes)
//! key_envelope = sealed envelope ('S' or 'X') of a fresh 32-byte stream key,
//!                user AAD = "apg-pq v1 stream" || prefix || user_aad
//! chunk i   = ChaCha20-Poly1305(stream key, nonce_i, aad = "", plaintext_i)
//! nonce_i   = 0x000000 || u64be(i) || (0x01 for the last chunk, else 0x00)
//! ```
//! Every chunk but the last carries exactly `chunk_size` plaintext bytes;
//! the last carries 1..=chunk_size bytes, or 0 when the whole plaintext is
//! empty (then it is the only chunk). Dropping, reordering or duplicating
//! chunks, or cutting the stream at a chunk boundary, fails authentication:
//! the counter and the last-chunk flag are in every nonce.
use crate::{
    aead,
    format::{
        AAD_STREAM, INFO_SEALED, KID_LEN, KID_OFFSET, KIND_STREAM, NONCE_LEN, STREAM_CHUNK_SIZE,
        STREAM_CHUNK_SIZE_OFFSET, STREAM_KEY_LEN, STREAM_KEY_LEN_OFFSET, STREAM_MAX_CHUNK_SIZE,
        STREAM_MIN_CHUNK_SIZE, STREAM_PREFIX_LEN, TAG_LEN, VERSION_1,
    },
    kem::{Opener, Recipient},
    keys::Kid,
    rng::{OsRandom, RandomSource},
    sealed,
    secret::{zeroed_vec, DerivedKey},
    Envelope, Error, Malformed,
};
use std::io::{self, Read, Write};
use zeroize::{Zeroize, Zeroizing};

/// What went wrong with a stream: its bytes, or the reader or writer.
#[derive(Debug)]
pub enum StreamError {
    /// Malformed, or failed authentication (wrong key, wrong AAD, modified,
    /// truncated or extended), as the other envelope kinds report it.
    Crypto(Error),
    /// Reading the input or writing the output failed.
    Io(io::Error),
}

impl From<Error> for StreamError {
    fn from(e: Error) -> Self {
        StreamError::Crypto(e)
    }
}

impl From<Malformed> for StreamError {
    fn from(m: Malformed) -> Self {
        StreamError::Crypto(m.into())
    }
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> Self {
        StreamError::Io(e)
    }
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Crypto(e) => e.fmt(f),
            StreamError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StreamError {}

/// ChaCha20-Poly1305 (RFC 8439) under one stream key, for the chunks. The
/// core's own is [`RustCryptoChunks`]; a program that moves bulk data may
/// bring a faster implementation of the same function (the command line
/// does: this workspace builds RustCrypto's portable backends, which are
/// fastest for the extension's short values, not for 64 KiB chunks).
pub trait ChunkCipher: Sized {
    /// The cipher of a 32-byte stream key.
    fn new(key: &[u8; 32]) -> Result<Self, Error>;
    /// Encrypts `chunk` in place (no AAD); returns the tag.
    fn seal(&self, nonce: &[u8; NONCE_LEN], chunk: &mut [u8]) -> Result<[u8; TAG_LEN], Error>;
    /// Checks `tag` and decrypts `chunk` in place (no AAD); on failure the
    /// chunk holds no plaintext.
    fn open(&self, nonce: &[u8; NONCE_LEN], chunk: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), Error>;
}

/// RustCrypto's `chacha20poly1305`, as the envelopes use it.
pub struct RustCryptoChunks(DerivedKey);

impl ChunkCipher for RustCryptoChunks {
    fn new(key: &[u8; 32]) -> Result<Self, Error> {
        Ok(Self(DerivedKey::from_array(key)))
    }
    fn seal(&self, nonce: &[u8; NONCE_LEN], chunk: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
        aead::seal_in_place(&self.0, nonce, &[], &[], chunk)
    }
    fn open(&self, nonce: &[u8; NONCE_LEN], chunk: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), Error> {
        aead::open_in_place(&self.0, nonce, &[], &[], chunk, tag)
    }
}

/// The 26-byte prefix of a stream.
fn prefix(kid: Kid, chunk_size: u32, key_envelope_len: u32) -> [u8; STREAM_PREFIX_LEN] {
    let mut p = [0u8; STREAM_PREFIX_LEN];
    p[0] = VERSION_1;
    p[1] = KIND_STREAM;
    p[KID_OFFSET..KID_OFFSET + KID_LEN].copy_from_slice(kid.as_bytes());
    p[STREAM_CHUNK_SIZE_OFFSET..STREAM_KEY_LEN_OFFSET].copy_from_slice(&chunk_size.to_be_bytes());
    p[STREAM_KEY_LEN_OFFSET..].copy_from_slice(&key_envelope_len.to_be_bytes());
    p
}

fn key_envelope_aad(prefix: &[u8], user_aad: &[u8]) -> Vec<u8> {
    [AAD_STREAM, prefix, user_aad].concat()
}

fn chunk_nonce(index: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Seals everything `reader` gives to `recipient`, writing the stream to
/// `writer`; `progress` is called with the plaintext bytes done so far.
/// Returns the plaintext length.
pub fn seal_stream<'k>(
    recipient: impl Into<Recipient<'k>>,
    user_aad: &[u8],
    reader: &mut impl Read,
    writer: &mut impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    seal_stream_with::<RustCryptoChunks>(recipient, user_aad, reader, writer, progress)
}

/// As [`seal_stream`], with the chunk cipher `C`.
pub fn seal_stream_with<'k, C: ChunkCipher>(
    recipient: impl Into<Recipient<'k>>,
    user_aad: &[u8],
    reader: &mut impl Read,
    writer: &mut impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    seal_stream_from::<C>(&mut OsRandom, recipient.into(), STREAM_CHUNK_SIZE, user_aad, reader, writer, progress)
}

pub(crate) fn seal_stream_from<C: ChunkCipher>(
    rng: &mut impl RandomSource,
    recipient: Recipient<'_>,
    chunk_size: u32,
    user_aad: &[u8],
    reader: &mut impl Read,
    writer: &mut impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, StreamError> {
    let key = DerivedKey::generate_from(rng)?;
    let key_len = sealed::sealed_len_for(recipient.suite(), STREAM_KEY_LEN)?;
    let prefix = prefix(recipient.kid(), chunk_size, key_len as u32);
    let key_envelope =
        sealed::seal_from(rng, recipient, INFO_SEALED, key.expose(), &key_envelope_aad(&prefix, user_aad))?;
    writer.write_all(&prefix)?;
    writer.write_all(&key_envelope)?;
    let cipher = C::new(key.expose())?;
    drop(key);

    let size = chunk_size as usize;
    // One byte more than a chunk: a full chunk is the last only if no byte follows it.
    let mut buf = Zeroizing::new(zeroed_vec(size + 1 + TAG_LEN)?);
    let mut have = fill(reader, &mut buf[..size + 1])?;
    let mut done = 0u64;
    let mut index = 0u64;
    loop {
        let last = have <= size;
        let len = have.min(size);
        let carry = if last { None } else { Some(buf[size]) };
        let tag = cipher.seal(&chunk_nonce(index, last), &mut buf[..len])?;
        buf[len..len + TAG_LEN].copy_from_slice(&tag);
        if let Err(e) = writer.write_all(&buf[..len + TAG_LEN]) {
            break Err(e.into());
        }
        done += len as u64;
        progress(done);
        let Some(next) = carry else { break Ok(done) };
        buf[0] = next;
        have = 1 + fill(reader, &mut buf[1..size + 1])?;
        index += 1;
    }
}

/// A stream's prefix and key envelope, read from the start of its input.
pub struct StreamHeader {
    prefix: [u8; STREAM_PREFIX_LEN],
    key_envelope: Vec<u8>,
}

impl StreamHeader {
    /// Reads and checks the prefix and key envelope (structure only).
    pub fn read(reader: &mut impl Read) -> Result<Self, StreamError> {
        let mut prefix = [0u8; STREAM_PREFIX_LEN];
        if fill(reader, &mut prefix)? < STREAM_PREFIX_LEN {
            return Err(Malformed::Truncated.into());
        }
        Self::from_prefix(prefix, reader)
    }

    /// As [`StreamHeader::read`], when the caller has read the prefix already.
    pub fn from_prefix(prefix: [u8; STREAM_PREFIX_LEN], reader: &mut impl Read) -> Result<Self, StreamError> {
        if prefix[0] != VERSION_1 {
            return Err(Malformed::UnknownVersion(prefix[0]).into());
        }
        if prefix[1] != KIND_STREAM {
            return Err(Malformed::WrongKind.into());
        }
        let header = Self { prefix, key_envelope: Vec::new() };
        if !(STREAM_MIN_CHUNK_SIZE..=STREAM_MAX_CHUNK_SIZE).contains(&header.chunk_size()) {
            return Err(Malformed::WrongLength.into());
        }
        let key_len = header.key_envelope_len();
        let suite = crate::Suite::ALL
            .into_iter()
            .find(|s| sealed::sealed_len_for(*s, STREAM_KEY_LEN).ok() == Some(key_len))
            .ok_or(Malformed::WrongLength)?;
        let mut key_envelope = vec![0u8; key_len];
        if fill(reader, &mut key_envelope)? < key_len {
            return Err(Malformed::Truncated.into());
        }
        let env = Envelope::parse(&key_envelope)?.into_sealed()?;
        if env.suite() != suite || env.batch_position().is_some() || env.kid() != header.kid() {
            return Err(Malformed::WrongKind.into());
        }
        Ok(Self { key_envelope, ..header })
    }

    /// The recipient's kid.
    pub fn kid(&self) -> Kid {
        let mut kid = [0u8; KID_LEN];
        kid.copy_from_slice(&self.prefix[KID_OFFSET..KID_OFFSET + KID_LEN]);
        Kid(kid)
    }

    /// The suite of the key envelope.
    pub fn suite(&self) -> crate::Suite {
        match Envelope::parse(&self.key_envelope) {
            Ok(Envelope::Sealed(e)) => e.suite(),
            _ => crate::Suite::MlKem768,
        }
    }

    /// Plaintext bytes per chunk.
    pub fn chunk_size(&self) -> u32 {
        u32::from_be_bytes([self.prefix[18], self.prefix[19], self.prefix[20], self.prefix[21]])
    }

    fn key_envelope_len(&self) -> usize {
        u32::from_be_bytes([self.prefix[22], self.prefix[23], self.prefix[24], self.prefix[25]]) as usize
    }

    /// Bytes before the first chunk.
    pub fn len(&self) -> usize {
        STREAM_PREFIX_LEN + self.key_envelope.len()
    }

    /// Never: a header has at least its prefix.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Opens the rest of the stream from `reader` with `key`, writing
    /// authenticated plaintext chunks to `writer` as they come (the caller
    /// keeps the output aside until this returns `Ok`: a later chunk can
    /// still fail). Returns the plaintext length.
    pub fn open<'k>(
        &self,
        key: impl Into<Opener<'k>>,
        user_aad: &[u8],
        reader: &mut impl Read,
        writer: &mut impl Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, StreamError> {
        self.open_with::<RustCryptoChunks>(key, user_aad, reader, writer, progress)
    }

    /// As [`StreamHeader::open`], with the chunk cipher `C`.
    pub fn open_with<'k, C: ChunkCipher>(
        &self,
        key: impl Into<Opener<'k>>,
        user_aad: &[u8],
        reader: &mut impl Read,
        writer: &mut impl Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, StreamError> {
        let env = Envelope::parse(&self.key_envelope)?.into_sealed()?;
        let mut stream_key = sealed::open_labeled(key.into(), &env, INFO_SEALED, &key_envelope_aad(&self.prefix, user_aad))?;
        let key: &[u8; 32] = stream_key.expose().try_into().map_err(|_| Error::DecryptionFailed)?;
        let cipher = C::new(key);
        stream_key.expose_mut().zeroize();
        let cipher = cipher?;
        let size = self.chunk_size() as usize;
        let full = size + TAG_LEN;
        let mut buf = Zeroizing::new(zeroed_vec(full + 1)?);
        let mut have = fill(reader, &mut buf[..full + 1])?;
        let mut done = 0u64;
        let mut index = 0u64;
        loop {
            let last = have <= full;
            let len = have.min(full);
            // A last chunk is a tag at least, and carries bytes unless it is the only one.
            if len < TAG_LEN || (last && len == TAG_LEN && index > 0) {
                break Err(Error::DecryptionFailed.into());
            }
            let carry = if last { None } else { Some(buf[full]) };
            let (body, tag) = buf[..len].split_at_mut(len - TAG_LEN);
            let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::DecryptionFailed)?;
            if let Err(e) = cipher.open(&chunk_nonce(index, last), body, &tag) {
                break Err(e.into());
            }
            if let Err(e) = writer.write_all(body) {
                break Err(e.into());
            }
            done += body.len() as u64;
            progress(done);
            let Some(next) = carry else { break Ok(done) };
            buf[0] = next;
            match fill(reader, &mut buf[1..full + 1]) {
                Ok(n) => have = 1 + n,
                Err(e) => break Err(e.into()),
            }
            index += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RecipientSecret, Suite};

    fn roundtrip(suite: Suite, chunk: u32, len: usize) {
        let (_, key) = RecipientSecret::generate(suite).unwrap();
        let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let mut sealed = Vec::new();
        seal_stream_from::<RustCryptoChunks>(&mut OsRandom, key.public_key(), chunk, b"aad", &mut &plain[..], &mut sealed, &mut |_| {})
            .unwrap();
        let chunks = if len == 0 { 1 } else { len.div_ceil(chunk as usize) };
        assert_eq!(sealed.len(), STREAM_PREFIX_LEN + sealed::sealed_len_for(suite, 32).unwrap() + len + 16 * chunks);
        let mut input = &sealed[..];
        let header = StreamHeader::read(&mut input).unwrap();
        assert_eq!((header.kid(), header.suite(), header.chunk_size()), (key.kid(), suite, chunk));
        let mut out = Vec::new();
        assert_eq!(header.open(&key, b"aad", &mut input, &mut out, &mut |_| {}).unwrap(), len as u64);
        assert_eq!(out, plain);
    }

    #[test]
    fn round_trips_at_chunk_boundaries() {
        for suite in Suite::ALL {
            for len in [0, 1, 1023, 1024, 1025, 2048, 5000] {
                roundtrip(suite, 1024, len);
            }
        }
        roundtrip(Suite::MlKem768, STREAM_CHUNK_SIZE, 200_000);
    }

    fn open_all(key: &RecipientSecret, bytes: &[u8], aad: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut input = bytes;
        let header = StreamHeader::read(&mut input)?;
        let mut out = Vec::new();
        header.open(key, aad, &mut input, &mut out, &mut |_| {})?;
        Ok(out)
    }

    /// Every bit flip, every truncation, dropped, swapped and duplicated
    /// chunks, trailing bytes, another key and another AAD: all rejected.
    #[test]
    fn stream_tampering() {
        for suite in Suite::ALL {
            let (_, key) = RecipientSecret::generate(suite).unwrap();
            let (_, other) = RecipientSecret::generate(suite).unwrap();
            let plain = vec![0x5Au8; 2500];
            let mut s = Vec::new();
            seal_stream_from::<RustCryptoChunks>(&mut OsRandom, key.public_key(), 1024, b"f", &mut &plain[..], &mut s, &mut |_| {}).unwrap();
            assert_eq!(open_all(&key, &s, b"f").unwrap(), plain);
            assert!(open_all(&key, &s, b"g").is_err());
            assert!(open_all(&other, &s, b"f").is_err());
            let mut bytes = s.clone();
            for i in 0..bytes.len() {
                for bit in [0, 3, 7] {
                    bytes[i] ^= 1 << bit;
                    assert!(open_all(&key, &bytes, b"f").is_err(), "flip of byte {i} bit {bit} accepted");
                    bytes[i] ^= 1 << bit;
                }
            }
            for len in 0..s.len() {
                assert!(open_all(&key, &s[..len], b"f").is_err(), "truncation to {len} accepted");
            }
            let head = s.len() - (2500 + 3 * 16);
            let c = 1024 + 16;
            let (c0, c1, c2) = (&s[head..head + c], &s[head + c..head + 2 * c], &s[head + 2 * c..]);
            let h = &s[..head];
            for bad in [
                [h, c1, c0, c2].concat(),
                [h, c0, c2].concat(),
                [h, c0, c0, c1, c2].concat(),
                [h, c0, c1].concat(),
                [&s[..], &[0u8][..]].concat(),
            ] {
                assert!(open_all(&key, &bad, b"f").is_err());
            }
        }
    }
}
