//! Store gateway benchmark helper, driven by `benches/store/run.sh` (never by
//! `cargo test`).
//!
//! * `store_bench gen <bucket-dir> <unique-blocks> <series> <copies>` writes
//!   `unique-blocks` consecutive 2h blocks of `series` series (one sample every 15 s) into
//!   a FILESYSTEM bucket directory with our block writer, then `copies - 1` extra copies
//!   of each under new ULIDs (files hard-linked, own `meta.json` with a `copy` external
//!   label), so 1,000 blocks cost the disk of 100.
//! * `store_bench query <bucket-dir> <data-dir> <warm-iterations>` measures, per typical
//!   selector, the latency of a Series call and the bytes fetched from the bucket, cold
//!   (fresh store and index cache; index-headers already on disk) and warm (repeated
//!   calls), and prints a Markdown table. `STORE_BENCH_INDEX_CACHE` may hold an
//!   `--index-cache.config` YAML (default: IN-MEMORY, 250MB, every item type).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prometheus::Registry;
use thanos_model::{Labels, XorChunk};
use thanos_objstore::BucketConfig;
use thanos_proto::thanos::label_matcher::Type;
use thanos_proto::thanos::{LabelMatcher, SeriesRequest};
use thanos_store::{BucketStore, BucketStoreOptions, IndexCacheConfig};
use thanos_tsdb::meta::ThanosMeta;
use thanos_tsdb::{BlockMeta, BlockWriterOptions, ChunkData, write_block};
use ulid::Ulid;

/// Start of the generated data (ms).
const START: i64 = 1_700_000_000_000;
/// Block length (ms).
const BLOCK_MS: i64 = 2 * 3_600_000;
/// Scrape interval (ms).
const STEP_MS: i64 = 15_000;
/// Samples per chunk, as Prometheus's head cuts them.
const PER_CHUNK: i64 = 120;

type Err = Box<dyn std::error::Error>;

fn main() -> Result<(), Err> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> Result<&str, Err> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("missing argument {i}; see the file's doc comment").into())
    };
    match arg(1)? {
        "gen" => generate(
            Path::new(arg(2)?),
            arg(3)?.parse()?,
            arg(4)?.parse()?,
            arg(5)?.parse()?,
        ),
        "query" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(query(
                Path::new(arg(2)?),
                Path::new(arg(3)?),
                arg(4)?.parse()?,
            ))
        }
        other => Err(format!("unknown command {other:?}").into()),
    }
}

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "m".to_string()),
        ("job", format!("j{}", i % 10)),
        ("pod", format!("p-{i}")),
        ("instance", format!("i-{}", i % 100)),
    ])
}

fn generate(bucket: &Path, unique: usize, series: usize, copies: usize) -> Result<(), Err> {
    std::fs::create_dir_all(bucket)?;
    let mut labels: Vec<(usize, Labels)> = (0..series).map(|i| (i, series_labels(i))).collect();
    labels.sort_by(|a, b| a.1.cmp(&b.1));
    let started = Instant::now();
    let mut written = 0usize;
    for b in 0..unique {
        let mint = START + b as i64 * BLOCK_MS;
        let data: Vec<(Labels, Vec<ChunkData>)> = labels
            .iter()
            .map(|(i, l)| (l.clone(), chunks_for(*i, mint)))
            .collect();
        let id = Ulid::from_parts(mint as u64 + BLOCK_MS as u64, b as u128 + 1);
        let opts = BlockWriterOptions {
            ulid: Some(id),
            time_range: Some((mint, mint + BLOCK_MS)),
            thanos: Some(thanos_meta(0)),
            ..BlockWriterOptions::default()
        };
        write_block(bucket, &data, opts)?;
        written += 1;
        for c in 1..copies {
            copy_block(bucket, id, c, b)?;
            written += 1;
        }
    }
    println!(
        "wrote {written} blocks ({unique} unique × {series} series) into {} in {:.1}s",
        bucket.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn thanos_meta(copy: usize) -> ThanosMeta {
    ThanosMeta {
        labels: BTreeMap::from([
            ("cluster".to_string(), "bench".to_string()),
            ("copy".to_string(), copy.to_string()),
        ]),
        source: "bench".into(),
        ..ThanosMeta::default()
    }
}

/// Chunks of series `i` over `[mint, mint + 2h)`: 120 samples each.
fn chunks_for(i: usize, mint: i64) -> Vec<ChunkData> {
    let mut out = Vec::new();
    let mut chunk = XorChunk::new();
    let mut t = mint;
    let mut v = i as f64;
    let mut n = 0;
    while t < mint + BLOCK_MS {
        chunk.append(t, v);
        n += 1;
        v += ((n * 7 + i as i64) % 5) as f64;
        t += STEP_MS;
        if n % PER_CHUNK == 0 {
            out.extend(ChunkData::from_xor(&chunk));
            chunk = XorChunk::new();
        }
    }
    out.extend(ChunkData::from_xor(&chunk));
    out
}

/// Hard-links block `id`'s files under a new ULID with its own meta.json.
fn copy_block(bucket: &Path, id: Ulid, copy: usize, b: usize) -> Result<(), Err> {
    let src = bucket.join(id.to_string());
    let meta = BlockMeta::from_json(&std::fs::read(src.join("meta.json"))?, "meta.json")?;
    let new_id = Ulid::from_parts(id.timestamp_ms(), ((copy as u128) << 32) | (b as u128 + 1));
    let dst = bucket.join(new_id.to_string());
    std::fs::create_dir_all(dst.join("chunks"))?;
    for rel in ["index", "tombstones"] {
        std::fs::hard_link(src.join(rel), dst.join(rel))?;
    }
    for e in std::fs::read_dir(src.join("chunks"))? {
        let e = e?;
        std::fs::hard_link(e.path(), dst.join("chunks").join(e.file_name()))?;
    }
    let mut meta = meta;
    meta.ulid = new_id;
    meta.compaction.sources = vec![new_id];
    let mut t = thanos_meta(copy);
    if let Some(old) = &meta.thanos {
        t.index_stats = old.index_stats.clone();
    }
    meta.thanos = Some(t);
    meta.write_to_dir(&dst)?;
    Ok(())
}

fn matcher(t: Type, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: t as i32,
        name: name.into(),
        value: value.into(),
    }
}

fn sum_metric(registry: &Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .map(|m| m.get_counter().get_value())
        .sum()
}

struct Case {
    name: &'static str,
    matchers: Vec<LabelMatcher>,
    mint: i64,
    maxt: i64,
    skip_chunks: bool,
}

async fn open_store(bucket_dir: &Path, data_dir: &Path) -> Result<(BucketStore, Registry), Err> {
    let registry = Registry::new();
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket_dir.display()
    );
    let bucket = BucketConfig::parse(&yaml)?.build("store", &registry)?;
    let index_cache = match std::env::var("STORE_BENCH_INDEX_CACHE") {
        Ok(yaml) => IndexCacheConfig::from_yaml(&yaml)?,
        Err(_) => IndexCacheConfig::default(),
    };
    let store = BucketStore::new(
        bucket,
        BucketStoreOptions {
            data_dir: PathBuf::from(data_dir),
            index_cache,
            ..BucketStoreOptions::default()
        },
        &registry,
    )?;
    store.sync().await?;
    Ok((store, registry))
}

