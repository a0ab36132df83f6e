use proptest::prelude::*;

use super::*;
use crate::chunkenc::{ChunkSample, decode_any, float_iterator};
use crate::histogram::{CUSTOM_BUCKETS_SCHEMA, FloatHistogram, Histogram};
use crate::sample::{STALE_NAN_BITS, stale_nan};

/// Zero bucket 0, schema 0, one positive span of two buckets at index 0.
fn small(count: u64, sum: f64, buckets: [i64; 2]) -> Histogram {
    Histogram {
        schema: 0,
        zero_count: 1,
        count,
        sum,
        positive_spans: vec![Span::new(0, 2)],
        positive_buckets: buckets.to_vec(),
        ..Histogram::default()
    }
}

fn appended(o: Result<AppendOutcome, ChunkError>) {
    assert_eq!(o, Ok(AppendOutcome::Appended));
}

#[test]
fn integer_chunk_golden_bytes() {
    let mut c = HistogramChunk::new();
    appended(c.append(1000, &small(3, 2.0, [1, 0])));
    appended(c.append(2000, &small(5, 4.0, [2, 0])));
    appended(c.append(3000, &small(7, 4.0, [3, 0])));
    // Bit groups after the 3-byte header (00 03 | 00 = unknown counter reset):
    // layout:   00000000 zero threshold 0 | 0 schema 0 | 10 001 one positive span
    //           | 10 010 length 2 | 0 offset 0 | 0 no negative spans
    // sample 0: 11110 001111101000 t=1000 | 10 011 count 3 | 10 001 zero count 1
    //           | 0x4000000000000000 sum 2.0 (64 bits) | 10 001 bucket delta 1 | 0 bucket 0
    // sample 1: 11110 001111101000 t delta 1000 | 10 010 count dod 2 | 0 zero dod
    //           | 1 1 01011 000001 1 sum xor (lead 11, 1 sig bit) | 10 001 dod 1 | 0
    // sample 2: 0 t dod | 0 count dod | 0 zero dod | 0 sum same | 0 | 0, then 1 pad bit.
    let want = [
        0x00, 0x03, 0x00, // header
        0x00, 0x46, 0x47, 0x8f, 0xa2, 0x71, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8b,
        0xc7, 0xd1, 0x26, 0xb0, 0x71, 0x00,
    ];
    assert_eq!(c.bytes(), want);
    assert_eq!((c.min_time(), c.max_time()), (Some(1000), Some(3000)));
    let got: Vec<_> = HistogramIterator::new(&want).collect();
    let mut second = small(5, 4.0, [2, 0]);
    second.counter_reset_hint = CounterResetHint::NotCounterReset;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], (1000, small(3, 2.0, [1, 0])));
    assert_eq!(got[1], (2000, second));
    assert_eq!(got[2].1.positive_buckets, [3, 0]);
}

#[test]
fn float_chunk_golden_bytes() {
    let mut c = FloatHistogramChunk::new();
    appended(c.append(1000, &small(3, 2.0, [1, 0]).to_float()));
    appended(c.append(2000, &small(5, 4.0, [2, 0]).to_float()));
    appended(c.append(3000, &small(7, 4.0, [3, 0]).to_float()));
    // layout: same 21 bits as the integer chunk.
    // sample 0: 11110 001111101000 t=1000, then raw floats count 3.0, zero count 1.0,
    //           sum 2.0, buckets 1.0 and 1.0 (5 × 64 bits).
    // sample 1: 11110 001111101000 t delta | count 3→5: 1 1 01011 000011 111
    //           | zero count same: 0 | sum 2→4: 1 1 01011 000001 1
    //           | each bucket 1→2: 1 1 00001 001011 11111111111 (own window each)
    // sample 2: 0 t dod | count 5→7 reuses window (11, 50): 10 010 | 0 | 0
    //           | each bucket 2→3: 1 1 01100 000001 1 (trailing 51 < 52: new window)
    //           then 6 pad bits.
    let want = [
        0x00, 0x03, 0x00, // header
        0x00, 0x46, 0x47, 0x8f, 0xa1, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xc0,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff,
        0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
        0xc7, 0xd1, 0xac, 0x3e, 0xd6, 0x0f, 0x09, 0x7f, 0xff, 0x09, 0x7f, 0xfd, 0x23, 0x60, 0x3d,
        0x80, 0xc0,
    ];
    assert_eq!(c.bytes(), want);
    let got: Vec<_> = FloatHistogramIterator::new(&want).collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].0, 3000);
    assert_eq!(got[2].1.count, 7.0);
    assert_eq!(got[2].1.positive_buckets, [3.0, 3.0]);
}

