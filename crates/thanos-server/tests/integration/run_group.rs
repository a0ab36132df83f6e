//! Graceful shutdown of real servers through the run group.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use prometheus::Registry;
use thanos_server::{
    BoxError, GrpcServer, GrpcServerOptions, HttpServer, HttpServerOptions, Prober, RunGroup,
    WebConfig,
};

#[tokio::test]
async fn cancel_stops_servers_then_runs_hooks_in_order() {
    let registry = Registry::new();
    let prober = Prober::new("receive", &registry).unwrap();
    let http = HttpServer::bind(
        HttpServerOptions {
            name: "http",
            address: "127.0.0.1:0".to_owned(),
            grace_period: Duration::from_secs(2),
            web_config: WebConfig::default(),
        },
        prober.clone(),
        registry.clone(),
        Router::new(),
    )
    .await
    .unwrap();
    let grpc = GrpcServer::bind(
        GrpcServerOptions {
            address: "127.0.0.1:0".to_owned(),
            grace_period: Duration::from_secs(2),
            tls: None,
            max_connection_age: Duration::from_secs(3600),
        },
        prober.clone(),
    )
    .await
    .unwrap();
    let http_addr = http.local_addr();
    let grpc_addr = grpc.local_addr();

    let mut group = RunGroup::new(prober.clone());
    group.spawn("http", http.run(group.token()));
    group.spawn("grpc", grpc.run(group.token()));
    let order = Arc::new(Mutex::new(Vec::new()));
    for name in ["flush heads", "upload blocks"] {
        let (order, prober) = (order.clone(), prober.clone());
        group.on_shutdown(name, move || async move {
            // Servers are already closed when hooks run.
            let http_closed = tokio::net::TcpStream::connect(http_addr).await.is_err();
            let grpc_closed = tokio::net::TcpStream::connect(grpc_addr).await.is_err();
            order.lock().unwrap().push(format!(
                "{name} ready={} http_closed={http_closed} grpc_closed={grpc_closed}",
                prober.is_ready()
            ));
            Ok::<_, BoxError>(())
        });
    }
    prober.healthy();
    prober.ready();
    let ready = reqwest::get(format!("http://{http_addr}/-/ready"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(group.run(async move {
        let _ = rx.await;
    }));
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("shutdown finishes within the grace periods")
        .unwrap()
        .unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        [
            "flush heads ready=false http_closed=true grpc_closed=true",
            "upload blocks ready=false http_closed=true grpc_closed=true"
        ]
    );
}
