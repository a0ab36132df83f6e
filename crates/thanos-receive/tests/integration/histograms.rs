//! Native histograms end to end: a remote-write 1.0 request with an integer histogram
//! series, a float histogram series and a float series is stored (200), served by the
//! StoreAPI as HISTOGRAM / FLOAT_HISTOGRAM / XOR chunks, survives a restart (WAL replay),
//! and is cut into a block that `promtool tsdb dump` reads back; an out-of-order
//! histogram is a conflict (409).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{TestServer, store_series, ts};
use prometheus::Registry;
use thanos_model::chunkenc::{SampleIterator, decode_any};
use thanos_proto::prometheus as pb1;
use thanos_proto::thanos::chunk;
use thanos_receive::{HandlerOptions, HeadOptions, MultiTsdb, Storage};
use thanos_test_support::process::free_port;
use thanos_test_support::prometheus::Prometheus;
use thanos_wal::wlog::WalOptions;

const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 15_000;

/// A sample as read back: (t, count, sum) for histograms, (t, value, NaN) for floats.
type Point = (i64, f64, f64);
/// Per series (labels text): chunk kinds and points.
type Dump = BTreeMap<String, (Vec<&'static str>, Vec<Point>)>;

fn int_histogram(t: i64, count: u64, reset: bool) -> pb1::Histogram {
    // Two positive buckets holding count-1 and 1 observations, delta-encoded.
    let first = count as i64 - 1;
    pb1::Histogram {
        count: Some(pb1::histogram::Count::CountInt(count)),
        zero_count: Some(pb1::histogram::ZeroCount::ZeroCountInt(0)),
        sum: count as f64 * 0.5,
        schema: 1,
        zero_threshold: 1e-128,
        positive_spans: vec![pb1::BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![first, 1 - first],
        reset_hint: if reset {
            pb1::histogram::ResetHint::Yes as i32
        } else {
            pb1::histogram::ResetHint::Unknown as i32
        },
        timestamp: t,
        ..Default::default()
    }
}

fn float_histogram(t: i64, count: f64) -> pb1::Histogram {
    pb1::Histogram {
        count: Some(pb1::histogram::Count::CountFloat(count)),
        zero_count: Some(pb1::histogram::ZeroCount::ZeroCountFloat(count / 2.0)),
        sum: count * 3.0,
        schema: 0,
        zero_threshold: 0.001,
        negative_spans: vec![pb1::BucketSpan {
            offset: 1,
            length: 1,
        }],
        negative_counts: vec![count / 2.0],
        timestamp: t,
        ..Default::default()
    }
}

/// The request: h_int (counts 4, 6, 9, then a reset to 2, 3), h_float (1.5, 2.5, 4.0)
/// and a float series.
fn request() -> Vec<pb1::TimeSeries> {
    let mut h_int = ts(&[("__name__", "h_int"), ("job", "a")], &[]);
    h_int.histograms = [4, 6, 9, 2, 3]
        .iter()
        .enumerate()
        .map(|(i, &c)| int_histogram(T0 + i as i64 * STEP, c, false))
        .collect();
    let mut h_float = ts(&[("__name__", "h_float"), ("job", "a")], &[]);
    h_float.histograms = [1.5, 2.5, 4.0]
        .iter()
        .enumerate()
        .map(|(i, &c)| float_histogram(T0 + i as i64 * STEP, c))
        .collect();
    let floats = ts(
        &[("__name__", "up"), ("job", "a")],
        &[(T0, 1.0), (T0 + STEP, 0.0)],
    );
    vec![h_int, h_float, floats]
}

fn expected() -> Dump {
    let mut d = Dump::new();
    let hist = |c: u64| (c as f64, c as f64 * 0.5);
    let pts = |v: &[(f64, f64)]| -> Vec<Point> {
        v.iter()
            .enumerate()
            .map(|(i, &(c, s))| (T0 + i as i64 * STEP, c, s))
            .collect()
    };
    d.insert(
        r#"{__name__="h_float", job="a"}"#.into(),
        (
            vec!["FLOAT_HISTOGRAM"],
            pts(&[(1.5, 4.5), (2.5, 7.5), (4.0, 12.0)]),
        ),
    );
    d.insert(
        r#"{__name__="h_int", job="a"}"#.into(),
        (
            // The counter reset cuts a second chunk.
            vec!["HISTOGRAM", "HISTOGRAM"],
            pts(&[hist(4), hist(6), hist(9), hist(2), hist(3)]),
        ),
    );
    d.insert(
        r#"{__name__="up", job="a"}"#.into(),
        (
            vec!["XOR"],
            vec![(T0, 1.0, f64::NAN), (T0 + STEP, 0.0, f64::NAN)],
        ),
    );
    d
}

/// Compares dumps treating NaN as equal to NaN.
fn assert_dump_eq(got: &Dump, want: &Dump) {
    type Bits = Vec<(String, Vec<&'static str>, Vec<(i64, u64, u64)>)>;
    let norm = |d: &Dump| -> Bits {
        d.iter()
            .map(|(k, (kinds, pts))| {
                (
                    k.clone(),
                    kinds.clone(),
                    pts.iter()
                        .map(|&(t, a, b)| (t, a.to_bits(), b.to_bits()))
                        .collect(),
                )
            })
            .collect()
    };
    assert_eq!(norm(got), norm(want), "got {got:?}");
}

/// Everything the StoreAPI returns for `job="a"`, chunks decoded by their wire type.
fn store_dump(tsdb: &Arc<MultiTsdb>) -> Dump {
    let mut out = Dump::new();
    for s in store_series(tsdb, "job", "a") {
        let labels = thanos_model::Labels::from_pairs(
            s.labels.iter().map(|l| (l.name.clone(), l.value.clone())),
        );
        let (mut kinds, mut points) = (Vec::new(), Vec::new());
        for c in &s.chunks {
            let raw = c.raw.as_ref().expect("raw chunk");
            let kind = chunk::Encoding::try_from(raw.r#type).expect("known chunk type");
            kinds.push(kind.as_str_name());
            // StoreAPI chunk encodings are the TSDB values minus one.
            let encoding = u8::try_from(raw.r#type + 1).expect("chunk type");
            match decode_any(encoding, &raw.data).expect("decode") {
                SampleIterator::Float(it) => points.extend(it.map(|x| (x.t, x.v, f64::NAN))),
                SampleIterator::Histogram(it) => {
                    points.extend(it.map(|(t, h)| (t, h.count as f64, h.sum)));
                }
                SampleIterator::FloatHistogram(it) => {
                    points.extend(it.map(|(t, h)| (t, h.count, h.sum)));
                }
            }
        }
        out.insert(labels.to_string(), (kinds, points));
    }
    out
}

fn open(dir: &Path, registry: &Registry) -> Arc<MultiTsdb> {
    let storage = Storage {
        dir: dir.to_path_buf(),
        wal: WalOptions::default(),
    };
    let head = HeadOptions {
        chunk_range_ms: 2 * 3_600_000,
        ..HeadOptions::default()
    };
    let (tsdb, _) = MultiTsdb::open(head, storage, registry).expect("open");
    tsdb.set_block_labels(
        thanos_model::Labels::from_pairs([("replica", "r0")]),
        "tenant_id",
    );
    Arc::new(tsdb)
}

async fn post(client: &reqwest::Client, url: &str, series: Vec<pb1::TimeSeries>) -> (u16, String) {
    let resp = thanos_test_support::remote_write::request(client, url, series)
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// `promtool tsdb dump` lines as (labels, value text, t).
fn promtool_dump(db: &Path) -> Vec<(String, String, i64)> {
    let out = Command::new("/usr/bin/promtool")
        .args(["tsdb", "dump"])
        .arg(db)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let close = line.find("} ").expect("labels in dump line");
            let rest = &line[close + 2..];
            let (value, t) = rest.rsplit_once(' ').expect("value and time");
            (
                line[..=close].to_owned(),
                value.to_owned(),
                t.parse().expect("time"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_are_stored_replayed_served_and_cut_into_blocks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = reqwest::Client::new();
    {
        let registry = Registry::new();
        let tsdb = open(dir.path(), &registry);
        let server =
            TestServer::start_with(HandlerOptions::default(), Arc::clone(&tsdb), registry, true)
                .await;
        let (status, body) = post(&client, &server.url(), request()).await;
        assert_eq!(status, 200, "{body}");
        assert_dump_eq(&store_dump(&tsdb), &expected());

        // An older histogram is a conflict; the rest of the request is still written.
        let mut late = ts(&[("__name__", "h_int"), ("job", "a")], &[]);
        late.histograms = vec![int_histogram(T0 + STEP, 5, false)];
        let mut next = ts(&[("__name__", "h_float"), ("job", "a")], &[]);
        next.histograms = vec![float_histogram(T0 + 3 * STEP, 5.0)];
        let (status, body) = post(&client, &server.url(), vec![late, next]).await;
        assert_eq!(status, 409, "{body}");
        assert!(body.contains("out of order"), "{body}");
    }
    let mut want = expected();
    let f = want
        .get_mut(r#"{__name__="h_float", job="a"}"#)
        .expect("h_float");
    f.1.push((T0 + 3 * STEP, 5.0, 15.0));

    // Restart: the WAL replays every histogram into the same chunks.
    let registry = Registry::new();
    let tsdb = open(dir.path(), &registry);
    assert_dump_eq(&store_dump(&tsdb), &want);

    // Cut everything into a block: the StoreAPI serves it from there, promtool reads it.
    let flushed = tsdb.flush().expect("flush");
    assert_eq!(flushed.len(), 1, "{flushed:?}");
    let meta = &flushed[0].1;
    assert_eq!(meta.stats.num_samples, 11);
    assert_eq!(meta.stats.num_float_samples, 2);
    assert_dump_eq(&store_dump(&tsdb), &want);

    let tenant_dir = dir.path().join(HandlerOptions::default().default_tenant);
    // promtool 2.42's `tsdb dump` prints float samples only (it stops a series at its
    // first histogram); it must read the block and print the float series exactly.
    let dump = promtool_dump(&tenant_dir);
    let floats: Vec<(String, String, i64)> = vec![
        (r#"{__name__="up", job="a"}"#.into(), "1".into(), T0),
        (r#"{__name__="up", job="a"}"#.into(), "0".into(), T0 + STEP),
    ];
    assert_eq!(dump, floats);

    // Prometheus 2.42 itself reads the histogram chunks of the block.
    let prom_dir = tempfile::tempdir().expect("tempdir");
    let block = &flushed[0].1.ulid.to_string();
    copy(
        &tenant_dir.join(block),
        &prom_dir.path().join("prometheus-data").join(block),
    );
    let port = free_port();
    let mut prometheus =
        Prometheus::start(prom_dir.path(), port, "global:\n  scrape_interval: 1h\n");
    prometheus.wait_ready(Duration::from_secs(30)).await;
    let range = |query: &str, steps: i64| {
        let url = format!(
            "{}/api/v1/query_range?query={query}&start={}&end={}&step=15",
            prometheus.url(),
            T0 / 1000,
            (T0 + steps * STEP) / 1000
        );
        let client = client.clone();
        async move {
            let text = client
                .get(url)
                .send()
                .await
                .expect("query")
                .text()
                .await
                .expect("body");
            let body: serde_json::Value = serde_json::from_str(&text).expect("json");
            body["data"]["result"][0]["values"]
                .as_array()
                .unwrap_or_else(|| panic!("no values: {body}"))
                .iter()
                .map(|v| {
                    let t = (v[0].as_f64().expect("time") * 1000.0).round() as i64;
                    let x: f64 = v[1].as_str().expect("value").parse().expect("number");
                    (t, x)
                })
                .collect::<Vec<(i64, f64)>>()
        }
    };
    let points = |name: &str, f: fn(&Point) -> f64| -> Vec<(i64, f64)> {
        want[name].1.iter().map(|p| (p.0, f(p))).collect()
    };
    assert_eq!(
        range("histogram_count(h_int)", 4).await,
        points(r#"{__name__="h_int", job="a"}"#, |p| p.1)
    );
    assert_eq!(
        range("histogram_sum(h_float)", 3).await,
        points(r#"{__name__="h_float", job="a"}"#, |p| p.2)
    );
    prometheus.assert_running();
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_histograms_are_counted_in_the_written_headers() {
    use thanos_proto::io::prometheus::write::v2 as pb2;
    let server = TestServer::start(HandlerOptions::default(), HeadOptions::default(), true).await;
    let client = reqwest::Client::new();
    let now = common::now_ms();
    let hist = |t: i64, count: u64| pb2::Histogram {
        count: Some(pb2::histogram::Count::CountInt(count)),
        zero_count: Some(pb2::histogram::ZeroCount::ZeroCountInt(count)),
        sum: 1.0,
        zero_threshold: 0.01,
        timestamp: t,
        ..Default::default()
    };
    let request = |histograms: Vec<pb2::Histogram>, samples: Vec<pb2::Sample>| pb2::Request {
        symbols: vec!["".into(), "__name__".into(), "h".into(), "f".into()],
        timeseries: vec![
            pb2::TimeSeries {
                labels_refs: vec![1, 2],
                histograms,
                ..Default::default()
            },
            pb2::TimeSeries {
                labels_refs: vec![1, 3],
                samples,
                ..Default::default()
            },
        ],
    };
    let send = |req: pb2::Request| {
        let client = client.clone();
        let url = server.url();
        async move {
            let resp = client
                .post(url)
                .header("Content-Type", thanos_proto::remote_write::CONTENT_TYPE_V2)
                .header("Content-Encoding", "snappy")
                .body(
                    thanos_proto::remote_write::encode(&req)
                        .expect("encode")
                        .to_vec(),
                )
                .send()
                .await
                .expect("post");
            let header = |name: &str| -> u64 {
                resp.headers()[name]
                    .to_str()
                    .expect("ascii")
                    .parse()
                    .expect("number")
            };
            let written = (
                header("X-Prometheus-Remote-Write-Samples-Written"),
                header("X-Prometheus-Remote-Write-Histograms-Written"),
            );
            (resp.status().as_u16(), written)
        }
    };
    let sample = |t: i64| pb2::Sample {
        value: 1.0,
        timestamp: t,
        ..Default::default()
    };
    let ok = request(vec![hist(now, 1), hist(now + 1, 2)], vec![sample(now)]);
    assert_eq!(send(ok).await, (200, (1, 2)));
    let late = request(vec![hist(now - 1, 3)], vec![sample(now + 1)]);
    assert_eq!(send(late).await, (409, (1, 0)));
    let appended = |kind: &str| -> f64 {
        server
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "prometheus_tsdb_head_samples_appended_total")
            .flat_map(|f| f.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "type" && l.value() == kind)
            })
            .map(|m| m.get_counter().get_value())
            .sum()
    };
    assert_eq!((appended("float"), appended("histogram")), (2.0, 2.0));
    let head = server.tsdb.get("default-tenant").expect("tenant");
    let h = head.select(
        &[thanos_model::Matcher::equal("__name__", "h")],
        i64::MIN,
        i64::MAX,
    );
    let counts: Vec<u64> = match h[0].chunks[0].decode().expect("chunk") {
        SampleIterator::Histogram(it) => it.map(|(_, h)| h.count).collect(),
        _ => panic!("integer histogram chunk expected"),
    };
    assert_eq!(counts, vec![1, 2]);
}
