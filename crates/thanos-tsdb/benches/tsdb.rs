//! Benchmarks: postings intersection on a 1M-series index (sorted-vector galloping vs
//! `roaring` bitmaps), series lookup, and block write throughput.

use std::hint::black_box;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use roaring::RoaringBitmap;
use thanos_model::chunkenc::XorChunk;
use thanos_model::{Labels, MatchType, Matcher};
use thanos_tsdb::block::{BlockWriterOptions, ChunkData, write_block};
use thanos_tsdb::index::{ChunkMeta, IndexReader, IndexWriter, intersect};

const SERIES: usize = 1_000_000;

fn labels_for(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", format!("metric_{}", i % 100)),
        ("instance", format!("host-{}", i % 5000)),
        ("job", format!("job-{}", i % 10)),
        ("id", format!("{i}")),
    ])
}

/// Writes a 1M-series index (one chunk meta per series) and opens it.
fn big_index(dir: &Path) -> IndexReader {
    let mut series: Vec<Labels> = (0..SERIES).map(labels_for).collect();
    series.sort();
    let mut symbols: Vec<String> = series
        .iter()
        .flat_map(|l| {
            l.iter()
                .flat_map(|x| [x.name.to_string(), x.value.to_string()])
        })
        .collect();
    symbols.sort();
    symbols.dedup();
    let path = dir.join("index");
    let mut w = IndexWriter::create(&path).unwrap();
    for s in &symbols {
        w.add_symbol(s).unwrap();
    }
    for (i, l) in series.iter().enumerate() {
        let c = ChunkMeta {
            min_time: 0,
            max_time: 7_199_999,
            chunk_ref: 8 + 100 * i as u64,
        };
        w.add_series(l, &[c]).unwrap();
    }
    w.finish().unwrap();
    IndexReader::open(&path).unwrap()
}

fn bench_index(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ix = big_index(dir.path());
    let job = ix.postings("job", "job-3").unwrap();
    let metric = ix.postings("__name__", "metric_13").unwrap();
    let inst = ix.postings("instance", "host-13").unwrap();
    let all = ix.all_postings().unwrap();

    let mut g = c.benchmark_group("postings_1m");
    g.bench_function("read_all_postings", |b| {
        b.iter(|| black_box(ix.all_postings().unwrap()))
    });
    g.bench_function("sorted_intersect_job_metric", |b| {
        b.iter(|| black_box(intersect(&[&job, &metric])))
    });
    g.bench_function("sorted_intersect_all_job_metric_instance", |b| {
        b.iter(|| black_box(intersect(&[&all, &job, &metric, &inst])))
    });
    let to_bitmap = |v: &[u64]| v.iter().map(|&x| x as u32).collect::<RoaringBitmap>();
    let (rjob, rmetric, rinst, rall) = (
        to_bitmap(&job),
        to_bitmap(&metric),
        to_bitmap(&inst),
        to_bitmap(&all),
    );
    g.bench_function("roaring_intersect_job_metric", |b| {
        b.iter(|| black_box(&rjob & &rmetric))
    });
    g.bench_function("roaring_intersect_all_job_metric_instance", |b| {
        b.iter(|| black_box(&(&(&rall & &rjob) & &rmetric) & &rinst))
    });
    g.bench_function("roaring_build_and_intersect_job_metric", |b| {
        b.iter(|| black_box(&to_bitmap(&job) & &to_bitmap(&metric)))
    });
    let matchers = [
        Matcher::equal("job", "job-3"),
        Matcher::new(MatchType::RegexMatch, "__name__", "metric_1.*").unwrap(),
        Matcher::new(MatchType::NotEqual, "instance", "host-3").unwrap(),
    ];
    g.sample_size(20);
    g.bench_function("postings_for_matchers_eq_regex_neq", |b| {
        b.iter(|| black_box(ix.postings_for_matchers(&matchers).unwrap()))
    });
    g.finish();

    let mut g = c.benchmark_group("series_lookup_1m");
    g.throughput(Throughput::Elements(1000));
    let refs: Vec<u64> = all.iter().step_by(SERIES / 1000).copied().collect();
    g.bench_function("labels_and_chunks_x1000", |b| {
        b.iter(|| {
            for &r in &refs {
                black_box(ix.series(r).unwrap());
            }
        })
    });
    g.finish();
}

