//! WAL write and replay throughput for samples records of 1000 samples each.
//!
//! `encode_log/*`: encode 10 samples records (10 000 samples) and log them in one call, with
//! Snappy on, without and with an fsync per batch. `replay`: read and decode them back.
//! `group_commit`: four threads each log one record and wait for it to be durable.
//! Throughput is reported in samples per second. The WAL lives in a temp dir (`TMPDIR`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use thanos_wal::record::{self, RefSample};
use thanos_wal::wlog::{Compression, GroupCommitWal, Wal, WalOptions, WalReader};

const SAMPLES_PER_RECORD: usize = 1000;
const RECORDS_PER_BATCH: usize = 10;

/// One scrape of 1000 series: consecutive refs, one timestamp, counter-like values.
fn scrape(round: u64) -> Vec<RefSample> {
    (0..SAMPLES_PER_RECORD as u64)
        .map(|i| RefSample {
            series_ref: i + 1,
            t: 1_700_000_000_000 + round as i64 * 15_000,
            v: (round * 10 + i % 97) as f64,
        })
        .collect()
}

fn bench_log(c: &mut Criterion) {
    let batches: Vec<Vec<Vec<RefSample>>> = (0..8)
        .map(|b| {
            (0..RECORDS_PER_BATCH as u64)
                .map(|r| scrape(b * 100 + r))
                .collect()
        })
        .collect();
    let mut group = c.benchmark_group("encode_log");
    group.throughput(Throughput::Elements(
        (SAMPLES_PER_RECORD * RECORDS_PER_BATCH) as u64,
    ));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for (name, compression, sync) in [
        ("snappy/no_sync", Compression::Snappy, false),
        ("snappy/sync_per_batch", Compression::Snappy, true),
        ("none/no_sync", Compression::None, false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(
            tmp.path(),
            WalOptions {
                compression,
                ..WalOptions::default()
            },
        )
        .unwrap();
        let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); RECORDS_PER_BATCH];
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                let batch = &batches[i % batches.len()];
                i += 1;
                for (buf, samples) in bufs.iter_mut().zip(batch) {
                    buf.clear();
                    record::encode_samples(samples, buf);
                }
                wal.log(&bufs).unwrap();
                if sync {
                    wal.sync().unwrap();
                }
            })
        });
        wal.close().unwrap();
    }
    group.finish();
}

fn bench_replay(c: &mut Criterion) {
    const RECORDS: usize = 100;
    let tmp = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(tmp.path(), WalOptions::default()).unwrap();
    let mut buf = Vec::new();
    for r in 0..RECORDS as u64 {
        buf.clear();
        record::encode_samples(&scrape(r), &mut buf);
        wal.log(&[&buf]).unwrap();
    }
    wal.close().unwrap();
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements((RECORDS * SAMPLES_PER_RECORD) as u64));
    group.sample_size(20);
    group.bench_function("snappy/read_decode", |b| {
        b.iter_batched(
            || Vec::with_capacity(SAMPLES_PER_RECORD),
            |mut out: Vec<RefSample>| {
                let mut reader = WalReader::open(tmp.path()).unwrap();
                let mut n = 0;
                while let Some(rec) = reader.next_record().unwrap() {
                    out.clear();
                    record::decode_samples(rec, &mut out).unwrap();
                    n += out.len();
                }
                black_box(n)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Four threads, each logging one 1000-sample record per request and waiting until it is
/// durable (the receive pattern); fsyncs are shared through group commit.
fn bench_group_commit(c: &mut Criterion) {
    const THREADS: u64 = 4;
    let tmp = tempfile::tempdir().unwrap();
    let wal = Arc::new(GroupCommitWal::new(
        Wal::open(tmp.path(), WalOptions::default()).unwrap(),
    ));
    let mut group = c.benchmark_group("group_commit");
    group.throughput(Throughput::Elements(THREADS * SAMPLES_PER_RECORD as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("snappy/4_writers_sync_each", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let wal = Arc::clone(&wal);
                    std::thread::spawn(move || {
                        let mut buf = Vec::new();
                        for i in 0..iters {
                            buf.clear();
                            record::encode_samples(&scrape(i * THREADS + t), &mut buf);
                            wal.log_durable(&[&buf]).unwrap();
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            start.elapsed()
        })
    });
    group.finish();
    eprintln!("group_commit: {} fsyncs in total", wal.sync_count());
}

criterion_group!(benches, bench_log, bench_replay, bench_group_commit);
criterion_main!(benches);
