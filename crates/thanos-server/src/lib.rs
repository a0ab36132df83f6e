//! HTTP and gRPC server scaffolding shared by every component: probes, metrics, TLS,
//! graceful shutdown, and the project-wide error classification.
//!
//! Mirrors these upstream packages (thanos-io/thanos @ `e103a81bd594`):
//! * [`prober`] ← `pkg/prober` (healthy/ready state, `thanos_status` gauge);
//! * [`http`] ← `pkg/server/http` plus prometheus/exporter-toolkit `web` (`--http.config`);
//! * [`grpc`] ← `pkg/server/grpc` and the client TLS part of `pkg/extgrpc`;
//! * [`channel`] — the StoreAPI client transport (a direct HTTP/2 connection for
//!   plaintext endpoints, tonic's channel for TLS ones);
//! * [`tls`] ← `pkg/tls`;
//! * [`shutdown`] ← the `oklog/run` group and the shutdown order of `cmd/thanos`;
//! * [`parse`] ← Prometheus `model.ParseDuration`, `alecthomas/units.ParseBase2Bytes`
//!   and Thanos' `--label` parsing;
//! * [`kind`] — the single [`ErrorKind`] → HTTP status / gRPC code mapping.
//!
//! TLS uses rustls with the aws-lc-rs provider, passed explicitly to every config.

pub mod channel;
pub mod error;
pub mod grpc;
pub mod http;
pub mod kind;
pub mod parse;
pub mod prober;
pub mod shutdown;
pub mod tls;
pub mod web_config;

pub use channel::{DirectChannel, GrpcChannel};
pub use error::{BoxError, Error, Result};
pub use grpc::{GrpcClient, GrpcClientOptions, GrpcServer, GrpcServerOptions, MAX_MESSAGE_SIZE};
pub use http::{HttpServer, HttpServerOptions};
pub use kind::ErrorKind;
pub use parse::{
    ExternalLabel, format_duration, parse_bytes, parse_duration, parse_label, parse_labels,
};
pub use prober::Prober;
pub use shutdown::{RunGroup, shutdown_signal};
pub use tls::{ClientAuth, ClientTlsOptions, PemSource, ServerTlsOptions, TlsVersion};
pub use web_config::WebConfig;
