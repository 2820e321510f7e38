//! Sizes, tags and domain-separation strings of format v1 (docs/FORMAT.md).
//! Every constant of the byte format is defined here and nowhere else.

/// The only envelope version this crate reads or writes.
pub const VERSION_1: u8 = 0x01;
/// Kind byte of a sealed envelope ('S').
pub const KIND_SEALED: u8 = 0x53;
/// Kind byte of a sealed envelope to an X-Wing key ('X').
pub const KIND_SEALED_XWING: u8 = 0x58;
/// Kind byte of one item of a batch sealed to an ML-KEM-768 key ('B').
pub const KIND_BATCH: u8 = 0x42;
/// Kind byte of one item of a batch sealed to an X-Wing key ('W').
pub const KIND_BATCH_XWING: u8 = 0x57;
/// Kind byte of a sealed envelope to an ML-KEM-1024 key ('L', since 0.11.0).
pub const KIND_SEALED_1024: u8 = 0x4C;
/// Kind byte of one item of a batch sealed to an ML-KEM-1024 key ('M', since 0.11.0).
pub const KIND_BATCH_1024: u8 = 0x4D;
/// Kind byte of a stream file ('T'), written and read by the command line.
pub const KIND_STREAM: u8 = 0x54;
/// Kind byte of a keyed envelope ('K').
pub const KIND_KEYED: u8 = 0x4B;
/// Kind byte of a signature envelope ('G'): ML-DSA-65.
pub const KIND_SIGNATURE: u8 = 0x47;
/// Kind byte of an ML-DSA-87 signature envelope ('H', since 0.11.0).
pub const KIND_SIGNATURE_87: u8 = 0x48;

/// Length of a key id: the first 16 bytes of SHA-256 of the public key.
pub const KID_LEN: usize = 16;

/// ML-KEM-768 encapsulation key.
pub const KEM_PUBLIC_KEY_LEN: usize = 1184;
/// ML-KEM-768 key generation seed `d || z`.
pub const KEM_SEED_LEN: usize = 64;
/// ML-KEM-768 expanded decapsulation key (accepted on input only).
pub const KEM_EXPANDED_KEY_LEN: usize = 2400;
/// ML-KEM-768 ciphertext.
pub const KEM_CIPHERTEXT_LEN: usize = 1088;
/// ML-KEM-768 shared secret.
pub const KEM_SHARED_SECRET_LEN: usize = 32;

/// ML-KEM-1024 encapsulation key.
pub const KEM1024_PUBLIC_KEY_LEN: usize = 1568;
/// ML-KEM-1024 expanded decapsulation key (accepted on input only).
pub const KEM1024_EXPANDED_KEY_LEN: usize = 3168;
/// ML-KEM-1024 ciphertext.
pub const KEM1024_CIPHERTEXT_LEN: usize = 1568;

/// X-Wing encapsulation key: ML-KEM-768 key (1184) then X25519 key (32).
pub const XWING_PUBLIC_KEY_LEN: usize = 1216;
/// X-Wing secret key: the 32-byte seed the draft expands with SHAKE256.
pub const XWING_SEED_LEN: usize = 32;
/// X-Wing ciphertext: ML-KEM-768 ciphertext (1088) then X25519 share (32).
pub const XWING_CIPHERTEXT_LEN: usize = 1120;

/// ML-DSA-65 public (verifying) key.
pub const DSA_PUBLIC_KEY_LEN: usize = 1952;
/// ML-DSA-65 key generation seed `ξ`.
pub const DSA_SEED_LEN: usize = 32;
/// ML-DSA-65 signature.
pub const DSA_SIGNATURE_LEN: usize = 3309;
/// ML-DSA-87 public (verifying) key.
pub const DSA87_PUBLIC_KEY_LEN: usize = 2592;
/// ML-DSA-87 signature.
pub const DSA87_SIGNATURE_LEN: usize = 4627;
/// Longest FIPS 204 context string.
pub const DSA_MAX_CONTEXT_LEN: usize = 255;

/// ChaCha20-Poly1305 and DEK key length.
pub const KEY_LEN: usize = 32;
/// ChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 12;
/// Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Per-value salt of a keyed envelope.
pub const SALT_LEN: usize = 16;