#[test]
fn custom_bucket_layout_golden_bytes() {
    let h = Histogram {
        counter_reset_hint: CounterResetHint::CounterReset,
        schema: CUSTOM_BUCKETS_SCHEMA,
        count: 1,
        sum: 0.25,
        positive_spans: vec![Span::new(0, 2)],
        positive_buckets: vec![1, -1],
        custom_values: vec![0.5, 2.5],
        ..Histogram::default()
    };
    let mut c = HistogramChunk::new();
    appended(c.append(0, &h));
    // header: 00 01 | 80 (counter reset, from the sample's hint)
    // 00000000 zero threshold | 1110 111001011 schema -53 (9-bit bucket)
    // | 10 001 one span | 10 010 length 2 | 0 offset | 0 no negative spans
    // | 10 010 two bounds | 1110 111110101 0.5 → 501 | 11110 100111000101 2.5 → 2501
    // | 0 t=0 | 10 001 count 1 | 0 zero count | 0x3fd0000000000000 sum 0.25
    // | 10 001 bucket 1 | 10 111 bucket -1, then 3 pad bits.
    let want = [
        0x00, 0x01, 0x80, 0x00, 0xee, 0x5c, 0x64, 0x4b, 0xbe, 0xbe, 0x9c, 0x54, 0x47, 0xfa, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0xb8,
    ];
    assert_eq!(c.bytes(), want);
    let got: Vec<_> = c.iter().collect();
    assert_eq!(got, [(0, h)]);
}

#[test]
fn first_sample_hint_sets_header_and_decoded_hints_follow_it() {
    let mut g = small(3, 2.0, [1, 0]);
    g.counter_reset_hint = CounterResetHint::Gauge;
    let mut c = HistogramChunk::new();
    appended(c.append(1, &g));
    assert_eq!(c.counter_reset_header(), CounterResetHeader::Gauge);
    assert_eq!(c.bytes()[2], 0b1100_0000);
    // Gauge chunks accept decreasing counts.
    let mut lower = small(2, 1.0, [0, 0]);
    lower.counter_reset_hint = CounterResetHint::Gauge;
    lower.zero_count = 2;
    appended(c.append(2, &lower));
    assert!(
        c.iter()
            .all(|(_, h)| h.counter_reset_hint == CounterResetHint::Gauge)
    );

    let mut c = HistogramChunk::with_header(CounterResetHeader::NotCounterReset);
    appended(c.append(1, &small(3, 2.0, [1, 0])));
    appended(c.append(2, &small(3, 2.0, [1, 0])));
    assert_eq!(c.bytes()[2], 0b0100_0000);
    let hints: Vec<_> = c.iter().map(|(_, h)| h.counter_reset_hint).collect();
    assert_eq!(
        hints,
        [CounterResetHint::Unknown, CounterResetHint::NotCounterReset]
    );
}

#[test]
fn cut_reasons() {
    let base = small(5, 4.0, [2, 0]);
    let mut c = HistogramChunk::new();
    appended(c.append(10, &base));
    let check = |c: &mut HistogramChunk, h: &Histogram, want: CutReason| {
        let before = c.bytes().to_vec();
        assert_eq!(c.append(20, h), Ok(AppendOutcome::NewChunk(want)), "{h:?}");
        assert_eq!(
            c.bytes(),
            before,
            "a refused sample must not change the chunk"
        );
    };
    check(&mut c, &small(4, 4.0, [2, 0]), CutReason::CounterReset);
    check(&mut c, &small(5, 4.0, [1, 1]), CutReason::CounterReset);
    let mut hinted = small(9, 4.0, [2, 0]);
    hinted.counter_reset_hint = CounterResetHint::CounterReset;
    check(&mut c, &hinted, CutReason::CounterReset);
    let mut schema = base.clone();
    schema.schema = 1;
    check(&mut c, &schema, CutReason::LayoutChanged);
    let mut threshold = base.clone();
    threshold.zero_threshold = 0.5;
    check(&mut c, &threshold, CutReason::LayoutChanged);
    let mut vanished = base.clone();
    vanished.positive_spans = vec![Span::new(0, 1)];
    vanished.positive_buckets = vec![2];
    check(&mut c, &vanished, CutReason::CounterReset);
    let mut gauge = base.clone();
    gauge.counter_reset_hint = CounterResetHint::Gauge;
    check(&mut c, &gauge, CutReason::GaugeChanged);
    appended(c.append(20, &small(6, 4.5, [2, 1])));
    assert_eq!(
        c.append(20, &base),
        Err(ChunkError::OutOfOrder { t: 20, last: 20 })
    );
    let mut bad = base.clone();
    bad.positive_buckets.push(1);
    assert!(matches!(
        c.append(30, &bad),
        Err(ChunkError::InvalidHistogram(_))
    ));
    assert_eq!(
        CutReason::CounterReset.next_chunk_header(),
        CounterResetHeader::CounterReset
    );
    assert_eq!(
        CutReason::LayoutChanged.next_chunk_header(),
        CounterResetHeader::Unknown
    );
    assert_eq!(
        CutReason::Full.next_chunk_header(),
        CounterResetHeader::NotCounterReset
    );
}

