//! Pieces shared by both histogram chunk encodings: the varbit integer codes, the
//! chunk layout section and the per-value XOR state.

use super::super::bstream::{BitReader, BitWriter};
use crate::histogram::{Span, is_custom_buckets_schema};

/// Why decoding stopped; turned into a [`crate::chunkenc::ChunkError`] by the iterators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecodeError {
    /// The data ends early.
    Truncated,
    /// An impossible value.
    Corrupt(&'static str),
}

pub(super) type DecodeResult<T> = Result<T, DecodeError>;

/// Reads `n` bits or reports truncation.
pub(super) fn bits(r: &mut BitReader<'_>, n: u32) -> DecodeResult<u64> {
    r.read_bits(n).ok_or(DecodeError::Truncated)
}

/// True when `x` is in Prometheus's asymmetric range `[-(2^(n-1)-1), 2^(n-1)]`.
fn in_bit_range(x: i64, n: u32) -> bool {
    let half = 1i64 << (n - 1);
    -(half - 1) <= x && x <= half
}

/// Prefix bits and payload width of the varbit buckets, smallest first. The prefix
/// is `k` one bits followed by a zero (the last bucket has eight ones and no zero).
const BUCKETS: [(u64, u32, u32); 8] = [
    (0b10, 2, 3),
    (0b110, 3, 6),
    (0b1110, 4, 9),
    (0b11110, 5, 12),
    (0b111110, 6, 18),
    (0b1111110, 7, 25),
    (0b11111110, 8, 56),
    (0b11111111, 8, 64),
];

/// Writes a signed integer with the histogram varbit code.
pub(super) fn put_varbit_int(w: &mut BitWriter, v: i64) {
    if v == 0 {
        w.write_bits(0, 1);
        return;
    }
    for &(prefix, plen, n) in &BUCKETS {
        if n == 64 || in_bit_range(v, n) {
            w.write_bits(prefix, plen);
            w.write_bits(v as u64, n);
            return;
        }
    }
}

/// Writes an unsigned integer with the histogram varbit code.
pub(super) fn put_varbit_uint(w: &mut BitWriter, v: u64) {
    if v == 0 {
        w.write_bits(0, 1);
        return;
    }
    for &(prefix, plen, n) in &BUCKETS {
        if n == 64 || v < (1u64 << n) {
            w.write_bits(prefix, plen);
            w.write_bits(v, n);
            return;
        }
    }
}

/// Reads the varbit prefix; returns the payload width (0 for the value zero).
fn read_varbit_width(r: &mut BitReader<'_>) -> DecodeResult<u32> {
    let mut ones = 0usize;
    while ones < 8 {
        if bits(r, 1)? == 0 {
            break;
        }
        ones += 1;
    }
    Ok(match ones {
        0 => 0,
        k => BUCKETS[k - 1].2,
    })
}

/// Reads a signed varbit integer.
pub(super) fn read_varbit_int(r: &mut BitReader<'_>) -> DecodeResult<i64> {
    let n = read_varbit_width(r)?;
    if n == 0 {
        return Ok(0);
    }
    let v = bits(r, n)?;
    if n == 64 {
        return Ok(v as i64);
    }
    Ok(if v > (1u64 << (n - 1)) {
        v.wrapping_sub(1u64 << n) as i64
    } else {
        v as i64
    })
}

/// Reads an unsigned varbit integer.
pub(super) fn read_varbit_uint(r: &mut BitReader<'_>) -> DecodeResult<u64> {
    let n = read_varbit_width(r)?;
    if n == 0 {
        return Ok(0);
    }
    bits(r, n)
}

/// Writes the zero threshold: 0 → byte 0; an exact power of two 2^-243..=2^10 → one
/// byte `e + 243` where `x = 0.5 * 2^e`; anything else → byte 255 and the raw float.
pub(super) fn put_zero_threshold(w: &mut BitWriter, x: f64) {
    if x == 0.0 {
        w.write_byte(0);
        return;
    }
    let b = x.to_bits();
    let biased = (b >> 52) & 0x7ff;
    let mantissa = b & ((1u64 << 52) - 1);
    // A positive normal power of two 2^(biased-1023) = 0.5 * 2^(biased-1022).
    if b >> 63 == 0 && mantissa == 0 && (1..=2046).contains(&biased) {
        let e = biased as i64 - 1022;
        if (-242..=11).contains(&e) {
            w.write_byte((e + 243) as u8);
            return;
        }
    }
    w.write_byte(255);
    w.write_bits(b, 64);
}