/// Offset of the kid in every envelope.
pub const KID_OFFSET: usize = 2;
/// Sealed: offset of the ML-KEM ciphertext.
pub const SEALED_KEM_CT_OFFSET: usize = KID_OFFSET + KID_LEN;
/// Sealed: offset of the nonce.
pub const SEALED_NONCE_OFFSET: usize = SEALED_KEM_CT_OFFSET + KEM_CIPHERTEXT_LEN;
/// Sealed: header length (everything before the AEAD ciphertext) = 1118.
pub const SEALED_HEADER_LEN: usize = SEALED_NONCE_OFFSET + NONCE_LEN;
/// Batch item: offset of the item's index (u32 big-endian).
pub const BATCH_INDEX_OFFSET: usize = KID_OFFSET + KID_LEN;
/// Batch item: offset of the batch's item count (u32 big-endian).
pub const BATCH_COUNT_OFFSET: usize = BATCH_INDEX_OFFSET + 4;
/// Batch item: offset of the KEM ciphertext.
pub const BATCH_KEM_CT_OFFSET: usize = BATCH_COUNT_OFFSET + 4;
/// Stream: offset of the chunk size (u32 big-endian).
pub const STREAM_CHUNK_SIZE_OFFSET: usize = KID_OFFSET + KID_LEN;
/// Stream: offset of the key envelope's length (u32 big-endian).
pub const STREAM_KEY_LEN_OFFSET: usize = STREAM_CHUNK_SIZE_OFFSET + 4;
/// Stream: length of the fixed prefix before the key envelope = 26.
pub const STREAM_PREFIX_LEN: usize = STREAM_KEY_LEN_OFFSET + 4;
/// Stream: the chunk size this implementation writes (64 KiB).
pub const STREAM_CHUNK_SIZE: u32 = 65536;
/// Stream: smallest chunk size a reader accepts.
pub const STREAM_MIN_CHUNK_SIZE: u32 = 1024;
/// Stream: largest chunk size a reader accepts (bounds its memory).
pub const STREAM_MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Stream: length of the stream key a key envelope carries.
pub const STREAM_KEY_LEN: usize = 32;
/// Keyed: offset of the salt.
pub const KEYED_SALT_OFFSET: usize = KID_OFFSET + KID_LEN;
/// Keyed: offset of the nonce.
pub const KEYED_NONCE_OFFSET: usize = KEYED_SALT_OFFSET + SALT_LEN;
/// Keyed: header length = 46.
pub const KEYED_HEADER_LEN: usize = KEYED_NONCE_OFFSET + NONCE_LEN;
/// Signature envelope: offset of the signature.
pub const SIGNATURE_OFFSET: usize = KID_OFFSET + KID_LEN;
/// Signature envelope: total length = 3327 ('G', ML-DSA-65).
pub const SIGNATURE_ENVELOPE_LEN: usize = SIGNATURE_OFFSET + DSA_SIGNATURE_LEN;
/// Signature envelope: total length = 4645 ('H', ML-DSA-87).
pub const SIGNATURE_87_ENVELOPE_LEN: usize = SIGNATURE_OFFSET + DSA87_SIGNATURE_LEN;

// Labels are ASCII, used without a terminator or length prefix.

/// HKDF info of the sealed envelope key.
pub const INFO_SEALED: &[u8] = b"apg-pq v1 sealed";
/// HKDF info of the key shared by every item of one batch.
pub const INFO_BATCH: &[u8] = b"apg-pq v1 batch";
/// Prefix of the user AAD of a stream's key envelope.
pub const AAD_STREAM: &[u8] = b"apg-pq v1 stream";
/// HKDF info of the key of a DEK sealed to its own key version: a sealed
/// envelope with this label instead of [`INFO_SEALED`], so that no function
/// that opens sealed envelopes can ever open a stored DEK.
pub const INFO_DEK: &[u8] = b"apg-pq v1 dek";
/// HKDF info prefix of the keyed envelope key (the salt follows it).
pub const INFO_KEYED: &[u8] = b"apg-pq v1 keyed";
/// HKDF info prefix of a blind index key (the context follows it; §16).
pub const INFO_BLIND_INDEX: &[u8] = b"apg-pq v1 blind index";
/// Prefix of the user AAD of an exported blind index key (the version's
/// kid and the context follow it; §16.5).
pub const AAD_INDEX_KEY: &[u8] = b"apg-pq v1 index key";
/// Prefix of the AAD of a secret wrapped under the master data key.
pub const AAD_WRAP: &[u8] = b"apg-pq v1 wrap";
/// Prefix hashed with the master data key to give its id.
pub const LABEL_MDK_ID: &[u8] = b"apg-pq v1 mdk";
/// Prefix hashed with a file provider's key-encryption key to give its id.
pub const LABEL_KEK_ID: &[u8] = b"apg-pq v1 kek";

/// Bytes a keyed envelope adds to its plaintext (header and tag) = 62.
pub const KEYED_OVERHEAD: usize = KEYED_HEADER_LEN + TAG_LEN;
/// Bytes a sealed envelope adds to its plaintext (header and tag) = 1134.
pub const SEALED_OVERHEAD: usize = SEALED_HEADER_LEN + TAG_LEN;

/// Bytes a sealed envelope to an X-Wing key adds = 1166.
pub const SEALED_XWING_OVERHEAD: usize = KID_OFFSET + KID_LEN + XWING_CIPHERTEXT_LEN + NONCE_LEN + TAG_LEN;
/// Bytes a batch item adds to its plaintext = 1142 (ML-KEM-768) or 1174 (X-Wing).
pub const BATCH_OVERHEAD: usize = BATCH_KEM_CT_OFFSET + KEM_CIPHERTEXT_LEN + NONCE_LEN + TAG_LEN;
/// See [`BATCH_OVERHEAD`].
pub const BATCH_XWING_OVERHEAD: usize = BATCH_KEM_CT_OFFSET + XWING_CIPHERTEXT_LEN + NONCE_LEN + TAG_LEN;

const _: () = assert!(SEALED_HEADER_LEN == 1118);
const _: () = assert!(SEALED_XWING_OVERHEAD == 1166);
const _: () = assert!(BATCH_OVERHEAD == 1142);
const _: () = assert!(BATCH_XWING_OVERHEAD == 1174);
const _: () = assert!(KEYED_HEADER_LEN == 46);
const _: () = assert!(SIGNATURE_ENVELOPE_LEN == 3327);
const _: () = assert!(SIGNATURE_87_ENVELOPE_LEN == 4645);

