//! MSB-first bit stream writer and reader used by the chunk encodings.
//!
//! The first bit written is bit 7 of the first byte; the last byte is zero-padded in its
//! low bits. The reader works on 64-bit big-endian windows instead of single bits.

/// Appends bits to a byte vector, most significant bit first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    /// Unused low bits in the last byte (0 when the last byte is full or there is none).
    free: u32,
}

impl BitWriter {
    /// Wraps `bytes` and continues writing at bit offset `bit_len` (bits after it are cleared).
    pub(crate) fn resume(mut bytes: Vec<u8>, bit_len: usize) -> Self {
        let full = bit_len.div_ceil(8);
        bytes.truncate(full);
        let used = (bit_len % 8) as u32;
        let free = if used == 0 { 0 } else { 8 - used };
        if free > 0
            && let Some(last) = bytes.last_mut()
        {
            *last &= 0xffu8 << free;
        }
        Self { bytes, free }
    }

    /// The bytes written so far (last byte zero-padded).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Mutable access to already written bytes (used for fixed-position headers).
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Gives back the byte vector.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Writes a whole byte (straddling two bytes when the stream is not aligned).
    pub(crate) fn write_byte(&mut self, b: u8) {
        self.write_bits(u64::from(b), 8);
    }

    /// Writes the low `n` bits of `v` (`n <= 64`), most significant of them first.
    #[inline]
    pub(crate) fn write_bits(&mut self, v: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        // Merge the partially filled last byte and the new bits in one 128-bit word
        // (at most 7 + 64 bits), then store the bytes they cover.
        let used = (8 - self.free) % 8;
        let head = if used > 0 {
            self.bytes.pop().unwrap_or(0)
        } else {
            0
        };
        let total = used + n;
        let word = (u128::from(head) << 120) | (u128::from(v & low_mask(n)) << (128 - total));
        // Copy a fixed 9 bytes (inlined, no variable-length memcpy) and cut back.
        let len = self.bytes.len();
        let covered = total.div_ceil(8) as usize;
        self.bytes.extend_from_slice(&word.to_be_bytes()[..9]);
        self.bytes.truncate(len + covered);
        self.free = (8 - total % 8) % 8;
    }
}

/// A mask of the low `n` bits (`n <= 64`).
#[inline]
fn low_mask(n: u32) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

/// Reads bits from a byte slice, most significant bit first, never past its end.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader positioned at bit `pos` of `data`.
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Self {
        Self { data, pos }
    }

    /// Current position in bits.
    #[inline]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bits left before the end of the data.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// The next 64 bits without consuming them; bits past the end read as zero.
    #[inline]
    pub(crate) fn peek64(&self) -> u64 {
        peek64_at(self.data, self.pos)
    }

    /// Skips `n` bits; `false` (and no move) when fewer than `n` bits are left.
    #[inline]
    pub(crate) fn consume(&mut self, n: u32) -> bool {
        if self.remaining() < n as usize {
            return false;
        }
        self.pos += n as usize;
        true
    }

    /// Reads `n <= 64` bits as the low bits of the result; `None` when truncated.
    #[inline]
    pub(crate) fn read_bits(&mut self, n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        let w = self.peek64();
        if !self.consume(n) {
            return None;
        }
        Some(w >> (64 - n))
    }

    /// Reads a Go unsigned varint; the reader must be byte aligned.
    pub(crate) fn read_uvarint_aligned(&mut self) -> Option<u64> {
        debug_assert_eq!(self.pos % 8, 0);
        let start = self.pos / 8;
        let mut x: u64 = 0;
        let mut shift = 0u32;
        for (i, &b) in self.data.get(start..)?.iter().enumerate() {
            if i == 10 {
                return None;
            }
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return None;
                }
                self.pos += (i + 1) * 8;
                return Some(x | (u64::from(b) << shift));
            }
            x |= u64::from(b & 0x7f) << shift;
            shift += 7;
        }
        None
    }
}

/// The 64 bits of `data` starting at bit `pos`, most significant first; bits past the end
/// read as zero.
#[inline(always)]
pub(crate) fn peek64_at(data: &[u8], pos: usize) -> u64 {
    let byte = pos >> 3;
    let off = (pos & 7) as u32;
    // For `off == 0` the ninth byte shifts out entirely.
    if let Some(w) = data.get(byte..).and_then(|r| r.first_chunk::<9>()) {
        let head = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        return (head << off) | ((u64::from(w[8]) << 8) >> (16 - off));
    }
    // Within 9 bytes of the end: the same on a zero-padded copy.
    let mut w = [0u8; 9];
    let rest = data.get(byte..).unwrap_or(&[]);
    w[..rest.len()].copy_from_slice(rest);
    let head = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
    (head << off) | ((u64::from(w[8]) << 8) >> (16 - off))
}

/// Bytes of `PaddedBits`'s tail copy: the last [`TAIL_DATA`] data bytes, then zeros.
const TAIL_LEN: usize = 32;
/// Data bytes copied into the tail of a [`PaddedBits`].
const TAIL_DATA: usize = 16;

