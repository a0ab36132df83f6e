//! Engine API tests: the async fetch path, select hints, limits and error texts.

use std::sync::Mutex;

use async_trait::async_trait;
use thanos_model::sample::stale_nan;
use thanos_model::{Labels, Matcher};
use thanos_promql::{
    Engine, EngineOptions, Error, MemoryStorage, SelectHints, Series, Storage, StorageError, Value,
};

fn storage() -> MemoryStorage {
    let mut s = MemoryStorage::new();
    for (job, step) in [("a", 1.0), ("b", 2.0)] {
        let l = Labels::from_pairs([("__name__", "http_requests_total"), ("job", job)]);
        for i in 0..=20 {
            s.append(&l, i * 60_000, i as f64 * step).unwrap();
        }
    }
    s
}

/// Wraps a storage and records every select.
struct Recording {
    inner: MemoryStorage,
    calls: Mutex<Vec<(String, SelectHints)>>,
}

#[async_trait]
impl Storage for Recording {
    async fn select(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<Series>, StorageError> {
        let key = matchers
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(",");
        self.calls.lock().unwrap().push((key, hints.clone()));
        self.inner.select(matchers, hints).await
    }
}

struct Failing;

#[async_trait]
impl Storage for Failing {
    async fn select(&self, _: &[Matcher], _: &SelectHints) -> Result<Vec<Series>, StorageError> {
        Err("store unavailable".into())
    }
}

fn vector(v: &Value) -> Vec<(String, f64)> {
    match v {
        Value::Vector(v) => {
            let mut out: Vec<_> = v.iter().map(|s| (s.labels.to_string(), s.v)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("expected vector, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_query_fetches_each_selector_once_with_hints() {
    let rec = Recording {
        inner: storage(),
        calls: Mutex::new(Vec::new()),
    };
    let engine = Engine::default();
    let r = engine
        .instant_query(
            &rec,
            "sum by (job) (rate(http_requests_total[5m] offset 1m)) / sum by (job) (rate(http_requests_total[5m] offset 1m))",
            600_000,
        )
        .await
        .unwrap();
    assert_eq!(
        vector(&r.value),
        vec![
            ("{job=\"a\"}".to_string(), 1.0),
            ("{job=\"b\"}".to_string(), 1.0)
        ]
    );
    let calls = rec.calls.lock().unwrap();
    assert_eq!(
        calls.len(),
        1,
        "identical selectors are fetched once: {calls:?}"
    );
    let h = &calls[0].1;
    assert_eq!(
        (h.start, h.end, h.range),
        (600_000 - 60_000 - 300_000, 540_000, 300_000)
    );
    assert_eq!(h.func.as_deref(), Some("rate"));
}

#[tokio::test]
async fn rate_and_range_query_shapes() {
    let s = storage();
    let engine = Engine::default();
    let r = engine
        .instant_query(&s, "rate(http_requests_total{job=\"b\"}[5m])", 600_000)
        .await
        .unwrap();
    let v = vector(&r.value);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, "{job=\"b\"}", "rate drops the metric name");
    assert!((v[0].1 - 2.0 / 60.0).abs() < 1e-12);

    let r = engine
        .range_query(&s, "http_requests_total", 0, 120_000, 60_000)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected matrix")
    };
    assert_eq!(m.len(), 2);
    assert!(m[0].labels < m[1].labels, "matrix is sorted by labels");
    assert_eq!(
        m[1].samples.iter().map(|p| p.v).collect::<Vec<_>>(),
        vec![0.0, 2.0, 4.0]
    );

    let r = engine
        .range_query(&s, "1 + 2", 0, 60_000, 30_000)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected matrix")
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].samples.len(), 3);

    let r = engine.instant_query(&s, "time()", 5_000).await.unwrap();
    assert_eq!(r.value, Value::Scalar { t: 5_000, v: 5.0 });
}

#[tokio::test]
async fn staleness_lookback_and_left_open_windows() {
    let mut s = MemoryStorage::new();
    let l = Labels::from_pairs([("__name__", "m")]);
    s.append(&l, 0, 1.0).unwrap();
    s.append(&l, 60_000, 2.0).unwrap();
    s.append(&l, 120_000, stale_nan()).unwrap();
    let engine = Engine::default();
    let at = |t| {
        let e = engine.clone();
        let s = &s;
        async move { vector(&e.instant_query(s, "m", t).await.unwrap().value) }
    };
    assert_eq!(at(90_000).await, vec![("{__name__=\"m\"}".into(), 2.0)]);
    assert!(
        at(120_000).await.is_empty(),
        "a stale marker ends the series"
    );
    let r = engine
        .instant_query(&s, "count_over_time(m[1m])", 60_000)
        .await
        .unwrap();
    assert_eq!(
        vector(&r.value),
        vec![("{}".into(), 1.0)],
        "the window is (t-1m, t]"
    );
    let mut s2 = MemoryStorage::new();
    s2.append(&l, 0, 1.0).unwrap();
    let r = engine.instant_query(&s2, "m", 300_000).await.unwrap();
    assert!(vector(&r.value).is_empty(), "lookback is left-open too");
    let expr = engine.parse("m").unwrap();
    let p = thanos_promql::QueryParams::instant(300_000).with_lookback_delta(600_000);
    let r = engine.exec(&s2, expr, p).await.unwrap();
    assert_eq!(vector(&r.value).len(), 1, "per-query lookback delta");
}

#[tokio::test]
async fn limits_and_errors() {
    let s = storage();
    let small = Engine::new(EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    });
    let err = small
        .range_query(&s, "http_requests_total", 0, 1_200_000, 60_000)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooManySamples { limit: 10 }), "{err}");
    assert!(err.to_string().contains("too many samples"));

    let err = small
        .instant_query(&s, "max_over_time(http_requests_total[1h:1s])", 3_600_000)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooManySamples { .. }),
        "huge subquery grids are refused: {err}"
    );

    // Range selectors count their largest window per series: 2 × 10 samples in 10m.
    let err = small
        .instant_query(&s, "rate(http_requests_total[10m])", 1_200_000)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooManySamples { limit: 10 }), "{err}");
    // 2 × 6 samples fetched, but the windows `(15m, 20m]` hold only 2 × 5.
    let ok = small
        .instant_query(&s, "rate(http_requests_total[5m])", 1_200_000)
        .await
        .unwrap();
    assert_eq!(vector(&ok.value).len(), 2);

    let engine = Engine::default();
    let err = engine
        .range_query(&s, "http_requests_total[5m]", 0, 60_000, 60_000)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
    );
    assert!(matches!(
        engine.instant_query(&s, "sum(", 0).await,
        Err(Error::Parse(_))
    ));
    let err = engine
        .instant_query(&s, "http_requests_total + on() http_requests_total", 60_000)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("many-to-many matching not allowed"),
        "{err}"
    );
    let err = engine.instant_query(&Failing, "up", 0).await.unwrap_err();
    assert!(matches!(err, Error::Storage { .. }));
    assert!(err.to_string().contains("store unavailable"));
    assert!(
        matches!(
            engine
                .instant_query(&s, "sort_by_label(up, \"a\")", 0)
                .await,
            Err(Error::Parse(_))
        ),
        "experimental functions are off by default"
    );
}

