//! StoreAPI matcher semantics (the "matching behavior" part of Thanos's acceptance suite),
//! with Prometheus itself as the oracle: every selector's Series answer must equal
//! `promtool tsdb dump --match` over the same blocks.

use crate::common;

use common::*;
use prometheus::Registry;
use thanos_proto::thanos::label_matcher::Type;
use thanos_proto::thanos::{LabelMatcher, LabelNamesRequest, LabelValuesRequest};
use thanos_store::{BucketStore, BucketStoreOptions};

fn parse_selector(sel: &str) -> Vec<LabelMatcher> {
    // `{a="x",b!~"y"}` with values free of `",` sequences (true for this table).
    let inner = sel.trim_start_matches('{').trim_end_matches('}');
    inner
        .split("\",")
        .map(|part| {
            let part = part.trim_end_matches('"');
            let (op, t) = [
                ("!=", Type::Neq),
                ("=~", Type::Re),
                ("!~", Type::Nre),
                ("=", Type::Eq),
            ]
            .into_iter()
            .find(|(op, _)| part.contains(op))
            .unwrap();
            let (name, value) = part.split_once(op).unwrap();
            // PromQL string escapes: only `\\` occurs in this table.
            m(
                t,
                name,
                &value.trim_start_matches('"').replace("\\\\", "\\"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matcher_semantics_match_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.om");
    let mut text = String::from("# TYPE m gauge\n");
    for (k, labels) in [
        r#"n="1""#,
        r#"i="a",n="1""#,
        r#"i="b",n="1""#,
        r#"n="2""#,
        r#"n="2.5""#,
        r#"i="",n="3""#,
    ]
    .iter()
    .enumerate()
    {
        for s in 0..20 {
            text.push_str(&format!(
                "m{{{labels}}} {} {}\n",
                k * 100 + s,
                START / 1000 + s as i64 * 60
            ));
        }
    }
    text.push_str("# EOF\n");
    std::fs::write(&input, text).unwrap();
    let blocks = promtool_blocks(&input, &dir.path().join("blocks"));
    let registry = Registry::new();
    let bucket = fs_bucket(&dir.path().join("bucket"), &registry);
    for b in &blocks {
        upload_block(&bucket, b, &[("region", "eu-west")], None).await;
    }
    let store = BucketStore::new(
        bucket,
        BucketStoreOptions {
            data_dir: dir.path().join("data"),
            ..BucketStoreOptions::default()
        },
        &registry,
    )
    .unwrap();
    store.sync().await.unwrap();
    let (addr, _srv) = serve(store).await;
    let mut c = client(addr).await;

    let selectors = [
        r#"{__name__="m",n="1"}"#,
        r#"{__name__="m",n="1",i="a"}"#,
        r#"{__name__="m",n="1",i!="a"}"#,
        r#"{__name__="m",n="1",i=""}"#,
        r#"{__name__="m",n="1",i!=""}"#,
        r#"{__name__="m",n=~"1|2"}"#,
        r#"{__name__="m",n=~"1|2.5",i=~".*"}"#,
        r#"{__name__="m",n="1",i=~"a|"}"#,
        r#"{__name__="m",n="1",i=~"(a||d)"}"#,
        r#"{__name__="m",n!="1"}"#,
        r#"{__name__="m",n!~"1|2"}"#,
        r#"{__name__="m",i=~".+"}"#,
        r#"{__name__="m",i!~".+"}"#,
        r#"{__name__="m",i=~"a|b"}"#,
        r#"{__name__="m",i!~"a|"}"#,
        r#"{__name__="m",n=~"2.*"}"#,
        r#"{__name__="m",n=~"2\\..*"}"#,
        r#"{__name__="m",n=""}"#,
        r#"{__name__="m",missing!="x"}"#,
        r#"{__name__=~"m|other",n=~".*5"}"#,
        r#"{__name__="m",region="eu-west",n="2"}"#,
    ];
    for sel in selectors {
        let matchers = parse_selector(sel);
        let promql = sel.replace(",region=\"eu-west\"", "");
        let expected = promtool_dump(&blocks, &promql, i64::MIN, i64::MAX);
        let series = call_series(&mut c, series_request(matchers, i64::MIN, i64::MAX))
            .await
            .unwrap();
        let got = series_lines(&series, i64::MIN, i64::MAX, &["region"]);
        assert!(
            got == expected,
            "{sel}: got {} samples, promtool {}",
            got.len(),
            expected.len()
        );
    }

    // Label calls with external labels and replica stripping.
    let names = c
        .label_names(LabelNamesRequest {
            start: i64::MIN,
            end: i64::MAX,
            matchers: vec![m(Type::Eq, "n", "2")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .names;
    assert_eq!(names, vec!["__name__", "n", "region"]);
    let vals = |label: &str, matchers: Vec<LabelMatcher>| {
        let mut c = c.clone();
        let req = LabelValuesRequest {
            label: label.into(),
            start: i64::MIN,
            end: i64::MAX,
            matchers,
            without_replica_labels: vec!["replica".into()],
            ..Default::default()
        };
        async move { c.label_values(req).await.unwrap().into_inner().values }
    };
    assert_eq!(vals("i", vec![]).await, vec!["a", "b"]);
    assert_eq!(vals("n", vec![m(Type::Re, "i", ".+")]).await, vec!["1"]);
    assert_eq!(
        vals("region", vec![m(Type::Re, "region", ".*")]).await,
        vec!["eu-west"]
    );
    assert!(
        vals("region", vec![m(Type::Eq, "region", "different")])
            .await
            .is_empty()
    );
    assert!(vals("replica", vec![]).await.is_empty());
}
