//! KMIP's binary TTLV encoding (KMIP 1.4 §9.1): each item is a 3-byte tag,
//! a 1-byte type, a 4-byte big-endian length and the value, padded with
//! zeros to a multiple of 8 bytes. Only the types the provider sends or
//! reads are built; every type is parsed (and unknown ones skipped), with
//! lengths checked against what is left. Byte strings are zeroized on drop
//! (a Decrypt answer carries the master data key).
use zeroize::Zeroizing;

/// Tags (KMIP 1.4 §9.1.3.1).
pub mod tag {
    pub const ATTRIBUTE: u32 = 0x420008;
    pub const ATTRIBUTE_NAME: u32 = 0x42000A;
    pub const ATTRIBUTE_VALUE: u32 = 0x42000B;
    pub const BATCH_COUNT: u32 = 0x42000D;
    pub const BATCH_ITEM: u32 = 0x42000F;
    pub const BLOCK_CIPHER_MODE: u32 = 0x420011;
    pub const CRYPTOGRAPHIC_ALGORITHM: u32 = 0x420028;
    pub const CRYPTOGRAPHIC_PARAMETERS: u32 = 0x42002B;
    pub const IV_COUNTER_NONCE: u32 = 0x42003D;
    pub const NAME_TYPE: u32 = 0x420054;
    pub const NAME_VALUE: u32 = 0x420055;
    pub const OPERATION: u32 = 0x42005C;
    pub const PADDING_METHOD: u32 = 0x42005F;
    pub const PROTOCOL_VERSION: u32 = 0x420069;
    pub const PROTOCOL_VERSION_MAJOR: u32 = 0x42006A;
    pub const PROTOCOL_VERSION_MINOR: u32 = 0x42006B;
    pub const REQUEST_HEADER: u32 = 0x420077;
    pub const REQUEST_MESSAGE: u32 = 0x420078;
    pub const REQUEST_PAYLOAD: u32 = 0x420079;
    pub const RESPONSE_MESSAGE: u32 = 0x42007B;
    pub const RESPONSE_PAYLOAD: u32 = 0x42007C;
    pub const RESULT_MESSAGE: u32 = 0x42007D;
    pub const RESULT_REASON: u32 = 0x42007E;
    pub const RESULT_STATUS: u32 = 0x42007F;
    pub const UNIQUE_IDENTIFIER: u32 = 0x420094;
    pub const DATA: u32 = 0x4200C2;
    pub const RANDOM_IV: u32 = 0x4200C5;
    pub const TAG_LENGTH: u32 = 0x4200CE;
    pub const AEAD_ADDITIONAL_DATA: u32 = 0x4200FE;
    pub const AEAD_TAG: u32 = 0x4200FF;
}

