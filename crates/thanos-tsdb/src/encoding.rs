//! Bounds-checked decoding and encoding of the primitive types used by TSDB files.
//!
//! Mirrors Prometheus's `tsdb/encoding` package: big-endian fixed-width integers, Go
//! `encoding/binary` unsigned and zig-zag signed varints, uvarint-prefixed strings and
//! CRC-32C (Castagnoli) checksums stored as 4 big-endian bytes. Decoding never panics:
//! every read checks the remaining length and reports the absolute file offset on error.

use std::fmt;

/// Why a decode failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// Fewer bytes were left than the item needs.
    UnexpectedEof {
        /// Bytes the item needs.
        needed: u64,
        /// Bytes that were left.
        available: u64,
    },
    /// A varint was longer than 10 bytes or overflowed 64 bits (32 bits for `uvarint32`).
    VarintOverflow,
    /// A string was not valid UTF-8.
    InvalidUtf8,
    /// A stored CRC-32C did not match the data.
    CrcMismatch {
        /// Checksum stored in the file.
        stored: u32,
        /// Checksum computed over the data.
        computed: u32,
    },
    /// A magic number did not match.
    BadMagic {
        /// Magic number expected.
        expected: u32,
        /// Magic number found.
        found: u32,
    },
    /// A format version is not supported.
    UnsupportedVersion(u64),
    /// A structural rule of the format is violated.
    Invalid(String),
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEof { needed, available } => {
                write!(
                    f,
                    "unexpected end of data (need {needed} bytes, {available} left)"
                )
            }
            Self::VarintOverflow => f.write_str("varint overflow"),
            Self::InvalidUtf8 => f.write_str("invalid utf-8 in string"),
            Self::CrcMismatch { stored, computed } => {
                write!(
                    f,
                    "crc32c mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            Self::BadMagic { expected, found } => {
                write!(
                    f,
                    "bad magic number {found:#010x} (expected {expected:#010x})"
                )
            }
            Self::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            Self::Invalid(reason) => f.write_str(reason),
        }
    }
}

/// A decode failure at an absolute offset of the file being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offset {offset}: {kind}")]
pub struct DecodeError {
    /// Absolute offset in the file where the failing item starts.
    pub offset: u64,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// Creates an error at `offset`.
    pub fn new(offset: u64, kind: DecodeErrorKind) -> Self {
        Self { offset, kind }
    }

    /// Creates an [`DecodeErrorKind::Invalid`] error at `offset`.
    pub fn invalid(offset: u64, reason: impl Into<String>) -> Self {
        Self::new(offset, DecodeErrorKind::Invalid(reason.into()))
    }
}

/// Result of decoding.
pub type DecodeResult<T> = Result<T, DecodeError>;

/// CRC-32C (Castagnoli) of `data`, as Go's `crc32.Checksum(data, castagnoliTable)`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// A read cursor over a byte slice that knows the slice's absolute offset in its file.
#[derive(Debug, Clone)]
pub struct Decbuf<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Decbuf<'a> {
    /// A cursor over `data`, which starts at file offset 0.
    pub fn new(data: &'a [u8]) -> Self {
        Self::with_base(data, 0)
    }

    /// A cursor over `data`, which starts at absolute file offset `base`.
    pub fn with_base(data: &'a [u8], base: u64) -> Self {
        Self { data, pos: 0, base }
    }

    /// Absolute file offset of the next byte to read.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos..]
    }

    fn eof(&self, needed: usize) -> DecodeError {
        DecodeError::new(
            self.offset(),
            DecodeErrorKind::UnexpectedEof {
                needed: needed as u64,
                available: self.remaining() as u64,
            },
        )
    }

    /// Reads `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.eof(n));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> DecodeResult<()> {
        self.bytes(n).map(|_| ())
    }

    /// Reads one byte.
    pub fn byte(&mut self) -> DecodeResult<u8> {
        Ok(self.bytes(1)?[0])
    }

    /// Reads a big-endian `u32`.
    pub fn be_u32(&mut self) -> DecodeResult<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a big-endian `u64`.
    pub fn be_u64(&mut self) -> DecodeResult<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads a Go unsigned varint (up to 10 bytes).
    pub fn uvarint(&mut self) -> DecodeResult<u64> {
        let start = self.offset();
        let (v, n) = uvarint(self.rest()).map_err(|kind| DecodeError::new(start, kind))?;
        self.pos += n;
        Ok(v)
    }

    /// Reads a Go unsigned varint that must fit in 32 bits.
    pub fn uvarint32(&mut self) -> DecodeResult<u32> {
        let start = self.offset();
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| DecodeError::new(start, DecodeErrorKind::VarintOverflow))
    }

    /// Reads a Go signed (zig-zag) varint.
    pub fn varint(&mut self) -> DecodeResult<i64> {
        let u = self.uvarint()?;
        Ok(zigzag_decode(u))
    }

    /// Reads a uvarint-length-prefixed byte string.
    pub fn uvarint_bytes(&mut self) -> DecodeResult<&'a [u8]> {
        let start = self.offset();
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| {
            DecodeError::new(
                start,
                DecodeErrorKind::UnexpectedEof {
                    needed: n,
                    available: self.remaining() as u64,
                },
            )
        })?;
        self.bytes(n)
    }

    /// Reads a uvarint-length-prefixed UTF-8 string.
    pub fn uvarint_str(&mut self) -> DecodeResult<&'a str> {
        let start = self.offset();
        let b = self.uvarint_bytes()?;
        std::str::from_utf8(b).map_err(|_| DecodeError::new(start, DecodeErrorKind::InvalidUtf8))
    }
}

