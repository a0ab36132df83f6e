//! Whole-system test with real processes: blocks written by `promtool` into a filesystem
//! bucket, served by `thanos store`, queried through `thanos query` with `promtool query`,
//! then both processes stopped with SIGTERM. Once over a FILESYSTEM bucket, once over the
//! in-process S3 test server.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use thanos_test_support::process::{Process, free_port, http_get, wait_for};
use thanos_test_support::{S3TestServer, S3TestServerOptions};

const THANOS: &str = env!("CARGO_BIN_EXE_thanos");
/// 2023-11-14T22:00:00Z, aligned to the 2h block range.
const BASE: i64 = 1_699_999_200;
const STEP: i64 = 15;
const SAMPLES: i64 = 20;
const ROUTE_PREFIX: &str = "/thanos";

/// The OpenMetrics input: two gauges, one sample every 15 s.
fn input_value(instance: &str, i: i64) -> f64 {
    let i = i as f64;
    match instance {
        "i1" => i * 1.5,
        _ => 100.0 - i,
    }
}

fn openmetrics() -> String {
    let mut text = String::from("# HELP sys_metric A test gauge.\n# TYPE sys_metric gauge\n");
    for instance in ["i1", "i2"] {
        for i in 0..SAMPLES {
            text.push_str(&format!(
                "sys_metric{{job=\"sys\",instance=\"{instance}\"}} {} {}\n",
                input_value(instance, i),
                BASE + i * STEP
            ));
        }
    }
    text.push_str("# EOF\n");
    text
}

/// Starts `thanos <args>` logging to `log`.
fn spawn(name: &str, args: &[String], log: &Path) -> Process {
    Process::spawn(name, THANOS, args, log)
}

/// Sends SIGTERM and returns the exit code and how long the process took to exit (at most
/// 5 s).
fn stop(process: &mut Process) -> (Option<i32>, Duration) {
    let started = Instant::now();
    let status = process.terminate(Duration::from_secs(5));
    (status.code(), started.elapsed())
}

