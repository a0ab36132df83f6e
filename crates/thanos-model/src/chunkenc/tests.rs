use proptest::prelude::*;

use super::*;
use crate::sample::{STALE_NAN_BITS, Sample};

fn encode(samples: &[(i64, u64)]) -> XorChunk {
    let mut c = XorChunk::new();
    for &(t, v) in samples {
        c.append(t, f64::from_bits(v));
    }
    c
}

fn decode(data: &[u8]) -> Vec<(i64, u64)> {
    let mut it = XorIterator::new(data);
    let out: Vec<_> = it.by_ref().map(|s| (s.t, s.v.to_bits())).collect();
    assert_eq!(it.err(), None);
    out
}

#[test]
fn hand_computed_bytes() {
    let c = encode(&[
        (1000, 1f64.to_bits()),
        (2000, 1f64.to_bits()),
        (3000, 2f64.to_bits()),
    ]);
    let want = [
        0x00, 0x03, // sample count
        0xd0, 0x0f, // varint(1000)
        0x3f, 0xf0, 0, 0, 0, 0, 0, 0, // 1.0
        0xe8, 0x07, // uvarint(1000)
        0x30, 0x97, 0xff, 0xc0, // 0 | 0 | 11 00001 001011 11111111111
    ];
    assert_eq!(c.bytes(), want);
    assert_eq!(c.min_time(), Some(1000));
    assert_eq!(c.max_time(), Some(3000));
    assert_eq!(c.num_samples(), 3);
}

#[test]
fn empty_chunk() {
    let c = XorChunk::new();
    assert_eq!(c.bytes(), [0, 0]);
    assert_eq!(c.iter().count(), 0);
    assert_eq!(c.min_time(), None);
    assert_eq!(c.max_time(), None);
    assert!(c.is_empty());
    assert_eq!(XorChunk::from_bytes(vec![0, 0]).unwrap(), c);
}

#[test]
fn every_dod_bucket_round_trips() {
    // Deltas chosen so consecutive delta-of-deltas hit each bucket edge.
    let dods = [
        0i64,
        8192,
        -8191,
        8193,
        -8192,
        65536,
        -65535,
        65537,
        -65536,
        524288,
        -524287,
        524289,
        -524288,
        i64::from(i32::MAX),
        -(1 << 40),
    ];
    let mut t = 0i64;
    let mut delta = 1_000_000_000_000i64;
    let mut samples = vec![(t, 0u64)];
    t += delta;
    samples.push((t, 1));
    for (i, d) in dods.iter().enumerate() {
        delta += d;
        t += delta;
        samples.push((t, i as u64));
    }
    let c = encode(&samples);
    assert_eq!(decode(c.bytes()), samples);
}

#[test]
fn dod_bucket_sizes_match_prometheus() {
    // With constant values, each sample after the second costs dod bits + 1 value bit.
    for (dod, bits) in [
        (0i64, 1usize),
        (8192, 16),
        (-8191, 16),
        (-8192, 20),
        (65536, 20),
    ]
    .into_iter()
    .chain([(-65536, 24), (524288, 24), (-524288, 68), (524289, 68)])
    {
        let c = encode(&[(0, 0), (100_000_000, 0), (200_000_000 + dod, 0)]);
        // Sample 0 in whole bytes, uvarint(1e8) is 4 bytes, then 1 unchanged-value bit.
        let base_bits = encode(&[(0, 0)]).bytes().len() * 8 + 4 * 8 + 1;
        let total = base_bits + bits + 1;
        assert_eq!(c.bytes().len(), total.div_ceil(8), "dod {dod}");
    }
}

#[test]
fn special_values_keep_their_bits() {
    let vals = [
        STALE_NAN_BITS,
        0x7ff8_0000_0000_0001,
        f64::NAN.to_bits(),
        f64::INFINITY.to_bits(),
        f64::NEG_INFINITY.to_bits(),
        (-0.0f64).to_bits(),
        0.0f64.to_bits(),
        1,
        f64::MAX.to_bits(),
        f64::MIN_POSITIVE.to_bits(),
        u64::MAX,
        0x8000_0000_0000_0001,
    ];
    let samples: Vec<_> = vals
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as i64 * 15, v))
        .collect();
    assert_eq!(decode(encode(&samples).bytes()), samples);
}