#[test]
fn new_buckets_recode_the_chunk() {
    // Buckets 0,1 then 0,1,2 (a third bucket appears), with a negative bucket throughout.
    let neg = vec![Span::new(1, 1)];
    let mk = |count, spans: Vec<Span>, pos: Vec<i64>| Histogram {
        count,
        sum: count as f64 * 1.5,
        positive_spans: spans,
        positive_buckets: pos,
        negative_spans: neg.clone(),
        negative_buckets: vec![1],
        ..Histogram::default()
    };
    let a = mk(4, vec![Span::new(0, 2)], vec![1, 1]);
    let b = mk(7, vec![Span::new(0, 2)], vec![2, 1]);
    let c3 = mk(9, vec![Span::new(0, 3)], vec![2, 1, -2]);
    let mut c = HistogramChunk::with_header(CounterResetHeader::NotCounterReset);
    appended(c.append(1, &a));
    appended(c.append(2, &b));
    assert_eq!(c.append(3, &c3), Ok(AppendOutcome::Recoded));
    // The result equals a fresh encoding of the expanded samples.
    let expand = |h: &Histogram, last: i64| {
        let mut h = h.clone();
        h.positive_spans = vec![Span::new(0, 3)];
        h.positive_buckets.push(last);
        h
    };
    let mut fresh = HistogramChunk::with_header(CounterResetHeader::NotCounterReset);
    appended(fresh.append(1, &expand(&a, -2)));
    appended(fresh.append(2, &expand(&b, -3)));
    appended(fresh.append(3, &c3));
    assert_eq!(c.bytes(), fresh.bytes());
    assert_eq!(
        c.iter()
            .map(|(_, h)| h.positive_counts())
            .collect::<Vec<_>>(),
        [vec![1, 2, 0], vec![2, 3, 0], vec![2, 3, 1]]
    );
    assert_eq!(
        (c.min_time(), c.max_time(), c.num_samples()),
        (Some(1), Some(3), 3)
    );

    let mut f = FloatHistogramChunk::new();
    appended(f.append(1, &a.to_float()));
    assert_eq!(f.append(3, &c3.to_float()), Ok(AppendOutcome::Recoded));
    let got: Vec<_> = f.iter().map(|(_, h)| h.positive_buckets).collect();
    assert_eq!(got, [vec![1.0, 2.0, 0.0], vec![2.0, 3.0, 1.0]]);
}

#[test]
fn float_cut_reasons() {
    let base = small(5, 4.0, [2, 0]).to_float();
    let mut c = FloatHistogramChunk::new();
    appended(c.append(10, &base));
    let mut lower = base.clone();
    lower.positive_buckets[1] = 1.5;
    assert_eq!(
        c.append(20, &lower),
        Ok(AppendOutcome::NewChunk(CutReason::CounterReset))
    );
    let mut custom = base.clone();
    custom.schema = CUSTOM_BUCKETS_SCHEMA;
    assert_eq!(
        c.append(20, &custom),
        Ok(AppendOutcome::NewChunk(CutReason::LayoutChanged))
    );
    let mut higher = base.clone();
    higher.positive_buckets[1] = 2.5;
    higher.count = 5.5;
    appended(c.append(20, &higher));
    assert_eq!(c.num_samples(), 2);
}

