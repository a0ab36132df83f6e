//! TLS for servers and gRPC clients (mirrors Thanos `pkg/tls` and the TLS part of
//! exporter-toolkit's web config), built on rustls with the aws-lc-rs provider.
//!
//! Every rustls config built here is given the provider explicitly, so nothing depends on a
//! process-wide default; [`install_default_crypto_provider`] exists for other libraries
//! (reqwest, object_store) that look the default up.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// How long a client may take to finish the TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The crypto provider used for every TLS config of the project (aws-lc-rs).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Installs aws-lc-rs as the process-wide default rustls provider, for libraries that use
/// the default instead of taking a provider. Calling it more than once is harmless.
pub fn install_default_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _already_installed = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A TLS protocol version as Thanos flags (`1.2`) or the web config (`TLS12`) spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.0 (accepted by the parser, refused by rustls).
    Tls10,
    /// TLS 1.1 (accepted by the parser, refused by rustls).
    Tls11,
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl FromStr for TlsVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1.0" | "TLS10" => Ok(TlsVersion::Tls10),
            "1.1" | "TLS11" => Ok(TlsVersion::Tls11),
            "1.2" | "TLS12" => Ok(TlsVersion::Tls12),
            "1.3" | "TLS13" => Ok(TlsVersion::Tls13),
            other => Err(format!(
                "unknown TLS version {other:?} (want 1.0, 1.1, 1.2 or 1.3)"
            )),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls10 => "1.0",
            TlsVersion::Tls11 => "1.1",
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        })
    }
}

/// The rustls protocol versions between `min` and `max` inclusive; TLS 1.0/1.1 are refused
/// with a clear error because rustls does not implement them.
fn protocol_versions(
    min: TlsVersion,
    max: TlsVersion,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    if min > max {
        return Err(Error::TlsConfig(format!(
            "minimum TLS version {min} is above maximum {max}"
        )));
    }
    if min < TlsVersion::Tls12 {
        return Err(Error::TlsConfig(format!(
            "TLS {min} is not supported (rustls implements TLS 1.2 and 1.3); use 1.2 or 1.3"
        )));
    }
    let mut versions = Vec::new();
    if min <= TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    Ok(versions)
}

/// Client certificate policy, with Go's `tls.ClientAuthType` names used by the web config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Do not ask for a client certificate.
    #[default]
    NoClientCert,
    /// Ask for a certificate, accept any (or none) without verification.
    RequestClientCert,
    /// Require a certificate, but do not verify it.
    RequireAnyClientCert,
    /// Verify the certificate against the client CA if one is sent.
    VerifyClientCertIfGiven,
    /// Require a certificate signed by the client CA.
    RequireAndVerifyClientCert,
}

impl FromStr for ClientAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "NoClientCert" => Ok(ClientAuth::NoClientCert),
            "RequestClientCert" => Ok(ClientAuth::RequestClientCert),
            "RequireAnyClientCert" => Ok(ClientAuth::RequireAnyClientCert),
            "VerifyClientCertIfGiven" => Ok(ClientAuth::VerifyClientCertIfGiven),
            "RequireAndVerifyClientCert" => Ok(ClientAuth::RequireAndVerifyClientCert),
            other => Err(format!("unknown client_auth_type {other:?}")),
        }
    }
}

/// Where PEM data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A file path (read when the config is built).
    File(PathBuf),
    /// PEM text given inline.
    Inline(String),
}

impl PemSource {
    fn read(&self, what: &'static str) -> Result<(Vec<u8>, String)> {
        match self {
            PemSource::File(path) => std::fs::read(path)
                .map(|bytes| (bytes, path.display().to_string()))
                .map_err(|source| Error::ReadFile {
                    what,
                    path: path.clone(),
                    source,
                }),
            PemSource::Inline(text) => Ok((text.as_bytes().to_vec(), "inline config".to_owned())),
        }
    }
}

/// Reads every certificate of a PEM source.
pub fn load_certs(source: &PemSource, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let (bytes, origin) = source.read(what)?;
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<io::Result<Vec<_>>>()
        .map_err(|err| Error::Pem {
            what,
            origin: origin.clone(),
            message: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            what,
            origin,
            message: "no CERTIFICATE block found".to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM source.
pub fn load_private_key(source: &PemSource) -> Result<PrivateKeyDer<'static>> {
    let what = "TLS private key";
    let (bytes, origin) = source.read(what)?;
    match rustls_pemfile::private_key(&mut bytes.as_slice()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(Error::Pem {
            what,
            origin,
            message: "no PRIVATE KEY block found".to_owned(),
        }),
        Err(err) => Err(Error::Pem {
            what,
            origin,
            message: err.to_string(),
        }),
    }
}

fn root_store(source: &PemSource, what: &'static str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(source, what)? {
        roots.add(cert).map_err(Error::Rustls)?;
    }
    Ok(roots)
}

/// Server-side TLS settings, from gRPC/remote-write flags or a web config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsOptions {
    /// Server certificate chain.
    pub cert: PemSource,
    /// Server private key.
    pub key: PemSource,
    /// CA bundle used to verify client certificates.
    pub client_ca: Option<PemSource>,
    /// Client certificate policy.
    pub client_auth: ClientAuth,
    /// Lowest protocol version accepted.
    pub min_version: TlsVersion,
    /// Highest protocol version accepted.
    pub max_version: TlsVersion,
}