/// Reads the zero threshold written by [`put_zero_threshold`].
fn read_zero_threshold(r: &mut BitReader<'_>) -> DecodeResult<f64> {
    match bits(r, 8)? {
        0 => Ok(0.0),
        255 => Ok(f64::from_bits(bits(r, 64)?)),
        // 0.5 * 2^(b-243) = 2^(b-244); biased exponent b - 244 + 1023 is in 780..=1033.
        b => Ok(f64::from_bits((b + 1023 - 244) << 52)),
    }
}

/// Writes one custom bucket bound: `x*1000 + 1` when that is a whole number that fits
/// the 25-bit varbit bucket, else a zero marker and the raw float.
fn put_custom_bound(w: &mut BitWriter, x: f64) {
    let tf = x * 1000.0;
    if !(0.0..=33_554_430.0).contains(&tf) || tf.floor() != tf {
        put_varbit_uint(w, 0);
        w.write_bits(x.to_bits(), 64);
        return;
    }
    put_varbit_uint(w, tf as u64 + 1);
}

/// Reads one custom bucket bound.
fn read_custom_bound(r: &mut BitReader<'_>) -> DecodeResult<f64> {
    match read_varbit_uint(r)? {
        0 => Ok(f64::from_bits(bits(r, 64)?)),
        v => Ok((v - 1) as f64 / 1000.0),
    }
}

/// The chunk-wide layout every sample of a histogram chunk shares.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Layout {
    pub(super) schema: i32,
    pub(super) zero_threshold: f64,
    pub(super) positive_spans: Vec<Span>,
    pub(super) negative_spans: Vec<Span>,
    pub(super) custom_values: Vec<f64>,
}

impl Layout {
    /// Number of positive and negative buckets.
    pub(super) fn bucket_counts(&self) -> (usize, usize) {
        (
            crate::histogram::count_spans(&self.positive_spans) as usize,
            crate::histogram::count_spans(&self.negative_spans) as usize,
        )
    }

    /// Writes the layout section.
    pub(super) fn write(&self, w: &mut BitWriter) {
        put_zero_threshold(w, self.zero_threshold);
        put_varbit_int(w, i64::from(self.schema));
        for spans in [&self.positive_spans, &self.negative_spans] {
            put_varbit_uint(w, spans.len() as u64);
            for s in spans {
                put_varbit_uint(w, u64::from(s.length));
                put_varbit_int(w, i64::from(s.offset));
            }
        }
        if is_custom_buckets_schema(self.schema) {
            put_varbit_uint(w, self.custom_values.len() as u64);
            for &b in &self.custom_values {
                put_custom_bound(w, b);
            }
        }
    }

    /// Reads the layout section. `min_bits_per_bucket` is the smallest encoding of one
    /// bucket in the first sample; it bounds allocations on corrupt input.
    pub(super) fn read(r: &mut BitReader<'_>, min_bits_per_bucket: usize) -> DecodeResult<Self> {
        let zero_threshold = read_zero_threshold(r)?;
        let schema = i32::try_from(read_varbit_int(r)?)
            .map_err(|_| DecodeError::Corrupt("schema does not fit 32 bits"))?;
        let positive_spans = read_spans(r)?;
        let negative_spans = read_spans(r)?;
        let mut custom_values = Vec::new();
        if is_custom_buckets_schema(schema) {
            let n = read_varbit_uint(r)?;
            if n > r.remaining() as u64 {
                return Err(DecodeError::Truncated);
            }
            custom_values.reserve(n as usize);
            for _ in 0..n {
                custom_values.push(read_custom_bound(r)?);
            }
        }
        let layout = Self {
            schema,
            zero_threshold,
            positive_spans,
            negative_spans,
            custom_values,
        };
        let total = crate::histogram::count_spans(&layout.positive_spans)
            + crate::histogram::count_spans(&layout.negative_spans);
        if total.saturating_mul(min_bits_per_bucket as u64) > r.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        Ok(layout)
    }
}