#[test]
fn seek_never_goes_backwards() {
    let samples: Vec<_> = (0..10).map(|i| (i * 10, (i as f64).to_bits())).collect();
    let c = encode(&samples);
    let mut it = c.iter();
    assert_eq!(it.seek(-5).map(|s| s.t), Some(0));
    assert_eq!(
        it.seek(0).map(|s| s.t),
        Some(0),
        "current sample satisfies seek"
    );
    assert_eq!(it.seek(35).map(|s| s.t), Some(40));
    assert_eq!(
        it.seek(10).map(|s| s.t),
        Some(40),
        "seek backwards keeps position"
    );
    assert_eq!(it.next().map(|s| s.t), Some(50));
    assert_eq!(it.at().map(|s| s.t), Some(50));
    assert_eq!(it.seek(1000), None);
    assert_eq!(it.next(), None);
    assert_eq!(it.err(), None);
}

#[test]
fn float_iterator_rejects_histograms_and_unknown_bytes() {
    let c = encode(&[(1, 1)]);
    assert_eq!(float_iterator(1, c.bytes()).unwrap().count(), 1);
    let err = float_iterator(2, c.bytes()).unwrap_err();
    assert_eq!(err, ChunkError::UnsupportedEncoding(Encoding::Histogram));
    assert_eq!(err.to_string(), "unsupported chunk encoding histogram");
    let err = float_iterator(3, c.bytes()).unwrap_err();
    assert_eq!(err.to_string(), "unsupported chunk encoding floathistogram");
    assert_eq!(
        float_iterator(9, c.bytes()).unwrap_err(),
        ChunkError::UnknownEncoding(9)
    );
    for b in 0..=3u8 {
        let e = Encoding::try_from(b).unwrap();
        assert_eq!(e.as_u8(), b);
    }
    assert_eq!(Encoding::Xor.to_string(), "XOR");
    assert_eq!(Encoding::None.to_string(), "none");
}

#[test]
fn truncated_and_corrupt_data_set_err() {
    let samples: Vec<_> = (0..50)
        .map(|i| (i * 1000 + i * i, (i as f64 * 1.5).to_bits()))
        .collect();
    let c = encode(&samples);
    for cut in 0..c.bytes().len() - 1 {
        let mut it = XorIterator::new(&c.bytes()[..cut]);
        let n = it.by_ref().count();
        assert!(n < samples.len(), "cut {cut}");
        assert!(it.err().is_some(), "cut {cut} must report an error");
        assert!(XorChunk::from_bytes(c.bytes()[..cut].to_vec()).is_err());
    }
    let mut it = XorIterator::new(&[0]);
    assert_eq!(it.next(), None);
    assert_eq!(
        it.err(),
        Some(&ChunkError::ShortHeader { len: 1, needed: 2 })
    );
    // New value window with 31 leading zeros and 40 significant bits.
    let mut bad = encode(&[(0, 0)]).into_bytes();
    bad[1] = 2;
    bad.extend_from_slice(&[0x01, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0]);
    let mut it = XorIterator::new(&bad);
    assert!(it.next().is_some());
    assert_eq!(it.next(), None);
    assert!(
        matches!(it.err(), Some(ChunkError::Corrupt { sample: 1, .. })),
        "{:?}",
        it.err()
    );
}

#[test]
fn from_bytes_drops_trailing_garbage_and_resumes() {
    let mut c = encode(&[
        (1, 1f64.to_bits()),
        (2, 3f64.to_bits()),
        (4, 7f64.to_bits()),
    ]);
    let mut data = c.bytes().to_vec();
    *data.last_mut().unwrap() |= 0x01; // padding bit set (ignored)
    data.extend_from_slice(&[0xde, 0xad]);
    let mut resumed = XorChunk::from_bytes(data).unwrap();
    assert_eq!(resumed.bytes(), c.bytes());
    c.append(9, 11.0);
    resumed.append(9, 11.0);
    assert_eq!(resumed.bytes(), c.bytes());
    assert_eq!(resumed.min_time(), Some(1));
    assert_eq!(resumed.max_time(), Some(9));
}

#[test]
fn try_append_checks_order_and_capacity() {
    let mut c = XorChunk::new();
    c.try_append(10, 1.0).unwrap();
    assert_eq!(
        c.try_append(10, 2.0),
        Err(ChunkError::OutOfOrder { t: 10, last: 10 })
    );
    for i in 1..XorChunk::MAX_SAMPLES as i64 {
        c.try_append(10 + i, 1.0).unwrap();
    }
    assert_eq!(c.num_samples(), XorChunk::MAX_SAMPLES);
    assert!(matches!(
        c.try_append(i64::MAX, 1.0),
        Err(ChunkError::Full { .. })
    ));
    assert_eq!(c.iter().count(), XorChunk::MAX_SAMPLES);
}