#[test]
fn stale_markers() {
    let mut c = HistogramChunk::new();
    appended(c.append(1, &small(3, 2.0, [1, 0])));
    appended(c.append(2, &Histogram::stale()));
    // A stale marker with junk fields is stored as an empty histogram too.
    let mut junk = small(1, stale_nan(), [0, 0]);
    junk.positive_spans.clear();
    appended(c.append(3, &junk));
    assert_eq!(
        c.append(4, &small(3, 2.0, [1, 0])),
        Ok(AppendOutcome::NewChunk(CutReason::AfterStaleMarker))
    );
    let got: Vec<_> = c.iter().collect();
    assert_eq!(got.len(), 3);
    for (i, (t, h)) in got.iter().enumerate().skip(1) {
        assert_eq!(*t, i as i64 + 1);
        assert_eq!(h.sum.to_bits(), STALE_NAN_BITS);
        // Everything but the sum is empty (NaN sums make `==` useless here).
        assert_eq!(
            Histogram {
                sum: 0.0,
                ..h.clone()
            },
            Histogram::default()
        );
    }

    // A chunk starting with a marker has an empty layout.
    let mut c = FloatHistogramChunk::new();
    appended(c.append(5, &FloatHistogram::stale()));
    appended(c.append(6, &FloatHistogram::stale()));
    let got: Vec<_> = c.iter().collect();
    assert_eq!(got.iter().map(|(t, _)| *t).collect::<Vec<_>>(), [5, 6]);
    assert!(got.iter().all(|(_, h)| h.is_stale()
        && FloatHistogram {
            sum: 0.0,
            ..h.clone()
        } == FloatHistogram::default()));
}

#[test]
fn seek_and_at() {
    let mut c = HistogramChunk::new();
    for (i, t) in [10, 20, 30, 40].into_iter().enumerate() {
        appended(c.append(t, &small(3 + 2 * i as u64, 2.0, [1 + i as i64, 0])));
    }
    let mut it = c.iter();
    assert_eq!(it.at(), None);
    assert_eq!(it.seek(15).map(|(t, _)| t), Some(20));
    assert_eq!(it.seek(5).map(|(t, _)| t), Some(20));
    assert_eq!(it.at_t(), Some(20));
    assert_eq!(it.seek(40).map(|(t, h)| (t, h.count)), Some((40, 9)));
    assert_eq!(it.seek(41), None);
    assert_eq!(it.err(), None);

    let mut f = FloatHistogramChunk::new();
    appended(f.append(10, &small(3, 2.0, [1, 0]).to_float()));
    appended(f.append(20, &small(5, 2.0, [2, 0]).to_float()));
    let mut it = f.iter();
    assert_eq!(it.seek(11).map(|(t, h)| (t, h.count)), Some((20, 5.0)));
    assert_eq!(it.at().map(|(t, _)| t), Some(20));
}

#[test]
fn decode_any_reads_every_encoding() {
    let mut x = crate::chunkenc::XorChunk::new();
    x.append(1, 1.5);
    let mut h = HistogramChunk::new();
    appended(h.append(2, &small(3, 2.0, [1, 0])));
    let mut f = FloatHistogramChunk::new();
    appended(f.append(3, &small(3, 2.0, [1, 0]).to_float()));

    let got: Vec<_> = decode_any(1, x.bytes()).unwrap().collect();
    assert_eq!(
        got,
        [ChunkSample::Float(crate::sample::Sample::new(1, 1.5))]
    );
    let mut it = decode_any(2, h.bytes()).unwrap();
    assert_eq!(it.encoding(), Encoding::Histogram);
    assert_eq!(it.num_samples(), 1);
    assert_eq!(
        it.next(),
        Some(ChunkSample::Histogram(2, small(3, 2.0, [1, 0])))
    );
    assert_eq!(it.next(), None);
    let mut it = decode_any(3, f.bytes()).unwrap();
    assert_eq!(it.seek(0).map(|s| s.t()), Some(3));
    assert!(it.next().is_none());
    assert_eq!(
        decode_any(0, &[]).err(),
        Some(ChunkError::UnsupportedEncoding(Encoding::None))
    );
    assert_eq!(
        decode_any(7, &[]).err(),
        Some(ChunkError::UnknownEncoding(7))
    );
    // The float-only entry point still refuses histogram chunks.
    assert_eq!(
        float_iterator(2, h.bytes()).err(),
        Some(ChunkError::UnsupportedEncoding(Encoding::Histogram))
    );
}

