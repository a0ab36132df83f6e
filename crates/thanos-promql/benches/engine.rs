//! Engine benchmarks over an in-memory storage (500 series, 15s scrape interval, 2h).

use criterion::{Criterion, criterion_group, criterion_main};
use thanos_model::Labels;
use thanos_promql::{Engine, MemoryStorage};

fn storage() -> MemoryStorage {
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

fn bench(c: &mut Criterion) {
    let s = storage();
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