/// An item's value. Its Debug form shows a byte string's length only (a
/// Decrypt answer's Data is the master data key).
#[derive(PartialEq, Eq)]
pub enum Value {
    Structure(Vec<Item>),
    Integer(i32),
    LongInteger(i64),
    Enumeration(u32),
    Boolean(bool),
    Text(String),
    Bytes(Zeroizing<Vec<u8>>),
    /// Big integers, date-times and intervals: kept as their raw bytes.
    Other(u8, Vec<u8>),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Structure(items) => f.debug_tuple("Structure").field(items).finish(),
            Value::Integer(v) => write!(f, "Integer({v})"),
            Value::LongInteger(v) => write!(f, "LongInteger({v})"),
            Value::Enumeration(v) => write!(f, "Enumeration({v:#x})"),
            Value::Boolean(v) => write!(f, "Boolean({v})"),
            Value::Text(s) => write!(f, "Text({s:?})"),
            Value::Bytes(b) => write!(f, "Bytes(<{} bytes>)", b.len()),
            Value::Other(kind, b) => write!(f, "Other({kind:#x}, <{} bytes>)", b.len()),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Item {
    pub tag: u32,
    pub value: Value,
}

/// How deep structures may nest in an answer (KMIP's own nest about six
/// deep); deeper is refused rather than recursed into.
pub const MAX_DEPTH: usize = 32;

/// A parse failure: the answer is not well-formed TTLV.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

pub fn structure(tag: u32, items: Vec<Item>) -> Item {
    Item { tag, value: Value::Structure(items) }
}
pub fn integer(tag: u32, v: i32) -> Item {
    Item { tag, value: Value::Integer(v) }
}
pub fn enumeration(tag: u32, v: u32) -> Item {
    Item { tag, value: Value::Enumeration(v) }
}
pub fn boolean(tag: u32, v: bool) -> Item {
    Item { tag, value: Value::Boolean(v) }
}
pub fn text(tag: u32, v: &str) -> Item {
    Item { tag, value: Value::Text(v.to_owned()) }
}
pub fn bytes(tag: u32, v: &[u8]) -> Item {
    Item { tag, value: Value::Bytes(Zeroizing::new(v.to_vec())) }
}

fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

impl Item {
    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let head = |out: &mut Vec<u8>, kind: u8, len: usize| {
            out.extend_from_slice(&self.tag.to_be_bytes()[1..]);
            out.push(kind);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        };
        let raw = |out: &mut Vec<u8>, kind: u8, value: &[u8]| {
            head(out, kind, value.len());
            out.extend_from_slice(value);
            out.resize(out.len() + padded(value.len()) - value.len(), 0);
        };
        match &self.value {
            Value::Structure(items) => {
                let start = out.len();
                head(out, 0x01, 0);
                for item in items {
                    item.encode(out);
                }
                let len = (out.len() - start - 8) as u32;
                out[start + 4..start + 8].copy_from_slice(&len.to_be_bytes());
            }
            Value::Integer(v) => raw(out, 0x02, &v.to_be_bytes()),
            Value::LongInteger(v) => raw(out, 0x03, &v.to_be_bytes()),
            Value::Enumeration(v) => raw(out, 0x05, &v.to_be_bytes()),
            Value::Boolean(v) => raw(out, 0x06, &u64::from(*v).to_be_bytes()),
            Value::Text(s) => raw(out, 0x07, s.as_bytes()),
            Value::Bytes(b) => raw(out, 0x08, b),
            Value::Other(kind, b) => raw(out, *kind, b),
        }
    }

    /// Parses one item at the start of `input`; returns it and the bytes it
    /// took (padding included). Structures nest at most [`MAX_DEPTH`] deep.
    pub fn decode(input: &[u8]) -> Result<(Item, usize), Malformed> {
        Item::decode_at(input, 0)
    }