fn read_spans(r: &mut BitReader<'_>) -> DecodeResult<Vec<Span>> {
    let n = read_varbit_uint(r)?;
    // Every span needs at least two bits (length and offset).
    if n > (r.remaining() / 2) as u64 {
        return Err(DecodeError::Truncated);
    }
    let mut spans = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let length = u32::try_from(read_varbit_uint(r)?)
            .map_err(|_| DecodeError::Corrupt("span length does not fit 32 bits"))?;
        let offset = i32::try_from(read_varbit_int(r)?)
            .map_err(|_| DecodeError::Corrupt("span offset does not fit 32 bits"))?;
        spans.push(Span { offset, length });
    }
    Ok(spans)
}

/// Sentinel for "no XOR window chosen yet" (same as Prometheus).
pub(super) const UNSET: u8 = 0xff;

/// One XOR-compressed float series inside a chunk: the previous value and the
/// current leading/trailing-zero window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct XorState {
    pub(super) bits: u64,
    pub(super) leading: u8,
    pub(super) trailing: u8,
}

impl XorState {
    /// Fresh writer state starting from `bits`.
    pub(super) fn new(bits: u64) -> Self {
        Self {
            bits,
            leading: UNSET,
            trailing: 0,
        }
    }

    /// Writes `v` XOR-encoded against the previous value (algorithm of the XOR chunk).
    pub(super) fn write(&mut self, w: &mut BitWriter, v: u64) {
        let x = v ^ self.bits;
        self.bits = v;
        if x == 0 {
            w.write_bits(0, 1);
            return;
        }
        let lz = (x.leading_zeros() as u8).min(31);
        let tz = x.trailing_zeros() as u8;
        if self.leading != UNSET && lz >= self.leading && tz >= self.trailing {
            w.write_bits(0b10, 2);
            let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
            w.write_bits(x >> self.trailing, sig);
            return;
        }
        self.leading = lz;
        self.trailing = tz;
        let sig = 64 - u32::from(lz) - u32::from(tz);
        w.write_bits(0b11, 2);
        w.write_bits(u64::from(lz), 5);
        // 64 significant bits are written as 0.
        w.write_bits(u64::from(sig & 0x3f), 6);
        w.write_bits(x >> tz, sig);
    }

    /// Reads a value written by [`XorState::write`]. A reader starts with window
    /// (0, 0), so a corrupt "reuse window" bit before any window reads 64 bits.
    pub(super) fn read(&mut self, r: &mut BitReader<'_>) -> DecodeResult<()> {
        if bits(r, 1)? == 0 {
            return Ok(());
        }
        if bits(r, 1)? == 1 {
            let leading = bits(r, 5)? as u32;
            let mut sig = bits(r, 6)? as u32;
            if sig == 0 {
                sig = 64;
            }
            if leading + sig > 64 {
                return Err(DecodeError::Corrupt(
                    "leading zeros plus significant bits exceed 64",
                ));
            }
            self.leading = leading as u8;
            self.trailing = (64 - leading - sig) as u8;
        }
        let sig = 64 - u32::from(self.leading) - u32::from(self.trailing);
        let x = bits(r, sig)?;
        self.bits ^= x << self.trailing;
        Ok(())
    }