fn bench_block_write(c: &mut Criterion) {
    let mut g = c.benchmark_group("block_write");
    g.sample_size(10);
    for n_series in [2_000usize, 20_000] {
        let data: Vec<(Labels, Vec<ChunkData>)> = {
            let mut v: Vec<(Labels, Vec<ChunkData>)> = (0..n_series)
                .map(|i| {
                    let chunks = (0..4)
                        .map(|k| {
                            let mut c = XorChunk::new();
                            for s in 0..120i64 {
                                let t = 1_700_000_000_000 + (k * 120 + s) * 15_000;
                                c.append(t, (i as f64) + (s % 7) as f64);
                            }
                            ChunkData::from_xor(&c).unwrap()
                        })
                        .collect();
                    (labels_for(i), chunks)
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let bytes: usize = data
            .iter()
            .map(|(_, c)| c.iter().map(|x| x.data.len() + 10).sum::<usize>() + 64)
            .sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_with_input(BenchmarkId::new("series", n_series), &data, |b, data| {
            b.iter(|| {
                let dir = tempfile::tempdir().unwrap();
                black_box(write_block(dir.path(), data, BlockWriterOptions::default()).unwrap());
            })
        });
    }
    g.finish();
}

/// Same input both ways: 2000 series x 480 samples (15s steps, 2h). Ours encodes the
/// samples into XOR chunks and writes the block; promtool parses the OpenMetrics text of
/// the same samples and writes a block (`tsdb create-blocks-from openmetrics`).
fn bench_vs_promtool(c: &mut Criterion) {
    let start = 1_700_000_000_000i64 - 1_700_000_000_000i64 % 7_200_000;
    let mut series: Vec<(Labels, Vec<(i64, f64)>)> = (0..2000)
        .map(|i| {
            let samples = (0..480i64)
                .map(|s| (start + s * 15_000, (i as f64) * 0.5 + (s % 13) as f64))
                .collect();
            (labels_for(i), samples)
        })
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let dir = tempfile::tempdir().unwrap();
    let om = dir.path().join("in.om");
    let mut text = String::new();
    let mut last = String::new();
    for (l, samples) in &series {
        let name = l.metric_name().unwrap_or_default().to_string();
        if name != last {
            text.push_str(&format!("# TYPE {name} gauge\n"));
            last = name.clone();
        }
        let inner: Vec<String> = l
            .iter()
            .filter(|x| x.name != "__name__")
            .map(|x| format!("{}=\"{}\"", x.name, x.value))
            .collect();
        for (t, v) in samples {
            text.push_str(&format!(
                "{name}{{{}}} {v} {}.{:03}\n",
                inner.join(","),
                t / 1000,
                t % 1000
            ));
        }
    }
    text.push_str("# EOF\n");
    std::fs::write(&om, text).unwrap();

    let mut g = c.benchmark_group("write_2000x480_vs_promtool");
    g.sample_size(10);
    g.bench_function("ours_encode_and_write", |b| {
        b.iter(|| {
            let out = tempfile::tempdir().unwrap();
            let data: Vec<(Labels, Vec<ChunkData>)> = series
                .iter()
                .map(|(l, s)| {
                    let chunks = s
                        .chunks(120)
                        .filter_map(|part| {
                            let mut c = XorChunk::new();
                            for &(t, v) in part {
                                c.append(t, v);
                            }
                            ChunkData::from_xor(&c)
                        })
                        .collect();
                    (l.clone(), chunks)
                })
                .collect();
            black_box(write_block(out.path(), &data, BlockWriterOptions::default()).unwrap());
        })
    });
    g.bench_function("promtool_create_blocks_from_openmetrics", |b| {
        b.iter(|| {
            let out = tempfile::tempdir().unwrap();
            let st = std::process::Command::new("/usr/bin/promtool")
                .args(["tsdb", "create-blocks-from", "openmetrics"])
                .arg(&om)
                .arg(out.path())
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
        })
    });
    g.finish();
}

criterion_group!(benches, bench_index, bench_block_write, bench_vs_promtool);
criterion_main!(benches);
