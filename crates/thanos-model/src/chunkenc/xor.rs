//! The XOR ("Gorilla") float chunk, bit-identical to Prometheus's encoding 1.

use std::fmt;

use super::ChunkError;
use super::bstream::{BitReader, BitWriter, PaddedBits, put_uvarint, unzigzag, zigzag};
use crate::sample::Sample;

/// Size of the sample-count header at the start of every XOR chunk.
const HEADER_LEN: usize = 2;
/// Sentinel for "no leading/trailing window chosen yet" (same as Prometheus).
const UNSET: u8 = 0xff;

/// An XOR-encoded float chunk that owns its bytes (header included, encoding byte excluded).
#[derive(Clone, PartialEq, Eq)]
pub struct XorChunk {
    w: BitWriter,
    num: u16,
    first_t: i64,
    t: i64,
    v_bits: u64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for XorChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XorChunk")
            .field("num_samples", &self.num)
            .field("min_time", &self.min_time())
            .field("max_time", &self.max_time())
            .field("bytes", &self.w.bytes().len())
            .finish()
    }
}

impl XorChunk {
    /// The most samples one chunk can hold (the header is a 16-bit count).
    pub const MAX_SAMPLES: usize = u16::MAX as usize;

    /// An empty chunk (just the zero sample-count header).
    pub fn new() -> Self {
        Self {
            w: BitWriter::resume(new_chunk_buffer(), HEADER_LEN * 8),
            num: 0,
            first_t: 0,
            t: 0,
            v_bits: 0,
            t_delta: 0,
            leading: UNSET,
            trailing: 0,
        }
    }

    /// Takes over encoded chunk bytes (without the encoding byte), validating them by
    /// decoding every sample, and restores the appender state so more samples can be
    /// appended. Anything after the last sample's bits is dropped.
    ///
    /// Resuming is exact: appending to a restored chunk produces the same bytes as
    /// appending every sample to one fresh chunk. (Prometheus's own appender restore
    /// differs in one corner: when no value change has been seen yet it resumes with a
    /// zero-width XOR window instead of none, which only changes how the next changed
    /// value is encoded; both forms decode identically.)
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, ChunkError> {
        let mut it = XorIterator::new(&data);
        let mut first_t = 0;
        while let Some(s) = it.next() {
            if it.read == 1 {
                first_t = s.t;
            }
        }
        if let Some(err) = it.err {
            return Err(err);
        }
        let c = it.c;
        // Leading zeros are at most 31 and trailing zeros at most 63.
        let (num, t, v_bits, t_delta, leading, trailing, end) = (
            it.num,
            c.t,
            c.v_bits,
            c.t_delta,
            if c.window_seen {
                c.leading as u8
            } else {
                UNSET
            },
            c.trailing as u8,
            c.pos,
        );
        Ok(Self {
            w: BitWriter::resume(data, end),
            num,
            first_t,
            t,
            v_bits,
            t_delta,
            leading,
            trailing,
        })
    }

    /// Appends a sample exactly the way Prometheus's XOR appender does. Timestamps are
    /// expected to increase; this is not checked here (see [`XorChunk::try_append`]).
    ///
    /// # Panics
    ///
    /// When the chunk already holds [`XorChunk::MAX_SAMPLES`] samples.
    pub fn append(&mut self, t: i64, v: f64) {
        assert!(
            usize::from(self.num) < Self::MAX_SAMPLES,
            "xor chunk already holds {} samples",
            Self::MAX_SAMPLES
        );
        self.append_unchecked(t, v);
    }

    /// Appends a sample after checking that the chunk has room and that `t` is after
    /// the last timestamp.
    pub fn try_append(&mut self, t: i64, v: f64) -> Result<(), ChunkError> {
        if usize::from(self.num) >= Self::MAX_SAMPLES {
            return Err(ChunkError::Full {
                max: Self::MAX_SAMPLES,
            });
        }
        if self.num > 0 && t <= self.t {
            return Err(ChunkError::OutOfOrder { t, last: self.t });
        }
        self.append_unchecked(t, v);
        Ok(())
    }