    /// Reader state (window (0, 0)).
    pub(super) fn reader(bits: u64) -> Self {
        Self {
            bits,
            leading: 0,
            trailing: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_int(v: i64) -> (i64, usize) {
        let mut w = BitWriter::default();
        put_varbit_int(&mut w, v);
        w.write_bits(0b1, 1);
        let mut r = BitReader::new(w.bytes(), 0);
        let got = read_varbit_int(&mut r).unwrap();
        let used = r.pos();
        assert_eq!(bits(&mut r, 1), Ok(1), "marker after {v}");
        (got, used)
    }

    #[test]
    fn varbit_int_bucket_edges() {
        let cases: [(i64, usize); 18] = [
            (0, 1),
            (1, 5),
            (-3, 5),
            (4, 5),
            (-4, 9),
            (5, 9),
            (32, 9),
            (-31, 9),
            (33, 13),
            (256, 13),
            (-255, 13),
            (2048, 17),
            (2049, 24),
            (131_072, 24),
            (16_777_216, 32),
            (-16_777_216, 64),
            (i64::MAX, 72),
            (i64::MIN, 72),
        ];
        for (v, width) in cases {
            assert_eq!(round_trip_int(v), (v, width), "value {v}");
        }
    }

    #[test]
    fn varbit_uint_bucket_edges() {
        for (v, width) in [
            (0u64, 1usize),
            (7, 5),
            (8, 9),
            (63, 9),
            (64, 13),
            (4095, 17),
            (4096, 24),
            (33_554_431, 32),
            (33_554_432, 64),
            (u64::MAX, 72),
        ] {
            let mut w = BitWriter::default();
            put_varbit_uint(&mut w, v);
            let mut r = BitReader::new(w.bytes(), 0);
            assert_eq!(read_varbit_uint(&mut r), Ok(v));
            assert_eq!(r.pos(), width, "value {v}");
        }
    }

    #[test]
    fn zero_threshold_codes() {
        let cases: [(f64, &[u8]); 6] = [
            (0.0, &[0]),
            // 2^-128 = 0.5 * 2^-127 → 116.
            (2f64.powi(-128), &[116]),
            (2f64.powi(-243), &[1]),
            (1024.0, &[254]),
            (2048.0, &[255, 0x40, 0xa0, 0, 0, 0, 0, 0, 0]),
            (
                0.001,
                &[255, 0x3f, 0x50, 0x62, 0x4d, 0xd2, 0xf1, 0xa9, 0xfc],
            ),
        ];
        for (x, want) in cases {
            let mut w = BitWriter::default();
            put_zero_threshold(&mut w, x);
            assert_eq!(w.bytes(), want, "threshold {x}");
            let mut r = BitReader::new(w.bytes(), 0);
            assert_eq!(
                read_zero_threshold(&mut r).map(f64::to_bits),
                Ok(x.to_bits())
            );
        }
    }

    #[test]
    fn custom_bounds() {
        for x in [
            0.0,
            0.1,
            0.25,
            1.0,
            33_554.43,
            33_554.431,
            -1.0,
            1e-4,
            f64::INFINITY,
        ] {
            let mut w = BitWriter::default();
            put_custom_bound(&mut w, x);
            let mut r = BitReader::new(w.bytes(), 0);
            assert_eq!(read_custom_bound(&mut r).map(f64::to_bits), Ok(x.to_bits()));
        }
        // A float that rounds to a whole number of thousandths is stored as that number
        // (lossy, as in Prometheus): 6.0120000000000005 comes back as 6.012.
        let near = f64::from_bits(0x4018_0c49_ba5e_3540);
        assert_eq!(near * 1000.0, 6012.0);
        assert_ne!(near, 6.012);
        let mut w = BitWriter::default();
        put_custom_bound(&mut w, near);
        let mut r = BitReader::new(w.bytes(), 0);
        assert_eq!(read_custom_bound(&mut r), Ok(6.012));
        // 0.1 → 101 in the 9-bit bucket: 1110 001100101.
        let mut w = BitWriter::default();
        put_custom_bound(&mut w, 0.1);
        assert_eq!(w.bytes(), [0b1110_0011, 0b0010_1000]);
    }

    #[test]
    fn truncated_reads_fail() {
        let mut r = BitReader::new(&[0xff], 0);
        assert_eq!(read_varbit_int(&mut r), Err(DecodeError::Truncated));
        let mut r = BitReader::new(&[0b1111_1110], 0);
        assert_eq!(read_varbit_uint(&mut r), Err(DecodeError::Truncated));
    }
}