fn promtool(args: &[&str]) -> Value {
    let output = Command::new("promtool")
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("promtool is required (Debian package prometheus): {err}"));
    assert!(
        output.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "promtool {args:?} output is not JSON ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Writes one block with promtool and puts two copies in `bucket`: the original with
/// `replica="a"` and one under another ULID with `replica="b"`.
fn make_bucket(work: &Path, bucket: &Path) {
    let input = work.join("input.om");
    std::fs::write(&input, openmetrics()).unwrap();
    let out = work.join("promtool-out");
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(&out)
        .output()
        .unwrap_or_else(|err| panic!("promtool is required (Debian package prometheus): {err}"));
    assert!(
        output.status.success(),
        "promtool create-blocks-from: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let blocks: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("meta.json").exists())
        .collect();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    let original = blocks[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert_eq!(original.len(), 26, "{original}");
    let last = if original.ends_with('0') { "1" } else { "0" };
    let copy = format!("{}{last}", &original[..25]);
    for (ulid, replica) in [(&original, "a"), (&copy, "b")] {
        let dir = bucket.join(ulid);
        std::fs::create_dir_all(dir.join("chunks")).unwrap();
        for file in ["index", "tombstones", "chunks/000001"] {
            std::fs::copy(blocks[0].join(file), dir.join(file)).unwrap();
        }
        let mut meta: Value =
            serde_json::from_slice(&std::fs::read(blocks[0].join("meta.json")).unwrap()).unwrap();
        meta["ulid"] = Value::from(ulid.as_str());
        meta["thanos"] = serde_json::json!({
            "labels": {"replica": replica},
            "downsample": {"resolution": 0},
            "source": "promtool",
        });
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    }
}

fn instance_of(series: &Value) -> String {
    series["instance"].as_str().unwrap().to_owned()
}

fn number(value: &Value) -> f64 {
    value.as_str().unwrap().parse().unwrap()
}

#[test]
fn store_and_query_serve_promtool_blocks_deduplicated() {
    let work = tempfile::tempdir().unwrap();
    let bucket = work.path().join("bucket");
    make_bucket(work.path(), &bucket);
    let objstore = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        bucket.display()
    );
    run_store_and_query(work.path(), &objstore);
}

#[test]
fn store_reads_the_same_blocks_from_s3() {
    let work = tempfile::tempdir().unwrap();
    let s3_data = work.path().join("s3");
    make_bucket(work.path(), &s3_data.join("blocks"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(S3TestServer::start_with(S3TestServerOptions {
            data_dir: Some(s3_data),
            ..S3TestServerOptions::default()
        }))
        .unwrap();
    run_store_and_query(work.path(), &server.objstore_yaml("blocks"));
    drop(server);
}

/// Starts `thanos store` over `objstore` (holding the blocks of [`make_bucket`]) and
/// `thanos query` in front of it, checks every query path against the input, then stops
/// both with SIGTERM.
fn run_store_and_query(work: &Path, objstore: &str) {
    let started = Instant::now();
    let (store_http, store_grpc) = (free_port(), free_port());
    let (query_http, query_grpc) = (free_port(), free_port());
    let mut store = spawn(
        "store",
        &[
            "store".to_owned(),
            format!("--objstore.config={objstore}"),
            format!("--data-dir={}", work.join("data").display()),
            format!("--http-address=127.0.0.1:{store_http}"),
            format!("--grpc-address=127.0.0.1:{store_grpc}"),
        ],
        &work.join("store.log"),
    );
    let store_ready = wait_for("store /-/ready", Duration::from_secs(15), || {
        store.assert_running();
        http_get(store_http, "/-/ready").is_some_and(|r| r.status == 200)
    });
    let healthy = http_get(store_http, "/-/healthy").unwrap();
    assert_eq!(healthy.status, 200);
    let metrics = http_get(store_http, "/metrics").unwrap();
    assert!(
        metrics.body.contains("thanos_blocks_meta_synced"),
        "store /metrics lacks the sync metrics"
    );

    let mut query = spawn(
        "query",
        &[
            "query".to_owned(),
            format!("--endpoint=127.0.0.1:{store_grpc}"),
            "--query.replica-label=replica".to_owned(),
            format!("--web.route-prefix={ROUTE_PREFIX}"),
            format!("--http-address=127.0.0.1:{query_http}"),
            format!("--grpc-address=127.0.0.1:{query_grpc}"),
        ],
        &work.join("query.log"),
    );
    let stores_path = format!("{ROUTE_PREFIX}/api/v1/stores");
    let store_healthy = wait_for("store listed healthy", Duration::from_secs(15), || {
        query.assert_running();
        let Some(resp) = http_get(query_http, &stores_path).filter(|r| r.status == 200) else {
            return false;
        };
        let stores: Value = serde_json::from_str(&resp.body).unwrap();
        stores["data"]["store"].as_array().is_some_and(|list| {
            list.iter().any(|entry| {
                entry["name"] == format!("127.0.0.1:{store_grpc}") && entry["lastError"].is_null()
            })
        })
    });
    let ready = http_get(query_http, "/-/ready").unwrap();
    assert_eq!(ready.status, 200, "query /-/ready");

    let server = format!("http://127.0.0.1:{query_http}{ROUTE_PREFIX}");
    let last = BASE + (SAMPLES - 1) * STEP;

    // Instant query: the latest sample of each series, replica label removed.
    let instant = promtool(&[
        "query",
        "instant",
        "-o",
        "json",
        &format!("--time={last}"),
        &server,
        "sys_metric",
    ]);
    let mut vector: Vec<&Value> = instant.as_array().unwrap().iter().collect();
    vector.sort_by_key(|sample| instance_of(&sample["metric"]));
    assert_eq!(vector.len(), 2, "{instant}");
    for (sample, instance) in vector.iter().zip(["i1", "i2"]) {
        assert_eq!(
            sample["metric"],
            serde_json::json!({"__name__": "sys_metric", "job": "sys", "instance": instance})
        );
        assert_eq!(sample["value"][0].as_f64(), Some(last as f64));
        assert_eq!(
            number(&sample["value"][1]),
            input_value(instance, SAMPLES - 1)
        );
    }

    // Range query stepping exactly on the samples: every input point, once.
    let range = promtool(&[
        "query",
        "range",
        "-o",
        "json",
        &format!("--start={BASE}"),
        &format!("--end={last}"),
        &format!("--step={STEP}s"),
        &server,
        "sys_metric",
    ]);
    let mut matrix: Vec<&Value> = range.as_array().unwrap().iter().collect();
    matrix.sort_by_key(|series| instance_of(&series["metric"]));
    assert_eq!(matrix.len(), 2, "{range}");
    for (series, instance) in matrix.iter().zip(["i1", "i2"]) {
        assert!(series["metric"].get("replica").is_none(), "{series}");
        let points = series["values"].as_array().unwrap();
        assert_eq!(points.len(), SAMPLES as usize, "{series}");
        for (i, point) in points.iter().enumerate() {
            let i = i as i64;
            assert_eq!(point[0].as_f64(), Some((BASE + i * STEP) as f64));
            assert_eq!(
                number(&point[1]),
                input_value(instance, i),
                "{instance} #{i}"
            );
        }
    }

    // Series and label values, deduplicated.
    let window = [
        format!("--start={}", BASE - 60),
        format!("--end={}", last + 60),
    ];
    let series = promtool(&[
        "query",
        "series",
        "-o",
        "json",
        "--match=sys_metric",
        &window[0],
        &window[1],
        &server,
    ]);
    let mut instances: Vec<String> = series.as_array().unwrap().iter().map(instance_of).collect();
    instances.sort();
    assert_eq!(instances, ["i1", "i2"], "{series}");
    let labels = promtool(&[
        "query", "labels", "-o", "json", &window[0], &window[1], &server, "instance",
    ]);
    assert_eq!(labels, serde_json::json!(["i1", "i2"]));
    let replicas = promtool(&[
        "query", "labels", "-o", "json", &window[0], &window[1], &server, "replica",
    ]);
    assert_eq!(replicas, serde_json::json!([]), "replica label not removed");

    // Without deduplication both replicas are visible.
    let resp = http_get(
        query_http,
        &format!("{ROUTE_PREFIX}/api/v1/query?query=sys_metric&time={last}&dedup=false"),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body);
    let raw: Value = serde_json::from_str(&resp.body).unwrap();
    let mut seen: Vec<(String, String)> = raw["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| {
            (
                instance_of(&sample["metric"]),
                sample["metric"]["replica"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("i1", "a"), ("i1", "b"), ("i2", "a"), ("i2", "b")]
            .map(|(i, r)| (i.to_owned(), r.to_owned()))
    );

    let (query_code, query_exit) = stop(&mut query);
    let (store_code, store_exit) = stop(&mut store);
    assert_eq!(query_code, Some(0), "query: {}", query.log());
    assert_eq!(store_code, Some(0), "store: {}", store.log());
    let store_text = store.log();
    assert!(store_text.contains("shutdown complete"), "{store_text}");
    eprintln!(
        "store ready after {store_ready:?}, store healthy in query after {store_healthy:?}, \
         query exit {query_exit:?}, store exit {store_exit:?}, total {:?}",
        started.elapsed()
    );
}
