//! HTTP server: metrics, probes, web-config TLS / mTLS / basic auth, graceful shutdown.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use prometheus::Registry;
use thanos_server::{HttpServer, HttpServerOptions, Prober, WebConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    addr: SocketAddr,
    prober: Prober,
    token: CancellationToken,
    handle: JoinHandle<thanos_server::Result<()>>,
}

async fn start(web_config: WebConfig, routes: Router) -> Running {
    let registry = Registry::new();
    let prober = Prober::new("store", &registry).unwrap();
    let options = HttpServerOptions {
        name: "http",
        address: "127.0.0.1:0".to_owned(),
        grace_period: Duration::from_secs(5),
        web_config,
    };
    let server = HttpServer::bind(options, prober.clone(), registry, routes)
        .await
        .unwrap();
    let addr = server.local_addr();
    let token = CancellationToken::new();
    let handle = tokio::spawn(server.run(token.clone()));
    Running {
        addr,
        prober,
        token,
        handle,
    }
}

fn web_config(yaml: &str, dir: &std::path::Path) -> WebConfig {
    let path = dir.join("web.yml");
    std::fs::write(&path, yaml).unwrap();
    WebConfig::from_file(&path).unwrap()
}

async fn status_and_body(response: reqwest::Response) -> (u16, String) {
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_and_probes() {
    let routes = Router::new().route("/api/v1/hello", get(|| async { "hello" }));
    let server = start(WebConfig::default(), routes).await;
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();

    let get = |path: &str| client.get(format!("{base}{path}")).send();
    assert_eq!(
        status_and_body(get("/-/healthy").await.unwrap()).await,
        (503, "NOT OK".into())
    );
    assert_eq!(
        status_and_body(get("/-/ready").await.unwrap()).await,
        (503, "NOT OK".into())
    );

    let metrics = get("/metrics").await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"thanos_status{check="ready",component="store"} 0"#),
        "{text}"
    );
    assert!(text.contains("process_start_time_seconds"), "{text}");

    server.prober.healthy();
    assert_eq!(
        status_and_body(get("/-/healthy").await.unwrap()).await,
        (200, "OK".into())
    );
    assert_eq!(get("/-/ready").await.unwrap().status(), 503);
    server.prober.ready();
    assert_eq!(
        status_and_body(get("/-/ready").await.unwrap()).await,
        (200, "OK".into())
    );
    let text = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        text.contains(r#"thanos_status{check="ready",component="store"} 1"#),
        "{text}"
    );

    assert_eq!(
        status_and_body(get("/api/v1/hello").await.unwrap()).await,
        (200, "hello".into())
    );
    assert_eq!(get("/nope").await.unwrap().status(), 404);

    server.token.cancel();
    server.handle.await.unwrap().unwrap();
    assert!(
        client
            .get(format!("{base}/-/healthy"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn tls_from_web_config() {
    let pki = common::pki();
    let yaml = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let server = start(web_config(&yaml, pki.dir.path()), Router::new()).await;
    server.prober.healthy();

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = trusting
        .get(format!(
            "https://localhost:{}/-/healthy",
            server.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-frame-options"], "deny");
    assert_eq!(status_and_body(response).await, (200, "OK".into()));

    let plain = reqwest::Client::new()
        .get(format!("http://{}/-/healthy", server.addr))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP must not be served on a TLS listener"
    );

    let untrusting = reqwest::Client::new()
        .get(format!(
            "https://localhost:{}/-/healthy",
            server.addr.port()
        ))
        .send()
        .await;
    assert!(
        untrusting.is_err(),
        "a client without the CA must not connect"
    );
}

#[tokio::test]
async fn mtls_requires_a_client_certificate() {
    let pki = common::pki();
    let yaml = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    );
    let whoami = Router::new().route(
        "/whoami",
        get(|request: axum::extract::Request| async move {
            let peer = thanos_server::http::peer_info(&request)
                .cloned()
                .unwrap_or_default();
            format!(
                "certs={} local={}",
                peer.client_certificates.map_or(0, |certs| certs.len()),
                peer.remote_addr.is_some_and(|addr| addr.ip().is_loopback())
            )
        }),
    );
    let server = start(web_config(&yaml, pki.dir.path()), whoami).await;
    server.prober.healthy();
    let url = format!("https://localhost:{}/-/healthy", server.addr.port());
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();

    let without_cert = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .build()
        .unwrap();
    assert!(without_cert.get(&url).send().await.is_err());

    let with_cert = reqwest::Client::builder()
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(pki.client_identity_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = with_cert.get(&url).send().await.unwrap();
    assert_eq!(status_and_body(response).await, (200, "OK".into()));
    let whoami = with_cert
        .get(format!("https://localhost:{}/whoami", server.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_body(whoami).await,
        (200, "certs=1 local=true".into())
    );
}

#[tokio::test]
async fn basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let yaml = format!("basic_auth_users:\n  alice: \"{hash}\"\n");
    let server = start(web_config(&yaml, dir.path()), Router::new()).await;
    server.prober.healthy();
    let url = format!("http://{}/-/healthy", server.addr);
    let client = reqwest::Client::new();

    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Basic");
    let wrong = client
        .get(&url)
        .basic_auth("alice", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let unknown = client
        .get(&url)
        .basic_auth("bob", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    for _ in 0..2 {
        let right = client
            .get(&url)
            .basic_auth("alice", Some("s3cret"))
            .send()
            .await
            .unwrap();
        assert_eq!(status_and_body(right).await, (200, "OK".into()));
    }
    let metrics = client
        .get(format!("http://{}/metrics", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 401, "basic auth protects every route");
}

#[tokio::test]
async fn in_flight_requests_finish_during_graceful_shutdown() {
    let routes = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "done"
        }),
    );
    let server = start(WebConfig::default(), routes).await;
    let url = format!("http://{}/slow", server.addr);
    let request =
        tokio::spawn(async move { reqwest::get(url).await.unwrap().text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.token.cancel();
    assert_eq!(request.await.unwrap(), "done");
    server.handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn tls_min_version_is_enforced() {
    let pki = common::pki();
    let yaml = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: TLS13\n",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let server = start(web_config(&yaml, pki.dir.path()), Router::new()).await;
    server.prober.healthy();
    let url = format!("https://localhost:{}/-/healthy", server.addr.port());
    let client = |max: Option<reqwest::tls::Version>| {
        let builder = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
        match max {
            Some(version) => builder.max_tls_version(version),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let tls12_only = client(Some(reqwest::tls::Version::TLS_1_2))
        .get(&url)
        .send()
        .await;
    assert!(
        tls12_only.is_err(),
        "a TLS 1.2 client must be refused when min_version is TLS13"
    );
    let default = client(None).get(&url).send().await.unwrap();
    assert_eq!(default.status(), 200);
}