    fn append_unchecked(&mut self, t: i64, v: f64) {
        let v_bits = v.to_bits();
        let mut t_delta = 0;
        match self.num {
            0 => {
                let mut buf = [0u8; 10];
                let n = put_uvarint(&mut buf, zigzag(t));
                for &b in &buf[..n] {
                    self.w.write_byte(b);
                }
                self.w.write_bits(v_bits, 64);
                self.first_t = t;
            }
            1 => {
                t_delta = t.wrapping_sub(self.t) as u64;
                let mut buf = [0u8; 10];
                let n = put_uvarint(&mut buf, t_delta);
                for &b in &buf[..n] {
                    self.w.write_byte(b);
                }
                self.write_value(v_bits);
            }
            _ => {
                t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w.write_bits(0, 1);
                } else if in_bit_range(dod, 14) {
                    self.w.write_bits((0b10 << 14) | (dod as u64 & 0x3fff), 16);
                } else if in_bit_range(dod, 17) {
                    self.w
                        .write_bits((0b110 << 17) | (dod as u64 & 0x1_ffff), 20);
                } else if in_bit_range(dod, 20) {
                    self.w
                        .write_bits((0b1110 << 20) | (dod as u64 & 0xf_ffff), 24);
                } else {
                    self.w.write_bits(0b1111, 4);
                    self.w.write_bits(dod as u64, 64);
                }
                self.write_value(v_bits);
            }
        }
        self.t = t;
        self.v_bits = v_bits;
        self.t_delta = t_delta;
        self.num += 1;
        self.w.bytes_mut()[..HEADER_LEN].copy_from_slice(&self.num.to_be_bytes());
    }

    fn write_value(&mut self, v_bits: u64) {
        let x = v_bits ^ self.v_bits;
        if x == 0 {
            self.w.write_bits(0, 1);
            return;
        }
        // Leading zeros are stored in 5 bits, so Prometheus clamps them to 31.
        let lz = (x.leading_zeros() as u8).min(31);
        let tz = x.trailing_zeros() as u8;
        if self.leading != UNSET && lz >= self.leading && tz >= self.trailing {
            self.w.write_bits(0b10, 2);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            self.w.write_bits(x >> self.trailing, sig);
            return;
        }
        self.leading = lz;
        self.trailing = tz;
        let sig = 64 - u32::from(lz) - u32::from(tz);
        // 64 significant bits do not fit in 6 bits and are written as 0.
        let header = (0b11 << 11) | (u64::from(lz) << 6) | u64::from(sig & 0x3f);
        self.w.write_bits(header, 13);
        self.w.write_bits(x >> tz, sig);
    }

    /// The encoded bytes: 2-byte sample count followed by the bit stream.
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    /// Gives back the encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.w.into_bytes()
    }

    /// Number of samples in the chunk.
    pub fn num_samples(&self) -> usize {
        usize::from(self.num)
    }

    /// True when the chunk holds no samples.
    pub fn is_empty(&self) -> bool {
        self.num == 0
    }

    /// An iterator over the samples.
    pub fn iter(&self) -> XorIterator<'_> {
        XorIterator::new(self.w.bytes())
    }

    /// Timestamp of the first sample.
    pub fn min_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.first_t)
    }

    /// Timestamp of the last sample.
    pub fn max_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.t)
    }
}

impl<'a> IntoIterator for &'a XorChunk {
    type Item = Sample;
    type IntoIter = XorIterator<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A zeroed sample-count header with room for a typical 120-sample chunk.
fn new_chunk_buffer() -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    b.resize(HEADER_LEN, 0);
    b
}

/// True when `x` fits Prometheus's asymmetric `nbits` range `[-(2^(n-1)-1), 2^(n-1)]`.
#[inline]
fn in_bit_range(x: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= x && x <= half
}

/// Decodes an `n`-bit two's-complement-like field as Prometheus does.
#[inline]
fn signed_field(bits: u64, n: u32) -> i64 {
    if bits > (1u64 << (n - 1)) {
        bits.wrapping_sub(1u64 << n) as i64
    } else {
        bits as i64
    }
}

/// Iterates the samples of XOR chunk bytes; stops (setting [`XorIterator::err`]) on
/// corrupt or truncated data instead of panicking.
#[derive(Debug, Clone)]
pub struct XorIterator<'a> {
    bits: PaddedBits<'a>,
    num: u16,
    read: u16,
    c: Cursor,
    has_cur: bool,
    err: Option<ChunkError>,
}

/// The decoder state between two samples: where the next one starts, and what it is
/// decoded against.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// Position in bits from the start of the chunk data.
    pos: usize,
    t: i64,
    t_delta: u64,
    v_bits: u64,
    leading: u32,
    trailing: u32,
    /// A value window (leading/trailing zeros) has been read.
    window_seen: bool,
}

impl Cursor {
    /// Decodes sample `i` of `num` from `bits`. Reads past the end see zero bits and are
    /// reported as truncation once the sample is decoded.
    #[inline(always)]
    fn step(&mut self, bits: &PaddedBits<'_>, i: usize, num: usize) -> Result<(), ChunkError> {
        if i < 2 {
            self.step_first(bits, i, num)
        } else {
            self.step_next(bits, i, num)
        }
    }

