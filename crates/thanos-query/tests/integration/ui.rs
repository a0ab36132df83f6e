//! The web UI in a real browser: headless Chromium (Debian's `chromium` package) driven
//! over the DevTools protocol types a query, presses Enter and reads the rendered table,
//! switches to the graph view, toggles deduplication and opens the stores page. The
//! querier runs in-process under a route prefix over two fake StoreAPI replicas.
//!
//! Chromium is required: the test fails (it is never skipped) when no browser is found.
//! `THANOS_TEST_CHROMIUM` overrides the binary.

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{FakeStore, samples};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use thanos_model::Labels;
use thanos_query::{Querier, QuerierOptions};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const PREFIX: &str = "/thanos";
const VALUE: f64 = 42.0;

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Two replicas of `up{job="api",instance="x"}` = 42 around now, and the querier serving
/// API + UI under [`PREFIX`].
struct Setup {
    http: SocketAddr,
    stores: Vec<SocketAddr>,
    _stops: Vec<CancellationToken>,
}

async fn setup() -> Setup {
    let now = now_ms();
    let data = samples(now - 2 * 3_600_000, now + 600_000, 15_000, |_| VALUE);
    let series = Labels::from_pairs([("__name__", "up"), ("job", "api"), ("instance", "x")]);
    let mut stores = Vec::new();
    let mut stops = Vec::new();
    for replica in ["a", "b"] {
        let (addr, stop) =
            FakeStore::new(Labels::from_pairs([("region", "eu"), ("replica", replica)]))
                .with_series(series.clone(), data.clone())
                .serve()
                .await;
        stores.push(addr);
        stops.push(stop);
    }
    let options = QuerierOptions {
        endpoints: stores.iter().map(ToString::to_string).collect(),
        replica_labels: vec!["replica".into()],
        ..QuerierOptions::default()
    };
    let querier = Arc::new(Querier::new(options, &prometheus::Registry::new()).unwrap());
    querier.endpoints().update().await;
    let app = thanos_query::ui::nest_under(PREFIX, PREFIX, querier.router_with_ui(PREFIX));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(s.cancelled_owned())
            .await
            .unwrap();
    });
    stops.push(stop);
    Setup {
        http,
        stores,
        _stops: stops,
    }
}

fn find_chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("THANOS_TEST_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no Chromium found in PATH (install Debian's `chromium` package or set \
         THANOS_TEST_CHROMIUM); the UI test cannot run without a browser"
    );
}

