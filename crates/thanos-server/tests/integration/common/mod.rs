//! Test PKI generated with rcgen: a CA, a server certificate for localhost/127.0.0.1 and a
//! client certificate, written as PEM files into a temporary directory; plaintext gRPC
//! server options.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

#[allow(dead_code)] // each test binary uses a different subset
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub ca_pem: String,
    pub client_identity_pem: String,
}

pub fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "thanos test ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "client");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    Pki {
        ca: write("ca.crt", &ca_cert.pem()),
        server_cert: write("server.crt", &server_cert.pem()),
        server_key: write("server.key", &server_key.serialize_pem()),
        client_cert: write("client.crt", &client_cert.pem()),
        client_key: write("client.key", &client_key.serialize_pem()),
        ca_pem: ca_cert.pem(),
        client_identity_pem: format!("{}{}", client_cert.pem(), client_key.serialize_pem()),
        dir,
    }
}

/// Plaintext gRPC server options on `address` (2 s grace period).
pub fn plaintext_grpc_options(address: &str) -> thanos_server::GrpcServerOptions {
    thanos_server::GrpcServerOptions::from_flags(
        address,
        std::time::Duration::from_secs(2),
        None,
        None,
        None,
        thanos_server::TlsVersion::Tls13,
        std::time::Duration::from_secs(3600),
    )
    .unwrap()
}