#[test]
fn truncated_and_corrupt_input_is_reported() {
    let mut it = HistogramIterator::new(&[0, 1]);
    assert_eq!(it.next(), None);
    assert_eq!(
        it.err(),
        Some(&ChunkError::ShortHeader { len: 2, needed: 3 })
    );
    let mut c = HistogramChunk::new();
    appended(c.append(1000, &small(3, 2.0, [1, 0])));
    appended(c.append(2000, &small(5, 4.0, [2, 0])));
    let bytes = c.bytes();
    let mut it = HistogramIterator::new(&bytes[..bytes.len() - 2]);
    assert_eq!(it.by_ref().count(), 1);
    assert_eq!(
        it.err(),
        Some(&ChunkError::HistogramTruncated {
            encoding: Encoding::Histogram,
            sample: 1,
            num_samples: 2
        })
    );
    // Announcing 2^32 spans in a tiny chunk must fail, not allocate.
    let huge = [0, 1, 0, 0x00, 0b0111_1110, 0xff, 0xff, 0xff, 0xfe];
    let mut it = FloatHistogramIterator::new(&huge);
    assert_eq!(it.next(), None);
    assert!(matches!(
        it.err(),
        Some(ChunkError::HistogramTruncated { .. })
    ));
    // A new XOR window with leading + significant bits > 64 is corrupt.
    let mut w = crate::chunkenc::bstream::BitWriter::resume(vec![0, 2, 0], 24);
    w.write_bits(0, 8); // zero threshold
    w.write_bits(0, 3); // schema 0, no spans
    w.write_bits(0, 1); // t = 0
    for _ in 0..3 {
        w.write_bits(0, 64); // count, zero count, sum
    }
    w.write_bits(0, 1); // t dod
    w.write_bits(0b11, 2); // new window
    w.write_bits(31, 5);
    w.write_bits(40, 6);
    w.write_bits(0, 64);
    let mut it = FloatHistogramIterator::new(w.bytes());
    assert_eq!(it.by_ref().count(), 1);
    assert!(matches!(
        it.err(),
        Some(ChunkError::HistogramCorrupt { sample: 1, .. })
    ));
}

// ---- property tests ----

fn schema_strategy() -> impl Strategy<Value = i32> {
    prop_oneof![4 => -4i32..=8, 1 => Just(CUSTOM_BUCKETS_SCHEMA)]
}

fn spans_strategy(custom: bool) -> impl Strategy<Value = Vec<Span>> {
    let first = if custom { 0i32..3 } else { -20i32..20 };
    (
        first,
        prop::collection::vec((0i32..4, 0u32..4), 0..4),
        0u32..4,
    )
        .prop_map(|(off, rest, len)| {
            let mut v = vec![Span::new(off, len)];
            v.extend(rest.into_iter().map(|(o, l)| Span::new(o, l)));
            v
        })
}

fn threshold_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(2f64.powi(-128)),
        Just(1024.0),
        Just(0.001),
        (1e-300f64..1e3),
    ]
}

/// A layout: schema, zero threshold, positive and negative spans, custom bounds.
type LayoutParts = (i32, f64, Vec<Span>, Vec<Span>, Vec<f64>);

fn layout_strategy() -> impl Strategy<Value = LayoutParts> {
    schema_strategy().prop_flat_map(|schema| {
        let custom = schema == CUSTOM_BUCKETS_SCHEMA;
        // Bounds are exact thousandths or arbitrary floats (a float within rounding
        // distance of a thousandth would come back as the thousandth; see meta tests).
        let bounds = prop::collection::vec(
            prop_oneof![
                (1u64..5_000_000).prop_map(|k| k as f64 / 1000.0),
                0.001f64..1e4
            ],
            if custom { 0..8 } else { 0..1 },
        )
        .prop_map(|mut b| {
            b.sort_by(f64::total_cmp);
            b.dedup();
            b
        });
        (
            Just(schema),
            if custom {
                Just(0.0).boxed()
            } else {
                threshold_strategy().boxed()
            },
            spans_strategy(custom),
            if custom {
                Just(Vec::new()).boxed()
            } else {
                spans_strategy(false).boxed()
            },
            bounds.prop_map(move |b| if custom { b } else { Vec::new() }),
        )
    })
}

fn sum_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => -1e6f64..1e6,
        1 => Just(f64::NAN),
        1 => Just(stale_nan()),
        1 => prop::num::f64::ANY,
    ]
}

fn int_bucket() -> impl Strategy<Value = i64> {
    prop_oneof![-5i64..10, -300i64..300, any::<i64>()]
}

/// One raw sample: timestamp delta, layout choice, count, zero count, sum, hint,
/// bucket values (truncated / cycled to the layout's bucket count).
type RawSample = (i64, bool, u64, u64, f64, u8, Vec<i64>);

fn raw_samples() -> impl Strategy<Value = Vec<RawSample>> {
    prop::collection::vec(
        (
            prop_oneof![1i64..100, 1i64..(1 << 40)],
            any::<bool>(),
            prop_oneof![0u64..100, any::<u64>()],
            prop_oneof![0u64..100, any::<u64>()],
            sum_strategy(),
            prop_oneof![4 => Just(0u8), 1 => 0u8..4],
            prop::collection::vec(int_bucket(), 0..24),
        ),
        1..40,
    )
}

