//! Cutting tenant heads into blocks: aligned blocks readable by `promtool tsdb dump`, the
//! head keeping only the newest part, WAL checkpoints, replay from a checkpoint, a crash
//! between block and checkpoint, flush, retention, and StoreAPI over blocks + head
//! returning every sample exactly once.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use common::store_series;
use prometheus::Registry;
use thanos_model::chunkenc::XorIterator;
use thanos_model::{Label, Labels, Sample};
use thanos_proto::thanos::LabelValuesRequest;
use thanos_receive::{Batch, HeadOptions, MultiTsdb, ReceiveStore, SeriesSamples, Storage};
use thanos_wal::wlog::{WalOptions, list_checkpoints, list_segments};

const HOUR: i64 = 3_600_000;
/// Not aligned to the hour, so the first block starts at the head's first sample.
const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 60_000;
const SERIES: usize = 100;

type Expected = BTreeMap<String, Vec<(i64, f64)>>;

fn labels(i: usize) -> Labels {
    Labels::from_sorted_unchecked(vec![
        Label::new("__name__", "m"),
        Label::new("i", format!("{i:02}")),
    ])
}

fn head_options() -> HeadOptions {
    HeadOptions {
        chunk_range_ms: HOUR,
        ..HeadOptions::default()
    }
}

fn open(dir: &Path) -> MultiTsdb {
    let storage = Storage {
        dir: dir.to_path_buf(),
        wal: WalOptions {
            segment_size: 32 * 1024,
            ..WalOptions::default()
        },
    };
    let (tsdb, _) = MultiTsdb::open(head_options(), storage, &Registry::new()).expect("open");
    tsdb.set_block_labels(Labels::from_pairs([("replica", "r0")]), "tenant_id");
    tsdb
}

/// Appends one sample per series every minute in `[from, to)`, one batch per minute.
fn write(tsdb: &MultiTsdb, tenant: &str, from: i64, to: i64, expected: &mut Expected) {
    let head = tsdb.tenant_head(tenant).expect("head");
    let mut t = from;
    while t < to {
        let series = (0..SERIES)
            .map(|i| SeriesSamples {
                histograms: Vec::new(),
                labels: labels(i),
                samples: vec![Sample::new(t, (t / STEP) as f64 + i as f64 / 100.0)],
            })
            .collect();
        let report = head
            .append_batch(&Batch::from_series(series), t)
            .expect("acknowledged");
        assert_eq!(report.rejections.samples(), 0, "t={t}");
        for i in 0..SERIES {
            expected
                .entry(labels(i).to_string())
                .or_default()
                .push((t, (t / STEP) as f64 + i as f64 / 100.0));
        }
        t += STEP;
    }
}

