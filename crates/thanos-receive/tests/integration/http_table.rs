//! A table of malformed and edge-case remote-write requests sent through the real HTTP
//! router: each case checks the status code, the error text, and what was (and was not)
//! stored.

use crate::common;

use common::{TestServer, now_ms, ts, v1_body};
use prost::Message;
use thanos_proto::io::prometheus::write::v2 as pb2;
use thanos_proto::prometheus as pb1;
use thanos_proto::remote_write::{CONTENT_TYPE_V1, CONTENT_TYPE_V2, encode};
use thanos_receive::{HandlerOptions, HeadOptions, WriteLimits};

const FUTURE_WINDOW_MS: i64 = 10 * 60 * 1000;

struct Case {
    name: &'static str,
    /// Tenant header value; `None` sends no tenant header (default tenant).
    tenant: Option<String>,
    content_type: Option<&'static str>,
    encoding: Option<&'static str>,
    version: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// Substrings the response body must contain.
    says: Vec<String>,
    /// Expected content of the tenant head afterwards: (labels, t, value) sorted.
    stored: Vec<(String, i64, f64)>,
}

impl Case {
    fn v1(name: &'static str, body: Vec<u8>, status: u16) -> Self {
        Case {
            name,
            tenant: Some(name.to_owned()),
            content_type: Some(CONTENT_TYPE_V1),
            encoding: Some("snappy"),
            version: Some("0.1.0"),
            body,
            status,
            says: vec![],
            stored: vec![],
        }
    }

    fn v2(name: &'static str, body: Vec<u8>, status: u16) -> Self {
        Case {
            content_type: Some(CONTENT_TYPE_V2),
            version: Some("2.0.0"),
            ..Case::v1(name, body, status)
        }
    }

    fn says(mut self, text: impl Into<String>) -> Self {
        self.says.push(text.into());
        self
    }

    fn stores(mut self, labels: &str, t: i64, v: f64) -> Self {
        self.stored.push((labels.to_owned(), t, v));
        self
    }
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).expect("snappy")
}

/// A 2.0 series: label refs and (timestamp, value) samples.
type RawSeries = (Vec<u32>, Vec<(i64, f64)>);

