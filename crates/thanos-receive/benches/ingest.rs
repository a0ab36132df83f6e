//! Ingest benchmarks.
//!
//! * `ingest/decode_validate_append`: pre-encoded remote write 1.0 requests of 1000 series
//!   × 1 sample (rotating over 100k series, timestamps advancing each round) are
//!   decompressed, decoded, validated and appended on one thread; throughput is reported
//!   in samples (elements) per second.
//! * Before the timed benchmarks, `main` fills a head with 100k series × 120 samples and
//!   prints the heap bytes per series (counting allocator) and the RSS growth per series
//!   (`/proc/self/statm`).
//!
//! * `ingest/decode_validate` and `ingest/append` time the two halves separately.
//!
//! Run with `cargo bench -p thanos-receive --bench ingest` (set `INGEST_SKIP_MEMORY=1` to
//! skip the memory fill, which takes a while).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use thanos_proto::prometheus as pb;
use thanos_receive::write::decode_request;
use thanos_receive::{Head, HeadMetrics, HeadOptions, Protocol, WriteLimits};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is
// updated on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const SERIES: usize = 100_000;
const PER_REQUEST: usize = 1000;
const ROUNDS: usize = 12;
const T0: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 15_000;

fn labels(i: usize) -> Vec<pb::Label> {
    let pairs = [
        ("__name__", format!("node_metric_{}", i % 200)),
        ("cpu", (i % 8).to_string()),
        ("instance", format!("host-{}.example.com:9100", i / 200)),
        ("job", "node".to_owned()),
        (
            "mode",
            ["idle", "user", "system", "iowait"][i % 4].to_owned(),
        ),
        ("region", "eu-west-1".to_owned()),
    ];
    pairs
        .into_iter()
        .map(|(name, value)| pb::Label {
            name: name.to_owned(),
            value,
        })
        .collect()
}

/// Request `k` of round `round`: series `k*1000 .. k*1000+1000`, one sample each.
fn request(k: usize, round: usize) -> Vec<u8> {
    let timeseries = (k * PER_REQUEST..(k + 1) * PER_REQUEST)
        .map(|i| pb::TimeSeries {
            labels: labels(i),
            samples: vec![pb::Sample {
                value: (round * (i % 7 + 1)) as f64 + 0.25,
                timestamp: T0 + round as i64 * STEP_MS,
            }],
            ..Default::default()
        })
        .collect();
    thanos_proto::remote_write::encode(&pb::WriteRequest {
        timeseries,
        metadata: vec![],
    })
    .expect("encode")
    .to_vec()
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn ingest(head: &Head, body: &[u8]) {
    let batch = decode_request(Protocol::V1, body, &WriteLimits::default()).expect("decode");
    let report = head.append_batch(&batch, T0).expect("append");
    assert_eq!(report.appended, PER_REQUEST as u64);
}

/// Fills a head with 100k series × 120 samples and prints bytes per series.
fn memory_report() {
    let requests: Vec<Vec<u8>> = (0..SERIES / PER_REQUEST).map(|k| request(k, 0)).collect();
    let rss_before = rss_bytes();
    let live_before = LIVE.load(Ordering::Relaxed);
    let head = Head::new(HeadOptions::default(), HeadMetrics::unregistered());
    let start = Instant::now();
    let mut samples = 0u64;
    for round in 0..120 {
        for (k, _) in requests.iter().enumerate() {
            // Re-encoding per round would dominate; build batches directly instead.
            let body = if round == 0 {
                requests[k].clone()
            } else {
                request(k, round)
            };
            ingest(&head, &body);
            samples += PER_REQUEST as u64;
        }
    }
    let elapsed = start.elapsed();
    let live = LIVE.load(Ordering::Relaxed) - live_before;
    println!(
        "memory: {} series x 120 samples: heap {:.0} bytes/series, {}",
        head.num_series(),
        live as f64 / SERIES as f64,
        match (rss_before, rss_bytes()) {
            (Some(a), Some(b)) => format!(
                "RSS growth {:.0} bytes/series",
                b.saturating_sub(a) as f64 / SERIES as f64
            ),
            _ => "RSS unavailable".to_owned(),
        }
    );
    println!(
        "memory fill (encode + decode + append, one thread): {samples} samples in {elapsed:?}"
    );
}

fn bench_ingest(c: &mut Criterion) {
    let requests: Vec<Vec<u8>> = (0..ROUNDS)
        .flat_map(|round| (0..SERIES / PER_REQUEST).map(move |k| (k, round)))
        .map(|(k, round)| request(k, round))
        .collect();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(PER_REQUEST as u64));
    group.bench_function("decode_validate_append", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut head = Head::new(HeadOptions::default(), HeadMetrics::unregistered());
            for i in 0..iters as usize {
                let idx = i % requests.len();
                if idx == 0 && i > 0 {
                    // Timestamps start over: use a fresh head (not timed).
                    head = Head::new(HeadOptions::default(), HeadMetrics::unregistered());
                }
                let start = Instant::now();
                ingest(&head, &requests[idx]);
                total += start.elapsed();
            }
            total
        });
    });
    group.bench_function("decode_validate", |b| {
        let mut i = 0;
        b.iter(|| {
            let body = &requests[i % requests.len()];
            i += 1;
            decode_request(Protocol::V1, body, &WriteLimits::default()).expect("decode")
        });
    });
    // Appending alone: batches decoded up front (one round of 100 requests per pass).
    let batches: Vec<_> = requests
        .iter()
        .map(|body| decode_request(Protocol::V1, body, &WriteLimits::default()).expect("decode"))
        .collect();
    group.bench_function("append", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut head = Head::new(HeadOptions::default(), HeadMetrics::unregistered());
            for i in 0..iters as usize {
                let idx = i % batches.len();
                if idx == 0 && i > 0 {
                    head = Head::new(HeadOptions::default(), HeadMetrics::unregistered());
                }
                let start = Instant::now();
                let report = head.append_batch(&batches[idx], T0).expect("append");
                total += start.elapsed();
                assert_eq!(report.appended, PER_REQUEST as u64);
            }
            total
        });
    });
    group.finish();
}

fn main() {
    if std::env::var_os("INGEST_SKIP_MEMORY").is_none() {
        memory_report();
    }
    let mut c = Criterion::default().configure_from_args();
    bench_ingest(&mut c);
    c.final_summary();
}
