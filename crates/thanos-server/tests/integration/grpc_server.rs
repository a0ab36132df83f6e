//! gRPC server: health service following the prober, TLS and mTLS with the client helper.

use crate::common;

use std::time::Duration;

use prometheus::Registry;
use thanos_server::{
    ClientTlsOptions, GrpcClientOptions, GrpcServer, GrpcServerOptions, Prober, TlsVersion,
};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn check(channel: tonic::transport::Channel) -> Result<i32, tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|response| response.into_inner().status)
}

async fn wait_for_status(client: &thanos_server::GrpcClient, addr: &str, want: ServingStatus) {
    for _ in 0..100 {
        let channel = client
            .connect(client.endpoint(addr).unwrap())
            .await
            .unwrap();
        if check(channel).await.unwrap() == want as i32 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("health status never became {want:?}");
}

#[tokio::test]
async fn plaintext_health_follows_the_prober() {
    let prober = Prober::new("query", &Registry::new()).unwrap();
    let options = crate::common::plaintext_grpc_options("127.0.0.1:0");
    let server = GrpcServer::bind(options, prober.clone()).await.unwrap();
    let addr = server.local_addr().to_string();
    let token = CancellationToken::new();
    let handle = tokio::spawn(server.run(token.clone()));

    let client = GrpcClientOptions { tls: None }.build().unwrap();
    wait_for_status(&client, &addr, ServingStatus::NotServing).await;
    prober.ready();
    wait_for_status(&client, &addr, ServingStatus::Serving).await;
    prober.not_ready("test");
    wait_for_status(&client, &addr, ServingStatus::NotServing).await;

    token.cancel();
    handle.await.unwrap().unwrap();
    let endpoint = client
        .endpoint(&addr)
        .unwrap()
        .connect_timeout(Duration::from_millis(500));
    assert!(
        client.connect(endpoint).await.is_err(),
        "listener must be closed"
    );
}

#[tokio::test]
async fn mtls_with_the_client_helper() {
    let pki = common::pki();
    let prober = Prober::new("receive", &Registry::new()).unwrap();
    prober.ready();
    let options = GrpcServerOptions::from_flags(
        "127.0.0.1:0",
        Duration::from_secs(2),
        Some(&pki.server_cert),
        Some(&pki.server_key),
        Some(&pki.ca),
        TlsVersion::Tls13,
        Duration::from_secs(3600),
    )
    .unwrap();
    let server = GrpcServer::bind(options, prober).await.unwrap();
    let port = server.local_addr().port();
    let token = CancellationToken::new();
    let handle = tokio::spawn(server.run(token.clone()));
    let addr = format!("localhost:{port}");

    let tls = |cert: bool, skip_verify: bool, ca: bool| ClientTlsOptions {
        skip_verify,
        cert: cert.then(|| pki.client_cert.clone()),
        key: cert.then(|| pki.client_key.clone()),
        ca: ca.then(|| pki.ca.clone()),
        server_name: None,
        min_version: TlsVersion::Tls12,
    };

    let good = GrpcClientOptions {
        tls: Some(tls(true, false, true)),
    }
    .build()
    .unwrap();
    let channel = good.connect(good.endpoint(&addr).unwrap()).await.unwrap();
    assert_eq!(check(channel).await.unwrap(), ServingStatus::Serving as i32);

    // Explicit server name (SNI / verification) when dialling by IP.
    let named = GrpcClientOptions {
        tls: Some(ClientTlsOptions {
            server_name: Some("localhost".to_owned()),
            ..tls(true, false, true)
        }),
    }
    .build()
    .unwrap();
    let channel = named
        .connect(named.endpoint(&format!("127.0.0.1:{port}")).unwrap())
        .await
        .unwrap();
    assert_eq!(check(channel).await.unwrap(), ServingStatus::Serving as i32);

    // Skip-verify without a CA still needs the client certificate for mTLS.
    let skip = GrpcClientOptions {
        tls: Some(tls(true, true, false)),
    }
    .build()
    .unwrap();
    let channel = skip.connect(skip.endpoint(&addr).unwrap()).await.unwrap();
    assert_eq!(check(channel).await.unwrap(), ServingStatus::Serving as i32);

    // No client certificate: the server refuses the handshake (TLS 1.3 reports it on the
    // first request rather than at connect time).
    let no_cert = GrpcClientOptions {
        tls: Some(tls(false, false, true)),
    }
    .build()
    .unwrap();
    let refused = match no_cert.connect(no_cert.endpoint(&addr).unwrap()).await {
        Err(_) => true,
        Ok(channel) => check(channel).await.is_err(),
    };
    assert!(refused, "a client without a certificate must be refused");

    // Plaintext client against a TLS server fails.
    let plain = GrpcClientOptions { tls: None }.build().unwrap();
    let refused = match plain.connect(plain.endpoint(&addr).unwrap()).await {
        Err(_) => true,
        Ok(channel) => check(channel).await.is_err(),
    };
    assert!(refused, "a plaintext client must be refused");

    token.cancel();
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn tls_1_0_is_refused_clearly() {
    let pki = common::pki();
    let err = GrpcServer::bind(
        GrpcServerOptions::from_flags(
            "127.0.0.1:0",
            Duration::from_secs(1),
            Some(&pki.server_cert),
            Some(&pki.server_key),
            None,
            TlsVersion::Tls10,
            Duration::from_secs(60),
        )
        .unwrap(),
        Prober::new("store", &Registry::new()).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("TLS 1.0 is not supported"),
        "{err}"
    );
}