fn value_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => any::<u64>(),
        3 => (-1e6f64..1e6).prop_map(f64::to_bits),
        2 => (0u32..1000).prop_map(|i| f64::from(i).to_bits()),
        1 => Just(STALE_NAN_BITS),
        1 => Just(f64::NAN.to_bits()),
        1 => Just(f64::INFINITY.to_bits()),
        1 => Just(f64::NEG_INFINITY.to_bits()),
        1 => Just((-0.0f64).to_bits()),
        1 => (1u64..(1 << 52)).prop_map(|m| m), // subnormals
        1 => Just(f64::MAX.to_bits()),
    ]
}

fn gap_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 14_000i64..16_000,
        3 => 1i64..100,
        2 => Just(15_000i64),
        1 => 1i64..(1 << 40),
        1 => Just(1i64 << 50),
    ]
}

/// Strictly increasing timestamps (starting possibly negative) with values that repeat,
/// or scrapes at a fixed interval whose values stay the same for runs of samples.
fn samples_strategy() -> impl Strategy<Value = Vec<(i64, u64)>> {
    prop_oneof![3 => irregular_samples(), 1 => steady_samples()]
}

/// Fixed-interval samples holding each value for a run (long stretches of unchanged
/// timestamps deltas and values, which decode as runs of zero bits).
fn steady_samples() -> impl Strategy<Value = Vec<(i64, u64)>> {
    (
        -(1i64 << 45)..(1i64 << 45),
        prop_oneof![Just(15_000i64), 1i64..100_000],
        prop::collection::vec((value_strategy(), 1usize..80), 0..8),
    )
        .prop_map(|(start, gap, runs)| {
            runs.into_iter()
                .flat_map(|(v, n)| std::iter::repeat_n(v, n))
                .take(300)
                .enumerate()
                .map(|(i, v)| (start + i as i64 * gap, v))
                .collect()
        })
}

fn irregular_samples() -> impl Strategy<Value = Vec<(i64, u64)>> {
    (
        -(1i64 << 45)..(1i64 << 45),
        prop::collection::vec((gap_strategy(), value_strategy(), any::<bool>()), 0..300),
    )
        .prop_map(|(start, steps)| {
            let mut t = start;
            let mut last_v = 0u64;
            steps
                .into_iter()
                .map(|(gap, v, repeat)| {
                    t = t.saturating_add(gap);
                    if !repeat {
                        last_v = v;
                    }
                    (t, last_v)
                })
                .collect::<Vec<_>>()
        })
        .prop_map(|mut v| {
            v.dedup_by_key(|s| s.0);
            v
        })
}

/// What `decode_range_into` must produce: the iterator's in-range samples up to the first
/// one after `maxt`, and the iterator's error (unless it stopped before reaching it).
fn range_by_iterator(data: &[u8], mint: i64, maxt: i64) -> (Vec<(i64, u64)>, Option<ChunkError>) {
    let mut it = XorIterator::new(data);
    let mut out = Vec::new();
    for s in it.by_ref() {
        if s.t > maxt {
            return (out, None);
        }
        if s.t >= mint {
            out.push((s.t, s.v.to_bits()));
        }
    }
    (out, it.err().cloned())
}

fn range_by_loop(data: &[u8], mint: i64, maxt: i64) -> (Vec<(i64, u64)>, Option<ChunkError>) {
    let mut out = Vec::new();
    let err = XorIterator::new(data)
        .decode_range_into(mint, maxt, &mut out)
        .err();
    (out.iter().map(|s| (s.t, s.v.to_bits())).collect(), err)
}