    fn decode_at(input: &[u8], depth: usize) -> Result<(Item, usize), Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed("structures nest too deep"));
        }
        if input.len() < 8 {
            return Err(Malformed("an item is cut short"));
        }
        let tag = u32::from_be_bytes([0, input[0], input[1], input[2]]);
        let kind = input[3];
        let len = u32::from_be_bytes([input[4], input[5], input[6], input[7]]) as usize;
        let body = input.get(8..8 + len).ok_or(Malformed("an item is longer than its message"))?;
        let total = if kind == 0x01 { 8 + len } else { 8 + padded(len) };
        if input.len() < total {
            return Err(Malformed("an item's padding is missing"));
        }
        let fixed = |n: usize| -> Result<&[u8], Malformed> {
            if len == n {
                Ok(body)
            } else {
                Err(Malformed("an item has the wrong length for its type"))
            }
        };
        let value = match kind {
            0x01 => {
                let mut items = Vec::new();
                let mut at = 0;
                while at < len {
                    let (item, used) = Item::decode_at(&body[at..], depth + 1)?;
                    items.push(item);
                    at += used;
                }
                if at != len {
                    return Err(Malformed("a structure's items overrun it"));
                }
                Value::Structure(items)
            }
            0x02 => Value::Integer(i32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default())),
            0x03 => Value::LongInteger(i64::from_be_bytes(fixed(8)?.try_into().unwrap_or_default())),
            0x05 => Value::Enumeration(u32::from_be_bytes(fixed(4)?.try_into().unwrap_or_default())),
            0x06 => Value::Boolean(fixed(8)?.iter().any(|b| *b != 0)),
            0x07 => Value::Text(String::from_utf8(body.to_vec()).map_err(|_| Malformed("a text string is not UTF-8"))?),
            0x08 => Value::Bytes(Zeroizing::new(body.to_vec())),
            0x04 | 0x09 | 0x0A | 0x0B => Value::Other(kind, body.to_vec()),
            _ => return Err(Malformed("an item has an unknown type")),
        };
        Ok((Item { tag, value }, total))
    }

    /// The first item of this structure with `tag`.
    pub fn get(&self, tag: u32) -> Option<&Item> {
        match &self.value {
            Value::Structure(items) => items.iter().find(|i| i.tag == tag),
            _ => None,
        }
    }

    /// Every item of this structure with `tag`.
    pub fn all(&self, tag: u32) -> impl Iterator<Item = &Item> {
        let items: &[Item] = match &self.value {
            Value::Structure(items) => items,
            _ => &[],
        };
        items.iter().filter(move |i| i.tag == tag)
    }

    pub fn as_enum(&self) -> Option<u32> {
        match self.value {
            Value::Enumeration(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match &self.value {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_the_specification_shows() {
        // KMIP 1.4 §9.1.2 examples: an Integer 8 and a Text String "Hello World".
        let mut out = Vec::new();
        integer(0x420020, 8).encode(&mut out);
        assert_eq!(hex(&out), "42002002000000040000000800000000");
        out.clear();
        text(0x420020, "Hello World").encode(&mut out);
        assert_eq!(hex(&out), "420020070000000b48656c6c6f20576f726c640000000000");
        out.clear();
        structure(0x420020, vec![enumeration(0x420004, 254), integer(0x420005, 255)]).encode(&mut out);
        assert_eq!(hex(&out), "42002001000000204200040500000004000000fe000000004200050200000004000000ff00000000");
    }

    #[test]
    fn round_trips_and_refuses_what_is_cut() {
        let item = structure(
            tag::REQUEST_PAYLOAD,
            vec![text(tag::UNIQUE_IDENTIFIER, "1"), bytes(tag::DATA, &[7; 33]), boolean(tag::RANDOM_IV, true)],
        );
        let mut out = Vec::new();
        item.encode(&mut out);
        assert_eq!(Item::decode(&out), Ok((item, out.len())));
        for cut in 0..out.len() {
            assert!(Item::decode(&out[..cut]).is_err(), "a message cut at {cut} parsed");
        }
        // A structure whose length points into the middle of an item.
        let mut bad = out.clone();
        bad[7] -= 8;
        assert!(Item::decode(&bad).is_err());
    }

    #[test]
    fn refuses_structures_nested_too_deep() {
        let nest = |depth: usize| {
            let mut item = integer(tag::BATCH_COUNT, 1);
            for _ in 0..depth {
                item = structure(tag::BATCH_ITEM, vec![item]);
            }
            let mut out = Vec::new();
            item.encode(&mut out);
            out
        };
        assert!(Item::decode(&nest(MAX_DEPTH)).is_ok());
        assert_eq!(Item::decode(&nest(MAX_DEPTH + 1)), Err(Malformed("structures nest too deep")));
        // A megabyte of nested headers is refused without deep recursion.
        let mut deep = Vec::new();
        for i in 0..100_000u32 {
            deep.extend_from_slice(&[0x42, 0x00, 0x0F, 0x01]);
            deep.extend_from_slice(&((100_000 - i - 1) * 8).to_be_bytes());
        }
        assert!(Item::decode(&deep).is_err());
    }

    /// Every mutation of a real answer parses or is refused; none panics.
    #[test]
    fn mutated_answers_never_panic() {
        let item = structure(
            tag::RESPONSE_MESSAGE,
            vec![structure(
                tag::BATCH_ITEM,
                vec![enumeration(tag::RESULT_STATUS, 0), structure(tag::RESPONSE_PAYLOAD, vec![bytes(tag::DATA, &[9; 32])])],
            )],
        );
        let mut good = Vec::new();
        item.encode(&mut good);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut m = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() % m.len() as u64) as usize;
                m[i] = next() as u8;
            }
            let cut = (next() % (m.len() as u64 + 1)) as usize;
            let _ = Item::decode(&m[..cut]);
        }
    }

    #[test]
    fn debug_never_shows_bytes() {
        let shown = format!("{:?}", structure(tag::DATA, vec![bytes(tag::DATA, b"the-master-data-key")]));
        assert!(shown.contains("<19 bytes>") && !shown.contains("the-master"), "{shown}");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
