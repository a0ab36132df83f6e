//! HTTP server flags (components.md §1.2).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::values;

/// `--http-address`, `--http-grace-period`, `--http.config`.
#[derive(Debug, Clone, Args)]
pub struct HttpFlags {
    /// Listen host:port for HTTP endpoints.
    #[arg(
        id = "http-address",
        long = "http-address",
        default_value = "0.0.0.0:10902"
    )]
    pub address: String,

    /// Time to wait after an interrupt received for HTTP Server.
    #[arg(id = "http-grace-period", long = "http-grace-period", default_value = "2m", value_parser = values::duration)]
    pub grace_period: Duration,

    /// Path to the exporter-toolkit web configuration file (TLS, basic auth, headers).
    #[arg(id = "http.config", long = "http.config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl HttpFlags {
    /// Loads the web config (files included) and builds server options.
    pub fn options(&self, name: &'static str) -> anyhow::Result<thanos_server::HttpServerOptions> {
        let web_config = match super::non_empty(&self.config) {
            None => thanos_server::WebConfig::default(),
            Some(path) => {
                thanos_server::WebConfig::from_file(path).context("invalid --http.config")?
            }
        };
        if let Some(tls) = &web_config.tls {
            let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
            tls.build(alpn).context("invalid --http.config")?;
        }
        Ok(thanos_server::HttpServerOptions {
            name,
            address: self.address.clone(),
            grace_period: self.grace_period,
            web_config,
        })
    }
}
