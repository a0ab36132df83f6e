//! The receive StoreAPI over real gRPC: samples appended to tenant heads come back from
//! Series with the tenant's external labels; LabelNames, LabelValues and Info.

use std::sync::Arc;

use prometheus::Registry;
use thanos_model::chunkenc::XorIterator;
use thanos_model::{Labels, Sample};
use thanos_proto::thanos::info::InfoRequest;
use thanos_proto::thanos::info::info_client::InfoClient;
use thanos_proto::thanos::info::info_server::InfoServer;
use thanos_proto::thanos::series_response::Result as SeriesResult;
use thanos_proto::thanos::store_client::StoreClient;
use thanos_proto::thanos::store_server::StoreServer;
use thanos_proto::thanos::{
    LabelMatcher, LabelNamesRequest, LabelValuesRequest, Series, SeriesRequest, label_matcher,
};
use thanos_receive::{Batch, HeadOptions, MultiTsdb, ReceiveStore, SeriesSamples};
use tonic::transport::Channel;

type Pairs<'a> = &'a [(&'a str, &'a str)];

fn batch(series: &[(Pairs<'_>, &[(i64, f64)])]) -> Batch {
    Batch::from_series(
        series
            .iter()
            .map(|(labels, samples)| SeriesSamples {
                histograms: Vec::new(),
                labels: Labels::from_pairs(labels.iter().copied()),
                samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
            })
            .collect(),
    )
}

fn eq(name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: label_matcher::Type::Eq as i32,
        name: name.into(),
        value: value.into(),
    }
}

fn re(name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: label_matcher::Type::Re as i32,
        name: name.into(),
        value: value.into(),
    }
}

struct Fixture {
    store: StoreClient<Channel>,
    info: InfoClient<Channel>,
}

/// Tenants `a` (two `up` series, one `other`) and `b` (one `up` series, which carries a
/// stored `site` label that the external one must override).
async fn start(attach: bool) -> (Fixture, ReceiveStore, Arc<MultiTsdb>) {
    let tsdb = Arc::new(MultiTsdb::new(HeadOptions::default(), &Registry::new()).expect("tsdb"));
    let now = 1_000_000;
    tsdb.tenant_head("a")
        .expect("head a")
        .append_batch(
            &batch(&[
                (
                    &[("__name__", "up"), ("job", "api")],
                    &[(1000, 1.0), (2000, 2.0), (3000, 3.0)],
                ),
                (&[("__name__", "up"), ("job", "db")], &[(1500, 10.0)]),
                (&[("__name__", "other"), ("job", "api")], &[(5000, 7.5)]),
            ]),
            now,
        )
        .expect("append a");
    tsdb.tenant_head("b")
        .expect("head b")
        .append_batch(
            &batch(&[(
                &[("__name__", "up"), ("job", "api"), ("site", "stored")],
                &[(500, 0.5), (2500, 2.5)],
            )]),
            now,
        )
        .expect("append b");
    let store = ReceiveStore::new([("site", "eu")], "tenant_id");
    if attach {
        assert!(store.attach(Arc::clone(&tsdb)));
        assert!(
            !store.attach(Arc::clone(&tsdb)),
            "second attach must be refused"
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let svc = store.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(StoreServer::new(svc.clone()))
            .add_service(InfoServer::new(svc))
            .serve_with_incoming(incoming)
            .await
            .expect("serve");
    });
    let url = format!("http://{addr}");
    let fixture = Fixture {
        store: StoreClient::connect(url.clone()).await.expect("connect"),
        info: InfoClient::connect(url).await.expect("connect"),
    };
    (fixture, store, tsdb)
}

