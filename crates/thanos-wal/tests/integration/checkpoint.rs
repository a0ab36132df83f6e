//! Checkpoint round trip: filtered content, file layout, deletion of covered segments and
//! older checkpoints, and replay order (checkpoint, then later segments).

use crate::common;

use std::path::Path;

use thanos_model::Labels;
use thanos_wal::checkpoint::{CheckpointError, KeepFn, checkpoint};
use thanos_wal::record::{
    self, Histogram, MetricType, Record, RefExemplar, RefHistogramSample, RefMetadata,
    RefMmapMarker, RefSample, RefSeries, RefTombstone,
};
use thanos_wal::wlog::{Compression, PAGE_SIZE, Wal, WalOptions, WalReader};

const MINT: i64 = 500;

fn keep(r: u64) -> bool {
    r.is_multiple_of(2)
}

/// Inputs written to the WAL, in order.
#[derive(Default)]
struct Written {
    series: Vec<RefSeries>,
    samples: Vec<RefSample>,
    tombstones: Vec<RefTombstone>,
    exemplars: Vec<RefExemplar>,
    metadata: Vec<RefMetadata>,
    histograms: Vec<RefHistogramSample>,
}

fn write_batch(wal: &mut Wal, w: &mut Written, refs: std::ops::Range<u64>, t0: i64) {
    let series: Vec<RefSeries> = refs
        .clone()
        .map(|r| RefSeries {
            series_ref: r,
            labels: Labels::from_pairs([("__name__", "m"), ("id", &*r.to_string())]),
        })
        .collect();
    let samples: Vec<RefSample> = refs
        .clone()
        .flat_map(|r| {
            (0..20).map(move |k| RefSample {
                series_ref: r,
                t: t0 + k * 50,
                v: r as f64,
            })
        })
        .collect();
    let tombstones: Vec<RefTombstone> = refs
        .clone()
        .map(|r| RefTombstone {
            series_ref: r,
            mint: t0,
            maxt: t0 + (r as i64 % 4) * 200,
        })
        .collect();
    let exemplars: Vec<RefExemplar> = refs
        .clone()
        .map(|r| RefExemplar {
            series_ref: r,
            t: t0 + r as i64 * 10,
            v: 1.5,
            labels: Labels::from_pairs([("trace_id", "abc")]),
        })
        .collect();
    let metadata: Vec<RefMetadata> = refs
        .clone()
        .map(|r| RefMetadata {
            series_ref: r % 10,
            metric_type: MetricType::Gauge,
            unit: String::new(),
            help: format!("help at {t0}"),
        })
        .collect();
    let histograms: Vec<RefHistogramSample> = refs
        .clone()
        .map(|r| RefHistogramSample {
            series_ref: r,
            t: t0 + 300,
            h: Histogram {
                schema: 1,
                count: r,
                sum: 2.0,
                ..Histogram::default()
            },
        })
        .collect();
    let mut recs = Vec::new();
    let mut b = Vec::new();
    record::encode_series(&series, &mut b);
    recs.push(std::mem::take(&mut b));
    record::encode_samples(&samples, &mut b);
    recs.push(std::mem::take(&mut b));
    record::encode_tombstones(&tombstones, &mut b);
    recs.push(std::mem::take(&mut b));
    record::encode_exemplars(&exemplars, &mut b);
    recs.push(std::mem::take(&mut b));
    record::encode_metadata(&metadata, &mut b);
    recs.push(std::mem::take(&mut b));
    record::encode_histogram_samples(&histograms, &mut b);
    recs.push(std::mem::take(&mut b));
    record::encode_mmap_markers(
        &[RefMmapMarker {
            series_ref: 1,
            mmap_ref: 2,
        }],
        &mut b,
    );
    recs.push(std::mem::take(&mut b));
    recs.push(vec![11, 1, 2, 3]); // unknown (start-timestamp samples) record: skipped
    wal.log(&recs).unwrap();
    w.series.extend(series);
    w.samples.extend(samples);
    w.tombstones.extend(tombstones);
    w.exemplars.extend(exemplars);
    w.metadata.extend(metadata);
    w.histograms.extend(histograms);
}

/// Flattens the decoded records of a reader.
fn collect(mut r: WalReader) -> (Written, Vec<Record>) {
    let mut w = Written::default();
    let mut recs = Vec::new();
    while let Some(raw) = r.next_record().unwrap() {
        let rec = record::decode(raw).unwrap();
        match &rec {
            Record::Series(v) => w.series.extend(v.iter().cloned()),
            Record::Samples(v) => w.samples.extend(v.iter().cloned()),
            Record::Tombstones(v) => w.tombstones.extend(v.iter().cloned()),
            Record::Exemplars(v) => w.exemplars.extend(v.iter().cloned()),
            Record::Metadata(v) => w.metadata.extend(v.iter().cloned()),
            Record::HistogramSamples(v) => w.histograms.extend(v.iter().cloned()),
            Record::MmapMarkers(_) | Record::Unknown(_) => {}
            other => panic!("unexpected record: {other:?}"),
        }
        recs.push(rec);
    }
    (w, recs)
}