/// Decodes a Go unsigned varint from the start of `b`, returning the value and its length.
pub fn uvarint(b: &[u8]) -> Result<(u64, usize), DecodeErrorKind> {
    let mut x: u64 = 0;
    let mut shift = 0u32;
    for (i, &byte) in b.iter().enumerate() {
        if i == 10 {
            return Err(DecodeErrorKind::VarintOverflow);
        }
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return Err(DecodeErrorKind::VarintOverflow);
            }
            return Ok((x | (u64::from(byte) << shift), i + 1));
        }
        x |= u64::from(byte & 0x7f) << shift;
        shift += 7;
    }
    if b.len() >= 10 {
        return Err(DecodeErrorKind::VarintOverflow);
    }
    Err(DecodeErrorKind::UnexpectedEof {
        needed: b.len() as u64 + 1,
        available: b.len() as u64,
    })
}

/// Zig-zag encodes a signed value as Go's `PutVarint` does.
pub fn zigzag_encode(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

/// Inverse of [`zigzag_encode`].
pub fn zigzag_decode(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Reads a framed section at `offset` of `file`: `len <4b> | len bytes | CRC32C <4b>`,
/// verifies the CRC and returns a cursor over the `len` bytes.
pub fn framed_section(file: &[u8], offset: u64) -> DecodeResult<Decbuf<'_>> {
    let start = usize::try_from(offset)
        .ok()
        .filter(|&s| s <= file.len())
        .ok_or_else(|| {
            DecodeError::new(
                offset,
                DecodeErrorKind::UnexpectedEof {
                    needed: 4,
                    available: 0,
                },
            )
        })?;
    let mut d = Decbuf::with_base(&file[start..], offset);
    let len = d.be_u32()? as usize;
    let body_off = d.offset();
    let body = d.bytes(len)?;
    let stored = d.be_u32()?;
    verify_crc(body, stored, body_off)?;
    Ok(Decbuf::with_base(body, body_off))
}

/// Checks that `crc32c(data) == stored`; `offset` locates `data` for the error.
///
/// Fuzzing builds (`--cfg fuzzing`) skip the comparison so that the fuzzer can reach the
/// decoders behind the checksums.
pub fn verify_crc(data: &[u8], stored: u32, offset: u64) -> DecodeResult<()> {
    let computed = crc32c(data);
    if cfg!(fuzzing) {
        return Ok(());
    }
    if computed != stored {
        return Err(DecodeError::new(
            offset,
            DecodeErrorKind::CrcMismatch { stored, computed },
        ));
    }
    Ok(())
}

/// An append-only encode buffer.
#[derive(Debug, Clone, Default)]
pub struct Encbuf {
    buf: Vec<u8>,
}

impl Encbuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Clears the buffer, keeping its allocation.
    pub fn reset(&mut self) {
        self.buf.clear();
    }

    /// The encoded bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Mutable access to the encoded bytes (to patch a length field).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Number of encoded bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was encoded.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Consumes the buffer.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// Appends one byte.
    pub fn put_byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// Appends raw bytes.
    pub fn put_bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Appends a big-endian `u32`.
    pub fn put_be_u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a big-endian `u64`.
    pub fn put_be_u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Appends a Go unsigned varint.
    pub fn put_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Appends a Go signed (zig-zag) varint.
    pub fn put_varint(&mut self, v: i64) {
        self.put_uvarint(zigzag_encode(v));
    }

    /// Appends a uvarint-length-prefixed string.
    pub fn put_uvarint_str(&mut self, s: &str) {
        self.put_uvarint(s.len() as u64);
        self.put_bytes(s.as_bytes());
    }

    /// Appends the big-endian CRC-32C of `self.as_slice()[from..]`.
    pub fn put_crc32c_from(&mut self, from: usize) {
        let c = crc32c(&self.buf[from..]);
        self.put_be_u32(c);
    }
}