async fn series(f: &mut Fixture, req: SeriesRequest) -> Vec<Series> {
    let mut stream = f.store.series(req).await.expect("series").into_inner();
    let mut out = Vec::new();
    while let Some(frame) = stream.message().await.expect("frame") {
        match frame.result {
            Some(SeriesResult::Series(s)) => out.push(s),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    out
}

fn labels_of(s: &Series) -> Vec<(String, String)> {
    s.labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn samples(s: &Series, mint: i64, maxt: i64) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for c in &s.chunks {
        let raw = c.raw.as_ref().expect("raw chunk");
        assert_eq!(raw.r#type, 0, "XOR encoding");
        let decoded: Vec<(i64, f64)> = XorIterator::new(&raw.data).map(|s| (s.t, s.v)).collect();
        assert_eq!(decoded.first().map(|s| s.0), Some(c.min_time));
        assert_eq!(decoded.last().map(|s| s.0), Some(c.max_time));
        out.extend(
            decoded
                .into_iter()
                .filter(|(t, _)| (mint..=maxt).contains(t)),
        );
    }
    out
}

fn series_req(matchers: Vec<LabelMatcher>, mint: i64, maxt: i64) -> SeriesRequest {
    SeriesRequest {
        min_time: mint,
        max_time: maxt,
        matchers,
        ..SeriesRequest::default()
    }
}

#[tokio::test]
async fn series_returns_written_samples_with_tenant_labels() {
    let (mut f, _, _) = start(true).await;
    let got = series(&mut f, series_req(vec![eq("__name__", "up")], 0, 10_000)).await;
    let got_labels: Vec<_> = got.iter().map(labels_of).collect();
    assert_eq!(
        got_labels,
        vec![
            pairs(&[
                ("__name__", "up"),
                ("job", "api"),
                ("site", "eu"),
                ("tenant_id", "a")
            ]),
            pairs(&[
                ("__name__", "up"),
                ("job", "api"),
                ("site", "eu"),
                ("tenant_id", "b")
            ]),
            pairs(&[
                ("__name__", "up"),
                ("job", "db"),
                ("site", "eu"),
                ("tenant_id", "a")
            ]),
        ],
        "sorted across tenants, external labels attached and overriding"
    );
    assert_eq!(
        samples(&got[0], 0, 10_000),
        vec![(1000, 1.0), (2000, 2.0), (3000, 3.0)]
    );
    assert_eq!(samples(&got[1], 0, 10_000), vec![(500, 0.5), (2500, 2.5)]);
    assert_eq!(samples(&got[2], 0, 10_000), vec![(1500, 10.0)]);

    // A time range excluding a series' samples drops it.
    let got = series(&mut f, series_req(vec![eq("job", "db")], 2000, 10_000)).await;
    assert!(got.is_empty(), "{got:?}");
}

#[tokio::test]
async fn tenant_matcher_selects_one_tenant_and_options_apply() {
    let (mut f, _, _) = start(true).await;
    let got = series(
        &mut f,
        series_req(vec![eq("tenant_id", "b"), re("__name__", ".+")], 0, 10_000),
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        labels_of(&got[0]),
        pairs(&[
            ("__name__", "up"),
            ("job", "api"),
            ("site", "eu"),
            ("tenant_id", "b")
        ])
    );
    // A matcher rejecting every tenant's external labels selects nothing.
    let got = series(
        &mut f,
        series_req(vec![eq("site", "us"), eq("__name__", "up")], 0, 10_000),
    )
    .await;
    assert!(got.is_empty());

    // skip_chunks + without_replica_labels: labels only, tenant label removed, re-sorted.
    let got = series(
        &mut f,
        SeriesRequest {
            skip_chunks: true,
            without_replica_labels: vec!["tenant_id".into()],
            ..series_req(vec![eq("__name__", "up")], 0, 10_000)
        },
    )
    .await;
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|s| s.chunks.is_empty()));
    assert!(
        got.iter()
            .all(|s| s.labels.iter().all(|l| l.name != "tenant_id"))
    );
    assert_eq!(labels_of(&got[2])[1], ("job".into(), "db".into()));

    // Only matchers on external labels are rejected.
    let err = f
        .store
        .series(series_req(vec![eq("tenant_id", "a")], 0, 10_000))
        .await
        .expect_err("external-only matchers");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn label_names_and_values() {
    let (mut f, _, _) = start(true).await;
    let names = f
        .store
        .label_names(LabelNamesRequest {
            start: 0,
            end: 10_000,
            ..LabelNamesRequest::default()
        })
        .await
        .expect("names")
        .into_inner()
        .names;
    assert_eq!(names, vec!["__name__", "job", "site", "tenant_id"]);

    let values = |label: &str, matchers: Vec<LabelMatcher>, start: i64| LabelValuesRequest {
        label: label.into(),
        start,
        end: 10_000,
        matchers,
        ..LabelValuesRequest::default()
    };
    let get = async |f: &mut Fixture, req| {
        f.store
            .label_values(req)
            .await
            .expect("values")
            .into_inner()
            .values
    };
    assert_eq!(
        get(&mut f, values("__name__", vec![], 0)).await,
        vec!["other", "up"]
    );
    assert_eq!(
        get(&mut f, values("job", vec![eq("tenant_id", "b")], 0)).await,
        vec!["api"]
    );
    assert_eq!(
        get(&mut f, values("tenant_id", vec![eq("job", "db")], 0)).await,
        vec!["a"]
    );
    // External label values only for tenants with series in range.
    assert_eq!(
        get(&mut f, values("tenant_id", vec![], 4000)).await,
        vec!["a"]
    );
    assert_eq!(get(&mut f, values("site", vec![], 0)).await, vec!["eu"]);

    let err = f
        .store
        .label_values(values("", vec![], 0))
        .await
        .expect_err("empty label");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn info_lists_tenants_and_reports_readiness() {
    let (mut f, store, tsdb) = start(false).await;
    let err = f.info.info(InfoRequest {}).await.expect_err("not ready");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    let err = f
        .store
        .series(series_req(vec![eq("__name__", "up")], 0, 10_000))
        .await
        .expect_err("not ready");
    assert_eq!(err.code(), tonic::Code::Unavailable);

    assert!(store.attach(tsdb));
    let info = f
        .info
        .info(InfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!(info.component_type, "receive");
    let sets: Vec<Vec<(String, String)>> = info
        .label_sets
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect()
        })
        .collect();
    assert_eq!(
        sets,
        vec![
            pairs(&[("site", "eu"), ("tenant_id", "a")]),
            pairs(&[("site", "eu"), ("tenant_id", "b")]),
        ]
    );
    let s = info.store.expect("store info");
    assert_eq!((s.min_time, s.max_time), (500, i64::MAX));
    assert!(s.supports_without_replica_labels && s.supports_sharding);
    let ranges: Vec<(i64, i64)> = s
        .tsdb_infos
        .iter()
        .map(|t| (t.min_time, t.max_time))
        .collect();
    assert_eq!(ranges, vec![(1000, i64::MAX), (500, i64::MAX)]);
}

#[tokio::test]
async fn limit_and_shards_partition_the_result() {
    use thanos_proto::thanos::ShardInfo;
    let (mut f, _, _) = start(true).await;
    let all = series(&mut f, series_req(vec![re("__name__", ".+")], 0, 10_000)).await;
    assert_eq!(all.len(), 4);
    let limited = series(
        &mut f,
        SeriesRequest {
            limit: 1,
            ..series_req(vec![re("__name__", ".+")], 0, 10_000)
        },
    )
    .await;
    assert_eq!(
        limited.iter().map(labels_of).collect::<Vec<_>>(),
        vec![labels_of(&all[0])]
    );
    let mut union = Vec::new();
    for shard_index in 0..2 {
        let part = series(
            &mut f,
            SeriesRequest {
                shard_info: Some(ShardInfo {
                    shard_index,
                    total_shards: 2,
                    by: false,
                    labels: vec![],
                }),
                ..series_req(vec![re("__name__", ".+")], 0, 10_000)
            },
        )
        .await;
        union.extend(part.iter().map(labels_of));
    }
    union.sort();
    let mut want: Vec<_> = all.iter().map(labels_of).collect();
    want.sort();
    assert_eq!(union, want, "the shards partition the series");
}
