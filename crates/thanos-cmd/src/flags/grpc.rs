//! gRPC server flags (components.md §1.3).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Args};
use thanos_server::TlsVersion;

use super::{non_empty, values};

/// `--grpc-address`, `--grpc-grace-period`, `--grpc-server-*`.
#[derive(Debug, Clone, Args)]
pub struct GrpcServerFlags {
    /// Listen ip:port address for gRPC endpoints (StoreAPI).
    #[arg(
        id = "grpc-address",
        long = "grpc-address",
        default_value = "0.0.0.0:10901"
    )]
    pub address: String,

    /// Time to wait after an interrupt received for GRPC Server.
    #[arg(id = "grpc-grace-period", long = "grpc-grace-period", default_value = "2m", value_parser = values::duration)]
    pub grace_period: Duration,

    /// TLS Certificate for gRPC server, leave blank to disable TLS.
    #[arg(id = "grpc-server-tls-cert", long = "grpc-server-tls-cert")]
    pub tls_cert: Option<PathBuf>,

    /// TLS Key for the gRPC server, leave blank to disable TLS.
    #[arg(id = "grpc-server-tls-key", long = "grpc-server-tls-key")]
    pub tls_key: Option<PathBuf>,

    /// TLS CA to verify clients against; if set, client certificates are required (mTLS).
    #[arg(id = "grpc-server-tls-client-ca", long = "grpc-server-tls-client-ca")]
    pub tls_client_ca: Option<PathBuf>,

    /// TLS supported minimum version for gRPC server (1.2 and 1.3 are supported).
    #[arg(id = "grpc-server-tls-min-version", long = "grpc-server-tls-min-version", default_value = "1.3", value_parser = values::tls_version)]
    pub tls_min_version: TlsVersion,

    /// TLS cipher suites (accepted; rustls chooses among its own safe suites).
    #[arg(id = "grpc-server-tls-ciphers", long = "grpc-server-tls-ciphers", action = ArgAction::Append)]
    pub tls_ciphers: Vec<String>,

    /// TLS curves (accepted; rustls chooses its key exchange groups).
    #[arg(id = "grpc-server-tls-curves", long = "grpc-server-tls-curves", action = ArgAction::Append)]
    pub tls_curves: Vec<String>,

    /// The grpc server max connection age.
    #[arg(id = "grpc-server-max-connection-age", long = "grpc-server-max-connection-age", default_value = "60m", value_parser = values::duration)]
    pub max_connection_age: Duration,
}

impl GrpcServerFlags {
    /// Builds server options and loads the TLS files once to validate them.
    pub fn options(&self) -> anyhow::Result<thanos_server::GrpcServerOptions> {
        if !self.tls_ciphers.is_empty() || !self.tls_curves.is_empty() {
            tracing::warn!(
                "--grpc-server-tls-ciphers/--grpc-server-tls-curves are ignored: rustls chooses its own"
            );
        }
        let options = thanos_server::GrpcServerOptions::from_flags(
            &self.address,
            self.grace_period,
            non_empty(&self.tls_cert),
            non_empty(&self.tls_key),
            non_empty(&self.tls_client_ca),
            self.tls_min_version,
            self.max_connection_age,
        )
        .context("invalid --grpc-server-tls-* flags")?;
        if let Some(tls) = &options.tls {
            tls.build(&[b"h2"])
                .context("invalid --grpc-server-tls-* flags")?;
        }
        Ok(options)
    }
}
