//! System test: `thanos receive` and `thanos query --endpoint=<receive gRPC>` as real
//! processes; samples remote-written to the receiver come back through the querier's
//! `/api/v1/query` with the tenant's external labels.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use thanos_proto::prometheus as pb;

const THANOS: &str = env!("CARGO_BIN_EXE_thanos");

struct KillOnDrop(Child, &'static str);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl KillOnDrop {
    fn spawn(name: &'static str, args: &[String], log: &Path) -> Self {
        let log_file = std::fs::File::create(log).expect("log");
        let child = Command::new(THANOS)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start thanos");
        KillOnDrop(child, name)
    }

    fn assert_running(&mut self, log: &Path) {
        if let Some(status) = self.0.try_wait().expect("poll") {
            panic!(
                "{} exited with {status}: {}",
                self.1,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn series(name: &str, job: &str, samples: &[(i64, f64)]) -> pb::TimeSeries {
    pb::TimeSeries {
        labels: vec![
            pb::Label {
                name: "__name__".into(),
                value: name.into(),
            },
            pb::Label {
                name: "job".into(),
                value: job.into(),
            },
        ],
        samples: samples
            .iter()
            .map(|&(timestamp, value)| pb::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_samples_are_queryable_through_query() {
    let work = tempfile::tempdir().expect("tempdir");
    let (recv_http, recv_rw, recv_grpc) = (free_port(), free_port(), free_port());
    let (query_http, query_grpc) = (free_port(), free_port());
    let recv_log = work.path().join("receive.log");
    let query_log = work.path().join("query.log");
    let mut receive = KillOnDrop::spawn(
        "receive",
        &[
            "receive".to_owned(),
            "--label=replica=\"r0\"".to_owned(),
            "--label=site=\"eu\"".to_owned(),
            format!("--tsdb.path={}", work.path().join("tsdb").display()),
            format!("--http-address=127.0.0.1:{recv_http}"),
            format!("--remote-write.address=127.0.0.1:{recv_rw}"),
            format!("--grpc-address=127.0.0.1:{recv_grpc}"),
        ],
        &recv_log,
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        receive.assert_running(&recv_log);
        let ready = client
            .get(format!("http://127.0.0.1:{recv_http}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "receive not ready after 30s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let t0 = now - 60_000;
    let body = thanos_proto::remote_write::encode(&pb::WriteRequest {
        timeseries: vec![
            series("rw_metric", "api", &[(t0, 1.0), (t0 + 15_000, 2.0)]),
            series("rw_metric", "db", &[(t0, 10.0), (t0 + 15_000, 20.0)]),
        ],
        metadata: vec![],
    })
    .expect("encode");
    let resp = client
        .post(format!("http://127.0.0.1:{recv_rw}/api/v1/receive"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("THANOS-TENANT", "team-a")
        .body(body.to_vec())
        .send()
        .await
        .expect("remote write");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    let mut query = KillOnDrop::spawn(
        "query",
        &[
            "query".to_owned(),
            format!("--endpoint=127.0.0.1:{recv_grpc}"),
            "--query.replica-label=replica".to_owned(),
            format!("--http-address=127.0.0.1:{query_http}"),
            format!("--grpc-address=127.0.0.1:{query_grpc}"),
        ],
        &query_log,
    );
    let eval = (t0 + 15_000) as f64 / 1000.0;
    let url = format!(
        "http://127.0.0.1:{query_http}/api/v1/query?query=rw_metric%7Btenant_id%3D%22team-a%22%7D&time={eval}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        query.assert_running(&query_log);
        receive.assert_running(&recv_log);
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
            let result = v["data"]["result"].clone();
            if result.as_array().is_some_and(|a| !a.is_empty()) {
                break result;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no result from query after 30s; query log: {}",
            std::fs::read_to_string(&query_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut got: Vec<(String, String, String, Option<String>, String)> = result
        .as_array()
        .expect("vector")
        .iter()
        .map(|s| {
            let m = &s["metric"];
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (
                text("job"),
                text("site"),
                text("tenant_id"),
                m["replica"].as_str().map(str::to_owned),
                s["value"][1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("api".into(), "eu".into(), "team-a".into(), None, "2".into()),
            ("db".into(), "eu".into(), "team-a".into(), None, "20".into()),
        ],
        "{result}"
    );

    // Another tenant selects nothing.
    let other = format!(
        "http://127.0.0.1:{query_http}/api/v1/query?query=rw_metric%7Btenant_id%3D%22team-b%22%7D&time={eval}"
    );
    let body = client
        .get(&other)
        .send()
        .await
        .expect("query")
        .text()
        .await
        .expect("body");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["data"]["result"], serde_json::json!([]), "{v}");
}
