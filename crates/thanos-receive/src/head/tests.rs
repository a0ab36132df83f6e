use std::collections::BTreeMap;

use proptest::prelude::*;
use thanos_model::sample::stale_nan;
use thanos_model::{MatchType, Matcher};

use super::*;
use crate::histogram::{HistogramSample, HistogramValue};
use std::collections::hash_map::Entry;
use std::sync::Arc;

const NOW: i64 = 1_700_000_000_000;

fn head(options: HeadOptions) -> Head {
    Head::new(options, HeadMetrics::unregistered())
}

type Pairs<'a> = &'a [(&'a str, &'a str)];

fn batch(series: &[(Pairs<'_>, &[(i64, f64)])]) -> Batch {
    Batch::from_series(
        series
            .iter()
            .map(|(labels, samples)| SeriesSamples {
                histograms: Vec::new(),
                labels: Labels::from_pairs(labels.iter().copied()),
                samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
            })
            .collect(),
    )
}

fn all_samples(h: &Head, labels: &[(&str, &str)]) -> Vec<(i64, f64)> {
    let want = Labels::from_pairs(labels.iter().copied());
    h.select(&[], i64::MIN, i64::MAX)
        .into_iter()
        .find(|s| s.labels == want)
        .map(|s| s.samples().map(|s| (s.t, s.v)).collect())
        .unwrap_or_default()
}

#[test]
fn append_rules_match_prometheus() {
    let h = head(HeadOptions::default());
    let up: &[(&str, &str)] = &[("__name__", "up"), ("job", "a")];
    let r = h
        .append_batch(&batch(&[(up, &[(NOW, 1.0), (NOW + 1000, 1.0)])]), NOW)
        .expect("append");
    assert_eq!((r.appended, r.series_created), (2, 1));
    assert!(r.rejections.is_empty());

    // Older than the newest sample, different value at the same time, identical resend,
    // then a good sample: only the good one is stored, the rest is counted.
    let r = h
        .append_batch(
            &batch(&[(
                up,
                &[
                    (NOW + 500, 1.0),
                    (NOW + 1000, 2.0),
                    (NOW + 1000, 1.0),
                    (NOW + 2000, 0.0),
                ],
            )]),
            NOW,
        )
        .expect("append");
    assert_eq!(r.appended, 1);
    assert_eq!(r.identical, 1);
    assert_eq!(r.rejections.count(Reason::OutOfOrder), 1);
    assert_eq!(r.rejections.count(Reason::DuplicateSample), 1);
    assert!(
        r.rejections
            .example(Reason::OutOfOrder)
            .expect("example")
            .contains(&format!("job=\"a\"}} t={}", NOW + 500)),
        "{}",
        r.rejections
    );
    assert_eq!(
        all_samples(&h, up),
        [(NOW, 1.0), (NOW + 1000, 1.0), (NOW + 2000, 0.0)]
    );
    assert_eq!(h.min_time(), Some(NOW));
    assert_eq!(h.max_time(), Some(NOW + 2000));
    assert_eq!(h.num_series(), 1);
}

#[test]
fn out_of_bounds_is_half_a_chunk_range_behind_max_time() {
    let h = head(HeadOptions::default());
    let hour = 3_600_000;
    h.append_batch(&batch(&[(&[("a", "1")], &[(NOW, 1.0)])]), NOW)
        .expect("append");
    assert_eq!(h.appendable_min_valid_time(), NOW - hour);
    let r = h
        .append_batch(
            &batch(&[(&[("a", "2")], &[(NOW - hour - 1, 1.0), (NOW - hour, 1.0)])]),
            NOW,
        )
        .expect("append");
    assert_eq!(r.rejections.count(Reason::OutOfBounds), 1);
    assert_eq!(r.appended, 1);
    h.set_min_valid_time(NOW);
    let r = h
        .append_batch(&batch(&[(&[("a", "3")], &[(NOW - 1, 1.0)])]), NOW)
        .expect("append");
    assert_eq!(r.rejections.count(Reason::OutOfBounds), 1);
    assert_eq!(
        r.series_created, 0,
        "fully rejected series must not be created"
    );
}

#[test]
fn far_future_sample_changes_nothing() {
    let h = head(HeadOptions {
        too_far_in_future_ms: 60_000,
        ..HeadOptions::default()
    });
    let far = NOW + 24 * 3_600_000;
    let r = h
        .append_batch(&batch(&[(&[("a", "1")], &[(far, 1.0)])]), NOW)
        .expect("append");
    assert_eq!(r.rejections.count(Reason::TooFarInFuture), 1);
    assert_eq!((r.appended, r.series_created), (0, 0));
    assert_eq!((h.num_series(), h.max_time()), (0, None));
    // Mixed into an existing series: the good samples land, the series head is not moved.
    let r = h
        .append_batch(
            &batch(&[(&[("a", "1")], &[(NOW, 1.0), (far, 2.0), (NOW + 1000, 3.0)])]),
            NOW,
        )
        .expect("append");
    assert_eq!(r.appended, 2);
    assert_eq!(r.rejections.count(Reason::TooFarInFuture), 1);
    let r = h
        .append_batch(&batch(&[(&[("a", "1")], &[(NOW + 2000, 4.0)])]), NOW)
        .expect("append");
    assert_eq!(r.appended, 1, "later writes still succeed");
    assert_eq!(h.max_time(), Some(NOW + 2000));
    // Exactly at the window edge is accepted.
    let r = h
        .append_batch(&batch(&[(&[("a", "1")], &[(NOW + 60_000, 5.0)])]), NOW)
        .expect("append");
    assert_eq!(r.appended, 1);
}

#[test]
fn chunks_are_cut_at_120_samples_and_range_boundaries() {
    let range = 7_200_000;
    let h = head(HeadOptions::default());
    let start = (NOW / range) * range;
    // 250 samples at 15s from the start of a range: 120 + 120 + 10.
    let samples: Vec<(i64, f64)> = (0..250).map(|i| (start + i * 15_000, i as f64)).collect();
    h.append_batch(&batch(&[(&[("a", "1")], &samples)]), NOW)
        .expect("append");
    let s = h.select(&[], i64::MIN, i64::MAX).remove(0);
    let sizes: Vec<usize> = s.chunks.iter().map(|c| c.iter().count()).collect();
    assert_eq!(sizes, [120, 120, 10]);
    assert_eq!(s.chunks[0].min_time, start);
    assert_eq!(s.chunks[0].max_time, start + 119 * 15_000);
    // A sample in the next range cuts the open chunk even though it is not full.
    h.append_batch(&batch(&[(&[("a", "1")], &[(start + range, 1.0)])]), NOW)
        .expect("append");
    let s = h.select(&[], i64::MIN, i64::MAX).remove(0);
    assert_eq!(s.chunks.len(), 4);
    assert_eq!(s.chunks[3].min_time, start + range);
    assert!(s.chunks[2].max_time < start + range);
    // Range selection returns only overlapping chunks.
    let s = h.select(&[], start + range, i64::MAX).remove(0);
    assert_eq!(s.chunks.len(), 1);
    // Closed chunk bytes decode on their own (they are TSDB chunk bytes).
    let first = h.select(&[], start, start).remove(0).chunks.remove(0);
    let decoded: Vec<Sample> = XorIterator::new(&first.data).collect();
    assert_eq!(decoded.len(), 120);
    assert_eq!(decoded[5], Sample::new(start + 5 * 15_000, 5.0));
}

#[test]
fn stale_markers_and_nan_round_trip() {
    let h = head(HeadOptions::default());
    h.append_batch(
        &batch(&[(&[("a", "1")], &[(NOW, f64::NAN), (NOW + 1, stale_nan())])]),
        NOW,
    )
    .expect("append");
    // Resending the same NaN is identical (bitwise), not a duplicate.
    let r = h
        .append_batch(&batch(&[(&[("a", "1")], &[(NOW + 1, stale_nan())])]), NOW)
        .expect("append");
    assert_eq!((r.identical, r.rejections.is_empty()), (1, true));
    let got: Vec<Sample> = h.select(&[], i64::MIN, i64::MAX)[0].samples().collect();
    assert!(got[0].v.is_nan() && !got[0].is_stale());
    assert!(got[1].is_stale());
}

#[test]
fn select_and_label_queries() {
    let h = head(HeadOptions::default());
    h.append_batch(
        &batch(&[
            (&[("__name__", "up"), ("job", "b")], &[(NOW, 1.0)]),
            (
                &[("__name__", "up"), ("job", "a"), ("zone", "z1")],
                &[(NOW + 10, 1.0)],
            ),
            (&[("__name__", "cpu"), ("job", "a")], &[(NOW + 5000, 3.0)]),
        ]),
        NOW,
    )
    .expect("append");
    let up = Matcher::equal("__name__", "up");
    let got: Vec<String> = h
        .select(std::slice::from_ref(&up), i64::MIN, i64::MAX)
        .iter()
        .map(|s| s.labels.to_string())
        .collect();
    assert_eq!(
        got,
        [
            r#"{__name__="up", job="a", zone="z1"}"#,
            r#"{__name__="up", job="b"}"#
        ]
    );
    // Absent label matches as empty.
    let no_zone = Matcher::new(MatchType::Equal, "zone", "").expect("matcher");
    assert_eq!(
        h.select(&[up.clone(), no_zone], i64::MIN, i64::MAX).len(),
        1
    );
    let re = Matcher::new(MatchType::RegexMatch, "job", "a|c").expect("matcher");
    assert_eq!(
        h.select(std::slice::from_ref(&re), i64::MIN, i64::MAX)
            .len(),
        2
    );
    // Time filtering: only the cpu series has data after NOW + 100.
    assert_eq!(h.select(&[], NOW + 100, i64::MAX).len(), 1);
    assert_eq!(h.select(&[], NOW + 6000, i64::MAX).len(), 0);
    assert_eq!(
        h.label_names(&[], i64::MIN, i64::MAX),
        ["__name__", "job", "zone"]
    );
    assert_eq!(h.label_names(&[], NOW + 100, i64::MAX), ["__name__", "job"]);
    assert_eq!(
        h.label_values("job", std::slice::from_ref(&up), i64::MIN, i64::MAX),
        ["a", "b"]
    );
    assert_eq!(
        h.label_values("__name__", &[re], i64::MIN, i64::MAX),
        ["cpu", "up"]
    );
    assert!(h.label_values("nope", &[], i64::MIN, i64::MAX).is_empty());
}

#[test]
fn hash_collisions_keep_series_apart() {
    let h = head(HeadOptions::default());
    let a = Labels::from_pairs([("a", "1")]);
    let b = Labels::from_pairs([("b", "2")]);
    // Force both label sets into the same hash slot, as a real collision would.
    let hash = a.stable_hash();
    {
        let mut stripe = h.stripe(hash).write().expect("lock");
        for labels in [&a, &b] {
            let series = Arc::new(MemSeries::new(1, labels));
            match stripe.unique.entry(hash) {
                Entry::Occupied(_) => stripe.conflicts.entry(hash).or_default().push(series),
                Entry::Vacant(slot) => {
                    slot.insert(series);
                }
            }
        }
        assert!(stripe.get(hash, &a).is_some_and(|s| s.labels_eq(&a)));
        assert!(stripe.get(hash, &b).is_some_and(|s| s.labels_eq(&b)));
        assert!(
            stripe
                .get(hash, &Labels::from_pairs([("c", "3")]))
                .is_none()
        );
    }
    assert_eq!(h.select(&[], i64::MIN, i64::MAX).len(), 0, "no samples yet");
}

#[test]
fn packed_labels_round_trip_and_compare_exactly() {
    let long = "v".repeat(300);
    let cases = [
        Labels::from_pairs([("a", "1")]),
        Labels::from_pairs([("__name__", "up"), ("job", "node"), ("ünï", "çødé")]),
        Labels::from_pairs([("a", long.as_str()), ("b", "x")]),
        Labels::from_pairs([(long.as_str(), "1")]),
    ];
    for labels in &cases {
        let s = MemSeries::new(1, labels);
        assert_eq!(&s.to_labels(), labels);
        for other in &cases {
            assert_eq!(s.labels_eq(other), other == labels, "{labels} vs {other}");
        }
        for l in labels {
            assert_eq!(s.label(&l.name), Some(l.value.as_str()));
        }
        assert_eq!(s.label("missing"), None);
    }
    // A prefix of a label set is a different series.
    let short = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
    assert!(!MemSeries::new(1, &cases[1]).labels_eq(&short));
    assert!(!MemSeries::new(1, &short).labels_eq(&cases[1]));
}

#[test]
fn concurrent_writers_lose_nothing() {
    let h = Arc::new(head(HeadOptions::default()));
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                for step in 0..200i64 {
                    // Every writer writes 50 shared series and 50 of its own.
                    let series: Vec<SeriesSamples> = (0..100)
                        .map(|i| {
                            let owner = if i < 50 {
                                "shared".to_owned()
                            } else {
                                w.to_string()
                            };
                            SeriesSamples {
                                histograms: Vec::new(),
                                labels: Labels::from_pairs([
                                    ("owner", owner),
                                    ("i", i.to_string()),
                                ]),
                                samples: vec![Sample::new(NOW + step * 1000 + w, 1.0)],
                            }
                        })
                        .collect();
                    let b = Batch::from_series(series);
                    h.append_batch(&b, NOW).expect("append");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    assert_eq!(h.num_series(), 50 + 4 * 50);
    for s in h.select(&[Matcher::equal("owner", "1")], i64::MIN, i64::MAX) {
        assert_eq!(s.samples().count(), 200, "{}", s.labels);
    }
    // Shared series got every in-order sample; the rest were rejected, not lost.
    for s in h.select(&[Matcher::equal("owner", "shared")], i64::MIN, i64::MAX) {
        let ts: Vec<i64> = s.samples().map(|s| s.t).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{}", s.labels);
        assert!(ts.len() >= 200, "{}: {}", s.labels, ts.len());
    }
}

/// A reference model of the append rules: per series, the accepted samples.
#[derive(Default)]
struct Model {
    series: BTreeMap<Labels, Vec<(i64, u64)>>,
    max_time: Option<i64>,
}

impl Model {
    fn append(
        &mut self,
        labels: &Labels,
        t: i64,
        v: f64,
        opts: &HeadOptions,
        min_valid: i64,
    ) -> Result<bool, Reason> {
        let _ = opts;
        if t < min_valid {
            return Err(Reason::OutOfBounds);
        }
        let entry = self.series.entry(labels.clone()).or_default();
        if let Some(&(last_t, last_v)) = entry.last() {
            if t < last_t {
                return Err(Reason::OutOfOrder);
            }
            if t == last_t {
                return if v.to_bits() == last_v {
                    Ok(false)
                } else {
                    Err(Reason::DuplicateSample)
                };
            }
        }
        entry.push((t, v.to_bits()));
        self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
        Ok(true)
    }
}

proptest! {
    #[test]
    fn head_matches_reference_model(
        requests in prop::collection::vec(
            prop::collection::vec((0usize..4, prop::collection::vec((0i64..40, 0u8..3), 1..6)), 1..5),
            1..20,
        )
    ) {
        // Tiny chunks and a short range exercise cutting; 400ms steps make some samples
        // fall out of bounds once max time moves on.
        let opts = HeadOptions { chunk_range_ms: 4000, samples_per_chunk: 3, too_far_in_future_ms: 0 };
        let h = head(opts);
        let mut model = Model::default();
        let names: Vec<Labels> = (0..4).map(|i| Labels::from_pairs([("s", i.to_string())])).collect();
        for req in requests {
            let b = Batch::from_series(req.iter().map(|(s, samples)| SeriesSamples {
histograms: Vec::new(),
                    labels: names[*s].clone(),
                    samples: samples.iter().map(|&(t, v)| Sample::new(t * 400, f64::from(v))).collect(),
                }).collect());
            let min_valid = model.max_time.map_or(i64::MIN, |m| m - opts.chunk_range_ms / 2);
            let mut expected = Rejections::default();
            let mut appended = 0;
            for s in &b.series {
                for sample in &s.samples {
                    match model.append(&s.labels, sample.t, sample.v, &opts, min_valid) {
                        Ok(true) => appended += 1,
                        Ok(false) => {}
                        Err(reason) => expected.add(reason, 1, String::new),
                    }
                }
            }
            // The model creates entries for out-of-bounds-only series lazily too; drop
            // empty ones so both sides compare equal.
            model.series.retain(|_, v| !v.is_empty());
            let report = h.append_batch(&b, 0).expect("append");
            prop_assert_eq!(report.appended, appended);
            for reason in Reason::ALL {
                prop_assert_eq!(report.rejections.count(reason), expected.count(reason), "{}", reason);
            }
        }
        let got: BTreeMap<Labels, Vec<(i64, u64)>> = h
            .select(&[], i64::MIN, i64::MAX)
            .into_iter()
            .map(|s| {
                for c in &s.chunks {
                    assert!(c.iter().count() <= 3);
                    assert_eq!(c.min_time.div_euclid(4000), c.max_time.div_euclid(4000));
                }
                let samples = s.samples().map(|x| (x.t, x.v.to_bits())).collect();
                (s.labels, samples)
            })
            .collect();
        prop_assert_eq!(&got, &model.series);
        prop_assert_eq!(h.max_time(), model.max_time);
    }
}

#[test]
fn truncate_drops_old_samples_and_empty_series() {
    let h = head(HeadOptions {
        chunk_range_ms: 1000,
        samples_per_chunk: 4,
        ..HeadOptions::default()
    });
    let old: &[(&str, &str)] = &[("__name__", "m"), ("s", "old")];
    let live: &[(&str, &str)] = &[("__name__", "m"), ("s", "live")];
    let old_samples: Vec<(i64, f64)> = (0..10).map(|i| (i * 100, i as f64)).collect();
    let live_samples: Vec<(i64, f64)> = (0..30).map(|i| (i * 100, -(i as f64))).collect();
    h.append_batch(&batch(&[(old, &old_samples), (live, &live_samples)]), 0)
        .expect("append");
    assert_eq!(h.num_series(), 2);

    // The block range [0, 2000) holds both series, with whole chunks.
    let block = h.block_series(0, 2000);
    assert_eq!(block.len(), 2);
    let live_block: Vec<(i64, f64)> = block[0].samples().map(|s| (s.t, s.v)).collect();
    assert_eq!(live_block, live_samples[..20]);
    assert!(
        block
            .iter()
            .flat_map(|s| &s.chunks)
            .all(|c| c.max_time < 2000)
    );

    let stats = h.truncate(2000);
    assert_eq!(stats.series_removed, 1);
    assert_eq!(h.num_series(), 1);
    assert_eq!(all_samples(&h, old), []);
    assert_eq!(all_samples(&h, live), live_samples[20..]);
    assert_eq!(h.min_time(), Some(2000));
    assert_eq!(h.min_valid_time(), 2000);
    assert_eq!(
        h.label_values("s", &[], i64::MIN, i64::MAX),
        ["live".to_owned()]
    );
    // Nothing can be appended below the truncation point any more, even for a new series.
    let r = h
        .append_batch(&batch(&[(old, &[(1999, 1.0)])]), 0)
        .expect("append");
    assert_eq!(r.rejections.count(Reason::OutOfBounds), 1);
    assert_eq!(h.num_series(), 1);
    // A series removed by truncation is created again by a new sample.
    let r = h
        .append_batch(&batch(&[(old, &[(2950, 7.0)])]), 0)
        .expect("append");
    assert_eq!((r.appended, r.series_created), (1, 1));
}

#[test]
fn block_ranges_not_on_chunk_boundaries_reencode_chunks() {
    // Chunks span 10 s; cutting at 2.5 s splits the open and the closed chunks.
    let h = head(HeadOptions {
        chunk_range_ms: 10_000,
        samples_per_chunk: 20,
        ..HeadOptions::default()
    });
    let s: &[(&str, &str)] = &[("__name__", "m")];
    let samples: Vec<(i64, f64)> = (0..50).map(|i| (i * 100, i as f64 * 0.5)).collect();
    h.append_batch(&batch(&[(s, &samples)]), 0).expect("append");
    let block = h.block_series(1000, 2500);
    assert_eq!(block.len(), 1);
    let got: Vec<(i64, f64)> = block[0].samples().map(|x| (x.t, x.v)).collect();
    assert_eq!(got, samples[10..25]);
    assert!(
        block[0]
            .chunks
            .iter()
            .all(|c| c.min_time >= 1000 && c.max_time < 2500)
    );

    h.truncate(2500);
    assert_eq!(all_samples(&h, s), samples[25..]);
    assert_eq!(h.min_time(), Some(2500));
    // The truncated open chunk keeps accepting samples.
    h.append_batch(&batch(&[(s, &[(5000, 1.0)])]), 0)
        .expect("append");
    assert_eq!(all_samples(&h, s).last(), Some(&(5000, 1.0)));
    assert!(h.block_series(5, 5).is_empty());
}

// ------------------------------------------------------------------ native histograms

fn int_hist(t: i64, count: u64) -> HistogramSample {
    HistogramSample {
        t,
        value: HistogramValue::Int(thanos_model::Histogram {
            schema: 0,
            count,
            sum: count as f64,
            positive_spans: vec![thanos_model::Span::new(0, 1)],
            positive_buckets: vec![count as i64],
            ..Default::default()
        }),
    }
}

fn float_hist(t: i64, count: f64) -> HistogramSample {
    HistogramSample {
        t,
        value: HistogramValue::Float(thanos_model::FloatHistogram {
            schema: 0,
            count,
            sum: count,
            positive_spans: vec![thanos_model::Span::new(0, 1)],
            positive_buckets: vec![count],
            ..Default::default()
        }),
    }
}

fn hist_batch(labels: Pairs<'_>, samples: &[(i64, f64)], hists: Vec<HistogramSample>) -> Batch {
    Batch::from_series(vec![SeriesSamples {
        labels: Labels::from_pairs(labels.iter().copied()),
        samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
        histograms: hists,
    }])
}

/// Every chunk of the series: (encoding, counter-reset header byte, (t, count) per sample).
type Decoded = Vec<(Encoding, u8, Vec<(i64, f64)>)>;

fn decoded(chunks: &[ChunkMeta]) -> Decoded {
    use thanos_model::chunkenc::SampleIterator;
    chunks
        .iter()
        .map(|c| {
            let samples = match c.decode().expect("encoding") {
                SampleIterator::Float(it) => it.map(|s| (s.t, s.v)).collect(),
                SampleIterator::Histogram(it) => it.map(|(t, h)| (t, h.count as f64)).collect(),
                SampleIterator::FloatHistogram(it) => it.map(|(t, h)| (t, h.count)).collect(),
            };
            let header = if c.encoding == Encoding::Xor {
                0
            } else {
                c.data[2] & 0b1100_0000
            };
            (c.encoding, header, samples)
        })
        .collect()
}

#[test]
fn histograms_are_stored_with_counter_resets_and_type_switches() {
    let h = head(HeadOptions::default());
    let m: Pairs<'_> = &[("__name__", "m")];
    // Floats, then integer histograms with a counter reset, then float histograms, then
    // floats again: every type change and the reset cut a chunk.
    let r = h
        .append_batch(
            &hist_batch(
                m,
                &[(NOW, 1.0), (NOW + 1, 2.0)],
                vec![
                    int_hist(NOW + 2, 5),
                    int_hist(NOW + 3, 7),
                    int_hist(NOW + 4, 2),
                    int_hist(NOW + 5, 3),
                    float_hist(NOW + 6, 1.5),
                ],
            ),
            NOW,
        )
        .expect("append");
    assert!(r.rejections.is_empty(), "{}", r.rejections);
    assert_eq!((r.appended, r.histograms), (7, 5));
    h.append_batch(&hist_batch(m, &[(NOW + 7, 9.0)], vec![]), NOW)
        .expect("append");
    let s = h.select(&[], i64::MIN, i64::MAX);
    let got = decoded(&s[0].chunks);
    assert_eq!(
        got,
        vec![
            (Encoding::Xor, 0, vec![(NOW, 1.0), (NOW + 1, 2.0)]),
            (Encoding::Histogram, 0, vec![(NOW + 2, 5.0), (NOW + 3, 7.0)]),
            (
                Encoding::Histogram,
                CounterResetHeader::CounterReset.bits(),
                vec![(NOW + 4, 2.0), (NOW + 5, 3.0)]
            ),
            (Encoding::FloatHistogram, 0, vec![(NOW + 6, 1.5)]),
            (Encoding::Xor, 0, vec![(NOW + 7, 9.0)]),
        ]
    );
    assert_eq!(h.max_time(), Some(NOW + 7));
}

#[test]
fn histogram_order_and_duplicate_rules_match_floats() {
    let h = head(HeadOptions::default());
    let m: Pairs<'_> = &[("__name__", "m")];
    h.append_batch(&hist_batch(m, &[], vec![int_hist(NOW + 10, 5)]), NOW)
        .expect("append");
    let r = h
        .append_batch(
            &hist_batch(
                m,
                &[(NOW + 10, 1.0)],
                vec![
                    int_hist(NOW + 5, 6),
                    int_hist(NOW + 10, 5),
                    int_hist(NOW + 10, 6),
                    float_hist(NOW + 10, 5.0),
                    int_hist(NOW + 11, 6),
                ],
            ),
            NOW,
        )
        .expect("append");
    assert_eq!(r.appended, 1);
    assert_eq!(r.identical, 1);
    assert_eq!(r.rejections.count(Reason::OutOfOrder), 1);
    // The float at the histogram's timestamp, the other value, the other kind.
    assert_eq!(r.rejections.count(Reason::DuplicateSample), 3);
    assert_eq!(
        r.rejections.kind(),
        Some(thanos_server::ErrorKind::Conflict)
    );
    // Identical stale markers are identical resends.
    let stale = HistogramSample {
        t: NOW + 12,
        value: HistogramValue::Int(thanos_model::Histogram::stale()),
    };
    let r = h
        .append_batch(&hist_batch(m, &[], vec![stale.clone(), stale]), NOW)
        .expect("append");
    assert_eq!((r.appended, r.identical), (1, 1));
}

#[test]
fn histogram_chunks_are_split_at_block_boundaries_and_truncated() {
    let opts = HeadOptions {
        chunk_range_ms: 1000,
        ..HeadOptions::default()
    };
    let h = head(opts);
    let m: Pairs<'_> = &[("__name__", "m")];
    let hists = (0..30).map(|i| int_hist(i * 100, i as u64 + 1)).collect();
    h.append_batch(&hist_batch(m, &[], hists), 0)
        .expect("append");
    let block = h.block_series(1000, 2000);
    let got = decoded(&block[0].chunks);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Encoding::Histogram);
    let ts: Vec<i64> = got[0].2.iter().map(|s| s.0).collect();
    assert_eq!(ts, (10..20).map(|i| i * 100).collect::<Vec<_>>());
    h.truncate(2000);
    let rest = decoded(&h.select(&[], i64::MIN, i64::MAX)[0].chunks);
    let ts: Vec<i64> = rest.iter().flat_map(|c| c.2.iter().map(|s| s.0)).collect();
    assert_eq!(ts, (20..30).map(|i| i * 100).collect::<Vec<_>>());
    // The series keeps accepting histograms after the truncation.
    let r = h
        .append_batch(&hist_batch(m, &[], vec![int_hist(3000, 40)]), 0)
        .expect("append");
    assert_eq!(r.appended, 1);
}