fn fmt_bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

async fn query(bucket_dir: &Path, data_dir: &Path, warm_iterations: usize) -> Result<(), Err> {
    let t = Instant::now();
    let (store, _) = open_store(bucket_dir, data_dir).await?;
    let blocks = store.blocks();
    println!(
        "initial sync of {} blocks (index-headers built or reused) in {:.2}s",
        blocks.len(),
        t.elapsed().as_secs_f64()
    );
    let maxt = blocks.iter().map(|b| b.max_time).max().unwrap_or(0);
    let last2h = maxt - BLOCK_MS;
    let eq = |n: &str, v: &str| matcher(Type::Eq, n, v);
    let cases = vec![
        Case {
            name: "`{__name__=\"m\"}`",
            matchers: vec![eq("__name__", "m")],
            mint: 0,
            maxt,
            skip_chunks: false,
        },
        Case {
            name: "`{__name__=\"m\",job=\"j1\"}`",
            matchers: vec![eq("__name__", "m"), eq("job", "j1")],
            mint: 0,
            maxt,
            skip_chunks: false,
        },
        Case {
            name: "`{__name__=\"m\",job=\"j1\"}` last 2h",
            matchers: vec![eq("__name__", "m"), eq("job", "j1")],
            mint: last2h,
            maxt,
            skip_chunks: false,
        },
        Case {
            name: "`{__name__=\"m\",pod=~\"p-1.*\"}`",
            matchers: vec![eq("__name__", "m"), matcher(Type::Re, "pod", "p-1.*")],
            mint: 0,
            maxt,
            skip_chunks: false,
        },
        Case {
            name: "`{__name__=\"m\",job!=\"j1\"}`",
            matchers: vec![eq("__name__", "m"), matcher(Type::Neq, "job", "j1")],
            mint: 0,
            maxt,
            skip_chunks: false,
        },
        Case {
            name: "`{__name__=\"m\"}` skip_chunks",
            matchers: vec![eq("__name__", "m")],
            mint: 0,
            maxt,
            skip_chunks: true,
        },
    ];
    println!(
        "\n| selector | series | chunks | cold latency (ms) | cold bytes fetched | warm latency (ms, median of {warm_iterations}) | warm bytes fetched |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for c in cases {
        // A fresh store: empty index cache, index-headers reused from `data_dir`.
        let (store, registry) = open_store(bucket_dir, data_dir).await?;
        let req = SeriesRequest {
            min_time: c.mint,
            max_time: c.maxt,
            matchers: c.matchers.clone(),
            skip_chunks: c.skip_chunks,
            ..SeriesRequest::default()
        };
        let fetched = || {
            sum_metric(
                &registry,
                "thanos_objstore_bucket_operation_fetched_bytes_total",
            )
        };
        let before = fetched();
        let t = Instant::now();
        let res = store.series(&req).await?;
        let cold = t.elapsed();
        let cold_bytes = fetched() - before;
        let series = res.len();
        let chunks: usize = res.iter().map(|s| s.chunks.len()).sum();
        drop(res);
        let mut warm = Vec::with_capacity(warm_iterations);
        let before = fetched();
        for _ in 0..warm_iterations {
            let t = Instant::now();
            let res = store.series(&req).await?;
            warm.push(t.elapsed());
            drop(res);
        }
        let warm_bytes = (fetched() - before) / warm_iterations.max(1) as f64;
        warm.sort();
        let median = warm.get(warm.len() / 2).copied().unwrap_or_default();
        println!(
            "| {} | {series} | {chunks} | {} | {} | {} | {} |",
            c.name,
            ms(cold),
            fmt_bytes(cold_bytes),
            ms(median),
            fmt_bytes(warm_bytes)
        );
    }
    Ok(())
}
