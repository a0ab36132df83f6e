//! The plaintext StoreAPI transport ([`thanos_server::DirectChannel`]) against our gRPC
//! server: unary and streaming calls, error statuses, reconnection after a restart.

use std::time::Duration;

use prometheus::Registry;
use thanos_server::{
    ClientTlsOptions, GrpcChannel, GrpcClientOptions, GrpcServer, Prober, TlsVersion,
};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn start(
    address: &str,
) -> (
    String,
    Prober,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let prober = Prober::new("store", &Registry::new()).unwrap();
    let options = crate::common::plaintext_grpc_options(address);
    let server = GrpcServer::bind(options, prober.clone()).await.unwrap();
    let addr = server.local_addr().to_string();
    let token = CancellationToken::new();
    let run = server.run(token.clone());
    let handle = tokio::spawn(async move { run.await.unwrap() });
    (addr, prober, token, handle)
}

async fn check(channel: &GrpcChannel, service: &str) -> Result<i32, tonic::Status> {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn calls_statuses_streams_and_reconnects() {
    let (addr, prober, token, handle) = start("127.0.0.1:0").await;
    let client = GrpcClientOptions { tls: None }.build().unwrap();
    let channel = client.store_channel(&addr, Duration::from_secs(2)).unwrap();
    assert!(matches!(channel, GrpcChannel::Direct(_)), "{channel:?}");

    // Unary calls on one connection follow the server's state.
    assert_eq!(
        check(&channel, "").await.unwrap(),
        ServingStatus::NotServing as i32
    );
    prober.ready();
    let mut serving = false;
    for _ in 0..100 {
        if check(&channel, "").await.unwrap() == ServingStatus::Serving as i32 {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(serving, "health never became SERVING");

    // An error status (a trailers-only response) reaches the caller with its code.
    let err = check(&channel, "no.such.Service").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

    // A server-streaming call delivers messages before the stream ends.
    let mut watch = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("no watch message")
        .unwrap()
        .expect("watch stream ended");
    assert_eq!(first.status, ServingStatus::Serving as i32);
    drop(watch);

    // The server goes away: calls fail; once it is back, the same channel reconnects.
    token.cancel();
    handle.await.unwrap();
    assert!(check(&channel, "").await.is_err(), "the server is gone");
    let (again, prober, token, handle) = start(&addr).await;
    assert_eq!(again, addr);
    prober.ready();
    let mut back = false;
    for _ in 0..100 {
        if check(&channel, "").await.ok() == Some(ServingStatus::Serving as i32) {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(back, "the channel did not reconnect");
    token.cancel();
    handle.await.unwrap();
}

#[tokio::test]
async fn unreachable_endpoints_fail_within_the_connect_timeout() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = GrpcClientOptions { tls: None }.build().unwrap();
    let channel = client
        .store_channel(&format!("127.0.0.1:{port}"), Duration::from_millis(500))
        .unwrap();
    let started = std::time::Instant::now();
    let err = check(&channel, "").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{err:?}");
}

#[test]
fn tls_endpoints_keep_tonics_channel() {
    let pki = crate::common::pki();
    let client = GrpcClientOptions {
        tls: Some(ClientTlsOptions {
            skip_verify: false,
            cert: None,
            key: None,
            ca: Some(pki.ca.clone()),
            server_name: None,
            min_version: TlsVersion::Tls12,
        }),
    }
    .build()
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let channel = client
        .store_channel("127.0.0.1:10901", Duration::from_secs(1))
        .unwrap();
    assert!(matches!(channel, GrpcChannel::Tonic(_)), "{channel:?}");
}
