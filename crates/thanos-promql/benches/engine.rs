//! Engine benchmarks over in-memory storages.
//!
//! * `small`: 500 series, 15s scrape interval, 2h.
//! * `heavy`: shaped like the PromQL latency benchmark (`benches/promql`) at 30s for 6h:
//!   `node_cpu_seconds_total` (200 instances × 4 cpus × 3 modes = 2400 series),
//!   `http_requests_total` (1200 series) and a classic histogram
//!   `http_request_duration_seconds_bucket` (200 instances × 3 handlers × 11 buckets).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use criterion::{Criterion, criterion_group, criterion_main};
use thanos_model::{Labels, Matcher};
use thanos_promql::{
    Engine, EngineOptions, MemoryStorage, SelectHints, Series, Storage, StorageError,
};

/// Answers repeated selects from a cache, so that the heavy cases measure the engine
/// rather than [`MemoryStorage`]'s label matching (a real querier gets decoded series
/// from the store gateway).
struct Cached {
    inner: MemoryStorage,
    cache: Mutex<HashMap<String, Vec<Series>>>,
}

#[async_trait]
impl Storage for Cached {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        let key = format!("{matchers:?} {hints:?}");
        if let Some(s) = self.cache.lock().expect("cache lock").get(&key) {
            return Ok(s.clone());
        }
        let s = self.inner.select(matchers, hints).await?;
        self.cache
            .lock()
            .expect("cache lock")
            .insert(key, s.clone());
        Ok(s)
    }
}

fn small_storage() -> MemoryStorage {
    let mut s = MemoryStorage::new();
    for job in 0..10 {
        for instance in 0..50 {
            let l = Labels::from_pairs([
                ("__name__", "http_requests_total".to_string()),
                ("job", format!("job-{job}")),
                ("instance", format!("i-{instance}")),
            ]);
            for i in 0..480i64 {
                let v = (i * (instance + 1)) as f64;
                s.append(&l, i * 15_000, v).expect("samples are in order");
            }
        }
    }
    s
}

/// Samples per heavy series: 6h at 30s.
const HEAVY_SAMPLES: i64 = 720;
const HEAVY_STEP_MS: i64 = 30_000;

fn append_counter(s: &mut MemoryStorage, l: &Labels, seed: u64) {
    let mut v = 0.0;
    for i in 0..HEAVY_SAMPLES {
        // A cheap deterministic increment in [0, 4).
        let inc = ((seed
            .wrapping_mul(2_654_435_761)
            .wrapping_add(i as u64 * 40_503))
            % 400) as f64
            / 100.0;
        v += inc;
        s.append(l, 13_000 + i * HEAVY_STEP_MS, v)
            .expect("samples are in order");
    }
}

