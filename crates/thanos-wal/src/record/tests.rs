use proptest::prelude::*;

use super::*;

fn labels_strategy() -> impl Strategy<Value = Labels> {
    prop::collection::vec(("[a-z_]{1,6}", "\\PC{1,8}"), 0..5).prop_map(Labels::from_pairs)
}

fn bits(samples: &[RefSample]) -> Vec<(u64, i64, u64)> {
    samples
        .iter()
        .map(|s| (s.series_ref, s.t, s.v.to_bits()))
        .collect()
}

fn span_strategy() -> impl Strategy<Value = Vec<Span>> {
    prop::collection::vec(
        (any::<i32>(), any::<u32>()).prop_map(|(offset, length)| Span::new(offset, length)),
        0..3,
    )
}

fn histogram_strategy() -> impl Strategy<Value = Histogram> {
    (
        (0u8..4).prop_map(|b| CounterResetHint::from_u8(b).expect("hint 0..=3")),
        prop_oneof![Just(CUSTOM_BUCKETS_SCHEMA), -4i32..8],
        (0.0f64..1.0, any::<u64>(), any::<u64>(), -1e9f64..1e9),
        (span_strategy(), span_strategy()),
        (
            prop::collection::vec(any::<i64>(), 0..4),
            prop::collection::vec(any::<i64>(), 0..4),
            prop::collection::vec(-1e6f64..1e6, 0..4),
        ),
    )
        .prop_map(
            |(hint, schema, (zt, zc, c, sum), (ps, ns), (pb, nb, cv))| Histogram {
                counter_reset_hint: hint,
                schema,
                zero_threshold: zt,
                zero_count: zc,
                count: c,
                sum,
                positive_spans: ps,
                negative_spans: ns,
                positive_buckets: pb,
                negative_buckets: nb,
                custom_values: if schema == CUSTOM_BUCKETS_SCHEMA {
                    cv
                } else {
                    Vec::new()
                },
            },
        )
}

fn float_histogram_strategy() -> impl Strategy<Value = FloatHistogram> {
    histogram_strategy().prop_map(|h| FloatHistogram {
        counter_reset_hint: h.counter_reset_hint,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count as f64,
        count: h.count as f64 / 3.0,
        sum: h.sum,
        positive_spans: h.positive_spans,
        negative_spans: h.negative_spans,
        positive_buckets: h.positive_buckets.iter().map(|b| *b as f64).collect(),
        negative_buckets: h.negative_buckets.iter().map(|b| *b as f64 * 0.5).collect(),
        custom_values: h.custom_values,
    })
}

