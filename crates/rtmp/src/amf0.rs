//! The AMF0 subset RTMP commands use (AMF0 spec, section 2): numbers, booleans, strings,
//! objects, ECMA arrays, null and undefined. Enough to write `connect`/`createStream`/
//! `publish`/`@setDataFrame` and to read the server's `_result`, `_error` and `onStatus`.

use bytes::{BufMut, BytesMut};

/// Nesting deeper than this is refused: a server cannot make the decoder recurse forever.
const MAX_DEPTH: usize = 8;

/// One AMF0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    /// Marker 0x00: an IEEE 754 double.
    Number(f64),
    /// Marker 0x01.
    Boolean(bool),
    /// Marker 0x02 (or 0x0C, long string): UTF-8.
    String(String),
    /// Marker 0x03: key/value pairs in order.
    Object(Vec<(String, Amf0Value)>),
    /// Marker 0x05.
    Null,
    /// Marker 0x06.
    Undefined,
    /// Marker 0x08: like an object, with a count in front.
    EcmaArray(Vec<(String, Amf0Value)>),
}

impl Amf0Value {
    /// The value of `key` in an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Self::Object(pairs) | Self::EcmaArray(pairs) => {
                pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// Appends the encoding of `self` to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Self::Number(n) => {
                out.put_u8(0x00);
                out.put_f64(*n);
            }
            Self::Boolean(b) => {
                out.put_u8(0x01);
                out.put_u8(u8::from(*b));
            }
            Self::String(s) => {
                if let Ok(len) = u16::try_from(s.len()) {
                    out.put_u8(0x02);
                    out.put_u16(len);
                } else {
                    out.put_u8(0x0C);
                    out.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
                }
                out.put_slice(s.as_bytes());
            }
            Self::Object(pairs) => {
                out.put_u8(0x03);
                encode_pairs(pairs, out);
            }
            Self::Null => out.put_u8(0x05),
            Self::Undefined => out.put_u8(0x06),
            Self::EcmaArray(pairs) => {
                out.put_u8(0x08);
                out.put_u32(u32::try_from(pairs.len()).unwrap_or(u32::MAX));
                encode_pairs(pairs, out);
            }
        }
    }
}

fn encode_pairs(pairs: &[(String, Amf0Value)], out: &mut BytesMut) {
    for (key, value) in pairs {
        // Keys are ours and short; a longer one would be cut to fit the u16 length.
        let key = &key.as_bytes()[..key.len().min(usize::from(u16::MAX))];
        out.put_u16(key.len() as u16);
        out.put_slice(key);
        value.encode(out);
    }
    out.put_slice(&[0, 0, 0x09]);
}

/// Encodes a sequence of values (a command message body).
pub fn encode_all(values: &[Amf0Value]) -> BytesMut {
    let mut out = BytesMut::new();
    for v in values {
        v.encode(&mut out);
    }
    out
}

/// Why an AMF0 body did not decode: the byte offset in the body and what was wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AMF0 invalid at byte {offset}: {what}")]
pub struct Amf0Error {
    /// Offset in the message body.
    pub offset: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// Decodes every value of a command message body.
pub fn decode_all(body: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut reader = Reader { body, pos: 0 };
    let mut values = Vec::new();
    while reader.pos < body.len() {
        values.push(reader.value(0)?);
    }
    Ok(values)
}

struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn err(&self, what: &'static str) -> Amf0Error {
        Amf0Error {
            offset: self.pos,
            what,
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Amf0Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.body.len())
            .ok_or_else(|| self.err("truncated"))?;
        let bytes = &self.body[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, len: usize) -> Result<String, Amf0Error> {
        let at = self.pos;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Amf0Error {
            offset: at,
            what: "string is not UTF-8",
        })
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00 => {
                let b = self.take(8)?;
                Amf0Value::Number(f64::from_be_bytes(b.try_into().expect("took 8 bytes")))
            }
            0x01 => Amf0Value::Boolean(self.take(1)?[0] != 0),
            0x02 => {
                let len = self.u16()?;
                Amf0Value::String(self.string(usize::from(len))?)
            }
            0x0C => {
                let len = self.u32()?;
                Amf0Value::String(self.string(len as usize)?)
            }
            0x03 => Amf0Value::Object(self.pairs(depth)?),
            0x05 => Amf0Value::Null,
            0x06 => Amf0Value::Undefined,
            0x08 => {
                // The count is a hint (servers get it wrong); the end marker ends the array.
                self.u32()?;
                Amf0Value::EcmaArray(self.pairs(depth)?)
            }
            _ => {
                self.pos -= 1;
                return Err(self.err("unsupported AMF0 type marker"));
            }
        })
    }

    fn pairs(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        let mut pairs = Vec::new();
        loop {
            let len = self.u16()?;
            if len == 0 && self.body.get(self.pos) == Some(&0x09) {
                self.pos += 1;
                return Ok(pairs);
            }
            let key = self.string(usize::from(len))?;
            pairs.push((key, self.value(depth + 1)?));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn connect_command_encodes_byte_exact() {
        let body = encode_all(&[
            Amf0Value::String("connect".into()),
            Amf0Value::Number(1.0),
            Amf0Value::Object(vec![("app".into(), Amf0Value::String("live".into()))]),
        ]);
        let expected: &[u8] = &[
            0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', // "connect"
            0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, // 1.0
            0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e', 0, 0,
            0x09,
        ];
        assert_eq!(&body[..], expected);
        assert_eq!(
            decode_all(expected).unwrap()[2].get("app"),
            Some(&Amf0Value::String("live".into()))
        );
    }

    #[test]
    fn truncated_and_unknown_input_names_the_offset() {
        assert_eq!(
            decode_all(&[0x02, 0x00, 0x05, b'a']),
            Err(Amf0Error {
                offset: 3,
                what: "truncated"
            })
        );
        assert_eq!(decode_all(&[0x05, 0x11]).unwrap_err().offset, 1);
        let deep: Vec<u8> = std::iter::repeat_n([0x03u8, 0x00, 0x01, b'k'], 20)
            .flatten()
            .collect();
        assert_eq!(decode_all(&deep).unwrap_err().what, "nested too deeply");
    }

    fn value() -> impl Strategy<Value = Amf0Value> {
        let leaf = prop_oneof![
            any::<f64>()
                .prop_filter("NaN is not equal to itself", |n| !n.is_nan())
                .prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            ".{0,20}".prop_map(Amf0Value::String),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(("[a-z]{1,8}", inner.clone()), 0..4)
                    .prop_map(Amf0Value::Object),
                prop::collection::vec(("[a-z]{1,8}", inner), 0..4).prop_map(Amf0Value::EcmaArray),
            ]
        })
    }

    proptest! {
        #[test]
        fn values_round_trip(values in prop::collection::vec(value(), 0..4)) {
            prop_assert_eq!(decode_all(&encode_all(&values)).unwrap(), values);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_all(&bytes);
        }
    }
}