impl ServerTlsOptions {
    /// Settings as Thanos' `--grpc-server-tls-*` / `--remote-write.server-tls-*` flags define
    /// them: TLS is on only when both cert and key are given (one without the other is an
    /// error); a client CA makes client certificates mandatory and verified.
    pub fn from_flags(
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
        min_version: TlsVersion,
    ) -> Result<Option<Self>> {
        let (cert, key) = match (cert, key) {
            (None, None) => {
                if client_ca.is_some() {
                    return Err(Error::TlsConfig(
                        "a client CA was given without a server certificate and key".to_owned(),
                    ));
                }
                return Ok(None);
            }
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                return Err(Error::TlsConfig(
                    "both a server certificate and a private key are required for TLS".to_owned(),
                ));
            }
        };
        Ok(Some(ServerTlsOptions {
            cert: PemSource::File(cert.to_owned()),
            key: PemSource::File(key.to_owned()),
            client_ca: client_ca.map(|path| PemSource::File(path.to_owned())),
            client_auth: if client_ca.is_some() {
                ClientAuth::RequireAndVerifyClientCert
            } else {
                ClientAuth::NoClientCert
            },
            min_version,
            max_version: TlsVersion::Tls13,
        }))
    }

    /// Reads the files and builds a rustls server config advertising `alpn` protocols.
    pub fn build(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>> {
        let provider = crypto_provider();
        let versions = protocol_versions(self.min_version, self.max_version)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?;
        let verifier: Option<Arc<dyn ClientCertVerifier>> = match self.client_auth {
            ClientAuth::NoClientCert => None,
            ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
                Some(Arc::new(UnverifiedClientCert {
                    mandatory: self.client_auth == ClientAuth::RequireAnyClientCert,
                    provider: provider.clone(),
                }))
            }
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
                let Some(ca) = &self.client_ca else {
                    return Err(Error::TlsConfig(format!(
                        "client auth type {:?} needs a client CA",
                        self.client_auth
                    )));
                };
                let roots = Arc::new(root_store(ca, "client CA")?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
                let verifier = if self.client_auth == ClientAuth::VerifyClientCertIfGiven {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                Some(verifier.build()?)
            }
        };
        let builder = match verifier {
            None => builder.with_no_client_auth(),
            Some(verifier) => builder.with_client_cert_verifier(verifier),
        };
        let certs = load_certs(&self.cert, "TLS certificate")?;
        let key = load_private_key(&self.key)?;
        let mut config = builder.with_single_cert(certs, key)?;
        config.alpn_protocols = alpn.iter().map(|proto| proto.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// Client certificate verifier for `RequestClientCert` / `RequireAnyClientCert`: asks for a
/// certificate and checks only that the peer owns its key (handshake signatures).
#[derive(Debug)]
struct UnverifiedClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for UnverifiedClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Server certificate verifier for `--grpc-client-tls-skip-verify`: accepts any certificate
/// (still checks handshake signatures). Insecure by design, as in Thanos.
#[derive(Debug)]
struct SkipServerVerification {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for SkipServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client-side TLS settings (`--grpc-client-tls-*`, `--remote-write.client-tls-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsOptions {
    /// Skip verification of the server certificate.
    pub skip_verify: bool,
    /// Client certificate for mTLS (needs `key`).
    pub cert: Option<PathBuf>,
    /// Client private key (needs `cert`).
    pub key: Option<PathBuf>,
    /// CA bundle to verify servers with; without it the server certificate cannot be
    /// verified (no system roots are loaded), so `skip_verify` or a CA is needed.
    pub ca: Option<PathBuf>,
    /// Server name to verify and send in SNI instead of the endpoint host.
    pub server_name: Option<String>,
    /// Lowest protocol version offered.
    pub min_version: TlsVersion,
}

impl ClientTlsOptions {
    /// Reads the files and builds a rustls client config advertising HTTP/2 (for gRPC).
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>> {
        let provider = crypto_provider();
        let versions = protocol_versions(self.min_version, TlsVersion::Tls13)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?;
        let builder = if self.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipServerVerification { provider }))
        } else {
            let Some(ca) = &self.ca else {
                return Err(Error::TlsConfig(
                    "client TLS needs a CA file to verify servers (or skip-verify)".to_owned(),
                ));
            };
            builder.with_root_certificates(root_store(&PemSource::File(ca.clone()), "TLS CA")?)
        };
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder.with_client_auth_cert(
                load_certs(&PemSource::File(cert.clone()), "TLS client certificate")?,
                load_private_key(&PemSource::File(key.clone()))?,
            )?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(Error::TlsConfig(
                    "both a client certificate and a private key are required for mTLS".to_owned(),
                ));
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Who is on the other end of an accepted connection.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// Remote socket address.
    pub remote_addr: Option<SocketAddr>,
    /// Certificate chain the client presented over TLS (end entity first), if any.
    pub client_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// An accepted connection, plain or TLS, as handed to the HTTP and gRPC servers.
#[derive(Debug)]
pub enum ServerConn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, handshake completed.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ServerConn {
    /// Remote address and client certificates of this connection.
    pub fn peer_info(&self) -> PeerInfo {
        match self {
            ServerConn::Plain(stream) => PeerInfo {
                remote_addr: stream.peer_addr().ok(),
                client_certificates: None,
            },
            ServerConn::Tls(stream) => {
                let (tcp, session) = stream.get_ref();
                PeerInfo {
                    remote_addr: tcp.peer_addr().ok(),
                    client_certificates: session.peer_certificates().map(|certs| {
                        Arc::new(certs.iter().map(|c| c.clone().into_owned()).collect())
                    }),
                }
            }
        }
    }
}

impl AsyncRead for ServerConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerConn::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            ServerConn::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerConn::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            ServerConn::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerConn::Plain(stream) => Pin::new(stream).poll_flush(cx),
            ServerConn::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerConn::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            ServerConn::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerConn::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            ServerConn::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerConn::Plain(stream) => stream.is_write_vectored(),
            ServerConn::Tls(stream) => stream.is_write_vectored(),
        }
    }
}

impl tonic::transport::server::Connected for ServerConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer_info()
    }
}

/// Binds a TCP listener, naming the address in the error.
pub(crate) async fn bind(address: &str) -> Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind {
            address: address.to_owned(),
            source,
        })
}

/// Accepts connections until `token` is cancelled (then the listener is closed), completing
/// TLS handshakes concurrently, and delivers ready connections on the returned channel. The
/// channel closes once the listener is closed and pending handshakes are done.
pub(crate) fn spawn_acceptor(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    token: CancellationToken,
    server: &'static str,
) -> mpsc::Receiver<ServerConn> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = token.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Usually EMFILE; back off instead of spinning.
                    tracing::warn!(server, err = %err, "accept connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(server, remote = %remote, err = %err, "set TCP_NODELAY");
            }
            match &acceptor {
                None => {
                    if tx.send(ServerConn::Plain(tcp)).await.is_err() {
                        break;
                    }
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                // The receiver is gone only during shutdown; dropping is fine.
                                let _ = tx.send(ServerConn::Tls(Box::new(stream))).await;
                            }
                            Ok(Err(err)) => {
                                tracing::debug!(server, remote = %remote, err = %err, "TLS handshake");
                            }
                            Err(_) => {
                                tracing::debug!(server, remote = %remote, "TLS handshake timed out");
                            }
                        }
                    });
                }
            }
        }
        tracing::debug!(server, "listener closed");
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_in_both_spellings() {
        assert_eq!("1.3".parse(), Ok(TlsVersion::Tls13));
        assert_eq!("TLS12".parse(), Ok(TlsVersion::Tls12));
        assert!("1.4".parse::<TlsVersion>().is_err());
        assert!("TLS1.2".parse::<TlsVersion>().is_err());
    }

    #[test]
    fn old_versions_are_refused_clearly() {
        let err = protocol_versions(TlsVersion::Tls10, TlsVersion::Tls13).unwrap_err();
        assert!(err.to_string().contains("1.0 is not supported"), "{err}");
        assert!(protocol_versions(TlsVersion::Tls13, TlsVersion::Tls12).is_err());
        assert_eq!(
            protocol_versions(TlsVersion::Tls13, TlsVersion::Tls13)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            protocol_versions(TlsVersion::Tls12, TlsVersion::Tls13)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn flags_need_cert_and_key_together() {
        let none = ServerTlsOptions::from_flags(None, None, None, TlsVersion::Tls13).unwrap();
        assert!(none.is_none());
        let half =
            ServerTlsOptions::from_flags(Some(Path::new("c")), None, None, TlsVersion::Tls13);
        assert!(half.is_err());
        let ca_only =
            ServerTlsOptions::from_flags(None, None, Some(Path::new("ca")), TlsVersion::Tls13);
        assert!(ca_only.is_err());
        let mtls = ServerTlsOptions::from_flags(
            Some(Path::new("c")),
            Some(Path::new("k")),
            Some(Path::new("ca")),
            TlsVersion::Tls12,
        )
        .unwrap()
        .unwrap();
        assert_eq!(mtls.client_auth, ClientAuth::RequireAndVerifyClientCert);
    }

    #[test]
    fn missing_files_are_named() {
        let options = ServerTlsOptions {
            cert: PemSource::File("/nonexistent/cert.pem".into()),
            key: PemSource::File("/nonexistent/key.pem".into()),
            client_ca: None,
            client_auth: ClientAuth::NoClientCert,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
        };
        let err = options.build(&[]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }

    #[test]
    fn client_auth_names() {
        assert_eq!(
            "RequireAndVerifyClientCert".parse(),
            Ok(ClientAuth::RequireAndVerifyClientCert)
        );
        assert!("requireandverify".parse::<ClientAuth>().is_err());
    }
}