    /// Decodes sample 0 or 1, which start with byte-aligned varints.
    fn step_first(
        &mut self,
        bits: &PaddedBits<'_>,
        i: usize,
        num: usize,
    ) -> Result<(), ChunkError> {
        let truncated = || ChunkError::Truncated {
            sample: i,
            num_samples: num,
        };
        let mut r = BitReader::new(bits.data(), self.pos);
        let u = r.read_uvarint_aligned().ok_or_else(truncated)?;
        if i == 0 {
            self.t = unzigzag(u);
            self.v_bits = r.read_bits(64).ok_or_else(truncated)?;
            self.pos = r.pos();
            return Ok(());
        }
        self.t_delta = u;
        self.t = self.t.wrapping_add(u as i64);
        self.pos = r.pos();
        self.read_value(bits, bits.peek64(self.pos), 64, i)?;
        self.check_end(bits, i, num)
    }

    /// Decodes sample `i >= 2`: a delta-of-delta timestamp and a value.
    #[inline(always)]
    fn step_next(&mut self, bits: &PaddedBits<'_>, i: usize, num: usize) -> Result<(), ChunkError> {
        self.step_next_at(bits, bits.peek64(self.pos), i, num)
    }

    /// [`Cursor::step_next`] given the 64 bits at the position, `w`.
    #[inline(always)]
    fn step_next_at(
        &mut self,
        bits: &PaddedBits<'_>,
        mut w: u64,
        i: usize,
        num: usize,
    ) -> Result<(), ChunkError> {
        // One 64-bit window usually covers the timestamp and the value.
        let (used, dod) = if w >> 63 == 0 {
            (1, 0)
        } else if w >> 62 == 0b10 {
            (16, signed_field((w >> 48) & 0x3fff, 14))
        } else if w >> 61 == 0b110 {
            (20, signed_field((w >> 44) & 0x1_ffff, 17))
        } else if w >> 60 == 0b1110 {
            (24, signed_field((w >> 40) & 0xf_ffff, 20))
        } else {
            let dod = bits.peek64(self.pos + 4);
            self.pos += 68;
            w = bits.peek64(self.pos);
            (0, dod as i64)
        };
        self.pos += used as usize;
        self.t_delta = self.t_delta.wrapping_add(dod as u64);
        self.t = self.t.wrapping_add(self.t_delta as i64);
        self.read_value(bits, w << used, 64 - used, i)?;
        self.check_end(bits, i, num)
    }

    /// Reports sample `i` as truncated when decoding it read past the end of the data.
    #[inline(always)]
    fn check_end(&self, bits: &PaddedBits<'_>, i: usize, num: usize) -> Result<(), ChunkError> {
        if self.pos > bits.data().len() * 8 {
            return Err(ChunkError::Truncated {
                sample: i,
                num_samples: num,
            });
        }
        Ok(())
    }

    /// Decodes one XOR-encoded value at `pos`; `w` holds the next `avail` (at least 13)
    /// bits, left-aligned, so the common case needs no further load.
    #[inline(always)]
    fn read_value(
        &mut self,
        bits: &PaddedBits<'_>,
        w: u64,
        avail: u32,
        i: usize,
    ) -> Result<(), ChunkError> {
        debug_assert!(avail >= 13);
        if w >> 63 == 0 {
            self.pos += 1;
            return Ok(());
        }
        let (header, sig) = if w >> 62 == 0b10 {
            (2, 64 - self.leading - self.trailing)
        } else {
            let leading = ((w >> 57) & 0x1f) as u32;
            let mut sig = ((w >> 51) & 0x3f) as u32;
            if sig == 0 {
                sig = 64;
            }
            if leading + sig > 64 {
                return Err(ChunkError::Corrupt {
                    sample: i,
                    reason: "leading zeros plus significant bits exceed 64",
                });
            }
            self.leading = leading;
            self.trailing = 64 - leading - sig;
            (13, sig)
        };
        let value = if header + sig <= avail {
            (w << header) >> (64 - sig)
        } else {
            bits.peek64(self.pos + header as usize) >> (64 - sig)
        };
        self.pos += (header + sig) as usize;
        self.window_seen = true;
        self.v_bits ^= value << self.trailing;
        Ok(())
    }
}