proptest! {
    #[test]
    fn series_round_trip(series in prop::collection::vec((any::<u64>(), labels_strategy()), 0..6)) {
        let series: Vec<RefSeries> = series
            .into_iter()
            .map(|(series_ref, labels)| RefSeries { series_ref, labels })
            .collect();
        let mut buf = Vec::new();
        encode_series(&series, &mut buf);
        let mut out = Vec::new();
        decode_series(&buf, &mut out).unwrap();
        prop_assert_eq!(&out, &series);
        prop_assert_eq!(decode(&buf).unwrap(), Record::Series(series));
    }

    #[test]
    fn samples_round_trip(raw in prop::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 0..20)) {
        let samples: Vec<RefSample> = raw
            .iter()
            .map(|&(series_ref, t, v)| RefSample { series_ref, t, v: f64::from_bits(v) })
            .collect();
        let mut buf = Vec::new();
        encode_samples(&samples, &mut buf);
        let mut out = Vec::new();
        decode_samples(&buf, &mut out).unwrap();
        prop_assert_eq!(bits(&out), raw);
    }

    #[test]
    fn tombstones_round_trip(raw in prop::collection::vec((any::<u64>(), any::<i64>(), any::<i64>()), 0..10)) {
        let stones: Vec<RefTombstone> = raw
            .iter()
            .map(|&(series_ref, mint, maxt)| RefTombstone { series_ref, mint, maxt })
            .collect();
        let mut buf = Vec::new();
        encode_tombstones(&stones, &mut buf);
        let mut out = Vec::new();
        decode_tombstones(&buf, &mut out).unwrap();
        prop_assert_eq!(out, stones);
    }

    #[test]
    fn exemplars_round_trip(raw in prop::collection::vec((any::<u64>(), any::<i64>(), -1e12f64..1e12, labels_strategy()), 0..6)) {
        let exemplars: Vec<RefExemplar> = raw
            .into_iter()
            .map(|(series_ref, t, v, labels)| RefExemplar { series_ref, t, v, labels })
            .collect();
        let mut buf = Vec::new();
        encode_exemplars(&exemplars, &mut buf);
        prop_assert_eq!(decode(&buf).unwrap(), Record::Exemplars(exemplars));
    }

    #[test]
    fn mmap_markers_round_trip(raw in prop::collection::vec((any::<u64>(), any::<u64>()), 0..6)) {
        let markers: Vec<RefMmapMarker> = raw
            .into_iter()
            .map(|(series_ref, mmap_ref)| RefMmapMarker { series_ref, mmap_ref })
            .collect();
        let mut buf = Vec::new();
        encode_mmap_markers(&markers, &mut buf);
        prop_assert_eq!(decode(&buf).unwrap(), Record::MmapMarkers(markers));
    }

    #[test]
    fn metadata_round_trip(raw in prop::collection::vec((any::<u64>(), 0u8..8, "\\PC{0,6}", "\\PC{0,20}"), 0..6)) {
        let metadata: Vec<RefMetadata> = raw
            .into_iter()
            .map(|(series_ref, t, unit, help)| RefMetadata {
                series_ref,
                metric_type: MetricType::from_byte(t),
                unit,
                help,
            })
            .collect();
        let mut buf = Vec::new();
        encode_metadata(&metadata, &mut buf);
        prop_assert_eq!(decode(&buf).unwrap(), Record::Metadata(metadata));
    }

    #[test]
    fn histograms_round_trip(raw in prop::collection::vec((any::<u64>(), any::<i64>(), histogram_strategy()), 0..4)) {
        let samples: Vec<RefHistogramSample> = raw
            .into_iter()
            .map(|(series_ref, t, h)| RefHistogramSample { series_ref, t, h })
            .collect();
        let mut buf = Vec::new();
        encode_histogram_samples(&samples, &mut buf);
        let all_custom = !samples.is_empty()
            && samples.iter().all(|s| s.h.schema == CUSTOM_BUCKETS_SCHEMA);
        prop_assert_eq!(buf[0], if all_custom { 9 } else { 7 });
        prop_assert_eq!(decode(&buf).unwrap(), Record::HistogramSamples(samples));
    }

    #[test]
    fn float_histograms_round_trip(raw in prop::collection::vec((any::<u64>(), any::<i64>(), float_histogram_strategy()), 0..4)) {
        let samples: Vec<RefFloatHistogramSample> = raw
            .into_iter()
            .map(|(series_ref, t, fh)| RefFloatHistogramSample { series_ref, t, fh })
            .collect();
        let mut buf = Vec::new();
        encode_float_histogram_samples(&samples, &mut buf);
        let all_custom = !samples.is_empty()
            && samples.iter().all(|s| s.fh.schema == CUSTOM_BUCKETS_SCHEMA);
        prop_assert_eq!(buf[0], if all_custom { 10 } else { 8 });
        prop_assert_eq!(decode(&buf).unwrap(), Record::FloatHistogramSamples(samples));
    }

    /// Every strict prefix of a valid record either fails with a typed error or decodes to
    /// fewer entries; it never panics.
    #[test]
    fn truncated_records_fail_cleanly(
        series in prop::collection::vec((any::<u64>(), labels_strategy()), 1..4),
        h in histogram_strategy(),
    ) {
        let series: Vec<RefSeries> = series
            .into_iter()
            .map(|(series_ref, labels)| RefSeries { series_ref, labels })
            .collect();
        let mut recs = Vec::new();
        let mut buf = Vec::new();
        encode_series(&series, &mut buf);
        recs.push(std::mem::take(&mut buf));
        encode_histogram_samples(&[RefHistogramSample { series_ref: 1, t: 2, h }], &mut buf);
        recs.push(std::mem::take(&mut buf));
        encode_samples(&[RefSample { series_ref: 1, t: 5, v: 1.0 }, RefSample { series_ref: 3, t: 9, v: 2.0 }], &mut buf);
        recs.push(buf);
        for rec in recs {
            for cut in 0..rec.len() {
                if let Ok(r) = decode(&rec[..cut]) {
                    prop_assert_ne!(r, decode(&rec).unwrap());
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics(rec in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&rec);
    }
}

#[test]
fn samples_golden_bytes() {
    let mut buf = Vec::new();
    encode_samples(
        &[
            RefSample {
                series_ref: 5,
                t: 1000,
                v: 1.0,
            },
            RefSample {
                series_ref: 6,
                t: 1015,
                v: 2.0,
            },
        ],
        &mut buf,
    );
    let mut want = vec![2u8];
    want.extend_from_slice(&5u64.to_be_bytes());
    want.extend_from_slice(&1000u64.to_be_bytes());
    want.extend_from_slice(&[0, 0]);
    want.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
    want.extend_from_slice(&[2, 30]);
    want.extend_from_slice(&2.0f64.to_bits().to_be_bytes());
    assert_eq!(buf, want);
}

#[test]
fn series_and_metadata_golden_bytes() {
    let mut buf = Vec::new();
    encode_series(
        &[RefSeries {
            series_ref: 1,
            labels: Labels::from_pairs([("__name__", "up")]),
        }],
        &mut buf,
    );
    let mut want = vec![1u8, 0, 0, 0, 0, 0, 0, 0, 1, 1, 8];
    want.extend_from_slice(b"__name__");
    want.push(2);
    want.extend_from_slice(b"up");
    assert_eq!(buf, want);

    buf.clear();
    encode_metadata(
        &[RefMetadata {
            series_ref: 300,
            metric_type: MetricType::Gauge,
            unit: "s".into(),
            help: "h".into(),
        }],
        &mut buf,
    );
    let mut want = vec![6u8, 0xac, 0x02, 2, 2, 4];
    want.extend_from_slice(b"UNIT");
    want.extend_from_slice(&[1, b's', 4]);
    want.extend_from_slice(b"HELP");
    want.extend_from_slice(&[1, b'h']);
    assert_eq!(buf, want);
}

#[test]
fn empty_sample_records_decode_to_nothing() {
    let mut out = Vec::new();
    decode_samples(&[2], &mut out).unwrap();
    assert!(out.is_empty());
    let mut ex = Vec::new();
    decode_exemplars(&[4], &mut ex).unwrap();
    assert!(ex.is_empty());
}

#[test]
fn unknown_and_wrong_types_are_reported() {
    assert_eq!(decode(&[11, 1, 2, 3]).unwrap(), Record::Unknown(11));
    assert_eq!(decode(&[0]).unwrap(), Record::Unknown(0));
    assert_eq!(decode(&[]).unwrap_err(), RecordError::Empty);
    let err = decode_samples(&[1], &mut Vec::new()).unwrap_err();
    assert_eq!(
        err,
        RecordError::WrongType {
            expected: RecordType::Samples,
            found: RecordType::Series
        }
    );
}

#[test]
fn failed_decode_leaves_output_untouched() {
    let mut buf = Vec::new();
    encode_samples(
        &[
            RefSample {
                series_ref: 1,
                t: 1,
                v: 1.0,
            },
            RefSample {
                series_ref: 2,
                t: 2,
                v: 2.0,
            },
        ],
        &mut buf,
    );
    let mut out = vec![RefSample {
        series_ref: 9,
        t: 9,
        v: 9.0,
    }];
    let err = decode_samples(&buf[..buf.len() - 3], &mut out).unwrap_err();
    assert!(matches!(err, RecordError::Truncated { .. }), "{err}");
    assert_eq!(out.len(), 1);
}

#[test]
fn varint_overflow_and_huge_counts_are_rejected() {
    // Series record with a label count far larger than the record.
    let mut rec = vec![1u8];
    rec.extend_from_slice(&7u64.to_be_bytes());
    rec.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(
        decode(&rec).unwrap_err(),
        RecordError::OutOfRange { .. }
    ));
    // Eleven continuation bytes.
    let mut rec = vec![3u8];
    rec.extend_from_slice(&7u64.to_be_bytes());
    rec.extend_from_slice(&[0xff; 11]);
    assert!(matches!(
        decode(&rec).unwrap_err(),
        RecordError::VarintOverflow { .. }
    ));
}

#[test]
fn unsorted_or_duplicate_labels() {
    // Unsorted labels are accepted and sorted; duplicates are rejected.
    let mut rec = vec![1u8];
    rec.extend_from_slice(&1u64.to_be_bytes());
    rec.push(2);
    for (n, v) in [("b", "1"), ("a", "2")] {
        rec.push(n.len() as u8);
        rec.extend_from_slice(n.as_bytes());
        rec.push(v.len() as u8);
        rec.extend_from_slice(v.as_bytes());
    }
    let Record::Series(s) = decode(&rec).unwrap() else {
        panic!("not a series record")
    };
    assert_eq!(s[0].labels, Labels::from_pairs([("a", "2"), ("b", "1")]));

    let mut dup = vec![1u8];
    dup.extend_from_slice(&1u64.to_be_bytes());
    dup.extend_from_slice(&[2, 1, b'a', 1, b'1', 1, b'a', 1, b'2']);
    assert!(matches!(
        decode(&dup).unwrap_err(),
        RecordError::InvalidLabels { .. }
    ));
}

#[test]
fn unknown_counter_reset_hint_is_rejected() {
    let sample = RefHistogramSample {
        series_ref: 5,
        t: 1000,
        h: Histogram {
            counter_reset_hint: CounterResetHint::Gauge,
            schema: 0,
            count: 2,
            ..Histogram::default()
        },
    };
    let mut buf = Vec::new();
    encode_histogram_samples(std::slice::from_ref(&sample), &mut buf);
    assert_eq!(
        decode(&buf).unwrap(),
        Record::HistogramSamples(vec![sample])
    );
    // Type byte, first ref and time (8 bytes each), zero ref and time deltas, then the hint.
    assert_eq!(buf[19], 3);
    buf[19] = 7;
    let err = decode(&buf).unwrap_err();
    assert!(
        matches!(
            err,
            RecordError::OutOfRange {
                field: "counter reset hint",
                value: 7,
                offset: 19,
                ..
            }
        ),
        "{err}"
    );
}