fn build(l: &LayoutParts, count: u64, zero: u64, sum: f64, hint: u8, vals: &[i64]) -> Histogram {
    let (schema, zt, pos, neg, custom) = l.clone();
    let np = count_spans_usize(&pos);
    let nn = count_spans_usize(&neg);
    let pick = |i: usize| vals.get(i % vals.len().max(1)).copied().unwrap_or(0);
    Histogram {
        counter_reset_hint: CounterResetHint::from_u8(hint).unwrap_or_default(),
        schema,
        zero_threshold: zt,
        zero_count: zero,
        count,
        sum,
        positive_buckets: (0..np).map(pick).collect(),
        negative_buckets: (np..np + nn).map(pick).collect(),
        positive_spans: pos,
        negative_spans: neg,
        custom_values: custom,
    }
}

fn count_spans_usize(s: &[Span]) -> usize {
    crate::histogram::count_spans(s) as usize
}

/// Appends every histogram, cutting chunks as told; returns the chunks with the indexes
/// of the samples each holds.
fn encode_int(samples: &[(i64, Histogram)]) -> Vec<(HistogramChunk, Vec<usize>)> {
    let mut chunks = vec![(HistogramChunk::new(), Vec::new())];
    for (i, (t, h)) in samples.iter().enumerate() {
        let (last, members) = chunks.last_mut().expect("one chunk");
        match last.append(*t, h).expect("valid sample") {
            AppendOutcome::Appended | AppendOutcome::Recoded => members.push(i),
            AppendOutcome::NewChunk(reason) => {
                let mut c = HistogramChunk::with_header(reason.next_chunk_header());
                assert_eq!(c.append(*t, h), Ok(AppendOutcome::Appended));
                chunks.push((c, vec![i]));
            }
        }
    }
    chunks
}

fn encode_float(samples: &[(i64, FloatHistogram)]) -> Vec<(FloatHistogramChunk, Vec<usize>)> {
    let mut chunks = vec![(FloatHistogramChunk::new(), Vec::new())];
    for (i, (t, h)) in samples.iter().enumerate() {
        let (last, members) = chunks.last_mut().expect("one chunk");
        match last.append(*t, h).expect("valid sample") {
            AppendOutcome::Appended | AppendOutcome::Recoded => members.push(i),
            AppendOutcome::NewChunk(reason) => {
                let mut c = FloatHistogramChunk::with_header(reason.next_chunk_header());
                assert_eq!(c.append(*t, h), Ok(AppendOutcome::Appended));
                chunks.push((c, vec![i]));
            }
        }
    }
    chunks
}

/// Non-zero buckets by (negative side, absolute index) with their values.
fn nonzero<T: Copy + PartialEq>(
    spans: &[Span],
    vals: &[T],
    zero: T,
    neg: bool,
) -> Vec<(bool, i64, T)> {
    crate::histogram::bucket_indexes(spans)
        .zip(vals.iter().copied())
        .filter(|&(_, v)| v != zero)
        .map(|(i, v)| (neg, i, v))
        .collect()
}

/// Layout-independent identity of an integer histogram (recoding adds zero buckets;
/// spans are checked separately).
type IntKey = (u8, i32, u64, u64, u64, u64, Vec<u64>, Vec<(bool, i64, i64)>);

fn int_key(h: &Histogram) -> IntKey {
    let mut b = nonzero(&h.positive_spans, &h.positive_counts(), 0, false);
    b.extend(nonzero(&h.negative_spans, &h.negative_counts(), 0, true));
    (
        h.counter_reset_hint.as_u8(),
        h.schema,
        h.zero_threshold.to_bits(),
        h.zero_count,
        h.count,
        h.sum.to_bits(),
        h.custom_values.iter().map(|v| v.to_bits()).collect(),
        b,
    )
}

/// Same for float histograms, comparing bit patterns (NaN-safe).
type FloatKey = (u8, i32, [u64; 4], Vec<u64>, Vec<(bool, i64, u64)>);

fn float_key(h: &FloatHistogram) -> FloatKey {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    // Compare bucket bit patterns so that -0.0 and NaN are kept apart; zero bits only
    // mark empty buckets added by recoding.
    let mut b = nonzero(&h.positive_spans, &bits(&h.positive_buckets), 0, false);
    b.extend(nonzero(
        &h.negative_spans,
        &bits(&h.negative_buckets),
        0,
        true,
    ));
    (
        h.counter_reset_hint.as_u8(),
        h.schema,
        [
            h.zero_threshold.to_bits(),
            h.zero_count.to_bits(),
            h.count.to_bits(),
            h.sum.to_bits(),
        ],
        bits(&h.custom_values),
        b,
    )
}

/// What a decoder must return for an appended histogram at position `i` of a chunk.
fn expected_int(h: &Histogram, header: CounterResetHeader, i: usize) -> Histogram {
    if h.is_stale() {
        return Histogram::stale();
    }
    let mut e = h.clone();
    e.counter_reset_hint = header.sample_hint(i);
    e
}

