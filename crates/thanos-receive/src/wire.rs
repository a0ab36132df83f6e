//! A minimal, zero-copy protobuf wire reader for the remote-write messages.
//!
//! The generated prost types validate UTF-8 for every `string` field and fail the whole
//! message on the first bad byte, which would turn one bad label into "request is not
//! protobuf". Reading the wire format directly lets the write path keep strings as byte
//! slices of the decompressed body, validate them per series and name the series at fault,
//! and avoid allocating intermediate messages.

/// Protobuf wire types.
pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const FIXED32: u8 = 5;

/// Where and why decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireError {
    pub(crate) offset: usize,
    pub(crate) reason: &'static str,
}

/// Reads fields from one message's bytes. `base` is the message's offset in the whole
/// body, so errors report absolute offsets.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    fn err(&self, reason: &'static str) -> WireError {
        WireError {
            offset: self.base + self.pos,
            reason,
        }
    }

    /// Absolute offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.err("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    /// Reads a field key: `(field number, wire type)`.
    pub(crate) fn key(&mut self) -> Result<(u32, u8), WireError> {
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(self.err("invalid field number"));
        }
        Ok((field as u32, (k & 7) as u8))
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, WireError> {
        let end = self.pos + 8;
        let Some(bytes) = self.buf.get(self.pos..end) else {
            return Err(self.err("truncated fixed64"));
        };
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        self.pos = end;
        Ok(u64::from_le_bytes(a))
    }

    /// Reads a length-delimited field, returning its bytes and their absolute offset.
    pub(crate) fn bytes(&mut self) -> Result<(&'a [u8], usize), WireError> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err("length-delimited field exceeds its message"))?;
        self.pos = end;
        Ok((&self.buf[start..end], self.base + start))
    }

    /// Skips a field of wire type `wire`.
    pub(crate) fn skip(&mut self, wire: u8) -> Result<(), WireError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.fixed64().map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => {
                if self.pos + 4 > self.buf.len() {
                    return Err(self.err("truncated fixed32"));
                }
                self.pos += 4;
                Ok(())
            }
            _ => Err(self.err("unsupported wire type")),
        }
    }

    /// Fails unless the field has the expected wire type.
    pub(crate) fn expect(&self, wire: u8, expected: u8) -> Result<(), WireError> {
        if wire == expected {
            Ok(())
        } else {
            Err(self.err("unexpected wire type for field"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_like_protobuf() {
        let mut r = Reader::new(&[0x96, 0x01, 0x00], 0);
        assert_eq!(r.varint(), Ok(150));
        assert_eq!(r.varint(), Ok(0));
        assert!(r.is_empty());
        // -1 as int64 is ten bytes ending in 0x01.
        let mut neg = vec![0xff; 9];
        neg.push(0x01);
        assert_eq!(Reader::new(&neg, 0).varint(), Ok(u64::MAX));
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert!(Reader::new(&over, 0).varint().is_err());
        assert_eq!(
            Reader::new(&[0x80], 7).varint(),
            Err(WireError {
                offset: 8,
                reason: "truncated varint"
            })
        );
    }

    #[test]
    fn length_delimited_fields_are_bounded() {
        let mut r = Reader::new(&[0x03, b'a', b'b', b'c', 0x05, b'x'], 10);
        let (b, off) = r.bytes().expect("first field");
        assert_eq!((b, off), (&b"abc"[..], 11));
        assert!(r.bytes().is_err());
    }

    #[test]
    fn keys_and_skips() {
        // field 1 varint, field 2 fixed64, field 3 fixed32, field 4 len.
        let buf = [
            0x08, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1d, 1, 2, 3, 4, 0x22, 0x00,
        ];
        let mut r = Reader::new(&buf, 0);
        while !r.is_empty() {
            let (_, wire) = r.key().expect("key");
            r.skip(wire).expect("skip");
        }
        assert!(Reader::new(&[0x00], 0).key().is_err(), "field 0 is invalid");
        let mut group = Reader::new(&[0x0b], 0);
        let (_, wire) = group.key().expect("key");
        assert!(group.skip(wire).is_err(), "groups are not supported");
    }
}