#[tokio::test]
async fn name_removal_modes() {
    let s = storage();
    let q = "sum by (__name__) (rate(http_requests_total[5m]))";
    let eager = Engine::default();
    let r = eager.instant_query(&s, q, 600_000).await.unwrap();
    assert_eq!(vector(&r.value).len(), 1);
    assert_eq!(vector(&r.value)[0].0, "{}");
    let delayed = Engine::new(EngineOptions {
        delayed_name_removal: true,
        ..EngineOptions::default()
    });
    let r = delayed
        .instant_query(
            &s,
            "label_replace(rate(http_requests_total[5m]), \"n\", \"$1\", \"__name__\", \"(.*)\")",
            600_000,
        )
        .await
        .unwrap();
    let v = vector(&r.value);
    assert!(
        v.iter()
            .all(|(l, _)| l.contains("n=\"http_requests_total\"") && !l.contains("__name__")),
        "{v:?}"
    );
}

/// A counter histogram with one bucket `(0.5, 1]` holding every observation.
fn hist(count: f64) -> thanos_model::histogram::FloatHistogram {
    thanos_model::histogram::FloatHistogram {
        schema: 0,
        count,
        sum: count,
        positive_spans: vec![thanos_model::histogram::Span::new(0, 1)],
        positive_buckets: vec![count],
        ..Default::default()
    }
}

#[test]
fn native_histograms_flow_through_functions_and_aggregations() {
    let mut s = MemoryStorage::new();
    let a = Labels::from_pairs([("__name__", "lat"), ("job", "a")]);
    let b = Labels::from_pairs([("__name__", "lat"), ("job", "b")]);
    for i in 0..=10 {
        // One observation per minute; job b resets at minute 5.
        s.append_histogram(&a, i * 60_000, hist(i as f64)).unwrap();
        let cb = if i < 5 { i } else { i - 5 };
        s.append_histogram(&b, i * 60_000, hist(cb as f64)).unwrap();
    }
    assert!(
        s.append(&a, 60_000, 1.0).is_err(),
        "floats and histograms share one time order"
    );
    let engine = Engine::default();
    let run = |q: &str| futures::executor::block_on(engine.instant_query(&s, q, 600_000)).unwrap();

    // increase over 4 minutes of one-per-minute observations, extrapolated to 5m.
    let r = run("sum(increase(lat[5m]))");
    let Value::Vector(v) = &r.value else {
        panic!("vector expected, got {:?}", r.value)
    };
    let h = v[0].h.as_ref().expect("histogram result");
    assert!((h.count - 10.0).abs() < 1e-9, "{h:?}");
    assert_eq!(h.positive_buckets.len(), 1);

    assert_eq!(
        vector(&run("histogram_count(lat)").value),
        vec![
            ("{job=\"a\"}".to_string(), 10.0),
            ("{job=\"b\"}".to_string(), 5.0)
        ]
    );
    // Every observation is in (0.5, 1]: the median interpolates to sqrt(0.5).
    let q = vector(&run("histogram_quantile(0.5, lat{job=\"a\"})").value);
    assert!((q[0].1 - 0.5f64.sqrt()).abs() < 1e-12, "{q:?}");
    assert_eq!(
        vector(&run("histogram_fraction(0, 1, lat{job=\"b\"})").value)[0].1,
        1.0
    );

    // Histograms compared with floats are dropped with an info annotation.
    let r = run("lat > 1");
    assert_eq!(vector(&r.value), vec![]);
    assert_eq!(
        r.infos,
        vec![
            "PromQL info: incompatible sample types encountered for binary operator \">\": histogram > float"
        ]
    );
    // min ignores histograms, with an info annotation.
    let r = run("min(lat)");
    assert_eq!(vector(&r.value), vec![]);
    assert_eq!(
        r.infos,
        vec!["PromQL info: ignored histogram in min aggregation"]
    );
}