fn heavy_storage() -> MemoryStorage {
    let mut s = MemoryStorage::new();
    let jobs = ["api", "web", "worker", "db"];
    let mut seed = 0u64;
    for inst in 0..200 {
        let job = jobs[inst % 4];
        let instance = format!("10.0.0.{inst}:9100");
        for cpu in 0..4 {
            for mode in ["idle", "user", "system"] {
                let l = Labels::from_pairs([
                    ("__name__", "node_cpu_seconds_total".to_string()),
                    ("job", job.to_string()),
                    ("instance", instance.clone()),
                    ("cpu", cpu.to_string()),
                    ("mode", mode.to_string()),
                ]);
                seed += 1;
                append_counter(&mut s, &l, seed);
            }
        }
        for method in ["GET", "POST"] {
            for code in ["200", "404", "500"] {
                let l = Labels::from_pairs([
                    ("__name__", "http_requests_total".to_string()),
                    ("job", job.to_string()),
                    ("instance", instance.clone()),
                    ("method", method.to_string()),
                    ("code", code.to_string()),
                ]);
                seed += 1;
                append_counter(&mut s, &l, seed);
            }
        }
        for handler in ["/a", "/b", "/c"] {
            for le in [
                "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
            ] {
                let l = Labels::from_pairs([
                    (
                        "__name__",
                        "http_request_duration_seconds_bucket".to_string(),
                    ),
                    ("job", job.to_string()),
                    ("instance", instance.clone()),
                    ("handler", handler.to_string()),
                    ("le", le.to_string()),
                ]);
                seed += 1;
                append_counter(&mut s, &l, seed);
            }
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let s = small_storage();
    let engine = Engine::default();
    let queries = [
        "sum by (job) (rate(http_requests_total[5m]))",
        "histogram_quantile(0.9, sum by (job, le) (label_replace(rate(http_requests_total[5m]), \"le\", \"$1\", \"instance\", \"i-(.*)\")))",
        "topk(5, max_over_time(http_requests_total[10m:1m]))",
        "http_requests_total / on(job, instance) group_left http_requests_total offset 5m",
    ];
    for q in queries {
        c.bench_function(&format!("instant {q}"), |b| {
            b.iter(|| {
                futures::executor::block_on(engine.instant_query(&s, q, 7_000_000)).expect("query")
            })
        });
        c.bench_function(&format!("range 1h/60s {q}"), |b| {
            b.iter(|| {
                futures::executor::block_on(engine.range_query(&s, q, 3_600_000, 7_200_000, 60_000))
                    .expect("query")
            })
        });
    }

    // The same evaluations on one thread, to show what splitting work between threads
    // gains (or costs) on this machine.
    let single = Engine::new(EngineOptions {
        parallelism: 1,
        ..EngineOptions::default()
    });
    let q = "topk(5, max_over_time(http_requests_total[10m:1m]))";
    c.bench_function(&format!("range 1h/60s {q} (1 thread)"), |b| {
        b.iter(|| {
            futures::executor::block_on(single.range_query(&s, q, 3_600_000, 7_200_000, 60_000))
                .expect("query")
        })
    });

    let h = Cached {
        inner: heavy_storage(),
        cache: Mutex::new(HashMap::new()),
    };
    // End of the data, 7s past a 30s boundary (as in the latency benchmark).
    let end = HEAVY_SAMPLES * HEAVY_STEP_MS + 7_000;
    let range_6h = |q: &str| (q.to_string(), end - 6 * 3_600_000 + 300_000, 300_000);
    let heavy_range = [
        range_6h("sum by (mode) (rate(node_cpu_seconds_total[5m]))"),
        range_6h("rate(node_cpu_seconds_total{job=\"worker\"}[5m])"),
        range_6h(
            "histogram_quantile(0.9, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
        ),
        (
            "sum by (job, code) (rate(http_requests_total[5m]))".to_string(),
            end - 6 * 3_600_000 + 300_000,
            60_000,
        ),
        range_6h("max_over_time(node_cpu_seconds_total{mode=\"user\"}[30m])"),
    ];
    for (q, start, step) in &heavy_range {
        c.bench_function(&format!("heavy range 6h/{}s {q}", step / 1000), |b| {
            b.iter(|| {
                futures::executor::block_on(engine.range_query(&h, q, *start, end, *step))
                    .expect("query")
            })
        });
    }
    for (q, start, step) in &heavy_range[..3] {
        c.bench_function(
            &format!("heavy range 6h/{}s {q} (1 thread)", step / 1000),
            |b| {
                b.iter(|| {
                    futures::executor::block_on(single.range_query(&h, q, *start, end, *step))
                        .expect("query")
                })
            },
        );
    }
    let heavy_instant = [
        "rate(http_requests_total[5m])",
        "sum by (instance) (rate(node_cpu_seconds_total{mode!=\"idle\"}[5m]))",
        "node_cpu_seconds_total",
    ];
    for q in heavy_instant {
        c.bench_function(&format!("heavy instant {q}"), |b| {
            b.iter(|| futures::executor::block_on(engine.instant_query(&h, q, end)).expect("query"))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
