//! End-to-end StoreAPI tests over real gRPC: promtool blocks in a FILESYSTEM bucket and in
//! the S3 test server must return exactly what `promtool tsdb dump` returns.

use crate::common;

use common::*;
use prometheus::Registry;
use thanos_proto::thanos::info::InfoRequest;
use thanos_proto::thanos::info::info_client::InfoClient;
use thanos_proto::thanos::label_matcher::Type;
use thanos_proto::thanos::{LabelMatcher, LabelNamesRequest, LabelValuesRequest, SeriesRequest};
use thanos_store::{BucketStore, BucketStoreOptions};
use thanos_test_support::S3TestServer;

/// (PromQL selector for promtool, the same as StoreAPI matchers).
fn cases() -> Vec<(&'static str, Vec<LabelMatcher>)> {
    vec![
        (
            r#"{__name__="metric_0"}"#,
            vec![m(Type::Eq, "__name__", "metric_0")],
        ),
        (
            r#"{__name__="metric_1",job="node"}"#,
            vec![
                m(Type::Eq, "__name__", "metric_1"),
                m(Type::Eq, "job", "node"),
            ],
        ),
        (
            r#"{__name__=~"metric_[02]",instance!="host-1:9100"}"#,
            vec![
                m(Type::Re, "__name__", "metric_[02]"),
                m(Type::Neq, "instance", "host-1:9100"),
            ],
        ),
        (
            r#"{job=~"app|node",instance=~"host-[23].*"}"#,
            vec![
                m(Type::Re, "job", "app|node"),
                m(Type::Re, "instance", "host-[23].*"),
            ],
        ),
        (
            r#"{__name__="metric_2",job!~"node"}"#,
            vec![
                m(Type::Eq, "__name__", "metric_2"),
                m(Type::Nre, "job", "node"),
            ],
        ),
        (
            r#"{__name__="metric_0",zone=""}"#,
            vec![m(Type::Eq, "__name__", "metric_0"), m(Type::Eq, "zone", "")],
        ),
        (
            r#"{__name__="metric_1",instance=~"(host-1:9100|)"}"#,
            vec![
                m(Type::Eq, "__name__", "metric_1"),
                m(Type::Re, "instance", "(host-1:9100|)"),
            ],
        ),
        (
            r#"{__name__="metric_1",job="nope"}"#,
            vec![
                m(Type::Eq, "__name__", "metric_1"),
                m(Type::Eq, "job", "nope"),
            ],
        ),
        (
            // Matchers on external labels are checked against the block's labels.
            r#"{__name__="metric_0",job="app"}"#,
            vec![
                m(Type::Eq, "__name__", "metric_0"),
                m(Type::Eq, "job", "app"),
                m(Type::Eq, "region", "eu-west"),
            ],
        ),
    ]
}

fn ranges() -> Vec<(i64, i64)> {
    vec![
        (i64::MIN, i64::MAX),
        (START + 3_600_000 + 7, START + 3 * 3_600_000 + 1_800_000),
        (
            START + 2 * 3_600_000 - 60_000,
            START + 2 * 3_600_000 + 60_000,
        ),
        (START - 10 * 3_600_000, START - 3_600_000),
    ]
}