fn v2_body(symbols: &[&str], series: Vec<RawSeries>) -> Vec<u8> {
    encode(&pb2::Request {
        symbols: symbols.iter().map(|s| (*s).to_owned()).collect(),
        timeseries: series
            .into_iter()
            .map(|(labels_refs, samples)| pb2::TimeSeries {
                labels_refs,
                samples: samples
                    .into_iter()
                    .map(|(timestamp, value)| pb2::Sample {
                        value,
                        timestamp,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    })
    .expect("encode")
    .to_vec()
}

async fn post(
    client: &reqwest::Client,
    server: &TestServer,
    case: &Case,
) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = client.post(server.url()).body(case.body.clone());
    if let Some(t) = &case.tenant {
        req = req.header("THANOS-TENANT", t);
    }
    if let Some(v) = case.content_type {
        req = req.header("Content-Type", v);
    }
    if let Some(v) = case.encoding {
        req = req.header("Content-Encoding", v);
    }
    if let Some(v) = case.version {
        req = req.header("X-Prometheus-Remote-Write-Version", v);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().await.expect("body"), headers)
}

fn check_stored(server: &TestServer, tenant: &str, case: &Case) {
    let mut want: Vec<(String, i64, u64)> = case
        .stored
        .iter()
        .map(|(l, t, v)| (l.clone(), *t, v.to_bits()))
        .collect();
    want.sort();
    let got = server.dump(tenant);
    assert_eq!(got, want, "case {}: stored data", case.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_edge_requests() {
    let limits = WriteLimits {
        max_body_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        max_series: 100,
        max_samples: 150,
    };
    let server = TestServer::start(
        HandlerOptions {
            limits,
            ..HandlerOptions::default()
        },
        HeadOptions {
            too_far_in_future_ms: FUTURE_WINDOW_MS,
            ..HeadOptions::default()
        },
        true,
    )
    .await;
    let client = reqwest::Client::new();
    let now = now_ms();
    let up = r#"{__name__="up", job="a"}"#;
    let good = || ts(&[("__name__", "up"), ("job", "a")], &[(now, 1.0)]);
    let valid = v1_body(vec![good()]);

    let mut bad_utf8 = pb1::WriteRequest {
        timeseries: vec![
            ts(&[("__name__", "bad"), ("z", "x")], &[(now, 1.0)]),
            good(),
        ],
        metadata: vec![],
    }
    .encode_to_vec();
    let pos = bad_utf8
        .windows(4)
        .position(|w| w == [0x0a, 0x01, b'z', 0x12])
        .expect("label z");
    bad_utf8[pos + 5] = 0xfe;

    let mut histogram = ts(&[("__name__", "h")], &[(now, 2.0)]);
    histogram.histograms.push(pb1::Histogram {
        timestamp: now + 1,
        ..Default::default()
    });
    // Two buckets in the spans, one count: the whole series is rejected.
    let mut bad_histogram = ts(&[("__name__", "bad_h")], &[(now, 2.0)]);
    bad_histogram.histograms.push(pb1::Histogram {
        count: Some(pb1::histogram::Count::CountInt(1)),
        positive_spans: vec![pb1::BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1],
        timestamp: now + 1,
        ..Default::default()
    });

    let metadata_only = encode(&pb1::WriteRequest {
        timeseries: vec![],
        metadata: vec![pb1::MetricMetadata {
            r#type: 1,
            metric_family_name: "x_total".into(),
            help: "help".into(),
            unit: String::new(),
        }],
    })
    .expect("encode")
    .to_vec();

    let too_many_series: Vec<pb1::TimeSeries> = (0..101)
        .map(|i| {
            ts(
                &[("__name__", "many"), ("i", &i.to_string())],
                &[(now, 1.0)],
            )
        })
        .collect();
    let samples: Vec<(i64, f64)> = (0..151).map(|i| (now + i, 1.0)).collect();

    let cases = vec![
        Case::v1("valid", valid.clone(), 200).stores(up, now, 1.0),
        Case::v1("empty-request", v1_body(vec![]), 200),
        Case::v1("metadata-only", metadata_only, 200),
        Case::v1("empty-body", vec![], 400).says("snappy"),
        Case::v1("not-snappy", b"this is not snappy".to_vec(), 400).says("snappy"),
        Case::v1("truncated-snappy", valid[..valid.len() / 2].to_vec(), 400).says("snappy"),
        Case::v1("snappy-bomb", vec![0x80, 0x80, 0x80, 0x80, 0x04, 0x00], 413)
            .says("write request too large"),
        Case::v1(
            "snappy-4gib-header",
            vec![0x80, 0x80, 0x80, 0x80, 0x10, 0x00],
            400,
        ),
        Case::v1("body-too-large", vec![0u8; (1 << 20) + 1], 413).says("too large"),
        Case::v1("not-protobuf", snappy(&[0x0a, 0x05, 0x01]), 400).says("prometheus.WriteRequest"),
        Case::v1("wire-type-mismatch", snappy(&[0x08, 0x01]), 400).says("wire type"),
        Case {
            content_type: Some("application/json"),
            ..Case::v1("json-content-type", valid.clone(), 415)
        }
        .says("content type"),
        Case {
            content_type: Some("application/x-protobuf;proto=foo.Bar"),
            ..Case::v1("unknown-proto", valid.clone(), 415)
        },
        Case {
            encoding: Some("gzip"),
            ..Case::v1("gzip-encoding", valid.clone(), 415)
        }
        .says("encoding"),
        Case {
            content_type: None,
            encoding: None,
            version: None,
            ..Case::v1("no-headers", valid.clone(), 200)
        }
        .stores(up, now, 1.0),
        Case::v1(
            "duplicate-label-names",
            v1_body(vec![
                ts(&[("__name__", "d"), ("a", "1"), ("a", "2")], &[(now, 1.0)]),
                good(),
            ]),
            400,
        )
        .says("duplicate label name: 1 series")
        .says(r#"a="1", a="2""#)
        .stores(up, now, 1.0),
        Case::v1(
            "empty-label-name",
            v1_body(vec![
                ts(&[("", "x"), ("__name__", "e")], &[(now, 1.0)]),
                good(),
            ]),
            400,
        )
        .says("empty label name")
        .stores(up, now, 1.0),
        Case::v1("invalid-utf8", snappy(&bad_utf8), 400)
            .says("invalid utf-8")
            .says("bad")
            .stores(up, now, 1.0),
        Case::v1(
            "empty-label-set",
            v1_body(vec![ts(&[("a", "")], &[(now, 1.0)]), good()]),
            400,
        )
        .says("empty label set")
        .stores(up, now, 1.0),
        Case::v1(
            "unsorted-labels",
            v1_body(vec![ts(&[("job", "a"), ("__name__", "up")], &[(now, 1.0)])]),
            200,
        )
        .stores(up, now, 1.0),
        Case::v1(
            "no-metric-name",
            v1_body(vec![ts(&[("job", "a")], &[(now, 1.0)])]),
            200,
        )
        .stores(r#"{job="a"}"#, now, 1.0),
        Case::v1(
            "out-of-order-in-request",
            v1_body(vec![ts(
                &[("__name__", "up"), ("job", "a")],
                &[(now, 1.0), (now - 1000, 2.0), (now + 1000, 3.0)],
            )]),
            409,
        )
        .says("out of order sample: 1 samples")
        .stores(up, now, 1.0)
        .stores(up, now + 1000, 3.0),
        Case::v1(
            "duplicate-timestamp",
            v1_body(vec![ts(
                &[("__name__", "up"), ("job", "a")],
                &[(now, 1.0), (now, 2.0)],
            )]),
            409,
        )
        .says("duplicate sample for timestamp")
        .stores(up, now, 1.0),
        Case::v1(
            "identical-duplicate",
            v1_body(vec![ts(
                &[("__name__", "up"), ("job", "a")],
                &[(now, 1.0), (now, 1.0)],
            )]),
            200,
        )
        .stores(up, now, 1.0),
        Case::v1(
            "far-future",
            v1_body(vec![ts(
                &[("__name__", "up"), ("job", "a")],
                &[(now, 1.0), (now + 24 * 3_600_000, 9.0)],
            )]),
            409,
        )
        .says("too far in the future")
        .stores(up, now, 1.0),
        // Runs against the tenant of "valid", whose head already holds `up` at `now`, so
        // the append window starts one hour before that.
        Case {
            tenant: Some("valid".into()),
            ..Case::v1(
                "out-of-bounds",
                v1_body(vec![
                    ts(&[("__name__", "up"), ("job", "a")], &[(now, 1.0)]),
                    ts(&[("__name__", "old")], &[(now - 2 * 3_600_000, 1.0)]),
                ]),
                409,
            )
        }
        .says("out of bounds: 1 samples")
        .says(r#"{__name__="old"}"#)
        .stores(up, now, 1.0),
        // More requests against the "valid" tenant: conflicts with what an earlier
        // request stored.
        Case {
            tenant: Some("valid".into()),
            ..Case::v1(
                "out-of-order-across-requests",
                v1_body(vec![ts(
                    &[("__name__", "up"), ("job", "a")],
                    &[(now - 1000, 5.0)],
                )]),
                409,
            )
        }
        .says("out of order sample: 1 samples")
        .stores(up, now, 1.0),
        Case {
            tenant: Some("valid".into()),
            ..Case::v1(
                "duplicate-across-requests",
                v1_body(vec![ts(&[("__name__", "up"), ("job", "a")], &[(now, 7.0)])]),
                409,
            )
        }
        .says("duplicate sample for timestamp")
        .stores(up, now, 1.0),
        Case {
            tenant: Some("valid".into()),
            ..Case::v1("identical-resend-across-requests", valid.clone(), 200)
        }
        .stores(up, now, 1.0),
        Case::v1("too-many-series", v1_body(too_many_series), 413).says("too many timeseries"),
        Case::v1(
            "too-many-samples",
            v1_body(vec![ts(&[("__name__", "s")], &samples)]),
            413,
        )
        .says("too many samples"),
        Case {
            tenant: Some("../x".into()),
            ..Case::v1("bad-tenant-dotdot", valid.clone(), 400)
        }
        .says("invalid tenant"),
        Case {
            tenant: Some("/etc/foo".into()),
            ..Case::v1("bad-tenant-abs", valid.clone(), 400)
        },
        Case {
            tenant: None,
            ..Case::v1("default-tenant", valid.clone(), 200)
        }
        .stores(up, now, 1.0),
        Case::v1(
            "nan-and-stale",
            v1_body(vec![ts(
                &[("__name__", "n")],
                &[
                    (now, f64::NAN),
                    (now + 1, f64::from_bits(0x7ff0_0000_0000_0002)),
                ],
            )]),
            200,
        )
        .stores(r#"{__name__="n"}"#, now, f64::NAN)
        .stores(
            r#"{__name__="n"}"#,
            now + 1,
            f64::from_bits(0x7ff0_0000_0000_0002),
        ),
        Case::v1("native-histogram", v1_body(vec![histogram]), 200).stores(
            r#"{__name__="h"}"#,
            now,
            2.0,
        ),
        Case::v1(
            "invalid-histogram",
            v1_body(vec![
                bad_histogram,
                ts(&[("__name__", "ok_h")], &[(now, 3.0)]),
            ]),
            400,
        )
        .says("invalid native histogram")
        .says("bad_h")
        .stores(r#"{__name__="ok_h"}"#, now, 3.0),
        Case::v1(
            "bad-labels-and-conflict",
            v1_body(vec![
                ts(&[("a", "1"), ("a", "1")], &[(now, 1.0)]),
                ts(
                    &[("__name__", "up"), ("job", "a")],
                    &[(now, 1.0), (now - 5, 1.0)],
                ),
            ]),
            400,
        )
        .says("duplicate label name")
        .says("out of order sample")
        .stores(up, now, 1.0),
        Case::v2(
            "v2-valid",
            v2_body(
                &["", "__name__", "up", "job", "a"],
                vec![(vec![1, 2, 3, 4], vec![(now, 1.0)])],
            ),
            200,
        )
        .stores(up, now, 1.0),
        Case::v2(
            "v2-symbol-out-of-range",
            v2_body(
                &["", "__name__", "up", "job", "a"],
                vec![
                    (vec![1, 2, 3, 40], vec![(now, 1.0)]),
                    (vec![1, 2, 3, 4], vec![(now, 1.0)]),
                ],
            ),
            400,
        )
        .says("label reference out of symbol table range")
        .stores(up, now, 1.0),
        Case::v2(
            "v2-odd-refs",
            v2_body(
                &["", "__name__", "up"],
                vec![(vec![1, 2, 1], vec![(now, 1.0)])],
            ),
            400,
        )
        .says("odd number"),
        Case::v2("v2-bad-symbol-zero", v2_body(&["x", "a"], vec![]), 400).says("symbols[0]"),
        Case::v2("v2-not-snappy", b"garbage".to_vec(), 400),
    ];
    assert!(cases.len() >= 30, "{} cases", cases.len());

    for case in &cases {
        let (status, body, headers) = post(&client, &server, case).await;
        assert_eq!(status, case.status, "case {}: body {body:?}", case.name);
        if status == 200 {
            assert!(body.is_empty(), "case {}: success body {body:?}", case.name);
        }
        for text in &case.says {
            assert!(
                body.contains(text.as_str()),
                "case {}: {body:?} lacks {text:?}",
                case.name
            );
        }
        let tenant = case
            .tenant
            .clone()
            .unwrap_or_else(|| "default-tenant".into());
        if case.content_type == Some(CONTENT_TYPE_V2) && status != 415 {
            let written = headers
                .get("X-Prometheus-Remote-Write-Samples-Written")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            assert_eq!(written, Some(case.stored.len()), "case {}", case.name);
        }
        if thanos_receive::multitsdb::validate_tenant(&tenant).is_ok() {
            check_stored(&server, &tenant, case);
        }
    }
    // Rejected tenants never get a head; requests that stored nothing created none either.
    let tenants = server.tsdb.tenants();
    for name in [
        "../x",
        "/etc/foo",
        "empty-request",
        "metadata-only",
        "snappy-bomb",
        "too-many-series",
    ] {
        assert!(
            !tenants.iter().any(|t| t == name),
            "tenant {name} was created"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_future_sample_does_not_wedge_the_series() {
    let server = TestServer::start(
        HandlerOptions::default(),
        HeadOptions {
            too_far_in_future_ms: FUTURE_WINDOW_MS,
            ..HeadOptions::default()
        },
        true,
    )
    .await;
    let client = reqwest::Client::new();
    let now = now_ms();
    let labels = [("__name__", "up"), ("job", "a")];
    let send = |body: Vec<u8>| {
        client
            .post(server.url())
            .header("Content-Encoding", "snappy")
            .header("Content-Type", CONTENT_TYPE_V1)
            .body(body)
            .send()
    };
    let far = now + 3 * 24 * 3_600_000;
    let resp = send(v1_body(vec![ts(&labels, &[(far, 1.0)])]))
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 409);
    let head = server.tsdb.get("default-tenant");
    assert!(head.as_ref().is_none_or(|h| h.max_time().is_none()));
    for i in 0..3 {
        let resp = send(v1_body(vec![ts(&labels, &[(now + i * 1000, 1.0)])]))
            .await
            .expect("send");
        assert_eq!(
            resp.status().as_u16(),
            200,
            "write {i} after the far-future one"
        );
    }
    let head = server.tsdb.get("default-tenant").expect("tenant head");
    assert_eq!(head.max_time(), Some(now + 2000));
    assert_eq!(server.dump("default-tenant").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_gate_and_methods() {
    let server = TestServer::start(HandlerOptions::default(), HeadOptions::default(), false).await;
    let client = reqwest::Client::new();
    let body = v1_body(vec![ts(&[("__name__", "up")], &[(now_ms(), 1.0)])]);
    let resp = client
        .post(server.url())
        .header("Content-Encoding", "snappy")
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 503);
    assert!(server.tsdb.tenants().is_empty());
    server.prober.ready();
    let resp = client
        .post(server.url())
        .header("Content-Encoding", "snappy")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = client.get(server.url()).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 405);

    // Metrics use Thanos's names and carry the tenant and code.
    let families = server.registry.gather();
    let find = |name: &str| {
        families
            .iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("metric {name} missing"))
    };
    let requests = find("http_requests_total");
    let codes: Vec<(String, u64)> = requests
        .get_metric()
        .iter()
        .map(|m| {
            let code = m
                .get_label()
                .iter()
                .find(|l| l.name() == "code")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            (code, m.get_counter().get_value() as u64)
        })
        .collect();
    assert!(codes.contains(&("503".into(), 1)), "{codes:?}");
    assert!(codes.contains(&("200".into(), 1)), "{codes:?}");
    find("thanos_receive_write_timeseries");
    find("thanos_receive_write_samples");
    let appended = find("prometheus_tsdb_head_samples_appended_total");
    assert_eq!(appended.get_metric()[0].get_counter().get_value() as u64, 1);
    find("prometheus_tsdb_head_series");
    let pending = find("thanos_receive_pending_write_requests");
    assert_eq!(pending.get_metric()[0].get_gauge().get_value(), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_gate_queues_instead_of_failing() {
    let server = TestServer::start(
        HandlerOptions {
            max_concurrency: 1,
            ..HandlerOptions::default()
        },
        HeadOptions::default(),
        true,
    )
    .await;
    let client = reqwest::Client::new();
    let now = now_ms();
    let sends = (0..16).map(|i| {
        let body = v1_body(vec![ts(
            &[("__name__", "up"), ("writer", &i.to_string())],
            &[(now, 1.0)],
        )]);
        client
            .post(server.url())
            .header("Content-Encoding", "snappy")
            .body(body)
            .send()
    });
    for resp in futures_join_all(sends).await {
        assert_eq!(resp.expect("send").status().as_u16(), 200);
    }
    assert_eq!(server.dump("default-tenant").len(), 16);
}

/// Runs the futures concurrently on the runtime and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_header_precedence() {
    let server = TestServer::start(
        HandlerOptions {
            tenant_header: "X-Scope-OrgID".into(),
            default_tenant: "fallback".into(),
            ..HandlerOptions::default()
        },
        HeadOptions::default(),
        true,
    )
    .await;
    let client = reqwest::Client::new();
    let body = v1_body(vec![ts(&[("__name__", "up")], &[(now_ms(), 1.0)])]);
    let send = |headers: &'static [(&'static str, &'static str)]| {
        let mut req = client
            .post(server.url())
            .header("Content-Encoding", "snappy")
            .body(body.clone());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("X-Scope-OrgID", "custom"), ("THANOS-TENANT", "thanos")],
            "custom",
        ),
        (&[("THANOS-TENANT", "thanos")], "thanos"),
        (&[("X-Scope-OrgID", "")], "fallback"),
        (&[], "fallback"),
    ];
    for (headers, tenant) in cases {
        let resp = send(headers).await.expect("send");
        assert_eq!(resp.status().as_u16(), 200, "{headers:?}");
        assert_eq!(server.dump(tenant).len(), 1, "{headers:?} → {tenant}");
    }
    assert_eq!(server.tsdb.tenants(), ["custom", "fallback", "thanos"]);
}
