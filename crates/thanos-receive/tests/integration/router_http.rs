//! The HTTP handler in router mode against in-process ingestors reached over real gRPC
//! (snappy-compressed `thanos.WriteableStore/RemoteWrite`): replication, the status codes
//! of §3.6 (200 / 409 / 503) and the replica header.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{now_ms, ts, v1_body};
use prometheus::Registry;
use thanos_receive::forward::Compression;
use thanos_receive::hashring::{Algorithm, MultiHashring, parse_config};
use thanos_receive::{
    Distributor, GrpcPeers, Handler, HandlerOptions, HeadOptions, LocalWriter, MultiTsdb,
    RouterOptions, SharedHashring, WriteableService,
};
use thanos_server::{GrpcClientOptions, GrpcServer, GrpcServerOptions, Prober};
use tokio_util::sync::CancellationToken;

/// An ingestor serving `thanos.WriteableStore` on 127.0.0.1:0.
struct Ingestor {
    address: String,
    tsdb: Arc<MultiTsdb>,
    stop: CancellationToken,
}

impl Drop for Ingestor {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn ingestor() -> Ingestor {
    let registry = Registry::new();
    let prober = Prober::new("receive", &registry).unwrap();
    let tsdb = Arc::new(MultiTsdb::new(HeadOptions::default(), &registry).unwrap());
    let service = WriteableService::new(prober.clone(), "default-tenant");
    service.attach(Arc::new(
        Distributor::ingestor(LocalWriter::new(Arc::clone(&tsdb)), &registry).unwrap(),
    ));
    let server = GrpcServer::bind(
        GrpcServerOptions {
            address: "127.0.0.1:0".into(),
            grace_period: Duration::from_millis(10),
            tls: None,
            max_connection_age: Duration::from_secs(3600),
        },
        prober.clone(),
    )
    .await
    .unwrap()
    .add_service(service.server());
    let address = server.local_addr().to_string();
    prober.ready();
    let stop = CancellationToken::new();
    tokio::spawn(server.run(stop.clone()));
    Ingestor {
        address,
        tsdb,
        stop,
    }
}

/// A router handler on 127.0.0.1:0 for `endpoints` with replication factor `rf`.
async fn router(endpoints: &[&str], rf: u64) -> String {
    let json = serde_json::json!([{ "endpoints": endpoints }]).to_string();
    let configs = parse_config(json.as_bytes()).unwrap();
    let ring = Arc::new(SharedHashring::new(
        MultiHashring::new(&configs, Algorithm::Hashmod, rf).unwrap(),
    ));
    let registry = Registry::new();
    let client = GrpcClientOptions { tls: None }.build().unwrap();
    let distributor = Distributor::router(
        ring,
        None,
        Arc::new(GrpcPeers::new(client, Compression::Snappy)),
        RouterOptions {
            forward_timeout: Duration::from_secs(3),
            ..RouterOptions::default()
        },
        &registry,
    )
    .unwrap();
    let prober = Prober::new("receive", &registry).unwrap();
    prober.ready();
    let handler = Handler::with_distributor(
        HandlerOptions::default(),
        Arc::new(distributor),
        prober,
        &registry,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/receive", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, handler.router()).await });
    url
}

async fn post(url: &str, body: Vec<u8>, replica: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .body(body);
    if let Some(replica) = replica {
        request = request.header("THANOS-REPLICA", replica);
    }
    let resp = request.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn series_count(tsdb: &MultiTsdb) -> u64 {
    tsdb.get("default-tenant").map_or(0, |h| h.num_series())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_replicates_over_grpc_with_thanos_status_codes() {
    let (a, b) = (ingestor().await, ingestor().await);
    let url = router(&[&a.address, &b.address], 2).await;
    let t = now_ms();
    let series: Vec<_> = (0..10)
        .map(|i| ts(&[("__name__", "m"), ("i", &i.to_string())], &[(t, 1.0)]))
        .collect();
    let (status, body) = post(&url, v1_body(series.clone()), None).await;
    assert_eq!(status, 200, "{body}");
    // RF=2 on two nodes: both hold every series (the second copy may land after the
    // quorum-1 answer).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while series_count(&a.tsdb) < 10 || series_count(&b.tsdb) < 10 {
        assert!(std::time::Instant::now() < deadline, "replicas missing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Older samples conflict on both replicas: 409 naming the peers' error.
    let older: Vec<_> = (0..10)
        .map(|i| {
            ts(
                &[("__name__", "m"), ("i", &i.to_string())],
                &[(t - 1000, 2.0)],
            )
        })
        .collect();
    let (status, body) = post(&url, v1_body(older), None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("code = AlreadyExists"), "{body}");
    assert!(body.contains("out of order sample"), "{body}");

    // Non-numeric replica header: 400 before anything is written.
    let (status, body) = post(&url, v1_body(series), Some("abc")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("THANOS-REPLICA"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_peer_is_a_retryable_503() {
    let a = ingestor().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let url = router(&[&a.address, &dead], 1).await;
    let t = now_ms();
    let series: Vec<_> = (0..20)
        .map(|i| ts(&[("__name__", "m"), ("i", &i.to_string())], &[(t, 1.0)]))
        .collect();
    let (status, body) = post(&url, v1_body(series), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&dead), "{body}");
    // The reachable ingestor still stored its share.
    let stored = series_count(&a.tsdb);
    assert!(stored > 0 && stored < 20, "{stored}");
}