#[test]
fn decode_range_into_reports_truncation_and_corruption_like_the_iterator() {
    let samples: Vec<_> = (0..50)
        .map(|i| (i * 1000 + i * i, (i as f64 * 1.5).to_bits()))
        .collect();
    let c = encode(&samples);
    for cut in 0..c.bytes().len() {
        let data = &c.bytes()[..cut];
        let got = range_by_loop(data, i64::MIN, i64::MAX);
        assert_eq!(
            got,
            range_by_iterator(data, i64::MIN, i64::MAX),
            "cut {cut}"
        );
        assert!(got.1.is_some(), "cut {cut} must report an error");
    }
    let mut bad = encode(&[(0, 0)]).into_bytes();
    // Sample 1 repeats the value; sample 2 opens a window of 31 leading zeros and 40
    // significant bits.
    bad[1] = 3;
    bad.extend_from_slice(&[0x01, 0x3f, 0xe8, 0, 0, 0, 0, 0, 0, 0]);
    let got = range_by_loop(&bad, i64::MIN, i64::MAX);
    assert_eq!(got, range_by_iterator(&bad, i64::MIN, i64::MAX));
    assert!(
        matches!(got.1, Some(ChunkError::Corrupt { sample: 2, .. })),
        "{got:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(samples in samples_strategy()) {
        let c = encode(&samples);
        prop_assert_eq!(decode(c.bytes()), samples.clone());
        prop_assert_eq!(c.num_samples(), samples.len());
        prop_assert_eq!(c.min_time(), samples.first().map(|s| s.0));
        prop_assert_eq!(c.max_time(), samples.last().map(|s| s.0));
    }

    #[test]
    fn resume_after_from_bytes_is_byte_identical(samples in samples_strategy(), split in 0usize..300) {
        let split = split.min(samples.len());
        let all = encode(&samples);
        let mut resumed = XorChunk::from_bytes(encode(&samples[..split]).into_bytes()).unwrap();
        for &(t, v) in &samples[split..] {
            resumed.append(t, f64::from_bits(v));
        }
        prop_assert_eq!(resumed.bytes(), all.bytes());
        prop_assert_eq!(resumed.max_time(), all.max_time());
        prop_assert_eq!(resumed.min_time(), all.min_time());
    }

    #[test]
    fn seek_finds_first_at_or_after(samples in samples_strategy(), probes in prop::collection::vec(any::<i64>(), 1..8)) {
        let c = encode(&samples);
        let mut probes = probes;
        probes.sort_unstable();
        let mut it = c.iter();
        for p in probes {
            let want = samples.iter().find(|s| s.0 >= p).map(|s| s.0);
            prop_assert_eq!(it.seek(p).map(|s: Sample| s.t), want);
        }
    }

    #[test]
    fn decode_range_into_matches_the_iterator(
        samples in samples_strategy(),
        a in any::<i64>(),
        b in any::<i64>(),
        pick in any::<(prop::sample::Index, prop::sample::Index)>(),
    ) {
        let c = encode(&samples);
        let (mint, maxt) = if samples.is_empty() {
            (a.min(b), a.max(b))
        } else {
            let x = samples[pick.0.index(samples.len())].0;
            let y = samples[pick.1.index(samples.len())].0;
            (x.min(y), x.max(y))
        };
        for (lo, hi) in [(i64::MIN, i64::MAX), (mint, maxt), (a.min(b), a.max(b))] {
            let got = range_by_loop(c.bytes(), lo, hi);
            prop_assert_eq!(&got.1, &None);
            prop_assert_eq!(got, range_by_iterator(c.bytes(), lo, hi));
        }
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let n = XorIterator::new(&data).count();
        prop_assert!(n <= usize::from(u16::MAX));
        prop_assert_eq!(
            range_by_loop(&data, i64::MIN, i64::MAX),
            range_by_iterator(&data, i64::MIN, i64::MAX)
        );
        if let Ok(mut c) = XorChunk::from_bytes(data.clone()) {
            let before = c.num_samples();
            c.append(c.max_time().unwrap_or(0).wrapping_add(1), 1.0);
            prop_assert_eq!(c.iter().count(), before + 1);
        }
        let _ = float_iterator(data.first().copied().unwrap_or(1), &data).map(Iterator::count);
    }

    #[test]
    fn random_tails_after_valid_prefix_never_panic_and_decoders_agree(
        samples in samples_strategy(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
        count in any::<u16>(),
    ) {
        let mut data = encode(&samples).into_bytes();
        data.extend_from_slice(&tail);
        data[..2].copy_from_slice(&count.to_be_bytes());
        let mut it = XorIterator::new(&data);
        let n = it.by_ref().count();
        prop_assert!(n == usize::from(count) || it.err().is_some());
        // The range decoder returns what the iterator does, error included.
        prop_assert_eq!(
            range_by_loop(&data, i64::MIN, i64::MAX),
            range_by_iterator(&data, i64::MIN, i64::MAX)
        );
    }
}