impl<'a> XorIterator<'a> {
    /// An iterator over chunk bytes (sample-count header included, encoding byte excluded).
    pub fn new(data: &'a [u8]) -> Self {
        let (num, err) = match data.first_chunk::<HEADER_LEN>() {
            Some(h) => (u16::from_be_bytes(*h), None),
            None => (
                0,
                Some(ChunkError::ShortHeader {
                    len: data.len(),
                    needed: HEADER_LEN,
                }),
            ),
        };
        Self {
            bits: PaddedBits::new(data),
            num,
            read: 0,
            c: Cursor {
                pos: HEADER_LEN * 8,
                t: 0,
                t_delta: 0,
                v_bits: 0,
                leading: 0,
                trailing: 0,
                window_seen: false,
            },
            has_cur: false,
            err,
        }
    }

    /// Number of samples the chunk header announces.
    pub fn num_samples(&self) -> usize {
        usize::from(self.num)
    }

    /// The sample returned by the last `next` or `seek`, if any.
    pub fn at(&self) -> Option<Sample> {
        self.has_cur
            .then(|| Sample::new(self.c.t, f64::from_bits(self.c.v_bits)))
    }

    /// Advances to the first sample with timestamp `>= t` and returns it. Never moves
    /// backwards: when the current sample already satisfies `t` it is returned again.
    pub fn seek(&mut self, t: i64) -> Option<Sample> {
        if let Some(cur) = self.at()
            && cur.t >= t
        {
            return Some(cur);
        }
        self.find(|s| s.t >= t)
    }

    /// Appends the remaining samples with `mint <= t <= maxt` to `out`, stopping at the
    /// first sample after `maxt`. Yields what iterating would and fails with the error
    /// iterating would record, without the iterator's per-sample bookkeeping.
    pub fn decode_range_into(
        self,
        mint: i64,
        maxt: i64,
        out: &mut Vec<Sample>,
    ) -> Result<(), ChunkError> {
        if let Some(e) = self.err {
            return Err(e);
        }
        // Under a byte per sample, a chunk holds runs of unchanged samples (a plain
        // changing counter takes several bytes per sample); only then is each sample
        // checked for the start of a run, which costs changing samples about 10%.
        if self.bits.data().len() < usize::from(self.num) {
            self.decode_loop::<true>(mint, maxt, out)
        } else {
            self.decode_loop::<false>(mint, maxt, out)
        }
    }

    #[inline(always)]
    fn decode_loop<const RUNS: bool>(
        self,
        mint: i64,
        maxt: i64,
        out: &mut Vec<Sample>,
    ) -> Result<(), ChunkError> {
        let num = usize::from(self.num);
        let bit_len = self.bits.data().len() * 8;
        let mut c = self.c;
        let mut i = usize::from(self.read);
        while i < num {
            if i >= 2 {
                let w = self.bits.peek64(c.pos);
                // Two or more samples with the previous interval and value ("0" for the
                // delta of deltas, "0" for the value: scrapes of a value that does not
                // change) are read off the zero bits at once. Bits past the end are not
                // taken, so a truncated chunk still fails in `step_next_at`.
                let run = if RUNS && w >> 60 == 0 {
                    (w.leading_zeros() as usize / 2)
                        .min(num - i)
                        .min(bit_len.saturating_sub(c.pos) / 2)
                } else {
                    0
                };
                if run > 0 {
                    let v = f64::from_bits(c.v_bits);
                    for _ in 0..run {
                        c.t = c.t.wrapping_add(c.t_delta as i64);
                        if c.t > maxt {
                            return Ok(());
                        }
                        if c.t >= mint {
                            out.push(Sample::new(c.t, v));
                        }
                    }
                    c.pos += 2 * run;
                    i += run;
                    continue;
                }
                c.step_next_at(&self.bits, w, i, num)?;
            } else {
                c.step_first(&self.bits, i, num)?;
            }
            if c.t > maxt {
                return Ok(());
            }
            if c.t >= mint {
                out.push(Sample::new(c.t, f64::from_bits(c.v_bits)));
            }
            i += 1;
        }
        Ok(())
    }

    /// The error that stopped iteration early, if any.
    pub fn err(&self) -> Option<&ChunkError> {
        self.err.as_ref()
    }
}

impl Iterator for XorIterator<'_> {
    type Item = Sample;

    #[inline]
    fn next(&mut self) -> Option<Sample> {
        if self.err.is_some() || self.read >= self.num {
            self.has_cur = false;
            return None;
        }
        let step = self
            .c
            .step(&self.bits, usize::from(self.read), usize::from(self.num));
        if let Err(e) = step {
            self.err = Some(e);
            self.has_cur = false;
            return None;
        }
        self.read += 1;
        self.has_cur = true;
        Some(Sample::new(self.c.t, f64::from_bits(self.c.v_bits)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.err.is_some() {
            return (0, Some(0));
        }
        (0, Some(usize::from(self.num - self.read)))
    }
}

impl std::iter::FusedIterator for XorIterator<'_> {}