/// A headless browser and a DevTools connection to its first page.
struct Browser {
    child: Child,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn launch() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(find_chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1200,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let browser_ws = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(at) = line.find("ws://") {
                    return line[at..].trim().to_owned();
                }
                seen.push(line);
            }
            panic!("chromium exited before listening: {seen:?}");
        })
        .await
        .expect("chromium did not announce its DevTools endpoint within 60s");
        // Keep draining stderr so the browser never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let host = browser_ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let targets = reqwest::get(format!("http://{host}/json/list"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let targets: Value = serde_json::from_str(&targets).unwrap();
        let page_ws = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target: {targets}"))
            .to_owned();
        let (ws, _) = tokio_tungstenite::connect_async(page_ws.as_str())
            .await
            .expect("connect to the DevTools page");
        let mut browser = Self {
            child,
            ws,
            next_id: 0,
            _profile: profile,
        };
        browser.call("Page.enable", json!({})).await;
        browser.call("Runtime.enable", json!({})).await;
        browser
    }

    /// Sends one DevTools command and returns its result (events are skipped).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let frame = self.ws.next().await.expect("devtools closed").unwrap();
                let Message::Text(text) = frame else { continue };
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if value["id"] == id {
                    return value;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{method}: no answer within 30s"));
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Evaluates JavaScript in the page and returns its JSON value (`null` on exception).
    async fn eval(&mut self, expression: &str) -> Value {
        let wrapped = format!(
            "(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
        );
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": wrapped, "returnByValue": true}),
            )
            .await;
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy; returns its value.
    async fn wait_for(&mut self, expression: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let value = self.eval(expression).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
            };
            if truthy {
                return value;
            }
            let page = self.eval("document.body && document.body.innerText").await;
            assert!(
                Instant::now() < deadline,
                "timed out waiting for `{expression}`; page text: {page}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }

    /// Replaces the expression by typing `text` and presses Enter; waits for the answer.
    async fn type_query(&mut self, text: &str) {
        self.eval("(document.getElementById('expr').focus(), document.getElementById('expr').select(), document.getElementById('status').textContent = '', true)")
            .await;
        self.call("Input.insertText", json!({"text": text})).await;
        for kind in ["keyDown", "keyUp"] {
            let mut params = json!({
                "type": kind, "key": "Enter", "code": "Enter",
                "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13,
            });
            if kind == "keyDown" {
                params["text"] = json!("\r");
            }
            self.call("Input.dispatchKeyEvent", params).await;
        }
        self.wait_query_done().await;
    }

    async fn wait_query_done(&mut self) {
        self.wait_for(
            "document.getElementById('status').textContent.startsWith('Load time') \
             || !document.getElementById('error').hidden",
        )
        .await;
    }

    /// Clicks an element by id (a DOM click, as a user's click dispatches).
    async fn click(&mut self, id: &str) {
        self.eval(&format!(
            "(document.getElementById('status').textContent = '', document.getElementById('{id}').click(), true)"
        ))
        .await;
    }

    async fn table_rows(&mut self) -> Vec<(String, String)> {
        let rows = self
            .eval(
                "Array.from(document.querySelectorAll('#result-table tbody tr.result'))\
                 .map(r => [r.cells[0].textContent, r.cells[1].textContent])",
            )
            .await;
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[0].as_str().unwrap().to_owned(),
                    r[1].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Err(err) = self.child.start_kill() {
            eprintln!("stopping chromium: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_runs_queries_draws_graphs_and_lists_stores() {
    let setup = setup().await;
    let base = format!("http://{}", setup.http);
    let mut browser = Browser::launch().await;

    // The prefix root redirects to the graph page.
    browser.navigate(&format!("{base}{PREFIX}/")).await;
    let path = browser
        .wait_for("document.documentElement.dataset.ready && location.pathname")
        .await;
    assert_eq!(path, format!("{PREFIX}/graph"));

    // Type a query and press Enter: the table shows the deduplicated series.
    browser.type_query("up").await;
    let error = browser
        .eval("document.getElementById('error').textContent")
        .await;
    assert_eq!(error, "", "query failed");
    let rows = browser.table_rows().await;
    assert_eq!(
        rows,
        [(
            "up{instance=\"x\", job=\"api\", region=\"eu\"}".to_owned(),
            "42".to_owned()
        )]
    );

    // Without deduplication both replicas are listed.
    browser.click("dedup").await;
    browser.click("execute").await;
    browser.wait_query_done().await;
    let rows = browser.table_rows().await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].0.contains("replica=\"a\""), "{rows:?}");
    assert!(rows[1].0.contains("replica=\"b\""), "{rows:?}");
    let url = browser.eval("location.search").await;
    assert!(
        url.as_str().unwrap().contains("dedup=0"),
        "state kept in the URL: {url}"
    );

    // Graph view: a range query drawn as SVG paths, one per series.
    browser.click("tab-graph").await;
    browser.wait_query_done().await;
    let paths = browser
        .wait_for(
            "Array.from(document.querySelectorAll('#chart svg path.series')).map(p => p.getAttribute('d'))",
        )
        .await;
    let paths = paths.as_array().unwrap();
    assert_eq!(paths.len(), 2, "{paths:?}");
    let d = paths[0].as_str().unwrap();
    assert!(d.starts_with('M'), "{d}");
    assert!(d.matches('L').count() >= 100, "a line over the hour: {d}");
    let legend = browser
        .eval("document.getElementById('legend').textContent")
        .await;
    assert!(
        legend.as_str().unwrap().contains("replica=\"b\""),
        "{legend}"
    );

    // A bad expression shows the API's error.
    browser.click("tab-table").await;
    browser.wait_query_done().await;
    browser.type_query("up{").await;
    let error = browser
        .wait_for("!document.getElementById('error').hidden && document.getElementById('error').textContent")
        .await;
    let error = error.as_str().unwrap();
    assert!(error.starts_with("bad_data:"), "{error}");
    assert!(error.contains("parse error"), "{error}");

    // A linked view runs its expression on load.
    browser
        .navigate(&format!(
            "{base}{PREFIX}/graph?expr=sum(up)&tab=table&dedup=1"
        ))
        .await;
    browser
        .wait_for("document.querySelectorAll('#result-table tbody tr.result').length")
        .await;
    assert_eq!(
        browser.table_rows().await,
        [("{}".to_owned(), "42".to_owned())]
    );

    // The stores page lists both endpoints, healthy, with their label sets.
    browser.navigate(&format!("{base}{PREFIX}/stores")).await;
    let stores = browser
        .wait_for(
            "document.querySelectorAll('#stores tr.store').length === 2 && \
             Array.from(document.querySelectorAll('#stores tr.store'))\
             .map(r => Array.from(r.cells).map(c => c.textContent))",
        )
        .await;
    let stores = stores.as_array().unwrap();
    let mut listed: Vec<&str> = stores.iter().map(|r| r[0].as_str().unwrap()).collect();
    listed.sort_unstable();
    let mut expected: Vec<String> = setup.stores.iter().map(ToString::to_string).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    for row in stores {
        let at = setup
            .stores
            .iter()
            .position(|a| row[0] == a.to_string())
            .unwrap();
        let replica = ["a", "b"][at];
        assert_eq!(row[1], "UP", "{row}");
        assert_eq!(
            row[2],
            format!("{{region=\"eu\", replica=\"{replica}\"}}"),
            "{row}"
        );
        assert!(row[3].as_str().unwrap().ends_with('Z'), "min time: {row}");
    }
    let heading = browser
        .eval("document.querySelector('#stores h2').textContent")
        .await;
    assert_eq!(heading, "store");
}

#[tokio::test]
async fn ui_is_served_under_the_prefix_without_external_assets() {
    let setup = setup().await;
    let base = format!("http://{}", setup.http);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(format!("{base}{PREFIX}/")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], format!("{PREFIX}/graph"));
    for path in ["/", PREFIX] {
        let resp = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 302, "{path}");
        assert_eq!(resp.headers()["location"], format!("{PREFIX}/graph"));
    }

    for (path, content_type) in [
        ("/graph", "text/html; charset=utf-8"),
        ("/stores", "text/html; charset=utf-8"),
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/app.css", "text/css; charset=utf-8"),
    ] {
        let resp = client
            .get(format!("{base}{PREFIX}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], content_type, "{path}");
        let body = resp.text().await.unwrap();
        if path == "/graph" {
            assert!(
                body.contains(&format!("src=\"{PREFIX}/static/app.js\"")),
                "{body}"
            );
            assert!(
                body.contains(&format!("data-prefix=\"{PREFIX}\"")),
                "{body}"
            );
        }
    }
    // Nothing is served outside the prefix.
    let resp = client.get(format!("{base}/graph")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}
