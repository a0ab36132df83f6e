//! WALs written by this crate are read back by the project's independent Python reader
//! (`wal_inspect.py`) with every CRC valid and the same record and entry counts.

use crate::common;

use std::collections::HashMap;
use std::path::Path;

use thanos_model::Labels;
use thanos_wal::record::{
    self, MetricType, RefExemplar, RefMetadata, RefSample, RefSeries, RefTombstone,
};
use thanos_wal::wlog::{Compression, PAGE_SIZE, Wal, WalOptions};

/// Writes a mixed workload and returns the expected `wal_inspect.py` counters.
fn write_workload(dir: &Path, compression: Compression, close: bool) -> HashMap<String, u64> {
    let mut wal = Wal::open(
        dir,
        WalOptions {
            segment_size: 2 * PAGE_SIZE,
            compression,
        },
    )
    .unwrap();
    let mut want: HashMap<String, u64> = HashMap::new();
    let mut add = |k: &str, n: u64| *want.entry(k.to_string()).or_default() += n;
    let mut buf = Vec::new();
    for round in 0..20u64 {
        // Series with long, varied labels: records spanning pages.
        let series: Vec<RefSeries> = (0..40)
            .map(|i| {
                let id = round * 40 + i;
                RefSeries {
                    series_ref: id + 1,
                    labels: Labels::from_pairs([
                        ("__name__", format!("metric_{}", id % 7)),
                        ("instance", format!("host-{id}.example.org:9100")),
                        (
                            "path",
                            format!("/very/long/path/{}", "x".repeat((id % 50) as usize)),
                        ),
                    ]),
                }
            })
            .collect();
        buf.clear();
        record::encode_series(&series, &mut buf);
        let samples: Vec<RefSample> = (0..1000)
            .map(|i| RefSample {
                series_ref: round * 40 + 1 + (i % 40),
                t: 1_700_000_000_000 + (round * 1000 + i) as i64 * 15,
                v: (i as f64).sin() * 1e3,
            })
            .collect();
        let mut sbuf = Vec::new();
        record::encode_samples(&samples, &mut sbuf);
        let stones = [RefTombstone {
            series_ref: round * 40 + 1,
            mint: -5,
            maxt: 1_700_000_000_000,
        }];
        let mut tbuf = Vec::new();
        record::encode_tombstones(&stones, &mut tbuf);
        let exemplars = [RefExemplar {
            series_ref: round * 40 + 2,
            t: 1_700_000_000_000,
            v: 0.5,
            labels: Labels::from_pairs([("trace_id", format!("{round:032x}"))]),
        }];
        let mut ebuf = Vec::new();
        record::encode_exemplars(&exemplars, &mut ebuf);
        let metadata = [RefMetadata {
            series_ref: round * 40 + 3,
            metric_type: MetricType::Counter,
            unit: "seconds".into(),
            help: "How long things took.".into(),
        }];
        let mut mbuf = Vec::new();
        record::encode_metadata(&metadata, &mut mbuf);
        // An empty samples record is valid too.
        let empty = [2u8];
        wal.log(&[&buf[..], &sbuf, &tbuf, &ebuf, &mbuf, &empty])
            .unwrap();
        wal.sync().unwrap();
        add("series", 40);
        add("samples", 1000);
        add("tombstones", 1);
        add("exemplars", 1);
        add("metadata", 1);
        add("records_type_1", 1);
        add("records_type_2", 2);
        add("records_type_3", 1);
        add("records_type_4", 1);
        add("records_type_6", 1);
    }
    if close {
        wal.close().unwrap();
    }
    want
}

fn check(compression: Compression, close: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let want = write_workload(tmp.path(), compression, close);
    let segments = thanos_wal::wlog::list_segments(tmp.path()).unwrap();
    assert!(
        segments.len() >= 3,
        "expected several segments: {segments:?}"
    );
    let py = common::wal_inspect(tmp.path());
    assert_eq!(py, want);
    let ours = common::replay(tmp.path());
    assert_eq!(ours.torn, None);
    assert_eq!(ours.counts(), want);
}

#[test]
fn python_reader_agrees_snappy_closed() {
    check(Compression::Snappy, true);
}

#[test]
fn python_reader_agrees_uncompressed_open_segment() {
    check(Compression::None, false);
}