#[test]
fn mixing_floats_and_histograms_warns() {
    let mut s = MemoryStorage::new();
    let m = Labels::from_pairs([("__name__", "m_total")]);
    s.append(&m, 0, 1.0).unwrap();
    s.append(&m, 60_000, 2.0).unwrap();
    s.append_histogram(&m, 120_000, hist(3.0)).unwrap();
    s.append_histogram(&m, 180_000, hist(4.0)).unwrap();
    let engine = Engine::default();
    let r = futures::executor::block_on(engine.instant_query(&s, "rate(m_total[5m])", 180_000))
        .unwrap();
    assert_eq!(vector(&r.value), vec![]);
    assert_eq!(
        r.warnings,
        vec![
            "PromQL warning: encountered a mix of histograms and floats for metric name \"m_total\""
        ]
    );
    // The instant selector returns the newest sample, here a histogram.
    let r = futures::executor::block_on(engine.instant_query(&s, "m_total", 180_000)).unwrap();
    let Value::Vector(v) = &r.value else {
        panic!("vector expected")
    };
    assert_eq!(v[0].h.as_ref().map(|h| h.count), Some(4.0));
}

/// Series with stale markers and counter resets, evaluated on one and on two threads.
fn large_storage() -> MemoryStorage {
    let mut s = MemoryStorage::new();
    for inst in 0..300 {
        for mode in ["idle", "user"] {
            let l = Labels::from_pairs([
                ("__name__", "cpu_seconds_total".to_string()),
                ("instance", format!("i-{inst}")),
                ("job", format!("j-{}", inst % 7)),
                ("mode", mode.to_string()),
            ]);
            let mut v = 0.0;
            for i in 0..400i64 {
                let t = 13_000 + i * 30_000;
                if inst % 50 == 3 && i == 200 {
                    s.append(&l, t, stale_nan()).unwrap();
                    continue;
                }
                v += ((inst * 7 + i * 13) % 17) as f64 * 0.37;
                if inst % 11 == 0 && i == 150 {
                    v = 1.0;
                }
                s.append(&l, t, v).unwrap();
            }
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_evaluation_matches_single_threaded() {
    let s = large_storage();
    let one = Engine::new(EngineOptions {
        parallelism: 1,
        ..EngineOptions::default()
    });
    let two = Engine::new(EngineOptions {
        parallelism: 2,
        parallel_min_work: 0,
        ..EngineOptions::default()
    });
    let queries = [
        "cpu_seconds_total",
        "rate(cpu_seconds_total[5m])",
        "irate(cpu_seconds_total[2m])",
        "sum by (mode) (rate(cpu_seconds_total[5m]))",
        "avg by (job) (increase(cpu_seconds_total[10m]))",
        "stddev(cpu_seconds_total)",
        "max_over_time(cpu_seconds_total[30m])",
        "quantile_over_time(0.9, cpu_seconds_total[15m])",
        "count by (job) (cpu_seconds_total > 100)",
    ];
    let (start, end, step) = (600_000, 12_000_000, 60_000);
    for q in queries {
        let a = one.range_query(&s, q, start, end, step).await.unwrap();
        let b = two.range_query(&s, q, start, end, step).await.unwrap();
        let Value::Matrix(m) = &a.value else {
            panic!("matrix expected for {q}")
        };
        assert!(!m.is_empty(), "{q} returns series");
        // Bit-identical floats (NaN-safe), same series, same order, same annotations.
        let bits = |v: &Value| match v {
            Value::Matrix(m) => m
                .iter()
                .map(|r| {
                    let pts: Vec<(i64, u64)> =
                        r.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
                    (r.labels.clone(), pts)
                })
                .collect::<Vec<_>>(),
            other => panic!("matrix expected, got {other:?}"),
        };
        assert_eq!(bits(&a.value), bits(&b.value), "{q}");
        assert_eq!((a.warnings, a.infos), (b.warnings, b.infos), "{q}");
        let ia = one.instant_query(&s, q, end).await.unwrap();
        let ib = two.instant_query(&s, q, end).await.unwrap();
        assert_eq!(ia, ib, "instant {q}");
    }
}