fn expected_float(h: &FloatHistogram, header: CounterResetHeader, i: usize) -> FloatHistogram {
    if h.is_stale() {
        return FloatHistogram::stale();
    }
    let mut e = h.clone();
    e.counter_reset_hint = header.sample_hint(i);
    e
}

/// Spans describing sorted, distinct bucket indexes.
fn spans_from_indexes(idx: &[i64]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut end = 0i64;
    for &i in idx {
        match spans.last_mut() {
            Some(last) if i == end => last.length += 1,
            _ => spans.push(Span::new((i - end) as i32, 1)),
        }
        end = i + 1;
    }
    spans
}

fn timestamps(raw: &[RawSample], start: i64) -> Vec<i64> {
    let mut t = start;
    raw.iter()
        .map(|r| {
            t += r.0;
            t
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn integer_chunks_round_trip(
        layouts in (layout_strategy(), layout_strategy()),
        start in -(1i64 << 50)..(1i64 << 50),
        raw in raw_samples(),
    ) {
        let ts = timestamps(&raw, start);
        let samples: Vec<(i64, Histogram)> = raw
            .iter()
            .zip(&ts)
            .map(|((_, second, count, zero, sum, hint, vals), &t)| {
                let l = if *second { &layouts.1 } else { &layouts.0 };
                (t, build(l, *count, *zero, *sum, *hint, vals))
            })
            .collect();
        let chunks = encode_int(&samples);
        let mut total = 0;
        for (c, members) in &chunks {
            let header = c.counter_reset_header();
            let mut it = decode_any(Encoding::Histogram.as_u8(), c.bytes()).unwrap();
            let got: Vec<_> = it.by_ref().collect();
            prop_assert_eq!(it.err(), None);
            prop_assert_eq!(got.len(), members.len());
            prop_assert_eq!(c.num_samples(), members.len());
            // Every sample is laid out like the last non-stale one appended.
            let layout = members
                .iter()
                .rev()
                .map(|&i| &samples[i].1)
                .find(|h| !h.is_stale())
                .map(|h| (h.positive_spans.clone(), h.negative_spans.clone()));
            for (pos, (s, &i)) in got.iter().zip(members).enumerate() {
                let ChunkSample::Histogram(t, h) = s else { panic!("wrong sample kind") };
                let (want_t, want) = &samples[i];
                prop_assert_eq!(*t, *want_t);
                prop_assert_eq!(int_key(h), int_key(&expected_int(want, header, pos)));
                if !h.is_stale() {
                    prop_assert_eq!(Some((h.positive_spans.clone(), h.negative_spans.clone())), layout.clone());
                }
            }
            total += members.len();
        }
        prop_assert_eq!(total, samples.len());
    }

    #[test]
    fn float_chunks_round_trip(
        layouts in (layout_strategy(), layout_strategy()),
        start in -(1i64 << 50)..(1i64 << 50),
        raw in raw_samples(),
        floats in prop::collection::vec(
            prop_oneof![4 => 0f64..1e3, 1 => prop::num::f64::ANY, 1 => Just(stale_nan())],
            1..24,
        ),
    ) {
        let ts = timestamps(&raw, start);
        let samples: Vec<(i64, FloatHistogram)> = raw
            .iter()
            .zip(&ts)
            .enumerate()
            .map(|(k, ((_, second, count, zero, sum, hint, _), &t))| {
                let l = if *second { &layouts.1 } else { &layouts.0 };
                let mut f = build(l, *count, *zero, *sum, *hint, &[]).to_float();
                let n = floats.len();
                for (j, b) in f.positive_buckets.iter_mut().chain(f.negative_buckets.iter_mut()).enumerate() {
                    *b = floats[(j + k) % n];
                }
                (t, f)
            })
            .collect();
        let chunks = encode_float(&samples);
        let mut total = 0;
        for (c, members) in &chunks {
            let header = c.counter_reset_header();
            let mut it = c.iter();
            let got: Vec<_> = it.by_ref().collect();
            prop_assert_eq!(it.err(), None);
            prop_assert_eq!(got.len(), members.len());
            let layout = members
                .iter()
                .rev()
                .map(|&i| &samples[i].1)
                .find(|h| !h.is_stale())
                .map(|h| (h.positive_spans.clone(), h.negative_spans.clone()));
            for (pos, ((t, h), &i)) in got.iter().zip(members).enumerate() {
                let (want_t, want) = &samples[i];
                prop_assert_eq!(*t, *want_t);
                prop_assert_eq!(float_key(h), float_key(&expected_float(want, header, pos)));
                if !h.is_stale() {
                    prop_assert_eq!(Some((h.positive_spans.clone(), h.negative_spans.clone())), layout.clone());
                }
            }
            total += members.len();
        }
        prop_assert_eq!(total, samples.len());
    }

    #[test]
    fn new_buckets_recode_into_an_equivalent_chunk(
        old in prop::collection::btree_set(-20i64..20, 0..8),
        extra in prop::collection::btree_set(-25i64..25, 1..5),
        incs in prop::collection::vec(0i64..50, 50),
        n in 2usize..30,
        switch in any::<prop::sample::Index>(),
        float in any::<bool>(),
    ) {
        let old: Vec<i64> = old.into_iter().collect();
        let mut new: Vec<i64> = old.iter().chain(&extra).copied().collect();
        new.sort_unstable();
        new.dedup();
        let switch = 1 + switch.index(n - 1);
        // Monotone counts: bucket i at sample k holds (i + 30) + k * inc(i).
        let abs = |i: i64, k: usize| (i + 30) + k as i64 * incs[(i + 25) as usize];
        let hist = |k: usize| {
            let idx = if k < switch { &old } else { &new };
            let counts: Vec<i64> = idx.iter().map(|&i| abs(i, k)).collect();
            Histogram {
                schema: 2,
                count: counts.iter().sum::<i64>() as u64 + k as u64,
                zero_count: k as u64,
                sum: k as f64 * 0.5,
                positive_spans: spans_from_indexes(idx),
                positive_buckets: crate::histogram::delta_counts(&counts),
                ..Histogram::default()
            }
        };
        let outcomes: Vec<AppendOutcome>;
        let decoded: Vec<FloatHistogram>;
        if float {
            let mut c = FloatHistogramChunk::new();
            outcomes = (0..n).map(|k| c.append(k as i64, &hist(k).to_float()).unwrap()).collect();
            decoded = c.iter().map(|(_, h)| h).collect();
        } else {
            let mut c = HistogramChunk::new();
            outcomes = (0..n).map(|k| c.append(k as i64, &hist(k)).unwrap()).collect();
            decoded = c.iter().map(|(_, h)| h.to_float()).collect();
        }
        let grew = new.len() > old.len();
        for (k, o) in outcomes.iter().enumerate() {
            let want = if k == switch && grew { AppendOutcome::Recoded } else { AppendOutcome::Appended };
            prop_assert_eq!(*o, want, "sample {}", k);
        }
        prop_assert_eq!(decoded.len(), n);
        for (k, h) in decoded.iter().enumerate() {
            prop_assert_eq!(&h.positive_spans, &spans_from_indexes(&new));
            let want: Vec<f64> = new
                .iter()
                .map(|&i| if k >= switch || old.contains(&i) { abs(i, k) as f64 } else { 0.0 })
                .collect();
            prop_assert_eq!(&h.positive_buckets, &want, "sample {}", k);
            prop_assert_eq!(h.count, hist(k).count as f64);
        }
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        for enc in 1u8..=3 {
            let mut it = decode_any(enc, &data).unwrap();
            let n = it.by_ref().count();
            prop_assert!(n <= it.num_samples());
            if n < it.num_samples() {
                prop_assert!(it.err().is_some());
            }
        }
    }

    #[test]
    fn damaged_chunks_never_panic(
        layout in layout_strategy(),
        raw in raw_samples(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let ts = timestamps(&raw, 0);
        // Gauge histograms: every sample fits one chunk whatever the values.
        let hs: Vec<_> = raw
            .iter()
            .zip(&ts)
            .map(|((_, _, c, z, s, _, v), &t)| (t, build(&layout, *c, *z, *s, 3, v)))
            .filter(|(_, h)| !h.is_stale())
            .collect();
        let chunks = encode_int(&hs);
        prop_assert_eq!(chunks.len(), 1);
        let chunk = &chunks[0].0;
        let float = {
            let mut f = FloatHistogramChunk::new();
            for (t, h) in &hs {
                let _ = f.append(*t, &h.to_float()).unwrap();
            }
            f
        };
        for (enc, bytes) in [(2u8, chunk.bytes().to_vec()), (3u8, float.bytes().to_vec())] {
            let mut damaged = bytes.clone();
            for (idx, x) in &flips {
                let i = idx.index(damaged.len());
                damaged[i] ^= x;
            }
            let short = &bytes[..cut.index(bytes.len() + 1)];
            for data in [&damaged[..], short] {
                let mut it = decode_any(enc, data).unwrap();
                let n = it.by_ref().count();
                prop_assert!(n == it.num_samples() || it.err().is_some());
            }
        }
    }
}