fn restrict(expected: &Expected, mint: i64, maxt: i64) -> Expected {
    expected
        .iter()
        .map(|(k, v)| {
            let kept: Vec<(i64, f64)> = v
                .iter()
                .copied()
                .filter(|(t, _)| *t >= mint && *t < maxt)
                .collect();
            (k.clone(), kept)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// `promtool tsdb dump` of a database made of `blocks` (and an empty WAL).
fn promtool_dump_blocks(blocks: &[PathBuf]) -> Expected {
    let db = tempfile::tempdir().expect("tempdir");
    for b in blocks {
        copy_dir(b, &db.path().join(b.file_name().expect("block name")));
    }
    std::fs::create_dir_all(db.path().join("wal")).expect("wal dir");
    promtool_dump(db.path())
}

fn promtool_dump(db: &Path) -> Expected {
    let out = Command::new("/usr/bin/promtool")
        .args(["tsdb", "dump"])
        .arg(db)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut dump = Expected::new();
    for line in String::from_utf8(out.stdout).expect("utf-8").lines() {
        let close = line.rfind("} ").expect("labels in dump line");
        let mut rest = line[close + 2..].split(' ');
        let v: f64 = rest.next().expect("value").parse().expect("float");
        let t: i64 = rest.next().expect("time").parse().expect("int");
        dump.entry(line[..=close].to_owned())
            .or_default()
            .push((t, v));
    }
    for samples in dump.values_mut() {
        samples.sort_by_key(|s| s.0);
    }
    dump
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

fn head_dump(tsdb: &MultiTsdb, tenant: &str) -> Expected {
    let head = tsdb.get(tenant).expect("tenant");
    head.select(&[], i64::MIN, i64::MAX)
        .into_iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples().map(|x| (x.t, x.v)).collect(),
            )
        })
        .collect()
}

/// Everything the StoreAPI returns for `__name__="m"`, keyed by the stored labels
/// (external labels removed); fails if a series comes twice or a sample repeats.
fn store_dump(tsdb: &Arc<MultiTsdb>) -> Expected {
    let mut out = Expected::new();
    for s in store_series(tsdb, "__name__", "m") {
        let labels = Labels::from_pairs(s.labels.iter().map(|l| (l.name.clone(), l.value.clone())));
        let mut samples = Vec::new();
        for c in &s.chunks {
            let raw = c.raw.as_ref().expect("raw chunk");
            samples.extend(XorIterator::new(&raw.data).map(|x| (x.t, x.v)));
        }
        assert!(
            samples.windows(2).all(|w| w[0].0 < w[1].0),
            "{labels}: samples not strictly increasing (duplicate or unsorted chunks)"
        );
        assert!(
            out.insert(labels.to_string(), samples).is_none(),
            "{labels} returned twice"
        );
    }
    out
}

fn block_dirs(tenant_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(tenant_dir)
        .expect("tenant dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn head_is_cut_into_aligned_blocks_and_the_wal_is_checkpointed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tenant_dir = dir.path().join("t");
    let wal_dir = tenant_dir.join("wal");
    let mut expected = Expected::new();
    let end = T0 + 5 * HOUR;
    let tsdb = Arc::new(open(dir.path()));
    write(&tsdb, "t", T0, end, &mut expected);
    let segments_before = list_segments(&wal_dir).expect("segments").len();
    assert!(segments_before > 3, "{segments_before} segments");
    // Replay time of the un-checkpointed WAL, for comparison below.
    drop(tsdb);
    let started = Instant::now();
    let tsdb = Arc::new(open(dir.path()));
    let replay_before = started.elapsed();

    let started = Instant::now();
    let cut = tsdb.compact().expect("compact");
    let cut_time = started.elapsed();
    // The head spans ~5h: blocks are cut until it spans at most 1.5h. As in Prometheus,
    // a block starts at the head's oldest sample and ends at the next hour boundary.
    let first_end = (T0 / HOUR + 1) * HOUR;
    let first_at_or_after = |t: i64| T0 + (t - T0 + STEP - 1) / STEP * STEP;
    let ranges: Vec<(i64, i64)> = cut.iter().map(|(_, m)| (m.min_time, m.max_time)).collect();
    let want: Vec<(i64, i64)> = (0..4)
        .map(|k| {
            let start = if k == 0 {
                T0
            } else {
                first_end + (k - 1) * HOUR
            };
            (first_at_or_after(start), first_end + k * HOUR)
        })
        .collect();
    assert_eq!(ranges, want);
    let last_maxt = first_end + 3 * HOUR;
    for (tenant, meta) in &cut {
        assert_eq!(tenant, "t");
        assert_eq!(meta.compaction.level, 1);
        assert_eq!(meta.compaction.sources, [meta.ulid]);
        assert_eq!(meta.stats.num_series, SERIES as u64);
        let thanos = meta.thanos.as_ref().expect("thanos section");
        assert_eq!(thanos.source, "receive");
        assert_eq!(
            thanos.labels.get("tenant_id").map(String::as_str),
            Some("t")
        );
        assert_eq!(thanos.labels.get("replica").map(String::as_str), Some("r0"));
    }
    eprintln!(
        "cut {} blocks of {SERIES} series x {} samples in {cut_time:?}",
        cut.len(),
        restrict(&expected, T0, last_maxt)
            .values()
            .map(Vec::len)
            .sum::<usize>()
    );

    // The blocks hold exactly the samples below the last block's end, per promtool.
    let blocks = block_dirs(&tenant_dir);
    assert_eq!(blocks.len(), 4);
    assert_eq!(
        promtool_dump_blocks(&blocks),
        restrict(&expected, i64::MIN, last_maxt)
    );
    // Each block alone holds its range.
    for (b, (mint, maxt)) in cut.iter().zip(&ranges) {
        let path = tenant_dir.join(b.1.ulid.to_string());
        assert_eq!(
            promtool_dump_blocks(&[path]),
            restrict(&expected, *mint, *maxt)
        );
    }

    // The head keeps only the newest part and refuses samples below it.
    let head = tsdb.get("t").expect("head");
    assert_eq!(
        head_dump(&tsdb, "t"),
        restrict(&expected, last_maxt, i64::MAX)
    );
    assert_eq!(
        head.min_time(),
        Some(T0 + (last_maxt - T0 + STEP - 1) / STEP * STEP)
    );
    assert_eq!(head.num_series(), SERIES as u64);
    let late = Batch::from_series(vec![SeriesSamples {
        histograms: Vec::new(),
        labels: labels(0),
        samples: vec![Sample::new(last_maxt - 1, 1.0)],
    }]);
    assert_eq!(
        head.append_batch(&late, end)
            .expect("written")
            .rejections
            .samples(),
        1
    );

    // StoreAPI: blocks + head, every sample exactly once.
    assert_eq!(store_dump(&tsdb), expected);
    let store = ReceiveStore::new([("replica", "r0")], "tenant_id");
    store.attach(Arc::clone(&tsdb));
    let info = store.info().expect("info");
    assert_eq!(info.store.expect("store info").min_time, T0);
    let values = store
        .label_values_blocking(&LabelValuesRequest {
            label: "i".into(),
            start: T0,
            end: T0 + HOUR / 2,
            ..LabelValuesRequest::default()
        })
        .expect("label values");
    assert_eq!(values.len(), SERIES, "values served from the first block");

    // The WAL was checkpointed: a checkpoint and fewer segments.
    let checkpoints = list_checkpoints(&wal_dir).expect("checkpoints");
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    let segments_after = list_segments(&wal_dir).expect("segments").len();
    assert!(
        segments_after < segments_before,
        "{segments_after} >= {segments_before}"
    );

    // Reopen: blocks are loaded, the head is replayed from checkpoint + segments.
    drop(head);
    drop(tsdb);
    let started = Instant::now();
    let tsdb = Arc::new(open(dir.path()));
    let replay_after = started.elapsed();
    eprintln!("replay before checkpoint {replay_before:?}, after {replay_after:?}");
    assert_eq!(
        head_dump(&tsdb, "t"),
        restrict(&expected, last_maxt, i64::MAX)
    );
    assert_eq!(store_dump(&tsdb), expected);
    let tenant = tsdb.tenant("t").expect("tenant");
    assert_eq!(tenant.blocks().len(), 4);
    assert_eq!(tenant.head().min_valid_time(), last_maxt);

    // More writes, another compaction round, and promtool reads blocks + WAL together.
    write(&tsdb, "t", end, end + 2 * HOUR, &mut expected);
    let cut = tsdb.compact().expect("compact");
    assert_eq!(cut.len(), 2);
    assert_eq!(store_dump(&tsdb), expected);
    assert_eq!(promtool_dump(&tenant_dir), expected);
    let checkpoints = list_checkpoints(&wal_dir).expect("checkpoints");
    assert_eq!(checkpoints.len(), 1, "older checkpoints are deleted");
    drop(tenant);
    drop(tsdb);
    let tsdb = Arc::new(open(dir.path()));
    assert_eq!(store_dump(&tsdb), expected);
}

#[test]
fn crash_between_block_and_checkpoint_replays_no_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_dir = dir.path().join("t").join("wal");
    let saved = tempfile::tempdir().expect("tempdir");
    let mut expected = Expected::new();
    {
        let tsdb = open(dir.path());
        write(&tsdb, "t", T0, T0 + 4 * HOUR, &mut expected);
        // The WAL as it was before the cut: what a crash right after the block rename
        // (before the checkpoint) leaves behind.
        copy_dir(&wal_dir, saved.path());
        assert!(!tsdb.compact().expect("compact").is_empty());
    }
    std::fs::remove_dir_all(&wal_dir).expect("remove wal");
    copy_dir(saved.path(), &wal_dir);
    let tsdb = Arc::new(open(dir.path()));
    let tenant = tsdb.tenant("t").expect("tenant");
    let floor = tenant.head().min_valid_time();
    assert!(floor > T0);
    assert_eq!(head_dump(&tsdb, "t"), restrict(&expected, floor, i64::MAX));
    assert_eq!(store_dump(&tsdb), expected);
}

#[test]
fn flush_cuts_the_whole_head_and_retention_deletes_old_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tenant_dir = dir.path().join("t");
    let mut expected = Expected::new();
    let end = T0 + 3 * HOUR + 17 * STEP;
    {
        let tsdb = Arc::new(open(dir.path()));
        write(&tsdb, "t", T0, end, &mut expected);
        let flushed = tsdb.flush().expect("flush");
        // One aligned block up to the last hour boundary, then the remainder.
        let boundary = (end - STEP) / HOUR * HOUR;
        let ranges: Vec<(i64, i64)> = flushed
            .iter()
            .map(|(_, m)| (m.min_time, m.max_time))
            .collect();
        assert_eq!(ranges, [(T0, boundary), (boundary, end - STEP + 1)]);
        let head = tsdb.get("t").expect("head");
        assert_eq!(head.num_series(), 0);
        assert!(head_dump(&tsdb, "t").is_empty());
        assert_eq!(promtool_dump_blocks(&block_dirs(&tenant_dir)), expected);
        assert_eq!(store_dump(&tsdb), expected);
        // Nothing left to flush.
        assert!(tsdb.flush().expect("flush").is_empty());
    }
    // After a restart the head stays empty: everything is in blocks.
    let tsdb = Arc::new(open(dir.path()));
    assert!(head_dump(&tsdb, "t").is_empty());
    assert_eq!(store_dump(&tsdb), expected);

    // Retention: nothing is old enough relative to the newest block, then the old block
    // goes once allowed, and an unshipped block is kept.
    assert!(
        tsdb.apply_retention(24 * HOUR, &|_, _| true)
            .expect("retention")
            .is_empty()
    );
    assert!(
        tsdb.apply_retention(HOUR / 10, &|_, _| false)
            .expect("retention")
            .is_empty()
    );
    let deleted = tsdb
        .apply_retention(HOUR / 10, &|_, _| true)
        .expect("retention");
    assert_eq!(deleted.len(), 1);
    assert_eq!(block_dirs(&tenant_dir).len(), 1);
    assert!(!tenant_dir.join(deleted[0].1.to_string()).exists());
    let boundary = (end - STEP) / HOUR * HOUR;
    assert_eq!(store_dump(&tsdb), restrict(&expected, boundary, i64::MAX));
}

#[test]
fn queries_during_cuts_see_every_sample_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected = Expected::new();
    let tsdb = Arc::new(open(dir.path()));
    write(&tsdb, "t", T0, T0 + 6 * HOUR, &mut expected);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (tsdb, stop, expected) = (Arc::clone(&tsdb), Arc::clone(&stop), expected.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) || rounds == 0 {
                assert_eq!(store_dump(&tsdb), expected, "round {rounds}");
                rounds += 1;
            }
            rounds
        })
    };
    assert_eq!(tsdb.compact().expect("compact").len(), 5);
    assert!(!tsdb.flush().expect("flush").is_empty());
    stop.store(true, std::sync::atomic::Ordering::Release);
    let rounds = reader.join().expect("reader");
    assert!(rounds > 0);
    assert_eq!(store_dump(&tsdb), expected);
}
