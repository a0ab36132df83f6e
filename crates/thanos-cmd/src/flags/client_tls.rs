//! gRPC client TLS flags: `--grpc-client-*` (query → stores) and
//! `--remote-write.client-*` (receive → peer receivers).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{ArgAction, Args};
use thanos_server::{ClientTlsOptions, GrpcClientOptions, TlsVersion};

use super::{non_empty, values};

fn client_options(
    secure: bool,
    skip_verify: bool,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    ca: &Option<PathBuf>,
    server_name: &str,
    min_version: TlsVersion,
) -> anyhow::Result<GrpcClientOptions> {
    let options = GrpcClientOptions {
        tls: secure.then(|| ClientTlsOptions {
            skip_verify,
            cert: non_empty(cert).map(Path::to_owned),
            key: non_empty(key).map(Path::to_owned),
            ca: non_empty(ca).map(Path::to_owned),
            server_name: (!server_name.is_empty()).then(|| server_name.to_owned()),
            min_version,
        }),
    };
    // Load the files now so a bad path fails at startup.
    options.build()?;
    Ok(options)
}

/// Query's client flags towards stores (deprecated in Thanos after v0.43 in favour of the
/// per-endpoint config, still widely used).
#[derive(Debug, Clone, Args)]
pub struct GrpcClientFlags {
    /// Use TLS when talking to the gRPC server.
    #[arg(id = "grpc-client-tls-secure", long = "grpc-client-tls-secure", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub secure: bool,

    /// Disable TLS certificate verification, i.e. self-signed or signed by an untrusted CA.
    #[arg(id = "grpc-client-tls-skip-verify", long = "grpc-client-tls-skip-verify", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub skip_verify: bool,

    /// TLS Certificates to use to identify this client to the server.
    #[arg(id = "grpc-client-tls-cert", long = "grpc-client-tls-cert")]
    pub cert: Option<PathBuf>,

    /// TLS Key for the client's certificate.
    #[arg(id = "grpc-client-tls-key", long = "grpc-client-tls-key")]
    pub key: Option<PathBuf>,

    /// TLS CA Certificates to use to verify gRPC servers.
    #[arg(id = "grpc-client-tls-ca", long = "grpc-client-tls-ca")]
    pub ca: Option<PathBuf>,

    /// Server name to verify the hostname on the returned gRPC certificates.
    #[arg(
        id = "grpc-client-server-name",
        long = "grpc-client-server-name",
        default_value = ""
    )]
    pub server_name: String,

    /// TLS supported minimum version for gRPC client (1.2 and 1.3 are supported).
    #[arg(id = "grpc-client-tls-min-version", long = "grpc-client-tls-min-version", default_value = "1.3", value_parser = values::tls_version)]
    pub min_version: TlsVersion,

    /// Compression algorithm to use for gRPC requests to other clients.
    #[arg(id = "grpc-compression", long = "grpc-compression", default_value = "none", value_parser = ["snappy", "none"])]
    pub compression: String,
}

impl GrpcClientFlags {
    /// Client options with the TLS files loaded and validated.
    pub fn options(&self) -> anyhow::Result<GrpcClientOptions> {
        client_options(
            self.secure,
            self.skip_verify,
            &self.cert,
            &self.key,
            &self.ca,
            &self.server_name,
            self.min_version,
        )
        .context("invalid --grpc-client-tls-* flags")
    }
}

/// Receive's client flags towards peer receivers.
#[derive(Debug, Clone, Args)]
pub struct RemoteWriteClientFlags {
    /// TLS Certificates to use to identify this client to the server.
    #[arg(
        id = "remote-write.client-tls-cert",
        long = "remote-write.client-tls-cert"
    )]
    pub cert: Option<PathBuf>,

    /// TLS Key for the client's certificate.
    #[arg(
        id = "remote-write.client-tls-key",
        long = "remote-write.client-tls-key"
    )]
    pub key: Option<PathBuf>,

    /// TLS CA Certificates to use to verify servers.
    #[arg(id = "remote-write.client-tls-ca", long = "remote-write.client-tls-ca")]
    pub ca: Option<PathBuf>,

    /// Use TLS when talking to the other receivers.
    #[arg(id = "remote-write.client-tls-secure", long = "remote-write.client-tls-secure", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub secure: bool,

    /// Disable TLS certificate verification when talking to the other receivers.
    #[arg(id = "remote-write.client-tls-skip-verify", long = "remote-write.client-tls-skip-verify", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub skip_verify: bool,

    /// Server name to verify the hostname on the returned TLS certificates.
    #[arg(
        id = "remote-write.client-server-name",
        long = "remote-write.client-server-name",
        default_value = ""
    )]
    pub server_name: String,

    /// TLS minimum version for the client (1.2 and 1.3 are supported).
    #[arg(id = "remote-write.client-tls-min-version", long = "remote-write.client-tls-min-version", default_value = "1.3", value_parser = values::tls_version)]
    pub min_version: TlsVersion,
}

impl RemoteWriteClientFlags {
    /// Client options with the TLS files loaded and validated.
    pub fn options(&self) -> anyhow::Result<GrpcClientOptions> {
        client_options(
            self.secure,
            self.skip_verify,
            &self.cert,
            &self.key,
            &self.ca,
            &self.server_name,
            self.min_version,
        )
        .context("invalid --remote-write.client-tls-* flags")
    }
}