/// Chunk bytes read 64 bits at a time at any bit position, bits past the end reading as
/// zero, like [`peek64_at`]. Near the end it reads from a zero-padded copy of the last
/// bytes made once, instead of copying them for every read (which also stalled every
/// such read on store forwarding).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PaddedBits<'a> {
    data: &'a [u8],
    tail: [u8; TAIL_LEN],
    tail_start: usize,
}

impl<'a> PaddedBits<'a> {
    /// Wraps `data`, copying its last bytes.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        let tail_start = data.len().saturating_sub(TAIL_DATA);
        let mut tail = [0u8; TAIL_LEN];
        tail[..data.len() - tail_start].copy_from_slice(&data[tail_start..]);
        Self {
            data,
            tail,
            tail_start,
        }
    }

    /// The wrapped bytes.
    #[inline(always)]
    pub(crate) fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The 64 bits starting at bit `pos`, most significant first.
    #[inline(always)]
    pub(crate) fn peek64(&self, pos: usize) -> u64 {
        match self.data.get(pos >> 3..).and_then(|r| r.first_chunk::<9>()) {
            Some(w) => bits_at(w, pos),
            None => self.peek64_tail(pos),
        }
    }

    /// [`PaddedBits::peek64`] within 9 bytes of the end (or past it), from the tail copy.
    #[cold]
    #[inline(never)]
    fn peek64_tail(&self, pos: usize) -> u64 {
        // Such reads start at most 8 bytes before the end of `data`, so at or after
        // `tail_start + 7` (or anywhere in a short chunk, where `tail_start` is 0); those
        // starting past the tail copy only see zeros.
        self.tail
            .get((pos >> 3).wrapping_sub(self.tail_start)..)
            .and_then(|r| r.first_chunk::<9>())
            .map_or(0, |w| bits_at(w, pos))
    }
}

/// The 64 bits at bit offset `pos % 8` of the 9 bytes `w`.
#[inline(always)]
fn bits_at(w: &[u8; 9], pos: usize) -> u64 {
    let off = (pos & 7) as u32;
    let head = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
    (head << off) | ((u64::from(w[8]) << 8) >> (16 - off))
}

/// Encodes `x` as a Go unsigned varint into `buf`, returning the length used.
pub(crate) fn put_uvarint(buf: &mut [u8; 10], mut x: u64) -> usize {
    let mut i = 0;
    while x >= 0x80 {
        buf[i] = (x as u8) | 0x80;
        x >>= 7;
        i += 1;
    }
    buf[i] = x as u8;
    i + 1
}

/// Zig-zag encoding of a signed integer (Go `PutVarint`).
pub(crate) fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub(crate) fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_is_msb_first_and_zero_padded() {
        let mut w = BitWriter::default();
        w.write_bits(0b1, 1);
        w.write_bits(0b01, 2);
        assert_eq!(w.bytes(), &[0b1010_0000]);
        w.write_byte(0xff);
        assert_eq!(w.bytes(), &[0b1011_1111, 0b1110_0000]);
        w.write_bits(u64::MAX, 64);
        assert_eq!(w.bytes().len(), 10);
    }

    #[test]
    fn reader_reads_back_arbitrary_widths() {
        let mut w = BitWriter::default();
        let items: Vec<(u64, u32)> = (0..200u64)
            .map(|i| {
                let n = (i % 64) as u32 + 1;
                (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & low_mask(n), n)
            })
            .collect();
        for &(v, n) in &items {
            w.write_bits(v, n);
        }
        let mut r = BitReader::new(w.bytes(), 0);
        for &(v, n) in &items {
            assert_eq!(r.read_bits(n), Some(v), "width {n}");
        }
        assert!(r.remaining() < 8);
        assert_eq!(r.read_bits(8), None);
    }

    #[test]
    fn resume_clears_bits_after_position() {
        let w = BitWriter::resume(vec![0xff, 0xff, 0xff], 12);
        assert_eq!(w.bytes(), &[0xff, 0xf0]);
        let mut w = w;
        w.write_bits(0b1010, 4);
        assert_eq!(w.bytes(), &[0xff, 0xfa]);
    }

    #[test]
    fn padded_bits_match_peek64_at_everywhere() {
        for len in 0..48usize {
            let data: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(37) ^ 0xa5)
                .collect();
            let bits = PaddedBits::new(&data);
            for pos in 0..(len + 12) * 8 {
                assert_eq!(
                    bits.peek64(pos),
                    peek64_at(&data, pos),
                    "len {len} pos {pos}"
                );
            }
        }
    }

    #[test]
    fn varints_round_trip() {
        for x in [0u64, 1, 127, 128, 300, u64::MAX, 1 << 63] {
            let mut buf = [0u8; 10];
            let n = put_uvarint(&mut buf, x);
            let mut r = BitReader::new(&buf[..n], 0);
            assert_eq!(r.read_uvarint_aligned(), Some(x));
            assert_eq!(r.pos(), n * 8);
        }
        for x in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(x)), x);
        }
        let mut r = BitReader::new(&[0x80, 0x80], 0);
        assert_eq!(r.read_uvarint_aligned(), None);
        let overflow = [0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>();
        assert_eq!(BitReader::new(&overflow, 0).read_uvarint_aligned(), None);
    }
}
