//! `thanos query` as a process: the web UI under `--web.route-prefix` with links using
//! `--web.external-prefix`, and an endpoint added through `--endpoint.sd-config-file`
//! while the querier runs (a second querier serves as the StoreAPI endpoint).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const THANOS: &str = env!("CARGO_BIN_EXE_thanos");

/// A `thanos` process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Err(err) = self.0.kill() {
            eprintln!("kill thanos: {err}");
        }
        if let Err(err) = self.0.wait() {
            eprintln!("wait thanos: {err}");
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(args: &[String], log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(THANOS)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn thanos"),
    )
}

/// A minimal HTTP/1.0 GET: (status, headers, body).
fn get(port: u16, path: &str) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((status, head.to_ascii_lowercase(), body.to_owned()))
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stores(port: u16) -> Value {
    get(port, "/q/api/v1/stores")
        .and_then(|(_, _, body)| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null)
}

#[test]
fn ui_under_prefixes_and_endpoints_from_the_sd_file() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("endpoints.yaml");
    std::fs::write(&sd, "endpoints: []\n").unwrap();

    // The endpoint: another querier (it serves the StoreAPI and Info over gRPC).
    let (inner_http, inner_grpc) = (free_port(), free_port());
    let _inner = spawn(
        &[
            "query".into(),
            format!("--http-address=127.0.0.1:{inner_http}"),
            format!("--grpc-address=127.0.0.1:{inner_grpc}"),
        ],
        &dir.path().join("inner.log"),
    );
    let (http, grpc) = (free_port(), free_port());
    let log = dir.path().join("outer.log");
    let _outer = spawn(
        &[
            "query".into(),
            format!("--http-address=127.0.0.1:{http}"),
            format!("--grpc-address=127.0.0.1:{grpc}"),
            "--web.route-prefix=/q".into(),
            "--web.external-prefix=/ext".into(),
            format!("--endpoint.sd-config-file={}", sd.display()),
            "--endpoint.info-timeout=500ms".into(),
        ],
        &log,
    );
    wait_for("the querier's HTTP server", || {
        get(http, "/-/ready").is_some_and(|(s, _, _)| s == 200)
    });

    // UI: served under the route prefix, links and redirects use the external prefix.
    for path in ["/", "/q", "/q/"] {
        let (status, head, _) = get(http, path).unwrap();
        assert_eq!(status, 302, "{path}");
        assert!(head.contains("\r\nlocation: /ext/graph"), "{path}: {head}");
    }
    for page in ["/q/graph", "/q/stores"] {
        let (status, _, body) = get(http, page).unwrap();
        assert_eq!(status, 200, "{page}");
        assert!(body.contains("data-prefix=\"/ext\""), "{body}");
        assert!(body.contains("src=\"/ext/static/app.js\""), "{body}");
    }
    let (status, head, js) = get(http, "/q/static/app.js").unwrap();
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(js.contains("/api/v1/query_range"));
    let (status, _, body) = get(http, "/q/api/v1/query_exemplars?query=up").unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"status":"success","data":[]}"#);

    // The SD file gains the endpoint: it is discovered without a restart.
    assert_eq!(stores(http)["data"], serde_json::json!({}));
    std::fs::write(
        &sd,
        format!("endpoints:\n  - address: 127.0.0.1:{inner_grpc}\n"),
    )
    .unwrap();
    wait_for("the endpoint from the SD file to be healthy", || {
        let s = stores(http);
        s["data"]["query"][0]["name"] == format!("127.0.0.1:{inner_grpc}")
            && s["data"]["query"][0]["lastError"].is_null()
    });
    // And removed again.
    std::fs::write(&sd, "endpoints: []\n").unwrap();
    wait_for("the endpoint to be removed", || {
        stores(http)["data"] == serde_json::json!({})
    });
}