/// What a checkpoint of `w` must contain.
fn expected(w: &Written) -> Written {
    let mut meta: Vec<RefMetadata> = Vec::new();
    for m in w.metadata.iter().filter(|m| keep(m.series_ref)) {
        meta.retain(|x| x.series_ref != m.series_ref);
        meta.push(m.clone());
    }
    meta.sort_by_key(|m| m.series_ref);
    Written {
        series: w
            .series
            .iter()
            .filter(|s| keep(s.series_ref))
            .cloned()
            .collect(),
        samples: w.samples.iter().filter(|s| s.t >= MINT).cloned().collect(),
        tombstones: w
            .tombstones
            .iter()
            .filter(|s| keep(s.series_ref) && s.maxt >= MINT)
            .cloned()
            .collect(),
        exemplars: w
            .exemplars
            .iter()
            .filter(|e| e.t >= MINT)
            .cloned()
            .collect(),
        metadata: meta,
        histograms: w
            .histograms
            .iter()
            .filter(|h| h.t >= MINT)
            .cloned()
            .collect(),
    }
}

fn assert_same(got: &Written, want: &Written) {
    assert_eq!(got.series, want.series);
    assert_eq!(got.samples, want.samples);
    assert_eq!(got.tombstones, want.tombstones);
    assert_eq!(got.exemplars, want.exemplars);
    assert_eq!(got.metadata, want.metadata);
    assert_eq!(got.histograms, want.histograms);
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn checkpoint_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = WalOptions {
        segment_size: 2 * PAGE_SIZE,
        compression: Compression::Snappy,
    };
    let mut wal = Wal::open(dir, opts.clone()).unwrap();
    let mut all = Written::default();
    for (i, t0) in [0i64, 200, 400, 600].into_iter().enumerate() {
        let base = 1 + i as u64 * 25;
        write_batch(&mut wal, &mut all, base..base + 25, t0);
        wal.cut().unwrap();
    }
    // Segments 0..=3 hold the batches; 4 is active.
    assert_eq!(wal.segment(), 4);
    let mut after = Written::default();
    write_batch(&mut wal, &mut after, 101..111, 900);
    wal.sync().unwrap();

    let mut filter = KeepFn { keep, mint: MINT };
    let stats = checkpoint(dir, 0, 3, &mut filter, Compression::Snappy).unwrap();
    assert_eq!(stats.checkpoint, 3);
    assert_eq!(stats.total_series, 100);
    assert_eq!(stats.dropped_series, 50);
    assert_eq!(stats.total_samples, 2000);
    assert_eq!(stats.skipped_records, 8);
    assert_eq!(entries(dir), vec!["00000004", "checkpoint.00000003"]);

    let cp = dir.join("checkpoint.00000003");
    let want = expected(&all);
    assert_eq!(stats.dropped_samples, 2000 - want.samples.len() as u64);
    let (got, recs) = collect(WalReader::checkpoint(&cp).unwrap());
    assert_same(&got, &want);
    assert!(
        !recs
            .iter()
            .any(|r| matches!(r, Record::MmapMarkers(_) | Record::Unknown(_)))
    );
    // One output record per input record that kept something, the metadata record last.
    assert!(matches!(recs.last(), Some(Record::Metadata(_))));
    assert_eq!(
        recs.iter()
            .filter(|r| matches!(r, Record::Metadata(_)))
            .count(),
        1
    );

    // The independent reader validates the checkpoint segments too.
    let py = common::wal_inspect(&cp);
    assert_eq!(py.get("series").copied(), Some(want.series.len() as u64));
    assert_eq!(py.get("samples").copied(), Some(want.samples.len() as u64));
    assert_eq!(
        py.get("metadata").copied(),
        Some(want.metadata.len() as u64)
    );

    // Replay = checkpoint, then the segments after it.
    let (replayed, _) = collect(WalReader::open(dir).unwrap());
    let mut series = want.series.clone();
    series.extend(after.series.iter().cloned());
    assert_eq!(replayed.series, series);
    let mut samples = want.samples.clone();
    samples.extend(after.samples.iter().cloned());
    assert_eq!(replayed.samples, samples);

    // A second checkpoint folds in the first one and deletes it.
    let mut batch2 = Written::default();
    write_batch(&mut wal, &mut batch2, 111..121, 1000);
    wal.cut().unwrap();
    wal.close().unwrap();
    let err = checkpoint(dir, 6, 6, &mut filter, Compression::Snappy).unwrap_err();
    assert!(
        matches!(
            err,
            CheckpointError::Gap {
                last: 3,
                from: 6,
                ..
            }
        ),
        "{err}"
    );
    // Segment 4 holds `after` and `batch2`; 5 is the (empty) segment cut last.
    let stats = checkpoint(dir, 4, 4, &mut filter, Compression::None).unwrap();
    assert_eq!(stats.checkpoint, 4);
    assert_eq!(entries(dir), vec!["00000005", "checkpoint.00000004"]);
    let input = concat(&[&want, &after, &batch2]);
    let (got, _) = collect(WalReader::checkpoint(&dir.join("checkpoint.00000004")).unwrap());
    assert_same(&got, &expected(&input));
}

fn concat(parts: &[&Written]) -> Written {
    let mut w = Written::default();
    for p in parts {
        w.series.extend(p.series.iter().cloned());
        w.samples.extend(p.samples.iter().cloned());
        w.tombstones.extend(p.tombstones.iter().cloned());
        w.exemplars.extend(p.exemplars.iter().cloned());
        w.metadata.extend(p.metadata.iter().cloned());
        w.histograms.extend(p.histograms.iter().cloned());
    }
    w
}