async fn check_against_promtool(ds: &Dataset, store: BucketStore, registry: &Registry) {
    let (addr, _server) = serve(store).await;
    let mut c = client(addr).await;
    let mut checked_samples = 0usize;
    for (selector, matchers) in cases() {
        for (mint, maxt) in ranges() {
            let expected = promtool_dump(&ds.blocks, selector, mint, maxt);
            let series = call_series(&mut c, series_request(matchers.clone(), mint, maxt))
                .await
                .unwrap();
            // Sorted by full label set, external labels attached.
            for w in series.windows(2) {
                let a: Vec<_> = w[0].labels.iter().map(|l| (&l.name, &l.value)).collect();
                let b: Vec<_> = w[1].labels.iter().map(|l| (&l.name, &l.value)).collect();
                assert!(a < b, "series not sorted: {a:?} >= {b:?}");
            }
            for s in &series {
                assert!(
                    s.labels
                        .iter()
                        .any(|l| l.name == "region" && l.value == "eu-west")
                );
                assert!(
                    s.labels
                        .iter()
                        .any(|l| l.name == "replica" && l.value == "a")
                );
                assert!(!s.chunks.is_empty());
            }
            let got = series_lines(&series, mint, maxt, &["region", "replica"]);
            assert_eq!(
                got.len(),
                expected.len(),
                "{selector} [{mint}, {maxt}]: sample count"
            );
            assert!(
                got == expected,
                "{selector} [{mint}, {maxt}]: samples differ"
            );
            checked_samples += got.len();
        }
    }
    assert!(
        checked_samples > 10_000,
        "too little data checked: {checked_samples}"
    );

    // skip_chunks: same label sets, no chunks.
    let mut req = series_request(
        vec![m(Type::Re, "__name__", "metric_.*")],
        i64::MIN,
        i64::MAX,
    );
    let full = call_series(&mut c, req.clone()).await.unwrap();
    req.skip_chunks = true;
    let before = counter_sum(
        registry,
        "thanos_objstore_bucket_operation_fetched_bytes_total",
        &[],
    );
    let bare = call_series(&mut c, req.clone()).await.unwrap();
    let after = counter_sum(
        registry,
        "thanos_objstore_bucket_operation_fetched_bytes_total",
        &[],
    );
    assert_eq!(bare.len(), full.len());
    assert!(bare.iter().all(|s| s.chunks.is_empty()));
    assert!(bare.iter().zip(&full).all(|(a, b)| a.labels == b.labels));
    // skip_chunks never touches chunk segments: far fewer bytes than a full call.
    assert!(
        after - before < 200_000.0,
        "skip_chunks fetched {} bytes",
        after - before
    );

    // without_replica_labels strips the replica label and keeps the order.
    req.without_replica_labels = vec!["replica".into()];
    let stripped = call_series(&mut c, req.clone()).await.unwrap();
    assert_eq!(stripped.len(), full.len());
    assert!(
        stripped
            .iter()
            .all(|s| s.labels.iter().all(|l| l.name != "replica"))
    );

    // limit.
    req.limit = 3;
    assert_eq!(call_series(&mut c, req).await.unwrap().len(), 3);

    // Only external-label matchers: InvalidArgument.
    let err = call_series(
        &mut c,
        series_request(vec![m(Type::Eq, "region", "eu-west")], i64::MIN, i64::MAX),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    // A contradicting external-label matcher: empty, no error.
    let none = call_series(
        &mut c,
        series_request(
            vec![
                m(Type::Eq, "region", "us"),
                m(Type::Eq, "__name__", "metric_0"),
            ],
            i64::MIN,
            i64::MAX,
        ),
    )
    .await
    .unwrap();
    assert!(none.is_empty());

    // Label names and values.
    let names = c
        .label_names(LabelNamesRequest {
            start: i64::MIN,
            end: i64::MAX,
            without_replica_labels: vec!["replica".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(names, vec!["__name__", "instance", "job", "region"]);
    let values = |label: &str, matchers: Vec<LabelMatcher>, start: i64, end: i64| {
        let mut c = c.clone();
        let req = LabelValuesRequest {
            label: label.into(),
            start,
            end,
            matchers,
            ..Default::default()
        };
        async move { c.label_values(req).await.map(|r| r.into_inner().values) }
    };
    assert_eq!(
        values("__name__", vec![], i64::MIN, i64::MAX)
            .await
            .unwrap(),
        vec!["metric_0", "metric_1", "metric_2"]
    );
    assert_eq!(
        values(
            "instance",
            vec![
                m(Type::Eq, "job", "app"),
                m(Type::Eq, "__name__", "metric_1")
            ],
            i64::MIN,
            i64::MAX
        )
        .await
        .unwrap(),
        vec!["host-1:9100", "host-3:9100", "host-5:9100"]
    );
    assert_eq!(
        values(
            "region",
            vec![m(Type::Eq, "job", "app")],
            i64::MIN,
            i64::MAX
        )
        .await
        .unwrap(),
        vec!["eu-west"]
    );
    assert!(
        values(
            "region",
            vec![m(Type::Eq, "job", "nope")],
            i64::MIN,
            i64::MAX
        )
        .await
        .unwrap()
        .is_empty()
    );
    assert!(
        values("job", vec![], START - 10 * 3_600_000, START - 3_600_000)
            .await
            .unwrap()
            .is_empty(),
        "time range before the data"
    );
    let err = values("", vec![], i64::MIN, i64::MAX).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.message(), "label name parameter cannot be empty");

    // Info.
    let mut info = InfoClient::connect(format!("http://{addr}")).await.unwrap();
    let resp = info.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(resp.component_type, "store");
    assert_eq!(resp.label_sets.len(), 1);
    let ls: Vec<(String, String)> = resp.label_sets[0]
        .labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    assert_eq!(
        ls,
        vec![
            ("region".to_string(), "eu-west".to_string()),
            ("replica".to_string(), "a".to_string())
        ]
    );
    let si = resp.store.unwrap();
    assert!(si.min_time <= START && si.max_time >= START + (HOURS - 1) * 3_600_000);
    assert!(si.supports_without_replica_labels && si.supports_sharding);
    // One entry per disjoint time range of the label set (promtool blocks leave small gaps).
    assert!(!si.tsdb_infos.is_empty() && si.tsdb_infos.len() <= ds.blocks.len());
    assert!(
        si.tsdb_infos
            .windows(2)
            .all(|w| w[0].max_time < w[1].min_time)
    );
    assert_eq!(si.tsdb_infos[0].min_time, si.min_time);
}

async fn new_store(
    bucket: thanos_objstore::Bucket,
    data_dir: &std::path::Path,
    registry: &Registry,
) -> BucketStore {
    new_store_with(bucket, data_dir, registry, true).await
}

async fn new_store_with(
    bucket: thanos_objstore::Bucket,
    data_dir: &std::path::Path,
    registry: &Registry,
    direct_filesystem_reads: bool,
) -> BucketStore {
    let store = BucketStore::new(
        bucket,
        BucketStoreOptions {
            data_dir: data_dir.to_path_buf(),
            direct_filesystem_reads,
            ..BucketStoreOptions::default()
        },
        registry,
    )
    .unwrap();
    let summary = store.sync().await.unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    store
}

fn range_requests(registry: &Registry) -> f64 {
    counter_sum(
        registry,
        "thanos_objstore_bucket_operations_total",
        &[("operation", "get_range")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_bucket_matches_promtool_dump() {
    let ds = dataset(3, 6);
    for direct in [true, false] {
        let root = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let bucket = fs_bucket(&root.path().join("bucket"), &registry);
        for b in &ds.blocks {
            upload_block(&bucket, b, &ext_labels(), None).await;
        }
        let store = new_store_with(bucket, &root.path().join("data"), &registry, direct).await;
        assert_eq!(store.blocks().len(), ds.blocks.len());
        let synced = range_requests(&registry);
        check_against_promtool(&ds, store, &registry).await;
        let queried = range_requests(&registry) - synced;
        // Direct reads slice the memory-mapped block files: no range request after sync.
        assert_eq!(
            queried == 0.0,
            direct,
            "range requests after sync: {queried}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bucket_matches_promtool_dump() {
    let ds = dataset(3, 6);
    let s3 = S3TestServer::start().await;
    s3.create_bucket("blocks");
    let root = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let bucket = yaml_bucket(&s3.objstore_yaml("blocks"), &registry);
    for b in &ds.blocks {
        upload_block(&bucket, b, &ext_labels(), None).await;
    }
    let store = new_store(bucket, &root.path().join("data"), &registry).await;
    check_against_promtool(&ds, store, &registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_labels_override_stored_ones() {
    // A stored `region` label is replaced by the block's external one.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.om");
    let mut text = String::from("# TYPE up gauge\n");
    for i in 0..10 {
        text.push_str(&format!(
            "up{{foo=\"bar\",region=\"somewhere\"}} {i} {}\n",
            START / 1000 + i * 15
        ));
    }
    text.push_str("# EOF\n");
    std::fs::write(&input, text).unwrap();
    let blocks = promtool_blocks(&input, &dir.path().join("blocks"));
    let registry = Registry::new();
    let bucket = fs_bucket(&dir.path().join("bucket"), &registry);
    upload_block(&bucket, &blocks[0], &[("region", "eu-west")], None).await;
    let store = new_store(bucket, &dir.path().join("data"), &registry).await;
    let series = store
        .series(&SeriesRequest {
            min_time: i64::MIN,
            max_time: i64::MAX,
            matchers: vec![m(Type::Eq, "foo", "bar")],
            skip_chunks: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(series.len(), 1);
    let ls: Vec<(&str, &str)> = series[0]
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        ls,
        vec![("__name__", "up"), ("foo", "bar"), ("region", "eu-west")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_merge_without_replica_labels_across_batches() {
    let ds = dataset(2, 5);
    let root = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let bucket = fs_bucket(&root.path().join("bucket"), &registry);
    let base = 1_800_000_000_000u64;
    for (i, b) in ds.blocks.iter().enumerate() {
        for replica in ["a", "b"] {
            let id = ulid::Ulid::from_parts(base + i as u64, u128::from(replica.as_bytes()[0]));
            upload_block(
                &bucket,
                b,
                &[("region", "eu-west"), ("replica", replica)],
                Some(id),
            )
            .await;
        }
    }
    let store = BucketStore::new(
        bucket,
        BucketStoreOptions {
            data_dir: root.path().join("data"),
            // Several batches per block.
            series_batch_size: 2,
            ..BucketStoreOptions::default()
        },
        &registry,
    )
    .unwrap();
    assert_eq!(store.sync().await.unwrap().loaded, 2 * ds.blocks.len());
    let (addr, _srv) = serve(store).await;
    let mut c = client(addr).await;
    let selector = r#"{__name__=~"metric_.*"}"#;
    let mut req = series_request(
        vec![m(Type::Re, "__name__", "metric_.*")],
        i64::MIN,
        i64::MAX,
    );
    // With replica labels: two series per stored series.
    let both = call_series(&mut c, req.clone()).await.unwrap();
    assert_eq!(both.len(), 20);
    // Without: merged into one, byte-identical replica chunks dropped, exactly the data.
    req.without_replica_labels = vec!["replica".into()];
    let merged = call_series(&mut c, req.clone()).await.unwrap();
    assert_eq!(merged.len(), 10);
    for w in merged.windows(2) {
        let a: Vec<_> = w[0].labels.iter().map(|l| (&l.name, &l.value)).collect();
        let b: Vec<_> = w[1].labels.iter().map(|l| (&l.name, &l.value)).collect();
        assert!(a < b);
    }
    let expected = promtool_dump(&ds.blocks, selector, i64::MIN, i64::MAX);
    let got = series_lines(&merged, i64::MIN, i64::MAX, &["region"]);
    assert!(
        got == expected,
        "got {} samples, promtool {}",
        got.len(),
        expected.len()
    );
    req.limit = 7;
    assert_eq!(call_series(&mut c, req).await.unwrap().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_reads_answer_like_ranged_reads_for_large_selections() {
    // 600 series over 3 blocks: more than a Series call handles inline, so each block
    // streams slabs of series into the k-way merge.
    let ds = dataset(2, 300);
    let root = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let bucket = fs_bucket(&root.path().join("bucket"), &registry);
    for b in &ds.blocks {
        upload_block(&bucket, b, &ext_labels(), None).await;
    }
    let direct = new_store_with(bucket.clone(), &root.path().join("d1"), &registry, true).await;
    let ranged = new_store_with(bucket, &root.path().join("d2"), &Registry::new(), false).await;
    let selector = r#"{__name__=~"metric_.*"}"#;
    for (mint, maxt) in ranges() {
        let req = series_request(vec![m(Type::Re, "__name__", "metric_.*")], mint, maxt);
        let got = direct.series(&req).await.unwrap();
        assert_eq!(got, ranged.series(&req).await.unwrap(), "[{mint}, {maxt}]");
        let expected = promtool_dump(&ds.blocks, selector, mint, maxt);
        assert!(
            series_lines(&got, mint, maxt, &["region", "replica"]) == expected,
            "[{mint}, {maxt}]: samples differ from promtool"
        );
        if mint == i64::MIN {
            assert_eq!(got.len(), 600);
            let limited = direct
                .series(&SeriesRequest { limit: 7, ..req })
                .await
                .unwrap();
            assert_eq!(limited, got[..7]);
        }
    }
}