/// Number of bytes [`Encbuf::put_uvarint`] writes for `v`.
pub fn uvarint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_go_encodings() {
        let mut e = Encbuf::new();
        e.put_uvarint(300);
        assert_eq!(e.as_slice(), &[0xac, 0x02]);
        e.reset();
        e.put_varint(-1);
        assert_eq!(e.as_slice(), &[0x01]);
        e.reset();
        e.put_varint(1_700_000_000_000);
        // Timestamp bytes as they appear in a promtool-written index.
        assert_eq!(e.as_slice(), &[0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62]);
        e.reset();
        e.put_uvarint(u64::MAX);
        assert_eq!(e.len(), 10);
        assert_eq!(uvarint_len(u64::MAX), 10);
        assert_eq!(uvarint_len(0), 1);
        assert_eq!(uvarint_len(127), 1);
        assert_eq!(uvarint_len(128), 2);
    }

    #[test]
    fn crc_is_castagnoli() {
        // Standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        let mut d = Decbuf::with_base(&[0x80, 0x80], 100);
        let err = d.uvarint().unwrap_err();
        assert_eq!(err.offset, 100);
        assert!(matches!(err.kind, DecodeErrorKind::UnexpectedEof { .. }));
        let long = [0xffu8; 11];
        assert_eq!(
            Decbuf::new(&long).uvarint().unwrap_err().kind,
            DecodeErrorKind::VarintOverflow
        );
        // Tenth byte may only carry one bit.
        let mut over = [0xffu8; 10];
        over[9] = 0x02;
        assert_eq!(
            Decbuf::new(&over).uvarint().unwrap_err().kind,
            DecodeErrorKind::VarintOverflow
        );
        let mut e = Encbuf::new();
        e.put_uvarint(u64::from(u32::MAX) + 1);
        assert_eq!(
            Decbuf::new(e.as_slice()).uvarint32().unwrap_err().kind,
            DecodeErrorKind::VarintOverflow
        );
    }

    #[test]
    fn framed_section_checks_crc_and_bounds() {
        let mut e = Encbuf::new();
        e.put_bytes(&[9, 9]);
        e.put_be_u32(3);
        e.put_bytes(b"abc");
        e.put_crc32c_from(6);
        let mut d = framed_section(e.as_slice(), 2).unwrap();
        assert_eq!(d.offset(), 6);
        assert_eq!(d.bytes(3).unwrap(), b"abc");
        let mut bad = e.clone().into_vec();
        bad[7] ^= 1;
        let err = framed_section(&bad, 2).unwrap_err();
        assert_eq!(err.offset, 6);
        assert!(matches!(err.kind, DecodeErrorKind::CrcMismatch { .. }));
        assert!(framed_section(&e.as_slice()[..8], 2).is_err());
        assert!(framed_section(e.as_slice(), 1000).is_err());
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let mut d = Decbuf::with_base(&[2, 0xff, 0xfe], 7);
        assert_eq!(
            d.uvarint_str().unwrap_err(),
            DecodeError::new(7, DecodeErrorKind::InvalidUtf8)
        );
    }

    proptest! {
        #[test]
        fn roundtrip(
            u in any::<u64>(), i in any::<i64>(), a in any::<u32>(), b in any::<u64>(),
            s in ".*", raw in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut e = Encbuf::new();
            e.put_uvarint(u);
            e.put_varint(i);
            e.put_be_u32(a);
            e.put_be_u64(b);
            e.put_uvarint_str(&s);
            e.put_bytes(&raw);
            let mut d = Decbuf::new(e.as_slice());
            prop_assert_eq!(d.uvarint()?, u);
            prop_assert_eq!(d.varint()?, i);
            prop_assert_eq!(d.be_u32()?, a);
            prop_assert_eq!(d.be_u64()?, b);
            prop_assert_eq!(d.uvarint_str()?, s.as_str());
            prop_assert_eq!(d.bytes(raw.len())?, raw.as_slice());
            prop_assert!(d.is_empty());
            prop_assert_eq!(uvarint_len(u), {
                let mut t = Encbuf::new();
                t.put_uvarint(u);
                t.len()
            });
        }

        #[test]
        fn decoding_garbage_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = Decbuf::new(&raw);
            while !d.is_empty() {
                if d.uvarint_str().is_err() && d.varint().is_err() && d.be_u64().is_err() {
                    break;
                }
            }
            let _ = framed_section(&raw, 0);
        }
    }
}
